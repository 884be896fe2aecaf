package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ledger states of one send.
const (
	ledgerClaimed = "claimed"
	ledgerSent    = "sent"
	ledgerUnknown = "unknown" // the connection was lost after DATA: maybe delivered
	ledgerFailed  = "failed"  // refused for good by the relay
)

// ledger records each send once: {p}ledger:{customer}:{campaign}:{enrollment}:{step}.
// A claim is taken before SMTP and lives ClaimTTL, so a worker that dies mid-send
// frees it; the outcome replaces it and is kept for Keep, long after the
// enrollment itself records the step as passed.
type ledger struct {
	rdb      redis.UniversalClient
	prefix   string
	claimTTL time.Duration
	keep     time.Duration
}

func (l *ledger) key(customer, campaign string, enrollment int, slug string) string {
	return fmt.Sprintf("%sledger:%s:%s:%d:%s", l.prefix, customer, campaign, enrollment, slug)
}

// claim takes the send for this worker. It returns the state found when the send
// is already claimed or done ("" when claimed now).
func (l *ledger) claim(ctx context.Context, key, owner string) (string, error) {
	ok, err := l.rdb.SetNX(ctx, key, ledgerClaimed+":"+owner, l.claimTTL).Result()
	if err != nil {
		return "", fmt.Errorf("ledger claim %s: %w", key, err)
	}
	if ok {
		return "", nil
	}
	state, err := l.rdb.Get(ctx, key).Result()
	if err == redis.Nil {
		return l.claim(ctx, key, owner) // expired between the two calls
	}
	if err != nil {
		return "", fmt.Errorf("ledger read %s: %w", key, err)
	}
	if len(state) > len(ledgerClaimed) && state[:len(ledgerClaimed)] == ledgerClaimed {
		return ledgerClaimed, nil
	}
	return state, nil
}

// finish records the outcome of a claimed send.
func (l *ledger) finish(ctx context.Context, key, state string) error {
	if err := l.rdb.Set(ctx, key, state, l.keep).Err(); err != nil {
		return fmt.Errorf("ledger %s %s: %w", state, key, err)
	}
	return nil
}

// release gives a claim back after a send that certainly did not happen.
func (l *ledger) release(ctx context.Context, key string) error {
	return l.rdb.Del(ctx, key).Err()
}
