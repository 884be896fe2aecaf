package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// Ledger states of one send (store/ledger.go, where the key format is too).
const (
	ledgerClaimed = store.LedgerClaimed
	ledgerSent    = store.LedgerSent
	ledgerUnknown = store.LedgerUnknown // the connection was lost after DATA: maybe delivered
	ledgerFailed  = store.LedgerFailed  // refused for good by the relay
)

// ledger records each send once: {s}ledger:{customer}:{campaign}:{enrollment}:{step},
// where {s} is the customer's shard prefix (store.LedgerKey), so the entry
// is in the hash slot of the customer's other keys.
//
// A claim is fenced: its value, "claimed:<owner>:<token>", carries a random
// token, and every use compares it. A worker reads its batch's entries at once
// (MGET) to drop the sends done before, and claims each send right before
// SMTP, for claimTTL, with SET NX (the fence): of two workers that reach one
// send, the second finds the first's claim or outcome and does not send. The
// outcome replaces the claim (SET XX GET, one command when the claim is still
// there) and is kept for keep, long after the enrollment itself records the
// step as passed; an outcome never replaces another one. Releasing a claim
// deletes it only while it still holds the token.
type ledger struct {
	rdb      redis.UniversalClient
	prefix   string
	claimTTL time.Duration
	keep     time.Duration
	// durable, when set, makes each fence and each outcome wait until Redis
	// has it on replicas or on disk (see Durability).
	durable *Durability
	// pipes carry the fences and outcomes of concurrent sends.
	pipes *pipes
}

func newLedger(rdb redis.UniversalClient, prefix string, claimTTL, keep time.Duration, durable *Durability) *ledger {
	return &ledger{rdb: rdb, prefix: prefix, claimTTL: claimTTL, keep: keep, durable: durable,
		pipes: newPipes(rdb, durable)}
}

// pipeDo runs queue in the pipe of the Redis that holds key (pipe.do).
func (l *ledger) pipeDo(ctx context.Context, key string, queue func(p redis.Pipeliner)) (*redis.Cmd, error) {
	pp, err := l.pipes.forKey(ctx, key)
	if err != nil {
		return nil, err
	}
	return pp.do(ctx, true, queue), nil
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
	// Follow makes Replicas the most waited for: each WAIT asks for as many
	// replicas as the primary had online when Watch last looked, and none
	// (no WAIT) while it has none, so a deployment whose only replica was
	// promoted by a failover goes on sending until a replica is back. Without
	// Follow a claim that cannot reach Replicas replicas is not sent.
	Follow bool

	online atomic.Int32 // replicas online at Watch's last look
}

// want is the number of replicas the next WAIT asks for.
func (d *Durability) want() int {
	if !d.Follow {
		return d.Replicas
	}
	return min(d.Replicas, int(d.online.Load()))
}

// waits tells whether writes wait at all now.
func (d *Durability) waits() bool { return d != nil && (d.AOF || d.want() > 0) }

// Watch reads, with Follow, how many replicas the primary has online (INFO
// replication) now and then every interval until ctx ends, calling changed
// when the count changes. It returns the first read's error; later errors keep
// the last count.
func (d *Durability) Watch(ctx context.Context, rdb redis.UniversalClient, every time.Duration, changed func(online int)) error {
	n, err := onlineReplicas(ctx, rdb)
	if err != nil {
		return err
	}
	d.online.Store(int32(n))
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n, err := onlineReplicas(ctx, rdb); err == nil && int32(n) != d.online.Swap(int32(n)) {
				changed(n)
			}
		}
	}()
	return nil
}

// onlineReplicas counts the replicas in INFO replication whose state is
// online: a replica still loading its first copy acknowledges nothing. On
// Redis Cluster it is the fewest any master has.
func onlineReplicas(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		least := -1
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := onlineReplicas(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && (least < 0 || n < least) {
				least = n
			}
			return err
		})
		return max(least, 0), err
	}
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range strings.Lines(info) {
		if strings.HasPrefix(line, "slave") && strings.Contains(line, "state=online") {
			n++
		}
	}
	return n, nil
}

