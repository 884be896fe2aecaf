package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
)

// TestScanCustomersReadsEveryCustomerOnceAndWritesNothing stores customers
// (one with glob characters in its ID) next to the store's other keys, and
// scans them with three workers: each customer comes back once, whole, and the
// scan sends only read commands.
func TestScanCustomersReadsEveryCustomerOnceAndWritesNothing(t *testing.T) {
	b := setup(t)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	want := []string{"a*b[1]?"}
	for i := range 1234 {
		want = append(want, fmt.Sprintf("cus_%04d", i))
	}
	for _, id := range want {
		c := &lifecycle.Customer{ID: id, Email: id + "@example.com", Stage: "onboarding", StageSince: at, CreatedAt: at,
			Attributes: map[string]any{"plan": "team", "seats": 3}}
		err := b.store.Update(b.ctx, id, "", func(*lifecycle.Customer) (*Change, error) {
			return &Change{Customer: c, Wake: at.Add(time.Hour), Event: &lifecycle.Event{Name: "signed_up", At: at}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Another store whose prefix starts like this one's: never read.
	otherPrefix := strings.TrimSuffix(b.prefix, ":") + "x:"
	t.Cleanup(func() { redistest.Delete(context.Background(), b.rdb, otherPrefix) })
	other := New(b.rdb, otherPrefix)
	if err := other.Update(b.ctx, "intruder", "", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: &lifecycle.Customer{ID: "intruder", Email: "i@example.com", Stage: "lead"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	before := b.dump(t)
	b.cmds.reset()

	var mu sync.Mutex
	var got []string
	workers := map[int]bool{}
	err := b.store.ScanCustomers(b.ctx, 100, 3, func(w int, batch []*lifecycle.Customer) error {
		mu.Lock()
		defer mu.Unlock()
		workers[w] = true
		for _, c := range batch {
			if c.Attributes["seats"] != 3 || c.Email != c.ID+"@example.com" {
				t.Errorf("customer %s read back as %+v", c.ID, c)
			}
			got = append(got, c.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("scan returned %d customers, want %d; first: %v", len(got), len(want), got[:min(5, len(got))])
	}
	for _, name := range b.cmds.names() {
		if name != "scan" && name != "mget" {
			t.Errorf("the scan sent %s: it may only read", name)
		}
	}
	if len(workers) < 2 {
		t.Errorf("batches went to workers %v, want them shared", workers)
	}
	if after := b.dump(t); len(after) != len(before) {
		t.Errorf("the scan changed the keys: %d before, %d after", len(before), len(after))
	}
}

// TestScanCustomersStopsOnError: an error from fn ends the scan and is
// returned.
func TestScanCustomersStopsOnError(t *testing.T) {
	b := setup(t)
	for i := range 50 {
		id := fmt.Sprint("c", i)
		b.store.Update(b.ctx, id, "", func(*lifecycle.Customer) (*Change, error) {
			return &Change{Customer: &lifecycle.Customer{ID: id, Email: id + "@example.com", Stage: "lead"}}, nil
		})
	}
	stop := errors.New("enough")
	calls := 0
	err := b.store.ScanCustomers(b.ctx, 10, 1, func(int, []*lifecycle.Customer) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("scan returned %v after %d calls, want %v after 1", err, calls, stop)
	}
}
