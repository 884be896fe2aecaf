package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/lifecycle"
)

func TestDueReturnsOnlyDueCustomersLongestDueFirst(t *testing.T) {
	b := setup(t)
	now := t0
	for id, wake := range map[string]time.Time{
		"later":    now.Add(time.Millisecond),
		"now":      now,
		"hour-ago": now.Add(-time.Hour),
		"day-ago":  now.Add(-24 * time.Hour),
		"none":     {},
	} {
		b.put(t, &lifecycle.Customer{ID: id}, wake)
	}
	got, err := b.store.Due(b.ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"day-ago", "hour-ago", "now"}, got); diff != "" {
		t.Errorf("Due (-want +got):\n%s", diff)
	}
	got, err = b.store.Due(b.ctx, now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"day-ago", "hour-ago"}, got); diff != "" {
		t.Errorf("Due limit 2 (-want +got):\n%s", diff)
	}
}

// moveWake is a sweep function that counts its calls per customer and moves
// the wake 21 days ahead.
type moveWake struct {
	now   time.Time
	mu    sync.Mutex
	calls map[string]int
}

func (m *moveWake) fn(c *lifecycle.Customer) (*Change, error) {
	m.mu.Lock()
	m.calls[c.ID]++
	m.mu.Unlock()
	c.Counters = map[string]int{"sweeps": c.Counters["sweeps"] + 1}
	return &Change{Customer: c, Wake: m.now.Add(21 * 24 * time.Hour)}, nil
}

func TestSweepProcessesEachDueCustomerOnceAndMovesWake(t *testing.T) {
	b := setup(t)
	b.store.SweepBatch = 7 // several batches
	now := t0
	var due []string
	for i := range 40 {
		id := fmt.Sprintf("c%02d", i)
		wake := now.Add(time.Duration(i-25) * time.Minute) // c00..c25 due
		if i <= 25 {
			due = append(due, id)
		}
		b.put(t, &lifecycle.Customer{ID: id}, wake)
	}
	m := &moveWake{now: now, calls: map[string]int{}}
	// Two sweeps at once: the WATCH lets only one apply each customer.
	var wg sync.WaitGroup
	var total atomic.Int64
	for range 2 {
		wg.Go(func() {
			n, err := b.store.Sweep(b.ctx, now, 0, m.fn)
			if err != nil {
				t.Error(err)
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	if total.Load() != int64(len(due)) {
		t.Errorf("sweeps processed %d, want %d", total.Load(), len(due))
	}
	for _, id := range due {
		c, err := b.store.Customer(b.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Counters["sweeps"] != 1 {
			t.Errorf("%s swept %d times", id, c.Counters["sweeps"])
		}
		wake, err := b.rdb.ZScore(b.ctx, b.store.wakeKey(ShardOf(id)), id).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(21 * 24 * time.Hour).UnixMilli(); int64(wake) != want {
			t.Errorf("%s wake = %v, want %v", id, wake, want)
		}
	}
	left, err := b.store.Due(b.ctx, now, 0)
	if err != nil || len(left) != 0 {
		t.Errorf("due after sweep: %v, %v", left, err)
	}
	n, err := b.store.Sweep(b.ctx, now, 0, m.fn)
	if n != 0 || err != nil {
		t.Errorf("third sweep: %d, %v; want 0, nil", n, err)
	}
}

func TestSweepRespectsLimit(t *testing.T) {
	b := setup(t)
	for i := range 5 {
		b.put(t, &lifecycle.Customer{ID: fmt.Sprint("c", i)}, t0.Add(-time.Duration(i)*time.Hour))
	}
	m := &moveWake{now: t0, calls: map[string]int{}}
	n, err := b.store.Sweep(b.ctx, t0, 2, m.fn)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2", n, err)
	}
	if diff := cmp.Diff(map[string]int{"c4": 1, "c3": 1}, m.calls); diff != "" {
		t.Errorf("swept (-want +got):\n%s", diff)
	}
}

func TestSweepReportsFailuresAndGoesOn(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"good1", "bad", "good2"} {
		b.put(t, &lifecycle.Customer{ID: id}, t0)
	}
	boom := errors.New("boom")
	m := &moveWake{now: t0, calls: map[string]int{}}
	n, err := b.store.Sweep(b.ctx, t0, 0, func(c *lifecycle.Customer) (*Change, error) {
		if c.ID == "bad" {
			return nil, boom
		}
		return m.fn(c)
	})
	if n != 2 || !errors.Is(err, boom) {
		t.Errorf("Sweep = %d, %v; want 2 and boom", n, err)
	}
	left, _ := b.store.Due(b.ctx, t0, 0)
	if diff := cmp.Diff([]string{"bad"}, left); diff != "" {
		t.Errorf("still due (-want +got):\n%s", diff)
	}
}

func TestSweepDropsWakeEntryOfMissingCustomer(t *testing.T) {
	b := setup(t)
	b.rdb.ZAdd(b.ctx, b.store.wakeKey(ShardOf("ghost")), redisZ(t0, "ghost"))
	n, err := b.store.Sweep(b.ctx, t0, 0, func(*lifecycle.Customer) (*Change, error) {
		t.Error("fn called for a missing customer")
		return nil, nil
	})
	if n != 0 || err != nil {
		t.Errorf("Sweep = %d, %v", n, err)
	}
	if keys := b.keys(t); len(keys) != 0 {
		t.Errorf("keys left: %v", keys)
	}
}
