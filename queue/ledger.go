package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Ledger states of one send.
const (
	ledgerClaimed = "claimed"
	ledgerSent    = "sent"
	ledgerUnknown = "unknown" // the connection was lost after DATA: maybe delivered
	ledgerFailed  = "failed"  // refused for good by the relay
)

// ledger records each send once: {p}ledger:{customer}:{campaign}:{enrollment}:{step}.
//
// A claim is fenced: its value, "claimed:<owner>:<token>", carries a random
// token, and every use compares it. A worker claims a batch's sends for hold
// (short: a worker that dies frees them soon), renews the claims of sends still
// waiting, and right before SMTP checks and extends its claim for claimTTL in
// one script (fence) — so a claim that ran out and was taken by another worker,
// or a send another worker finished, is never sent again. The outcome replaces
// the claim and is kept for keep, long after the enrollment itself records the
// step as passed; releasing a claim deletes it only while it still holds the
// token.
type ledger struct {
	rdb      redis.UniversalClient
	prefix   string
	hold     time.Duration
	claimTTL time.Duration
	keep     time.Duration
	// durable, when set, makes each fence and each outcome wait until Redis
	// has it on replicas or on disk (see Durability).
	durable *Durability
}

// Durability says what a claim must reach before its send goes to SMTP, and
// an outcome once written, so that a Redis crash cannot lose them: Replicas
// replicas (WAIT) and, with AOF, the primary's append-only file (WAITAOF,
// Redis 7.2 and later), each within Timeout. A fence that does not reach them
// does not send (the send is retried later); an outcome that does not is
// logged.
type Durability struct {
	Replicas int
	AOF      bool
	Timeout  time.Duration
}

// errNotDurable is an outcome written to the primary that did not reach the
// copies Durability asks for.
var errNotDurable = errors.New("the outcome is written but not durable")

// waitCmd queues on p the WAIT (or WAITAOF) that makes the writes queued
// before it on the same connection durable.
func (d *Durability) waitCmd(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	if d.AOF {
		return p.Do(ctx, "WAITAOF", 1, d.Replicas, d.Timeout.Milliseconds())
	}
	return p.Do(ctx, "WAIT", d.Replicas, d.Timeout.Milliseconds())
}

// check reads the reply of waitCmd: an error unless every copy asked for
// acknowledged.
func (d *Durability) check(c *redis.Cmd) error {
	if err := c.Err(); err != nil {
		return err
	}
	switch v := c.Val().(type) {
	case int64: // WAIT: replicas reached
		if int(v) < d.Replicas {
			return fmt.Errorf("%d of %d replicas acknowledged within %s", v, d.Replicas, d.Timeout)
		}
	case []any: // WAITAOF: local AOF fsynced (0/1), replicas fsynced
		if len(v) != 2 {
			return fmt.Errorf("WAITAOF replied %v", v)
		}
		local, _ := v[0].(int64)
		reps, _ := v[1].(int64)
		if local < 1 || int(reps) < d.Replicas {
			return fmt.Errorf("on disk locally: %d, on %d of %d replicas, within %s", local, reps, d.Replicas, d.Timeout)
		}
	}
	return nil
}

func (l *ledger) key(customer, campaign string, enrollment int, slug string) string {
	return fmt.Sprintf("%sledger:%s:%s:%d:%s", l.prefix, customer, campaign, enrollment, slug)
}

// claimValue is the value of a claim taken by owner with token.
func claimValue(owner, token string) string {
	return ledgerClaimed + ":" + owner + ":" + token
}

// found is what a claim attempt found in the ledger: the state of a send that
// is done, or "claimed" with the time left of another worker's claim.
type found struct {
	state string
	ttl   time.Duration
}

// claimAll claims, in one pipeline, the sends of jobs with a ledger key, each
// under the job's claim value, for the hold time. It returns, per job, what was
// found when the send was claimed or done already (zero when claimed now).
func (l *ledger) claimAll(ctx context.Context, jobs []*job) ([]found, error) {
	out := make([]found, len(jobs))
	setnx := make([]*redis.BoolCmd, len(jobs))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, j := range jobs {
			if j.ledgerKey != "" {
				setnx[i] = p.SetNX(ctx, j.ledgerKey, j.claim, l.hold)
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
		if out[i], err = l.peek(ctx, j); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// peek reads what holds a send that could not be claimed, taking it when it
// has just run out.
func (l *ledger) peek(ctx context.Context, j *job) (found, error) {
	for range 3 {
		var get *redis.StringCmd
		var pttl *redis.DurationCmd
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, j.ledgerKey)
			pttl = p.PTTL(ctx, j.ledgerKey)
			return nil
		})
		if err == redis.Nil {
			ok, err := l.rdb.SetNX(ctx, j.ledgerKey, j.claim, l.hold).Result()
			if err != nil {
				return found{}, fmt.Errorf("ledger claim %s: %w", j.ledgerKey, err)
			}
			if ok {
				return found{}, nil
			}
			continue // taken meanwhile: read it again
		}
		if err != nil {
			return found{}, fmt.Errorf("ledger read %s: %w", j.ledgerKey, err)
		}
		if strings.HasPrefix(get.Val(), ledgerClaimed) {
			return found{state: ledgerClaimed, ttl: max(pttl.Val(), 0)}, nil
		}
		return found{state: get.Val()}, nil
	}
	return found{state: ledgerClaimed, ttl: l.hold}, nil
}

