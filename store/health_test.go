package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
)

func TestBacklogReadsTheOldestDueTimeAndTheLastTick(t *testing.T) {
	b := setup(t)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	got, err := b.store.Backlog(b.ctx)
	if err != nil || !got.OldestDue.IsZero() || !got.LastTick.IsZero() {
		t.Fatalf("empty Backlog = %+v, %v; want zero times", got, err)
	}
	// Two customers due, one 36 s ago; nobody ticks.
	for id, due := range map[string]time.Time{"c1": now.Add(-36 * time.Second), "c2": now.Add(time.Hour)} {
		if err := b.rdb.ZAdd(b.ctx, b.store.dueKey(ShardOf(id)), redis.Z{Score: float64(due.UnixMilli()), Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.store.RecordTick(b.ctx, now.Add(-10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err = b.store.Backlog(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !got.OldestDue.Equal(now.Add(-36*time.Second)) || !got.LastTick.Equal(now.Add(-10*time.Second)) {
		t.Errorf("Backlog = %+v, want the oldest due 36 s ago and the tick 10 s ago", got)
	}
	if d := got.Overdue(now); d != 36*time.Second {
		t.Errorf("Overdue = %v, want 36s", d)
	}
	if d := got.Overdue(now.Add(-time.Minute)); d != 0 {
		t.Errorf("Overdue before anything is due = %v, want 0", d)
	}
}

func TestFailedEventsKeepTheNewestFirstAndAreRemovedOneByOne(t *testing.T) {
	b := setup(t)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		f := FailedEvent{Customer: "c1", Event: &lifecycle.Event{ID: fmt.Sprint("e", i), Name: "order_placed", At: at, Data: map[string]any{"total": 12.5}},
			Error: "unknown customer", At: at.Add(time.Duration(i) * time.Second), Attempts: 1}
		if err := b.store.AddFailedEvent(b.ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.store.AddFailedEvent(b.ctx, FailedEvent{Payload: "{not json", Error: "bad payload", At: at}); err != nil {
		t.Fatal(err)
	}
	all, err := b.store.FailedEvents(b.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || all[0].Payload != "{not json" || all[1].Event.ID != "e2" || all[3].Event.ID != "e0" {
		t.Fatalf("FailedEvents = %+v, want the payload, then e2, e1, e0", all)
	}
	if all[1].ID != FailedEventID("c1", "e2", "") || all[1].Event.Data["total"] != 12.5 || all[1].Attempts != 1 {
		t.Errorf("entry = %+v, want its ID derived from customer and event, its data and attempts kept", all[1])
	}
	if two, _ := b.store.FailedEvents(b.ctx, 2); len(two) != 2 || two[1].ID != all[1].ID {
		t.Errorf("FailedEvents(2) = %+v, want the newest two", two)
	}
	if err := b.store.RemoveFailedEvent(b.ctx, all[2]); err != nil {
		t.Fatal(err)
	}
	if n, err := b.store.FailedEventCount(b.ctx); err != nil || n != 3 {
		t.Errorf("FailedEventCount after a removal = %d, %v; want 3", n, err)
	}
	if keys := b.keys(t); len(keys) != 1 || keys[0] != "failed-events" {
		t.Errorf("keys = %v, want failed-events only", keys)
	}
}

func TestFailedEventsListIsBounded(t *testing.T) {
	b := setup(t)
	for i := range MaxFailedEvents + 5 {
		if err := b.store.AddFailedEvent(b.ctx, FailedEvent{Payload: fmt.Sprint(i), Error: "bad payload"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := b.store.FailedEventCount(b.ctx); n != MaxFailedEvents {
		t.Errorf("%d entries kept, want %d", n, MaxFailedEvents)
	}
	if newest, _ := b.store.FailedEvents(b.ctx, 1); len(newest) != 1 || newest[0].Payload != fmt.Sprint(MaxFailedEvents+4) {
		t.Errorf("newest = %+v, want the last one added", newest)
	}
}

// TestCheckServer starts redis-servers of its own, set as operators get them
// wrong: the shared test Redis is never reconfigured.
func TestCheckServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		refused bool
		warn    string
	}{
		{"evicting policy is refused", []string{"--maxmemory-policy", "allkeys-lru", "--appendonly", "yes"}, true, ""},
		{"volatile policy is refused too", []string{"--maxmemory-policy", "volatile-lru", "--appendonly", "yes"}, true, ""},
		{"no AOF is a warning", []string{"--maxmemory-policy", "noeviction", "--appendonly", "no"}, false, "appendonly no"},
		{"CONFIG refused is a warning", []string{"--rename-command", "CONFIG", ""}, false, "could not check the Redis settings"},
		{"noeviction with AOF is fine", []string{"--maxmemory-policy", "noeviction", "--appendonly", "yes"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.StartServer(t, tc.args...).Client(t)
			warnings, err := CheckServer(t.Context(), rdb)
			if tc.refused {
				if !errors.Is(err, ErrEvicting) || !strings.Contains(err.Error(), "set maxmemory-policy noeviction") {
					t.Errorf("CheckServer = %v, want ErrEvicting saying what to set", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckServer: %v", err)
			}
			switch {
			case tc.warn == "" && len(warnings) > 0:
				t.Errorf("warnings = %q, want none", warnings)
			case tc.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warn) || !strings.Contains(warnings[0], "docs/operations.md")):
				t.Errorf("warnings = %q, want one about %q pointing to docs/operations.md", warnings, tc.warn)
			}
		})
	}
}