// errNotDurable is an outcome written to the primary that did not reach the
// copies Durability asks for.
var errNotDurable = errors.New("the outcome is written but not durable")

// waitCmd queues on p the WAIT (or WAITAOF) that makes the writes queued
// before it on the same connection durable.
func (d *Durability) waitCmd(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	if d.AOF {
		return p.Do(ctx, "WAITAOF", 1, d.want(), d.Timeout.Milliseconds())
	}
	return p.Do(ctx, "WAIT", d.want(), d.Timeout.Milliseconds())
}

// check reads the reply of waitCmd: an error unless every copy it asked for
// acknowledged.
func (d *Durability) check(c *redis.Cmd) error {
	if err := c.Err(); err != nil {
		return err
	}
	args := c.Args()
	asked, _ := args[len(args)-2].(int)
	switch v := c.Val().(type) {
	case int64: // WAIT: replicas reached
		if int(v) < asked {
			return fmt.Errorf("%d of %d replicas acknowledged within %s", v, asked, d.Timeout)
		}
	case []any: // WAITAOF: local AOF fsynced (0/1), replicas fsynced
		if len(v) != 2 {
			return fmt.Errorf("WAITAOF replied %v", v)
		}
		local, _ := v[0].(int64)
		reps, _ := v[1].(int64)
		if local < 1 || int(reps) < asked {
			return fmt.Errorf("on disk locally: %d, on %d of %d replicas, within %s", local, reps, asked, d.Timeout)
		}
	}
	return nil
}

func (l *ledger) key(customer, campaign string, enrollment int, slug string) string {
	return store.LedgerKey(l.prefix, customer, campaign, enrollment, slug)
}

// claimValue is the value of a claim taken by owner with token.
func claimValue(owner, token string) string {
	return ledgerClaimed + ":" + owner + ":" + token
}

// found is what the ledger holds for a send another attempt took: the state
// of a send that is done, or "claimed" with the time left of another worker's
// claim.
type found struct {
	state string
	ttl   time.Duration
}