// renewHeld extends, for the hold time, the claims of KEYS that still hold
// their value ARGV[i+1]; it returns 1 per claim held.
var renewHeld = redis.NewScript(`
local held = {}
for i, k in ipairs(KEYS) do
	if redis.call('GET', k) == ARGV[i + 1] then
		redis.call('PEXPIRE', k, ARGV[1])
		held[i] = 1
	else
		held[i] = 0
	end
end
return held
`)

// renew extends the claims of jobs still waiting to be sent, in one script.
func (l *ledger) renew(ctx context.Context, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	keys := make([]string, len(jobs))
	args := make([]any, 1, len(jobs)+1)
	args[0] = l.hold.Milliseconds()
	for i, j := range jobs {
		keys[i] = j.ledgerKey
		args = append(args, j.claim)
	}
	return renewHeld.Run(ctx, l.rdb, keys, args...).Err()
}

// fenceScript is the check right before SMTP: when KEYS[1] holds this
// worker's claim ARGV[1], or nothing (the claim ran out and nobody took it),
// it (re)claims it for ARGV[2] ms and returns "" — go ahead. Otherwise it
// returns what holds the send: another worker's claim, or the outcome of a
// send that was done.
var fenceScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or not v then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	return ''
end
return v
`)

// fence checks and extends j's claim for the SMTP exchange, and with
// Durability waits until the claim is durable. It returns nil when the send
// may go, else what holds it.
func (l *ledger) fence(ctx context.Context, j *job) (*found, error) {
	var run *redis.Cmd
	var wait *redis.Cmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		run = fenceScript.Eval(ctx, p, []string{j.ledgerKey}, j.claim, l.claimTTL.Milliseconds())
		if l.durable != nil {
			wait = l.durable.waitCmd(ctx, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger fence %s: %w", j.ledgerKey, err)
	}
	v, _ := run.Text()
	if v != "" {
		if strings.HasPrefix(v, ledgerClaimed) {
			return &found{state: ledgerClaimed, ttl: l.claimTTL}, nil
		}
		return &found{state: v}, nil
	}
	if wait != nil {
		if err := l.durable.check(wait); err != nil {
			return nil, fmt.Errorf("ledger fence %s: the claim is not durable: %w", j.ledgerKey, err)
		}
	}
	return nil, nil
}

// state is the ledger state an outcome leaves: "" when nothing was delivered and
// the claim is to be freed for a retry.
func (o *outcome) state() string {
	switch {
	case o == nil:
		return ""
	case o.result == lifecycle.OutcomeSent:
		return ledgerSent
	case o.result == lifecycle.OutcomeUnknown:
		return ledgerUnknown
	case o.result.Failed():
		return ledgerFailed
	}
	return "" // a retry, a wait, a stop without a send
}

// recordScript writes the outcome ARGV[2] of the send KEYS[1] claimed with
// ARGV[1], kept ARGV[3] ms. An empty outcome releases the claim, and only
// while the claim is this worker's. An outcome is written unless the ledger
// already holds one: what was sent must be known, even when the claim ran out
// and another worker took it meanwhile (its fence then stops it). It returns
// what the key held before.
var recordScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if ARGV[2] == '' then
	if v == ARGV[1] then redis.call('DEL', KEYS[1]) end
	return v or ''
end
if not v or string.sub(v, 1, 8) == 'claimed:' then
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return v or ''
`)

// record writes the outcome of one claimed send at once, so a worker killed later
// in its batch does not send it again; with Durability it waits until the
// outcome is durable and reports when it is not.
func (l *ledger) record(ctx context.Context, j *job) error {
	var wait *redis.Cmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		recordScript.Eval(ctx, p, []string{j.ledgerKey}, j.claim, j.out.state(), l.keep.Milliseconds())
		if l.durable != nil && j.out.state() != "" {
			wait = l.durable.waitCmd(ctx, p)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return fmt.Errorf("ledger %s: %w", j.ledgerKey, err)
	}
	if wait != nil {
		if err := l.durable.check(wait); err != nil {
			return fmt.Errorf("ledger %s: %w: %w", j.ledgerKey, errNotDurable, err)
		}
	}
	return nil
}

// recordRetrying is record, tried again while Redis does not answer (a
// restart, a failover): an outcome that is not written lets the claim run out
// and another worker send the step again. It keeps trying for twice the claim
// time; an outcome written late still stops a later fence.
func (l *ledger) recordRetrying(ctx context.Context, j *job) error {
	deadline := time.Now().Add(2 * l.claimTTL)
	wait := 50 * time.Millisecond
	for {
		err := l.record(ctx, j)
		if err == nil || errors.Is(err, errNotDurable) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second, max(l.claimTTL/8, 50*time.Millisecond))
	}
}

// finishAll records, in one pipeline, the outcome of the claimed jobs that
// record did not: those that could not be rendered, and those left unsent by a
// shutdown or a deadline (their claims are released).
func (l *ledger) finishAll(ctx context.Context, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, j := range jobs {
			recordScript.Eval(ctx, p, []string{j.ledgerKey}, j.claim, j.out.state(), l.keep.Milliseconds())
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return fmt.Errorf("ledger: record %d sends: %w", len(jobs), err)
	}
	return nil
}
