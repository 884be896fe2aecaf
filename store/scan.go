package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/retainmail/retain/lifecycle"
)

// ScanCustomers calls fn with every stored customer, about count at a time,
// until fn returns an error or every customer was read. It only reads: SCAN
// over the customer keys and one MGET per batch, so it may run beside live
// workers (a customer written meanwhile is seen before or after the write,
// and one created meanwhile may be missed). Memory stays at one batch.
func (s *Store) ScanCustomers(ctx context.Context, count int, fn func([]*lifecycle.Customer) error) error {
	prefix := s.customerKey("")
	iter := s.rdb.Scan(ctx, 0, globEscape(prefix)+"*", int64(count)).Iterator()
	ids := make([]string, 0, count)
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		custs, err := s.Customers(ctx, ids)
		if err != nil {
			return err
		}
		batch := custs[:0]
		for _, c := range custs {
			if c != nil { // deleted since SCAN saw it
				batch = append(batch, c)
			}
		}
		ids = ids[:0]
		return fn(batch)
	}
	for iter.Next(ctx) {
		ids = append(ids, strings.TrimPrefix(iter.Val(), prefix))
		if len(ids) >= count {
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
