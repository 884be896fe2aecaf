package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retainmail/retain/lifecycle"
)

// setEmail makes id's customer have addr (created when new).
func (b *testBundle) setEmail(id, addr string) error {
	return b.store.Update(b.ctx, id, "", func(c *lifecycle.Customer) (*Change, error) {
		if c == nil {
			c = &lifecycle.Customer{ID: id}
		}
		c.Email = addr
		return &Change{Customer: c}, nil
	})
}

func (b *testBundle) emailEntry(t *testing.T, addr string) string {
	t.Helper()
	v, _ := b.rdb.Get(b.ctx, b.prefix+"email:"+addr).Result()
	return v
}

// TestEmailTakenByExactlyOneOfConcurrentCreates: 20 customers created at once
// with one address: one gets it, the others ErrEmailTaken and are not stored,
// and the index names the one, confirmed.
func TestEmailTakenByExactlyOneOfConcurrentCreates(t *testing.T) {
	b := setup(t)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = b.setEmail(fmt.Sprintf("c%02d", i), "ann@example.com") })
	}
	wg.Wait()
	var winner string
	for i, err := range errs {
		id := fmt.Sprintf("c%02d", i)
		switch {
		case err == nil && winner == "":
			winner = id
		case err == nil:
			t.Errorf("%s and %s both got the address", winner, id)
		case !errors.Is(err, ErrEmailTaken):
			t.Errorf("%s: %v, want ErrEmailTaken", id, err)
		default:
			if _, err := b.store.Customer(b.ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s was refused the address but stored: %v", id, err)
			}
		}
	}
	if winner == "" {
		t.Fatal("nobody got the address")
	}
	if got := b.emailEntry(t, "ann@example.com"); got != winner {
		t.Errorf("the index holds %q, want %s, confirmed", got, winner)
	}
}

// TestEmailClaimLeftPending: a claim a writer left pending (it died between
// reserving and writing) holds the address for a minute, then goes to the next
// customer; one whose holder was written after all is that holder's, and is
// confirmed.
func TestEmailClaimLeftPending(t *testing.T) {
	b := setup(t)
	pending := func(id string, age time.Duration) string {
		return id + "\n" + fmt.Sprint(time.Now().Add(-age).UnixMilli())
	}
	// A fresh claim of a customer that does not have the address (yet).
	b.rdb.Set(b.ctx, b.prefix+"email:ann@example.com", pending("dead", 5*time.Second), 0)
	if err := b.setEmail("c2", "ann@example.com"); !errors.Is(err, ErrEmailTaken) {
		t.Errorf("a fresh pending claim: %v, want ErrEmailTaken", err)
	}
	// The same claim, older than emailPending: taken over.
	b.rdb.Set(b.ctx, b.prefix+"email:ann@example.com", pending("dead", 2*emailPending), 0)
	if err := b.setEmail("c2", "ann@example.com"); err != nil {
		t.Fatalf("a stale pending claim: %v, want the address", err)
	}
	if got := b.emailEntry(t, "ann@example.com"); got != "c2" {
		t.Errorf("after the take-over the index holds %q, want c2", got)
	}

	// c3 has bob's address, but its confirm was lost: the claim is c3's.
	if err := b.setEmail("c3", "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	b.rdb.Set(b.ctx, b.prefix+"email:bob@example.com", pending("c3", 2*emailPending), 0)
	if err := b.setEmail("c4", "bob@example.com"); !errors.Is(err, ErrEmailTaken) {
		t.Errorf("the pending claim of a customer that has the address: %v, want ErrEmailTaken", err)
	}
	if got := b.emailEntry(t, "bob@example.com"); got != "c3" {
		t.Errorf("the index holds %q, want c3, confirmed", got)
	}
	if c, err := b.store.CustomerByEmail(b.ctx, "bob@example.com"); err != nil || c.ID != "c3" {
		t.Errorf("CustomerByEmail(bob) = %v, %v; want c3", c, err)
	}
}

// TestEmailEntriesFollowChangesAndDeletes: a change releases the old address
// for others and confirms the new one; a delete releases the address; an entry
// whose customer does not have the address is not found by CustomerByEmail.
func TestEmailEntriesFollowChangesAndDeletes(t *testing.T) {
	b := setup(t)
	if err := b.setEmail("c1", "old@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := b.setEmail("c1", "new@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := b.emailEntry(t, "old@example.com"); got != "" {
		t.Errorf("the old address's entry is %q after the change, want none", got)
	}
	if err := b.setEmail("c2", "old@example.com"); err != nil {
		t.Errorf("c2 takes the address c1 left: %v", err)
	}
	if err := b.store.Delete(b.ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if got := b.emailEntry(t, "new@example.com"); got != "" {
		t.Errorf("the deleted customer's entry is %q, want none", got)
	}
	// An entry naming a customer without the address (left by a write that
	// did not finish).
	b.rdb.Set(b.ctx, b.prefix+"email:zed@example.com", "c2", 0)
	if _, err := b.store.CustomerByEmail(b.ctx, "zed@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CustomerByEmail of a stale entry: %v, want ErrNotFound", err)
	}
	if err := b.setEmail("c3", "zed@example.com"); err != nil {
		t.Errorf("c3 takes an address whose entry is stale: %v", err)
	}
	if keys := strings.Join(b.keys(t), " "); strings.Contains(keys, "new@example.com") {
		t.Errorf("keys: %s", keys)
	}
}
