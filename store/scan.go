package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// ScanCustomers calls fn with every stored customer, about count at a time,
// until fn returns an error or every customer was read. It only reads: SCAN
// over the customer keys and one MGET per batch (on Redis Cluster: SCAN on
// every master and a pipeline of GETs per batch), so it may run beside live
// workers (a customer written meanwhile is seen before or after the write,
// and one created meanwhile may be missed).
//
// One goroutine reads (on Redis Cluster one per master) while workers
// goroutines decode and call fn, each with its number (0 ≤ worker < workers)
// so callers can keep per-worker state: fn runs concurrently for different
// workers. Memory stays at about workers+1 batches (workers+masters on
// Redis Cluster), whatever the number of customers. A scan that ctx ends
// returns ctx's error: it did not read every customer.
func (s *Store) ScanCustomers(ctx context.Context, count, workers int, fn func(worker int, batch []*lifecycle.Customer) error) error {
	return s.scan(ctx, count, workers, decodeCustomer, fn)
}

// ScanProfiles is ScanCustomers for decisions on who a customer is rather
// than where they are (a broadcast's audience): each customer comes with its
// profile, attributes, counters and subscription, and with one empty
// Enrollment per campaign it has an enrollment in (no status, steps or
// times); its time fields (StageSince, CreatedAt, LastActivity, LastEvent,
// LastSent) are zero. Decoding that costs a fraction of a whole customer.
func (s *Store) ScanProfiles(ctx context.Context, count, workers int, fn func(worker int, batch []*lifecycle.Customer) error) error {
	return s.scan(ctx, count, workers, decodeProfile, fn)
}

func (s *Store) scan(parent context.Context, count, workers int, decode func([]byte) (*lifecycle.Customer, error), fn func(worker int, batch []*lifecycle.Customer) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	workers = max(workers, 1)
	type raw struct {
		ids  []string
		vals []any
	}
	batches := make(chan raw, workers)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				if ctx.Err() != nil {
					continue // drain
				}
				custs := make([]*lifecycle.Customer, 0, len(b.vals))
				for i, v := range b.vals {
					s, ok := v.(string)
					if !ok {
						continue // deleted since SCAN saw it
					}
					c, err := decode([]byte(s))
					if err != nil {
						fail(fmt.Errorf("store: decode customer %s: %w", b.ids[i], err))
						break
					}
					custs = append(custs, c)
				}
				if err := fn(w, custs); err != nil {
					fail(err)
				}
			}
		})
	}

	// Customer keys are {p}{TAG}:c:{id}, in every shard.
	const mark = "}:c:"
	match := globEscape(s.prefix) + "{*" + mark + "*"
	// scan reads the customers of one server, batch by batch.
	scan := func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, match, int64(count)).Iterator()
		keys := make([]string, 0, count)
		flush := func() error {
			if len(keys) == 0 || ctx.Err() != nil {
				return nil
			}
			vals, err := s.getMany(ctx, keys)
			if err != nil {
				return fmt.Errorf("store: get %d customers: %w", len(keys), err)
			}
			ids := make([]string, len(keys))
			for i, k := range keys {
				_, ids[i], _ = strings.Cut(k[len(s.prefix):], mark)
			}
			batches <- raw{ids: ids, vals: vals}
			keys = make([]string, 0, count)
			return nil
		}
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) >= count {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("store: scan customers: %w", err)
		}
		return flush()
	}
	err := ForEachMaster(ctx, s.rdb, func(ctx context.Context, _ string, m redis.UniversalClient) error {
		if err := scan(ctx, m); err != nil && ctx.Err() == nil {
			fail(err) // at once: the other masters' scans stop too
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		fail(fmt.Errorf("store: scan customers: %w", err))
	}
	close(batches)
	wg.Wait()
	if firstErr == nil {
		// Cancelled from outside: not every customer was read.
		firstErr = parent.Err()
	}
	return firstErr
}

// CountCustomers estimates how many customers are stored, for progress: the
// wake index holds every customer with a time rule ahead. It never scans.
func (s *Store) CountCustomers(ctx context.Context) (int64, error) {
	var cards []*redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range Shards {
			cards = append(cards, p.ZCard(ctx, s.wakeKey(shard)))
		}
		return nil
	})
	var n int64
	for _, c := range cards {
		n += c.Val()
	}
	return n, err
}

// globEscape escapes the glob characters of a SCAN MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
