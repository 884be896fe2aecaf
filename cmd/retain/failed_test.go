package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// runRetain runs the retain command in-process with the environment given.
func runRetain(vars map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }})
	return code, out.String(), errb.String()
}

// TestEventFailedListsReplaysAndDrops drives the failed-event list from the
// command line, as an operator does after a worker set events aside: --failed
// lists them, --replay queues one again for the workers and removes it, and
// --drop discards what cannot be replayed.
func TestEventFailedListsReplaysAndDrops(t *testing.T) {
	rdb, redisURL := redistest.DB(t, redistest.CmdDB)
	prefix := redistest.Prefix()
	st := store.New(rdb, prefix)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ghost := store.FailedEvent{Customer: "ghost", Event: &lifecycle.Event{ID: "e1", Name: "order_placed", At: at, Data: map[string]any{"total": 25.0}},
		Error: "unknown customer: import it first, or give an email to create it", At: at, Attempts: 1}
	bad := store.FailedEvent{Payload: `{"customer": 42`, Error: "bad payload: unexpected end of JSON input", At: at.Add(time.Second), Attempts: 1}
	for _, f := range []store.FailedEvent{ghost, bad} {
		if err := st.AddFailedEvent(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	ghostID, badID := store.FailedEventID("ghost", "e1", ""), store.FailedEventID("", "", bad.Payload)
	env := map[string]string{"REDIS_URL": redisURL, "RETAIN_REDIS_PREFIX": prefix}

	code, out, errs := runRetain(env, "event", "--failed")
	if code != exitOK {
		t.Fatalf("event --failed: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"ID  ", ghostID + "  2026-03-02 09:00:00  1", "ghost order_placed (event e1)", "unknown customer", badID, `payload {"customer": 42`, "2 failed events."} {
		if !strings.Contains(out, want) {
			t.Errorf("event --failed lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = runRetain(env, "event", "--replay", ghostID)
	if code != exitOK || out != ghostID+": queued again ghost order_placed (event e1)\n" {
		t.Errorf("event --replay %s: exit %d, stdout %q, stderr %q", ghostID, code, out, errs)
	}
	tasks, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(queue.QueueEvents)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("pending event tasks: %v, %v; want the replayed event", tasks, err)
	}
	var p queue.EventPayload
	if err := json.Unmarshal(tasks[0].Payload, &p); err != nil || p.Customer != "ghost" || p.Event.ID != "e1" || p.Event.Data["total"] != 25.0 {
		t.Errorf("queued payload %s (%v), want ghost's e1 with its data", tasks[0].Payload, err)
	}

	code, _, errs = runRetain(env, "event", "--replay", badID)
	if code != exitProblems || !strings.Contains(errs, "payload does not parse") {
		t.Errorf("event --replay of a bad payload: exit %d, stderr %q; want 1 saying why", code, errs)
	}
	code, out, _ = runRetain(env, "event", "--drop", "--all")
	if code != exitOK || !strings.Contains(out, badID+": dropped payload") {
		t.Errorf("event --drop --all: exit %d, stdout %q", code, out)
	}
	if code, out, _ = runRetain(env, "event", "--failed"); code != exitOK || out != "No failed events.\n" {
		t.Errorf("event --failed at the end: exit %d, %q", code, out)
	}

	for _, args := range [][]string{{"--replay"}, {"--all"}, {"--failed", "--replay", ghostID}, {"--drop", "--all", ghostID}, {"--failed", ghostID}} {
		if code, _, errs := runRetain(env, append([]string{"event"}, args...)...); code != exitUsage {
			t.Errorf("event %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), code, errs)
		}
	}
}
