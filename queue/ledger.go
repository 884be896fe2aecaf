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

// claimAll claims the sends of jobs with a ledger key in one pipeline and
// returns, per job, the state found when a send was claimed or done already (""
// when this worker claimed it now).
func (l *ledger) claimAll(ctx context.Context, jobs []*job, owner string) ([]string, error) {
	states := make([]string, len(jobs))
	setnx := make([]*redis.BoolCmd, len(jobs))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, j := range jobs {
			if j.ledgerKey != "" {
				setnx[i] = p.SetNX(ctx, j.ledgerKey, ledgerClaimed+":"+owner, l.claimTTL)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger claim: %w", err)
	}
	for i, j := range jobs {
		if setnx[i] == nil || setnx[i].Val() {
			continue
		}
		if states[i], err = l.claim(ctx, j.ledgerKey, owner); err != nil {
			return nil, err
		}
	}
	return states, nil
}

// state is the ledger state an outcome leaves: "" when nothing was delivered and
// the claim is to be freed for a retry.
func (o *outcome) state() string {
	switch {
	case o == nil || o.retry > 0:
		return ""
	case o.sent && o.reason == "sent-unknown":
		return ledgerUnknown
	case o.sent:
		return ledgerSent
	}
	return ledgerFailed
}

// record writes the outcome of one claimed send at once, so a worker killed later
// in its batch does not send it again.
func (l *ledger) record(ctx context.Context, key string, o *outcome) error {
	var err error
	if st := o.state(); st == "" {
		err = l.rdb.Del(ctx, key).Err()
	} else {
		err = l.rdb.Set(ctx, key, st, l.keep).Err()
	}
	if err != nil {
		return fmt.Errorf("ledger %s: %w", key, err)
	}
	return nil
}

// finishAll records, in one pipeline, the outcome of the claimed jobs that
// record did not: those that could not be rendered, and those left unsent by a
// shutdown (their claims are freed).
func (l *ledger) finishAll(ctx context.Context, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, j := range jobs {
			if st := j.out.state(); st == "" {
				p.Del(ctx, j.ledgerKey)
			} else {
				p.Set(ctx, j.ledgerKey, st, l.keep)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: record %d sends: %w", len(jobs), err)
	}
	return nil
}
