package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Due returns the IDs of up to limit customers (all when limit <= 0) whose wake
// time is at or before now, the longest due first. It reads only the due part of
// the wake index: its cost follows the number due, not the number of customers.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ranges []*redis.ZSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range Shards { // each shard's longest due, then the longest due of all
			ranges = append(ranges, p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
				Key:     s.wakeKey(shard),
				Start:   "-inf",
				Stop:    strconv.FormatInt(now.UnixMilli(), 10),
				ByScore: true,
				Count:   int64(max(limit, 0)),
			}))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: due customers: %w", err)
	}
	var all []redis.Z
	for _, r := range ranges {
		all = append(all, r.Val()...)
	}
	slices.SortStableFunc(all, func(a, b redis.Z) int { return cmp.Compare(a.Score, b.Score) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	ids := make([]string, len(all))
	for i, z := range all {
		ids[i] = z.Member.(string)
	}
	return ids, nil
}

// Sweep applies fn to up to limit customers due at now (all when limit <= 0), as
// Update would, and returns how many it applied fn to. fn should move each
// customer's wake time past now (or clear it): a customer whose wake stays due is
// due again at the next sweep.
//
// Sweep reads and writes SweepBatch customers per round trip: it WATCHes the
// batch, reads it in one pipeline and writes every change in one MULTI/EXEC. If
// another client wrote one of them in between, the batch falls back to one
// Update per customer. Each customer's wake time is read again under the WATCH
// and a customer no longer due is skipped, so two sweeps running at once, or a
// sweep racing an event, never apply fn twice for the same wake time.
//
// An error from fn for one customer does not stop the others: Sweep goes on and
// returns every such error joined, along with the count.
func (s *Store) Sweep(ctx context.Context, now time.Time, limit int, fn func(c *lifecycle.Customer) (*Change, error)) (int, error) {
	ids, err := s.Due(ctx, now, limit)
	if err != nil {
		return 0, err
	}
	nowMs := now.UnixMilli()
	due := func(cur current) bool { return cur.raw != nil && cur.wake != 0 && cur.wake <= nowMs }
	batch := max(s.SweepBatch, 1)
	var done int
	var errs []error
	for _, group := range ByShard(ids) { // a transaction holds one shard's customers
		for chunk := range slices.Chunk(group, batch) {
			k, fallback, err := s.sweepBatch(ctx, chunk, nil, due, fn)
			if errors.Is(err, redis.TxFailedErr) {
				k, fallback, err = 0, chunk, nil
			}
			if err != nil {
				return done, errors.Join(append(errs, fmt.Errorf("store: sweep: %w", err))...)
			}
			done += k
			for _, id := range fallback {
				ran, err := s.update(ctx, id, "", due, fn)
				if err != nil {
					errs = append(errs, fmt.Errorf("store: sweep customer %s: %w", id, err))
					if ctx.Err() != nil {
						return done, errors.Join(errs...)
					}
					continue
				}
				if ran {
					done++
				}
			}
		}
	}
	return done, errors.Join(errs...)
}

// sweepBatch applies fn to the due customers among ids in one transaction. It
// returns how many it applied fn to and the customers left to a single Update:
// those whose fn failed (Update will report it) and those whose email changes.
// A redis.TxFailedErr means nothing was written.
func (s *Store) sweepBatch(ctx context.Context, ids []string, rd *Read, due func(current) bool, fn func(*lifecycle.Customer) (*Change, error)) (int, []string, error) {
	shard := ShardOf(ids[0]) // ids are of one shard
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.customerKey(id)
	}
	var done int
	var fallback []string
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		// Three reads for the whole batch: the customers, and their
		// entries in the wake and due indexes.
		var gets *redis.SliceCmd
		var wakes, dues *redis.FloatSliceCmd
		_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			gets = p.MGet(ctx, keys...)
			wakes = p.ZMScore(ctx, s.wakeKey(shard), ids...)
			dues = p.ZMScore(ctx, s.dueKey(shard), ids...)
			return nil
		})
		if err != nil {
			return err
		}
		var writes []*write
		var stale []string
		for i, id := range ids {
			var cur current
			var err error
			if c, ok := rd.known(id, gets.Val()[i]); ok {
				raw := gets.Val()[i].(string)
				cur = current{raw: []byte(raw), c: c, email: normEmail(c.Email), wake: int64(wakes.Val()[i]), due: int64(dues.Val()[i])}
			} else {
				cur, err = decodeCurrent(gets.Val()[i], wakes.Val()[i], dues.Val()[i])
			}
			switch {
			case err != nil:
				fallback = append(fallback, id) // for Update to report
				continue
			case cur.raw == nil && (cur.wake != 0 || cur.due != 0):
				stale = append(stale, id) // index entries without a customer
				continue
			case !due(cur):
				continue // swept by someone else meanwhile
			}
			w, err := s.plan(id, "", cur, fn)
			if err != nil || (w != nil && w.emailChanged()) {
				fallback = append(fallback, id)
				continue
			}
			done++
			if w != nil {
				writes = append(writes, w)
			}
		}
		if len(writes) == 0 && len(stale) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.queue(ctx, p, writes...)
			if len(stale) > 0 {
				p.ZRem(ctx, s.wakeKey(shard), anys(stale)...)
				p.ZRem(ctx, s.dueKey(shard), anys(stale)...)
			}
			return nil
		})
		return err
	}, keys...)
	return done, fallback, err
}
