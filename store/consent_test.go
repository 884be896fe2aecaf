package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/lifecycle"
)

// record writes ev for customer id as the link pages do: the customer with
// the event, through Update.
func (b *testBundle) record(t *testing.T, id string, ev lifecycle.Event, change func(c *lifecycle.Customer)) {
	t.Helper()
	err := b.store.Update(b.ctx, id, "", func(c *lifecycle.Customer) (*Change, error) {
		if c == nil {
			c = &lifecycle.Customer{ID: id, Email: id + "@example.com", Stage: "active", CreatedAt: t0}
		}
		if change != nil {
			change(c)
		}
		return &Change{Customer: c, Event: &ev}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIsConsent(t *testing.T) {
	for _, name := range []string{"unsubscribed", "preferences_changed", "subscription_changed", "complained"} {
		if !IsConsent(name) {
			t.Errorf("IsConsent(%q) = false", name)
		}
	}
	for _, name := range []string{"", "signed_up", "link_clicked", "Unsubscribed", "bounced"} {
		if IsConsent(name) {
			t.Errorf("IsConsent(%q) = true", name)
		}
	}
}

func TestConsentHistoryKeepsEveryConsentEventOldestFirstBeyondTheRecentEventsCap(t *testing.T) {
	b := setup(t)
	b.record(t, "c1", lifecycle.Event{Name: "signed_up", At: t0}, nil)
	unsub := lifecycle.Event{Name: "unsubscribed", At: t0.Add(time.Minute), Data: map[string]any{"how": "one-click (RFC 8058 List-Unsubscribe-Post)", "topic": "education"}}
	b.record(t, "c1", unsub, func(c *lifecycle.Customer) { c.OptedOut = []string{"education"} })
	for i := range RecentEvents + 5 {
		b.record(t, "c1", lifecycle.Event{Name: "logged_in", At: t0.Add(time.Duration(i+2) * time.Minute), Data: map[string]any{"n": i}}, nil)
	}
	resub := lifecycle.Event{Name: "subscription_changed", At: t0.Add(time.Hour), Data: map[string]any{
		"source": "product settings", "topics": map[string]any{"education": true}}}
	b.record(t, "c1", resub, func(c *lifecycle.Customer) { c.OptedOut = nil })
	complaint := lifecycle.Event{Name: "complained", At: t0.Add(2 * time.Hour), Data: map[string]any{"source": "arf", "campaign": "onboarding", "step": "onboarding/welcome"}}
	b.record(t, "c1", complaint, nil)

	got, err := b.store.ConsentHistory(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lifecycle.Event{unsub, resub, complaint}, got); diff != "" {
		t.Errorf("consent history (-want +got):\n%s", diff)
	}
	recent, _ := b.store.Events(b.ctx, "c1", 0)
	if len(recent) != RecentEvents || slices.ContainsFunc(recent, func(e lifecycle.Event) bool { return e.Name == "unsubscribed" }) {
		t.Errorf("recent events: %d, unsubscribe still among them: the test does not pass the cap", len(recent))
	}
	if h, err := b.store.ConsentHistory(b.ctx, "nobody"); err != nil || len(h) != 0 {
		t.Errorf("consent history of an unknown customer = %v, %v; want empty", h, err)
	}
}

// TestConsentLogIsWrittenInTheChangesTransactionInTheCustomersSlot: the entry
// goes in the MULTI/EXEC that writes the customer, and its key shares the
// customer's hash slot (Redis Cluster: one transaction).
func TestConsentLogIsWrittenInTheChangesTransactionInTheCustomersSlot(t *testing.T) {
	b := setup(t)
	b.record(t, "c1", lifecycle.Event{Name: "signed_up", At: t0}, nil)
	b.cmds.reset()
	b.record(t, "c1", lifecycle.Event{Name: "unsubscribed", At: t0, Data: map[string]any{"how": "unsubscribe page"}}, func(c *lifecycle.Customer) { c.Unsubscribed = true })
	cmds := b.cmds.names()
	multi, rpush, exec := slices.Index(cmds, "multi"), slices.Index(cmds, "rpush"), slices.Index(cmds, "exec")
	if multi < 0 || !(multi < rpush && rpush < exec) {
		t.Errorf("commands %v: the consent entry (rpush) is not inside the MULTI/EXEC", cmds)
	}
	if k, c := b.store.consentKey("c1"), b.store.customerKey("c1"); hashTag(k) != hashTag(c) {
		t.Errorf("consent key %s and customer key %s are in different slots", k, c)
	}
	if !slices.Contains(b.keys(t), b.names(b.store.consentKey("c1"))[0]) {
		t.Errorf("keys %v lack the consent log", b.keys(t))
	}
}

func TestOtherEventsWriteNoConsentLog(t *testing.T) {
	b := setup(t)
	b.record(t, "c1", lifecycle.Event{Name: "signed_up", At: t0}, nil)
	b.record(t, "c1", lifecycle.Event{Name: "order_placed", At: t0}, nil)
	if n := b.rdb.Exists(b.ctx, b.store.consentKey("c1")).Val(); n != 0 {
		t.Errorf("a consent log was written for events of no consent kind")
	}
}

func TestDeleteErasesTheConsentLog(t *testing.T) {
	b := setup(t)
	for i, id := range []string{"c1", "c2"} {
		b.record(t, id, lifecycle.Event{Name: "unsubscribed", At: t0, Data: map[string]any{"how": fmt.Sprint("page ", i)}}, func(c *lifecycle.Customer) { c.Unsubscribed = true })
	}
	if err := b.store.Delete(b.ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if n := b.rdb.Exists(b.ctx, b.store.consentKey("c1")).Val(); n != 0 {
		t.Error("Delete left the consent log")
	}
	if h, _ := b.store.ConsentHistory(b.ctx, "c2"); len(h) != 1 {
		t.Errorf("c2's consent history = %v after deleting c1", h)
	}
}
