package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

var eventCmd = &command{
	name:    "event",
	summary: "Record an event for a customer and apply the lifecycle rules it triggers",
	usage:   "event [--apply] [--at TIME] [--id EVENT_ID] [--email ADDR] [--campaigns DIR] CUSTOMER EVENT [key=value...]\n       retain event --failed | --replay ID...|--all | --drop ID...|--all",
	help: `CUSTOMER is the customer's ID. The key=value pairs become the event's data
(numbers and true/false are typed, so conditions like event.data.total > 50
work). With --email, a customer retain has not seen yet is created first. --at
is in the past, or at most 15 minutes ahead (for clocks that run fast), as for
the API and import.

The event is queued for the workers (retain worker), which apply it and send
what it makes due. With --apply it is applied in this process instead, and its
consequences are printed: stage changes, enrollments, what is due next.

The event is applied once: the same --id (or, without one, the same customer,
name, time and data) is recognised and changes nothing the second time.

An event the workers cannot apply (its customer is unknown, its payload does
not parse, or applying it fails through every retry) is kept in the
failed-event list with the reason. --failed lists it; once the cause is fixed
(the customer imported, say), --replay ID queues it again and removes it from
the list (--replay --all: every one); --drop discards it. These need only
REDIS_URL and RETAIN_REDIS_PREFIX.

Environment: REDIS_URL (default redis://127.0.0.1:6379/0), RETAIN_REDIS_PREFIX
(default "retain:"), RETAIN_CAMPAIGNS.

Examples:
  retain event --email ada@example.com c42 signed_up plan=team
  retain event c42 order_placed total=59.90 sku=T-100`,
	run: runEvent,
}

func runEvent(c *command, e *env, args []string) int {
	fs := c.flags()
	atFlag := fs.String("at", "", "when it happened (`TIME`; default now)")
	id := fs.String("id", "", "idempotency `ID` of the event (default: derived from its content)")
	email := fs.String("email", "", "create the customer with this `address` if retain does not know it")
	apply := fs.Bool("apply", false, "apply the event in this process and print what it did, instead of queueing it")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	var failed failedMode
	fs.BoolVar(&failed.list, "failed", false, "list the events the workers could not apply, with the reason")
	fs.BoolVar(&failed.replay, "replay", false, "queue the failed events with the IDs given (or --all) again, and remove them from the list")
	fs.BoolVar(&failed.drop, "drop", false, "remove the failed events with the IDs given (or --all) from the list without applying them")
	fs.BoolVar(&failed.all, "all", false, "with --replay or --drop: every failed event")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if failed.set() || failed.all {
		return runFailed(c, e, failed, pos)
	}
	if len(pos) < 2 {
		return c.usageError(e, "give a customer and an event name")
	}
	ev := lifecycle.Event{ID: *id, Name: pos[1], At: time.Now()}
	for _, kv := range pos[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return c.usageError(e, "event data %q must be key=value", kv)
		}
		if ev.Data == nil {
			ev.Data = map[string]any{}
		}
		ev.Data[k] = ingest.Value(v)
	}
	ctx := context.Background()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	if *atFlag != "" {
		t, err := ingest.ParseTime(*atFlag, ws.engine.Set().Lifecycle.Timezone)
		if err != nil {
			return c.usageError(e, "--at: %v", err)
		}
		ev.At = t
	}
	rec := &ingest.Record{ID: pos[0], Email: *email, Events: []lifecycle.Event{ev}}
	if err := ingest.Check(rec, ws.engine.Set().Lifecycle); err != nil {
		fmt.Fprintf(e.stderr, "retain event: %v\n", err)
		return exitProblems
	}
	if msg := checkEventData(ws.engine.Set(), rec.Events); msg != "" {
		fmt.Fprintf(e.stderr, "retain event: %s\n", msg)
		return exitProblems
	}
	// The rule of every way in (API, import): no events from the future.
	if err := ingest.CheckTime(ev.At, time.Now()); err != nil {
		fmt.Fprintf(e.stderr, "retain event: --at: %v\n", err)
		return exitProblems
	}
	if *email != "" {
		if _, err := ws.applier.Upsert(ctx, rec); err != nil {
			fmt.Fprintf(e.stderr, "retain event: %v\n", err)
			return exitProblems
		}
	}
	if !*apply {
		if _, err := ws.store.Customer(ctx, rec.ID); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(e.stderr, "retain event: customer %q is unknown: give --email ADDR to create it, or import it first\n", rec.ID)
			return exitProblems
		}
		if err := queue.NewClient(ws.rdb).EnqueueEvent(ctx, rec.ID, rec.Events[0]); err != nil {
			fmt.Fprintf(e.stderr, "retain event: %v\n", err)
			return exitProblems
		}
		fmt.Fprintf(e.stdout, "%s: %s queued (event %s)\n", rec.ID, ev.Name, rec.Events[0].ID)
		return exitOK
	}
	changes, err := ws.applier.Event(ctx, rec.ID, rec.Events[0])
	switch {
	case errors.Is(err, store.ErrDuplicate):
		fmt.Fprintf(e.stdout, "%s: %s was applied before (event %s); nothing changed\n", rec.ID, ev.Name, rec.Events[0].ID)
		return exitOK
	case errors.Is(err, ingest.ErrUnknownCustomer):
		fmt.Fprintf(e.stderr, "retain event: customer %q is unknown: give --email ADDR to create it, or import it first\n", rec.ID)
		return exitProblems
	case err != nil:
		fmt.Fprintf(e.stderr, "retain event: %v\n", err)
		return exitProblems
	}
	cust, err := ws.store.Customer(ctx, rec.ID)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain event: %v\n", err)
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "%s: %s applied (event %s)\n", rec.ID, ev.Name, rec.Events[0].ID)
	printChanges(e, ws.engine, cust, changes)
	return exitOK
}

// printChanges lists the engine's decisions and what is due next.
func printChanges(e *env, eng *lifecycle.Engine, c *lifecycle.Customer, changes []lifecycle.Change) {
	loc := eng.Location(c)
	for _, ch := range changes {
		switch ch.Kind {
		case lifecycle.KindStage:
			fmt.Fprintf(e.stdout, "  stage %s → %s (%s)\n", ch.From, ch.To, ch.Reason)
		case lifecycle.KindEnrolled:
			fmt.Fprintf(e.stdout, "  enrolled in %s (#%d)\n", ch.Campaign, ch.Enrollment)
		case lifecycle.KindConditionError:
			fmt.Fprintf(e.stdout, "  condition error, counted as false: %s\n", ch.Reason)
		default:
			fmt.Fprintf(e.stdout, "  %s %s (%s)\n", strings.ReplaceAll(string(ch.Kind), "_", " "), ch.Campaign, ch.Reason)
		}
	}
	fmt.Fprintf(e.stdout, "  stage now: %s\n", c.Stage)
	for _, id := range slices.Sorted(maps.Keys(c.Enrollments)) {
		if enr := c.Enrollments[id]; enr.Status == lifecycle.Active && enr.Next != "" {
			fmt.Fprintf(e.stdout, "  next: %s/%s due %s\n", id, enr.Next, enr.Due.In(loc).Format("Mon 2006-01-02 15:04 MST"))
		}
	}
	if w := eng.NextWake(c); !w.IsZero() {
		fmt.Fprintf(e.stdout, "  next time rule: %s\n", w.In(loc).Format("Mon 2006-01-02 15:04 MST"))
	}
}
