package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// failedMode is what retain event does with the failed-event list, when one of
// --failed, --replay and --drop is given.
type failedMode struct {
	list, replay, drop, all bool
}

func (m failedMode) set() bool { return m.list || m.replay || m.drop }

// runFailed lists (--failed), queues again (--replay) or discards (--drop) the
// events the workers could not apply. It needs Redis, not the campaigns: a
// replay is applied by the workers, with theirs.
func runFailed(c *command, e *env, m failedMode, ids []string) int {
	switch {
	case !m.set():
		return c.usageError(e, "--all goes with --replay or --drop")
	case btoi(m.list)+btoi(m.replay)+btoi(m.drop) > 1:
		return c.usageError(e, "give one of --failed, --replay and --drop")
	case m.list && (m.all || len(ids) > 0):
		return c.usageError(e, "--failed lists every failed event: it takes no ID and no --all")
	case !m.list && m.all == (len(ids) > 0):
		return c.usageError(e, "give the IDs of the failed events (retain event --failed lists them), or --all")
	}
	ctx := context.Background()
	st, rdb, err := openStore(ctx, e)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain event: %v\n", err)
		return exitProblems
	}
	defer rdb.Close()
	if m.list {
		return listFailed(ctx, e, st)
	}
	var done []store.FailedEvent
	verb := "queued again"
	if m.replay {
		done, err = queue.NewClient(rdb).ReplayFailed(ctx, st, ids)
	} else {
		done, err = queue.DropFailed(ctx, st, ids)
		verb = "dropped"
	}
	for _, f := range done {
		fmt.Fprintf(e.stdout, "%s: %s %s\n", f.ID, verb, describeFailed(f))
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "retain event: %s\n", line)
		}
		return exitProblems
	}
	if len(done) == 0 {
		fmt.Fprintln(e.stdout, "No failed events.")
	}
	return exitOK
}

func listFailed(ctx context.Context, e *env, st *store.Store) int {
	events, err := st.FailedEvents(ctx, 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain event: %v\n", err)
		return exitProblems
	}
	if len(events) == 0 {
		fmt.Fprintln(e.stdout, "No failed events.")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFAILED AT (UTC)\tATTEMPTS\tEVENT\tERROR")
	for _, f := range events {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", f.ID, f.At.UTC().Format("2006-01-02 15:04:05"), f.Attempts, describeFailed(f), f.Error)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%s. Fix the cause, then: retain event --replay ID... (or --all); --drop discards.\n", plural(len(events), "failed event"))
	return exitOK
}

// describeFailed names a failed event's customer and event.
func describeFailed(f store.FailedEvent) string {
	if f.Event == nil {
		return "payload " + truncate(f.Payload, 60)
	}
	return f.Customer + " " + f.Event.Name + " (event " + f.Event.ID + ")"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
