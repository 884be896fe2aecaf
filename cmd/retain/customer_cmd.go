package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/retainmail/retain/store"
)

var customerCmd = &command{
	name:    "customer",
	summary: "Change a stored customer by hand: move it to another stage",
	usage:   "customer set-stage [--cause TEXT] [--campaigns DIR] CUSTOMER STAGE",
	help: `set-stage moves the customer to STAGE now, as a time rule or an event would:
the campaigns of the stage it leaves end ("left stage"), those STAGE triggers
start, and the move is recorded in its stage history with --cause. Moving a
customer to the stage it is in changes nothing.

This is the one way to move a customer retain already has: the stage of an
import row or of PUT /api/customers/{id} is where a new customer starts, and is
ignored for an existing one, so that importing a file again changes nothing.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS (see retain help event).

Example:
  retain customer set-stage --cause "upgraded by sales" c42 active`,
	run: runCustomer,
}

func runCustomer(c *command, e *env, args []string) int {
	fs := c.flags()
	cause := fs.String("cause", "set by hand", "why, as the stage history records it (`TEXT`)")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) == 0 || pos[0] != "set-stage" {
		return c.usageError(e, "give a subcommand: set-stage")
	}
	if len(pos) != 3 {
		return c.usageError(e, "set-stage takes a customer and a stage")
	}
	id, stage := pos[1], pos[2]
	ctx := context.Background()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	before, err := ws.store.Customer(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(e.stderr, "retain customer: customer %q is unknown\n", id)
		} else {
			fmt.Fprintf(e.stderr, "retain customer: %v\n", err)
		}
		return exitProblems
	}
	changes, err := ws.applier.MoveStage(ctx, id, stage, *cause)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain customer: %v\n", err)
		return exitProblems
	}
	if len(changes) == 0 {
		fmt.Fprintf(e.stdout, "%s: already in %s; nothing changed\n", id, before.Stage)
		return exitOK
	}
	cust, err := ws.store.Customer(ctx, id)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain customer: %v\n", err)
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "%s: moved from %s to %s (%s)\n", id, before.Stage, stage, *cause)
	printChanges(e, ws.engine, cust, changes)
	return exitOK
}
