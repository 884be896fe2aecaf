package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/retainmail/retain/lifecycle"
)

// ScanCustomers calls fn with every stored customer, about count at a time,
// until fn returns an error or every customer was read. It only reads: SCAN
// over the customer keys and one MGET per batch, so it may run beside live
// workers (a customer written meanwhile is seen before or after the write,
// and one created meanwhile may be missed).
//
// One goroutine reads while workers goroutines decode and call fn, each with
// its number (0 ≤ worker < workers) so callers can keep per-worker state: fn
// runs concurrently for different workers. Memory stays at about workers+1
// batches, whatever the number of customers.
func (s *Store) ScanCustomers(ctx context.Context, count, workers int, fn func(worker int, batch []*lifecycle.Customer) error) error {
	ctx, cancel := context.WithCancel(ctx)
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
					c, err := decodeCustomer([]byte(s))
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

	prefix := s.customerKey("")
	iter := s.rdb.Scan(ctx, 0, globEscape(prefix)+"*", int64(count)).Iterator()
	ids := make([]string, 0, count)
	flush := func() {
		if len(ids) == 0 || ctx.Err() != nil {
			return
		}
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = prefix + id
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			fail(fmt.Errorf("store: get %d customers: %w", len(ids), err))
			return
		}
		batches <- raw{ids: ids, vals: vals}
		ids = make([]string, 0, count)
	}
	for iter.Next(ctx) {
		ids = append(ids, strings.TrimPrefix(iter.Val(), prefix))
		if len(ids) >= count {
			flush()
		}
	}
	if err := iter.Err(); err != nil && ctx.Err() == nil {
		fail(fmt.Errorf("store: scan customers: %w", err))
	}
	flush()
	close(batches)
	wg.Wait()
	return firstErr
}

// CountCustomers estimates how many customers are stored, for progress: the
// wake index holds every customer with a time rule ahead. It never scans.
func (s *Store) CountCustomers(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, s.wakeKey()).Result()
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
