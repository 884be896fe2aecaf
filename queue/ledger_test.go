package queue

import (
	"testing"
	"time"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// TestLedgerClaimsAreFenced checks the claim tokens: a claim that ran out and
// was taken by another worker stops the first at its fence, releases compare
// the token, and an outcome is recorded whoever holds the claim, but never over
// another outcome.
func TestLedgerClaimsAreFenced(t *testing.T) {
	b := setup(t)
	l := &ledger{rdb: b.rdb, prefix: b.prefix, hold: 50 * time.Millisecond, claimTTL: time.Minute, keep: time.Hour}
	key := l.key("c1", "onboarding", 1, "welcome")
	a := &job{ledgerKey: key, claim: claimValue("worker-a", store.NewToken())}
	bb := &job{ledgerKey: key, claim: claimValue("worker-b", store.NewToken())}

	if f, err := l.claimAll(b.ctx, []*job{a}); err != nil || f[0].state != "" {
		t.Fatalf("first claim: %+v %v", f, err)
	}
	if f, _ := l.claimAll(b.ctx, []*job{bb}); f[0].state != ledgerClaimed || f[0].ttl <= 0 {
		t.Fatalf("second claim while the first holds: %+v, want claimed with its time left", f)
	}
	// A's claim runs out; B takes the send.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f, _ := l.claimAll(b.ctx, []*job{bb}); f[0].state == "" {
			break
		}
	}
	if got, _ := b.rdb.Get(b.ctx, key).Result(); got != bb.claim {
		t.Fatalf("the ledger holds %q, want B's claim", got)
	}
	// A renews and releases nothing of B's, and its fence stops it.
	if err := l.renew(b.ctx, []*job{a}); err != nil {
		t.Fatal(err)
	}
	a.out = &outcome{result: lifecycle.OutcomeRetry} // "release"
	if err := l.record(b.ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.rdb.Get(b.ctx, key).Result(); got != bb.claim {
		t.Fatalf("A's release changed B's claim to %q", got)
	}
	if f, err := l.fence(b.ctx, a); err != nil || f == nil || f.state != ledgerClaimed {
		t.Fatalf("A's fence: %+v %v; want stopped by B's claim", f, err)
	}
	// B passes its fence, sends and records; A's fence then finds it sent.
	if f, err := l.fence(b.ctx, bb); err != nil || f != nil {
		t.Fatalf("B's fence: %+v %v; want go", f, err)
	}
	if ttl, _ := b.rdb.PTTL(b.ctx, key).Result(); ttl < 50*time.Second {
		t.Errorf("B's claim after its fence lives %v, want about ClaimTTL (1m)", ttl)
	}
	bb.out = &outcome{result: lifecycle.OutcomeSent}
	if err := l.record(b.ctx, bb); err != nil {
		t.Fatal(err)
	}
	if f, _ := l.fence(b.ctx, a); f == nil || f.state != ledgerSent {
		t.Fatalf("A's fence after B sent: %+v, want sent", f)
	}
	// A late failure record of A never overwrites what B sent.
	a.out = &outcome{result: lifecycle.OutcomeRefused, detail: "554"}
	l.record(b.ctx, a)
	if got, _ := b.rdb.Get(b.ctx, key).Result(); got != ledgerSent {
		t.Errorf("the ledger holds %q after A's late record, want sent", got)
	}
}

// TestFenceRetakesAClaimNobodyHolds: a send whose claim ran out while it
// waited, and that nobody took, may still go: the fence takes it again.
func TestFenceRetakesAClaimNobodyHolds(t *testing.T) {
	b := setup(t)
	l := &ledger{rdb: b.rdb, prefix: b.prefix, hold: 20 * time.Millisecond, claimTTL: time.Minute, keep: time.Hour}
	j := &job{ledgerKey: l.key("c1", "onboarding", 1, "welcome"), claim: claimValue("w", store.NewToken())}
	l.claimAll(b.ctx, []*job{j})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := b.rdb.Exists(b.ctx, j.ledgerKey).Result(); n == 0 {
			break
		}
	}
	if f, err := l.fence(b.ctx, j); err != nil || f != nil {
		t.Fatalf("fence on a free send: %+v %v; want go", f, err)
	}
	if got, _ := b.rdb.Get(b.ctx, j.ledgerKey).Result(); got != j.claim {
		t.Errorf("after the fence the ledger holds %q, want the claim", got)
	}
}
