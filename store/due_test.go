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
	var leases []*Lease
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				l, err := b.store.ClaimDue(b.ctx, now, time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if l == nil {
					return
				}
				mu.Lock()
				got = append(got, l.IDs...)
				leases = append(leases, l)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(got) != 50 || slices.Contains(got, "later") || len(slices.Compact(slices.Clone(got))) != 50 {
		t.Fatalf("claimed %d customers (%d distinct), want the 50 due ones once each", len(got), len(slices.Compact(slices.Clone(got))))
	}
	// While leased, nobody claims them again, however late it gets.
	if l, _ := b.store.ClaimDue(b.ctx, now.Add(time.Hour), time.Minute, 100); l == nil || len(l.IDs) != 1 || l.IDs[0] != "later" {
		t.Errorf("claimed %v during the leases; want only the customer due later", l)
	}
	// While leased, their due entries are out of the range the next claims
	// scan, and keep their real due time.
	if next, _ := b.store.NextDueAt(b.ctx); !next.Equal(now.Add(-49 * time.Second)) {
		t.Errorf("NextDueAt = %v, want the oldest real due time %v", next, now.Add(-49*time.Second))
	}
	// Released, they are due again; a release with another token frees nothing.
	if err := b.store.ReleaseLease(b.ctx, &Lease{IDs: leases[0].IDs, Token: "not-the-token"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.store.ClaimDue(b.ctx, now, time.Minute, 100); l != nil {
		t.Errorf("a release with the wrong token freed %v", l.IDs)
	}
	for _, l := range leases {
		if err := b.store.ReleaseLease(b.ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var again []string
	for {
		l, err := b.store.ClaimDue(b.ctx, now, time.Minute, 100)
		if err != nil || l == nil {
			break
		}
		for _, id := range l.IDs { // a lease holds one shard's customers
			if ShardOf(id) != ShardOf(l.IDs[0]) {
				t.Errorf("lease %v holds customers of shards %d and %d", l.IDs, ShardOf(l.IDs[0]), ShardOf(id))
			}
		}
		again = append(again, l.IDs...)
	}
	if len(again) != 50 {
		t.Errorf("after the release: claimed %d, want 50", len(again))
	}
}

// TestAWriteDuringALeaseDoesNotEndIt is the shape of the fencing fix: an
// update of a leased customer (an event moving its due time) used to end the
// lease, which lived in the due score, so a second scheduler handed the
// customer out again while its worker was still sending.
func TestAWriteDuringALeaseDoesNotEndIt(t *testing.T) {
	b := setup(t)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b.putDue(t, "c1", now)
	l, err := b.store.ClaimDue(b.ctx, now, time.Minute, 10)
	if err != nil || l == nil {
		t.Fatalf("claim: %v %v", l, err)
	}
	b.putDue(t, "c1", now) // an event rewrites the customer, still due now
	if again, _ := b.store.ClaimDue(b.ctx, now, time.Minute, 10); again != nil {
		t.Fatalf("claimed %v again while its lease holds", again.IDs)
	}
	if other, _ := b.store.LeaseCustomers(b.ctx, []string{"c1"}, time.Minute); other != nil {
		t.Fatalf("an event handler leased %v beside the scheduler's worker", other.IDs)
	}
	// The holder renews it; a holder with another token renews nothing.
	if held, _ := b.store.HoldLease(b.ctx, l); held == nil || held.IDs[0] != "c1" {
		t.Errorf("renewal by the holder: %v", held)
	}
	if held, _ := b.store.HoldLease(b.ctx, &Lease{IDs: []string{"c1"}, Token: "other", TTL: time.Minute}); held != nil {
		t.Errorf("renewal with another token held %v", held.IDs)
	}
}

// TestALeaseThatRanOutIsTakenAgainOnlyWhenFree: a lease runs out after its
// time to live (a dead worker); the customer can be claimed again, and the old
// holder's renewal then fails rather than taking it back.
func TestALeaseThatRanOutIsTakenAgainOnlyWhenFree(t *testing.T) {
	b := setup(t)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b.putDue(t, "c1", now)
	l, _ := b.store.ClaimDue(b.ctx, now, 50*time.Millisecond, 10)
	deadline := time.Now().Add(5 * time.Second)
	var next *Lease
	for next == nil && time.Now().Before(deadline) {
		// Each tick: the customers of lost leases are put back, then claimed.
		if _, err := b.store.RequeueLost(b.ctx, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		next, _ = b.store.ClaimDue(b.ctx, now, time.Minute, 10)
	}
	if next == nil {
		t.Fatal("the customer was not free again after its lease ran out")
	}
	if held, _ := b.store.HoldLease(b.ctx, l); held != nil {
		t.Errorf("the first holder took %v back from the second", held.IDs)
	}
}

// TestLeaseEndsAsTheWorkerLeavesIt: a fresh lease is taken without renewing
// it, a stale one is renewed; ending a lease after the write-back keeps the
// due time written, releasing one without a write-back gives the customers
// their due time back; and the next claim scans past customers in flight.
func TestLeaseEndsAsTheWorkerLeavesIt(t *testing.T) {
	b := setup(t)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b.putDue(t, "c19", now)
	b.putDue(t, "c2", now.Add(-time.Second))
	l, err := b.store.ClaimDue(b.ctx, now, time.Second, 1)
	if err != nil || l == nil || len(l.IDs) != 1 || l.IDs[0] != "c2" {
		t.Fatalf("claim: %v %v, want c2, the oldest", l, err)
	}
	// The customer in flight left the range the next claim scans, keeping
	// its due time in its score.
	if sc := b.rdb.ZScore(b.ctx, b.store.dueKey(0), "c2").Val(); sc != float64(now.Add(-time.Second).UnixMilli()+LeasedOffset) {
		t.Errorf("the claimed customer's due score is %v, want its due time + LeasedOffset", sc)
	}
	l2, err := b.store.ClaimDue(b.ctx, now, time.Minute, 5)
	if err != nil || l2 == nil || len(l2.IDs) != 1 || l2.IDs[0] != "c19" {
		t.Fatalf("second claim: %v %v, want c19", l2, err)
	}
	// Within half its time to live a lease is taken as it is, not renewed.
	time.Sleep(300 * time.Millisecond)
	if got, err := b.store.TakeLease(b.ctx, l); err != nil || got == nil || got.IDs[0] != "c2" {
		t.Fatalf("take a fresh lease: %v %v", got, err)
	}
	if ttl := b.rdb.PTTL(b.ctx, b.store.leaseKey("c2")).Val(); ttl > 750*time.Millisecond {
		t.Errorf("taking a fresh lease renewed it: %v left, want about 700ms", ttl)
	}
	// Past half of it, taking it renews it.
	time.Sleep(300 * time.Millisecond)
	if got, err := b.store.TakeLease(b.ctx, l); err != nil || got == nil {
		t.Fatalf("take a stale lease: %v %v", got, err)
	}
	if ttl := b.rdb.PTTL(b.ctx, b.store.leaseKey("c2")).Val(); ttl < 800*time.Millisecond {
		t.Errorf("taking a stale lease left it %v to live, want it renewed to 1s", ttl)
	}

	// The worker wrote c2's next due time, then ends the lease: it stays.
	next := now.Add(24 * time.Hour)
	b.putDue(t, "c2", next)
	if err := b.store.EndLease(b.ctx, l); err != nil {
		t.Fatal(err)
	}
	if sc := b.rdb.ZScore(b.ctx, b.store.dueKey(0), "c2").Val(); sc != float64(next.UnixMilli()) {
		t.Errorf("after EndLease the due score is %v, want the written %v", sc, next.UnixMilli())
	}
	if n := b.rdb.Exists(b.ctx, b.store.leaseKey("c2")).Val(); n != 0 {
		t.Error("EndLease left the lease key")
	}
	// The other worker failed before writing: released, c1 is due again.
	if err := b.store.ReleaseLease(b.ctx, l2); err != nil {
		t.Fatal(err)
	}
	if sc := b.rdb.ZScore(b.ctx, b.store.dueKey(0), "c19").Val(); sc != float64(now.UnixMilli()) {
		t.Errorf("after ReleaseLease the due score is %v, want c19's due time %v", sc, now.UnixMilli())
	}
	if again, _ := b.store.ClaimDue(b.ctx, now, time.Minute, 5); again == nil || again.IDs[0] != "c19" {
		t.Errorf("after the release: claimed %v, want c19", again)
	}
}
