package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/retainmail/retain/lifecycle"
)

func (b *testBundle) putDue(t *testing.T, id string, due time.Time) {
	t.Helper()
	err := b.store.Update(b.ctx, id, "", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: &lifecycle.Customer{ID: id, Email: id + "@example.com"}, Due: due}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestClaimDueLeasesEachCustomerOnce(t *testing.T) {
	b := setup(t)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 50 {
		b.putDue(t, fmt.Sprintf("c%02d", i), now.Add(-time.Duration(i)*time.Second))
	}
	b.putDue(t, "later", now.Add(time.Hour))

	// Four schedulers claim at once: together they get every due customer once.
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ids, err := b.store.ClaimDue(b.ctx, now, time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ids) == 0 {
					return
				}
				mu.Lock()
				got = append(got, ids...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != 50 || slices.Contains(got, "later") || len(slices.Compact(slices.Clone(got))) != 50 {
		t.Fatalf("claimed %d customers (%d distinct), want the 50 due ones once each", len(got), len(slices.Compact(slices.Clone(got))))
	}
	// Until the lease ends nobody claims them again; after it, they are due again.
	if ids, _ := b.store.ClaimDue(b.ctx, now.Add(59*time.Second), time.Minute, 100); len(ids) != 0 {
		t.Errorf("claimed %d customers during their lease", len(ids))
	}
	if ids, _ := b.store.ClaimDue(b.ctx, now.Add(time.Minute), time.Minute, 100); len(ids) != 50 {
		t.Errorf("after the lease: claimed %d, want 50", len(ids))
	}
	// An update with the customer's real next due time ends the lease.
	b.putDue(t, "c00", time.Time{})
	b.putDue(t, "c01", now.Add(2*time.Hour))
	next, _ := b.store.NextDueAt(b.ctx)
	if want := now.Add(2 * time.Minute); !next.Equal(want) {
		t.Errorf("NextDueAt = %v, want %v (the end of the second lease)", next, want)
	}
	if n, _ := b.rdb.ZCard(b.ctx, b.prefix+"due").Result(); n != 50 {
		t.Errorf("due index holds %d customers, want 50 (c00 has nothing due)", n)
	}
}