// peekAll reads, in one MGET, the ledger entries of jobs with a ledger key. It
// returns, per job, what holds the send (zero when nothing does: the send is
// free up to its fence), with the time left of the claims found.
func (l *ledger) peekAll(ctx context.Context, jobs []*job) ([]found, error) {
	out := make([]found, len(jobs))
	var keys []string
	var idx []int
	for i, j := range jobs {
		if j.ledgerKey != "" {
			keys = append(keys, j.ledgerKey)
			idx = append(idx, i)
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := l.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	var claimed []int
	for k, v := range vals {
		s, _ := v.(string)
		switch {
		case v == nil:
		case strings.HasPrefix(s, ledgerClaimed):
			out[idx[k]] = found{state: ledgerClaimed, ttl: l.claimTTL}
			claimed = append(claimed, idx[k])
		default:
			out[idx[k]] = found{state: s}
		}
	}
	if len(claimed) == 0 {
		return out, nil
	}
	// Sends other workers are sending: how long until they are known (rare).
	ttls := make([]*redis.DurationCmd, len(claimed))
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, i := range claimed {
			ttls[k] = p.PTTL(ctx, jobs[i].ledgerKey)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	for k, i := range claimed {
		// A claim lives claimTTL at most. A longer time to live is an outcome's
		// (kept for l.keep, 30 days), written between the MGET and the PTTL:
		// look again within a claim's time, not in a month.
		out[i].ttl = min(max(ttls[k].Val(), 0), l.claimTTL)
	}
	return out, nil
}

// fence claims j's send for the SMTP exchange: SET NX for claimTTL (with
// Durability, then WAIT until the claim is durable). It returns nil when the
// send may go, else what holds it.
func (l *ledger) fence(ctx context.Context, j *job) (*found, error) {
	for range 3 {
		var set *redis.BoolCmd
		wait, err := l.pipeDo(ctx, j.ledgerKey, func(p redis.Pipeliner) {
			set = p.SetNX(ctx, j.ledgerKey, j.claim, l.claimTTL)
		})
		if err != nil {
			return nil, fmt.Errorf("ledger fence %s: %w", j.ledgerKey, err)
		}
		if err := set.Err(); err != nil {
			return nil, fmt.Errorf("ledger fence %s: %w", j.ledgerKey, err)
		}
		if !set.Val() {
			v, err := l.rdb.Get(ctx, j.ledgerKey).Result()
			switch {
			case err == redis.Nil:
				continue // ran out meanwhile: claim it again
			case err != nil:
				return nil, fmt.Errorf("ledger fence %s: %w", j.ledgerKey, err)
			case v != j.claim:
				if strings.HasPrefix(v, ledgerClaimed) {
					return &found{state: ledgerClaimed, ttl: l.claimTTL}, nil
				}
				return &found{state: v}, nil
			}
			// This worker's own claim, from a fence that could not be made
			// durable: extend it and go on.
			if err := l.rdb.SetXX(ctx, j.ledgerKey, j.claim, l.claimTTL).Err(); err != nil {
				return nil, fmt.Errorf("ledger fence %s: %w", j.ledgerKey, err)
			}
		}
		if wait != nil {
			if err := l.durable.check(wait); err != nil {
				return nil, fmt.Errorf("ledger fence %s: the claim is not durable: %w", j.ledgerKey, err)
			}
		}
		return nil, nil
	}
	return &found{state: ledgerClaimed, ttl: l.claimTTL}, nil
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
//
// An outcome replaces the claim with one SET XX GET. What it replaced is
// checked after: nothing (the claim ran out: the outcome is written by the
// script instead), or another attempt's outcome (put back: the first outcome
// stays, as the script would keep it). A release (no outcome) is the script.
func (l *ledger) record(ctx context.Context, j *job) error {
	state := j.out.state()
	if state == "" {
		err := recordScript.Run(ctx, l.rdb, []string{j.ledgerKey}, j.claim, state, l.keep.Milliseconds()).Err()
		if err != nil && err != redis.Nil {
			return fmt.Errorf("ledger %s: %w", j.ledgerKey, err)
		}
		return nil
	}
	var set *redis.StatusCmd
	wait, err := l.pipeDo(ctx, j.ledgerKey, func(p redis.Pipeliner) {
		set = p.SetArgs(ctx, j.ledgerKey, state, redis.SetArgs{Mode: "XX", TTL: l.keep, Get: true})
	})
	if err != nil {
		return fmt.Errorf("ledger %s: %w", j.ledgerKey, err)
	}
	if err := set.Err(); err != nil && err != redis.Nil {
		return fmt.Errorf("ledger %s: %w", j.ledgerKey, err)
	}
	// What the outcome replaced: the claim, as a rule.
	var fix func(p redis.Pipeliner) redis.Cmder
	switch old, err := set.Result(); {
	case err == redis.Nil: // nothing there: the claim ran out
		fix = func(p redis.Pipeliner) redis.Cmder {
			return recordScript.Eval(ctx, p, []string{j.ledgerKey}, j.claim, state, l.keep.Milliseconds())
		}
	case old != j.claim && !strings.HasPrefix(old, ledgerClaimed):
		// Another attempt's outcome was there: it stays.
		fix = func(p redis.Pipeliner) redis.Cmder { return p.Set(ctx, j.ledgerKey, old, l.keep) }
	}
	if fix != nil {
		var cmd redis.Cmder
		if wait, err = l.pipeDo(ctx, j.ledgerKey, func(p redis.Pipeliner) { cmd = fix(p) }); err != nil {
			return fmt.Errorf("ledger %s: %w", j.ledgerKey, err)
		}
		if err := cmd.Err(); err != nil && err != redis.Nil {
			return fmt.Errorf("ledger %s: %w", j.ledgerKey, err)
		}
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
