package queue

import (
	"testing"
	"time"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// TestLedgerClaimsAreFenced checks the claim tokens: of two workers at one
// send, the second's fence stops at the first's claim; a claim that ran out is
// taken by the next fence and stops the first worker's; releases compare the
// token, and an outcome is recorded whoever holds the claim, but never over
// another outcome.
func TestLedgerClaimsAreFenced(t *testing.T) {
	b := setup(t)
	la := newLedger(b.rdb, b.prefix, 50*time.Millisecond, time.Hour, nil)
	lb := newLedger(b.rdb, b.prefix, time.Minute, time.Hour, nil)
	key := la.key("c1", "onboarding", 1, "welcome")
	a := &job{ledgerKey: key, claim: claimValue("worker-a", store.NewToken())}
	bb := &job{ledgerKey: key, claim: claimValue("worker-b", store.NewToken())}

	if f, err := la.peekAll(b.ctx, []*job{a, bb}); err != nil || f[0].state != "" || f[1].state != "" {
		t.Fatalf("read of a free send: %+v %v", f, err)
	}
	if f, err := la.fence(b.ctx, a); err != nil || f != nil {
		t.Fatalf("A's fence: %+v %v; want go", f, err)
	}
	if f, err := lb.fence(b.ctx, bb); err != nil || f == nil || f.state != ledgerClaimed {
		t.Fatalf("B's fence while A's claim holds: %+v %v; want stopped", f, err)
	}
	if f, _ := lb.peekAll(b.ctx, []*job{bb}); f[0].state != ledgerClaimed || f[0].ttl <= 0 {
		t.Fatalf("B's read while A's claim holds: %+v, want claimed with its time left", f)
	}
	// A's claim runs out (A hangs); B's fence takes the send.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f, err := lb.fence(b.ctx, bb); err == nil && f == nil {
			break
		}
	}
	if got, _ := b.rdb.Get(b.ctx, key).Result(); got != bb.claim {
		t.Fatalf("the ledger holds %q, want B's claim", got)
	}
	if ttl, _ := b.rdb.PTTL(b.ctx, key).Result(); ttl < 50*time.Second {
		t.Errorf("B's claim after its fence lives %v, want about ClaimTTL (1m)", ttl)
	}
	// A releases nothing of B's, and its fence stops it.
	a.out = &outcome{result: lifecycle.OutcomeRetry} // "release"
	if err := la.record(b.ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.rdb.Get(b.ctx, key).Result(); got != bb.claim {
		t.Fatalf("A's release changed B's claim to %q", got)
	}
	if f, err := la.fence(b.ctx, a); err != nil || f == nil || f.state != ledgerClaimed {
		t.Fatalf("A's fence: %+v %v; want stopped by B's claim", f, err)
	}
	// B sends and records; A's fence and read then find it sent.
	bb.out = &outcome{result: lifecycle.OutcomeSent}
	if err := lb.record(b.ctx, bb); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := b.rdb.PTTL(b.ctx, key).Result(); ttl < 59*time.Minute {
		t.Errorf("the outcome lives %v, want the ledger's keep (1h)", ttl)
	}
	if f, _ := la.fence(b.ctx, a); f == nil || f.state != ledgerSent {
		t.Fatalf("A's fence after B sent: %+v, want sent", f)
	}
	if f, _ := la.peekAll(b.ctx, []*job{a}); f[0].state != ledgerSent {
		t.Fatalf("A's read after B sent: %+v, want sent", f)
	}
	// A late failure record of A never overwrites what B sent.
	a.out = &outcome{result: lifecycle.OutcomeRefused, detail: "554"}
	if err := la.record(b.ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.rdb.Get(b.ctx, key).Result(); got != ledgerSent {
		t.Errorf("the ledger holds %q after A's late record, want sent", got)
	}
}

// TestOutcomeOfAClaimThatRanOut: a send whose claim ran out during its SMTP
// exchange, and that nobody took, still has its outcome recorded.
func TestOutcomeOfAClaimThatRanOut(t *testing.T) {
	b := setup(t)
	l := newLedger(b.rdb, b.prefix, 20*time.Millisecond, time.Hour, nil)
	j := &job{ledgerKey: l.key("c1", "onboarding", 1, "welcome"), claim: claimValue("w", store.NewToken())}
	if f, err := l.fence(b.ctx, j); err != nil || f != nil {
		t.Fatalf("fence on a free send: %+v %v; want go", f, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := b.rdb.Exists(b.ctx, j.ledgerKey).Result(); n == 0 {
			break
		}
	}
	j.out = &outcome{result: lifecycle.OutcomeSent}
	if err := l.record(b.ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.rdb.Get(b.ctx, j.ledgerKey).Result(); got != ledgerSent {
		t.Errorf("after the record the ledger holds %q, want sent", got)
	}
}

// TestPeekWaitsAClaimAtMost: a send read as claimed whose key then lives longer
// than a claim can (its outcome, kept for a month, was written between the
// read of the values and the read of their times to live) is looked at again
// within a claim's time, not postponed for a month.
func TestPeekWaitsAClaimAtMost(t *testing.T) {
	b := setup(t)
	l := newLedger(b.rdb, b.prefix, 5*time.Second, 30*24*time.Hour, nil)
	j := &job{ledgerKey: l.key("c1", "onboarding", 1, "welcome")}
	// What the PTTL sees after the race, made at once: a claim's value with
	// an outcome's time to live.
	if err := b.rdb.Set(b.ctx, j.ledgerKey, claimValue("worker-a", store.NewToken()), 30*24*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	f, err := l.peekAll(b.ctx, []*job{j})
	if err != nil || f[0].state != ledgerClaimed || f[0].ttl <= 0 || f[0].ttl > 5*time.Second {
		t.Errorf("peek: %+v %v; want claimed, to look again within the 5s claim time", f, err)
	}
	if o := foundOutcome(f[0], time.Now()); o.wait > 5*time.Second {
		t.Errorf("the send waits %v, want at most the claim time", o.wait)
	}
}
