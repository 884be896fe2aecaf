package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Broadcast states, as BroadcastState.State.
const (
	// BroadcastRunning: the audience is being evaluated (or the evaluator
	// died: its lock then runs out and another scheduler starts over).
	BroadcastRunning = "running"
	// BroadcastDone: every stored customer was decided; the chosen ones are
	// on the due index at their send times.
	BroadcastDone = "done"
	// BroadcastSkipped: the broadcast was first due longer ago than the
	// backfill grace when a scheduler got to it; nobody was enrolled.
	BroadcastSkipped = "skipped"
)

// BroadcastState is what the store keeps of one broadcast's audience
// evaluation ({p}broadcast:ID): its state and counts, for the scheduler that
// evaluates it once, and for /metrics and retain campaign list.
type BroadcastState struct {
	Campaign string
	State    string
	// SendAt is the send_at the evaluation ran for, as written.
	SendAt            string
	Started, Finished time.Time
	// Total is the number of stored customers estimated when it started, for
	// progress; Scanned how many it decided so far.
	Total, Scanned int64
	// Counts are the customers by decision (lifecycle.Choice's String, and
	// "suppressed").
	Counts map[string]int64
	// Reason says why a broadcast was skipped.
	Reason string
}

func (s *Store) broadcastKey(id string) string     { return s.prefix + "broadcast:" + id }
func (s *Store) broadcastLockKey(id string) string { return s.prefix + "lock:broadcast:" + id }

// countField is the hash field of a decision's count.
const countField = "n:"

// TakeBroadcast takes the evaluation of broadcast id for token, for ttl: true
// when the caller is to evaluate it, false when it is done or skipped, or
// another scheduler's lock on it holds. A running state whose lock ran out
// (its evaluator died) is taken over: the evaluation starts again, which
// enrols nobody twice.
func (s *Store) TakeBroadcast(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	state, err := s.rdb.HGet(ctx, s.broadcastKey(id), "state").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("store: read broadcast %s: %w", id, err)
	}
	if state == BroadcastDone || state == BroadcastSkipped {
		return false, nil
	}
	ok, err := s.rdb.SetNX(ctx, s.broadcastLockKey(id), token, ttl).Result()
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("store: lock broadcast %s: %w", id, err)
		}
		return false, err
	}
	// Another scheduler may have finished it between the read and the
	// lock (and released its lock): read again under the lock.
	state, err = s.rdb.HGet(ctx, s.broadcastKey(id), "state").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, errors.Join(fmt.Errorf("store: read broadcast %s: %w", id, err), s.ReleaseBroadcast(ctx, id, token))
	}
	if state == BroadcastDone || state == BroadcastSkipped {
		return false, s.ReleaseBroadcast(ctx, id, token)
	}
	return true, nil
}

// renewLock extends KEYS[1] by ARGV[2] ms while it holds ARGV[1].
var renewLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseLock deletes KEYS[1] while it holds ARGV[1].
var releaseLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// HoldBroadcast renews the lock on broadcast id taken with token: false when
// it ran out and another scheduler may have it (the caller stops).
func (s *Store) HoldBroadcast(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	n, err := renewLock.Run(ctx, s.rdb, []string{s.broadcastLockKey(id)}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("store: renew the lock of broadcast %s: %w", id, err)
	}
	return n == 1, nil
}

// ReleaseBroadcast ends the lock on broadcast id taken with token.
func (s *Store) ReleaseBroadcast(ctx context.Context, id, token string) error {
	if err := releaseLock.Run(ctx, s.rdb, []string{s.broadcastLockKey(id)}, token).Err(); err != nil {
		return fmt.Errorf("store: release the lock of broadcast %s: %w", id, err)
	}
	return nil
}

// StartBroadcast records that the evaluation of broadcast id for send_at
// sendAt started at now over about total customers, clearing the counts of
// an evaluation that did not finish.
func (s *Store) StartBroadcast(ctx context.Context, id, sendAt string, now time.Time, total int64) error {
	key := s.broadcastKey(id)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, "state", BroadcastRunning, "send_at", sendAt, "started", now.UnixMilli(), "total", total, "scanned", 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: start broadcast %s: %w", id, err)
	}
	return nil
}

// CountBroadcast adds scanned customers and the counts by decision to the
// evaluation of broadcast id.
func (s *Store) CountBroadcast(ctx context.Context, id string, scanned int64, counts map[string]int64) error {
	key := s.broadcastKey(id)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, "scanned", scanned)
		for name, n := range counts {
			if n != 0 {
				p.HIncrBy(ctx, key, countField+name, n)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: count broadcast %s: %w", id, err)
	}
	return nil
}

// FinishBroadcast records that the evaluation of broadcast id ended at now in
// state (BroadcastDone or BroadcastSkipped, with reason).
func (s *Store) FinishBroadcast(ctx context.Context, id, state, reason string, now time.Time) error {
	key := s.broadcastKey(id)
	if err := s.rdb.HSet(ctx, key, "state", state, "finished", now.UnixMilli(), "reason", reason).Err(); err != nil {
		return fmt.Errorf("store: finish broadcast %s: %w", id, err)
	}
	return nil
}

// BroadcastStates reads the evaluation state of each broadcast of ids; a
// broadcast never evaluated is missing from the map.
func (s *Store) BroadcastStates(ctx context.Context, ids []string) (map[string]*BroadcastState, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.broadcastKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read broadcasts: %w", err)
	}
	out := map[string]*BroadcastState{}
	for i, cmd := range cmds {
		h := cmd.Val()
		if len(h) == 0 {
			continue
		}
		st := &BroadcastState{Campaign: ids[i], State: h["state"], SendAt: h["send_at"], Reason: h["reason"], Counts: map[string]int64{}}
		st.Started, st.Finished = unixMilli(h["started"]), unixMilli(h["finished"])
		st.Total, _ = strconv.ParseInt(h["total"], 10, 64)
		st.Scanned, _ = strconv.ParseInt(h["scanned"], 10, 64)
		for k, v := range h {
			if len(k) > len(countField) && k[:len(countField)] == countField {
				st.Counts[k[len(countField):]], _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[ids[i]] = st
	}
	return out, nil
}

func unixMilli(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
