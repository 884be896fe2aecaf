package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Customers reads many customers in one round trip; a customer that does not
// exist is nil in the result.
func (s *Store) Customers(ctx context.Context, ids []string) ([]*lifecycle.Customer, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.customerKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("store: get %d customers: %w", len(ids), err)
	}
	out := make([]*lifecycle.Customer, len(ids))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		c, err := decodeCustomer([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("store: decode customer %s: %w", ids[i], err)
		}
		out[i] = c
	}
	return out, nil
}

// UpdateMany is Update for many existing customers at once: it WATCHes them, reads
// them in one pipeline and writes every change in one MULTI/EXEC. When another
// client wrote one of them in between, or a change moves an email address, those
// customers go through Update one by one, so fn may run more than once for a
// customer and must derive its change from the customer it is given. Customers
// that do not exist are skipped.
func (s *Store) UpdateMany(ctx context.Context, ids []string, fn func(c *lifecycle.Customer) (*Change, error)) error {
	exists := func(cur current) bool { return cur.raw != nil }
	_, fallback, err := s.sweepBatch(ctx, ids, exists, fn)
	if errors.Is(err, redis.TxFailedErr) {
		fallback, err = ids, nil
	}
	if err != nil {
		return fmt.Errorf("store: update %d customers: %w", len(ids), err)
	}
	var errs []error
	for _, id := range fallback {
		if _, err := s.update(ctx, id, "", exists, fn); err != nil {
			errs = append(errs, fmt.Errorf("store: update customer %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
