package store

import (
	"errors"
	"testing"

	"github.com/retainmail/retain/lifecycle"
)

// TestUnreadableSeenSetIsAnErrorNotNotSeen: when the seen set cannot be read
// (here it has the wrong type), Update must not take the event for a new one
// and apply it: it returns the error and writes nothing.
func TestUnreadableSeenSetIsAnErrorNotNotSeen(t *testing.T) {
	b := setup(t)
	if err := b.rdb.Set(b.ctx, b.store.seenKey("c1"), "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	called := false
	err := b.store.Update(b.ctx, "c1", "ev-1", func(*lifecycle.Customer) (*Change, error) {
		called = true
		return &Change{Customer: &lifecycle.Customer{ID: "c1", Email: "c1@example.com"}}, nil
	})
	if err == nil || errors.Is(err, ErrDuplicate) || called {
		t.Fatalf("Update = %v, fn called %v; want an error and no write", err, called)
	}
	if n, _ := b.rdb.Exists(b.ctx, b.store.customerKey("c1")).Result(); n != 0 {
		t.Error("the customer was written although its seen set could not be read")
	}
}
