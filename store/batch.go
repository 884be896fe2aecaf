package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Customers reads many customers in one round trip (on Redis Cluster one per
// master); a customer that does not exist is nil in the result.
func (s *Store) Customers(ctx context.Context, ids []string) ([]*lifecycle.Customer, error) {
	out, _, err := s.customers(ctx, ids, false)
	return out, err
}

// A Read is the customers one CustomersRead got, as stored: UpdateManyRead
// copies those nobody wrote since instead of decoding them again.
type Read struct {
	raw      map[string]string              // customer ID → its JSON as read
	pristine map[string]*lifecycle.Customer // decoded, never handed out
}

// CustomersRead is Customers that also returns what it read, for
// UpdateManyRead: a batch that reads its customers, decides and writes them
// back decodes each once.
func (s *Store) CustomersRead(ctx context.Context, ids []string) ([]*lifecycle.Customer, *Read, error) {
	return s.customers(ctx, ids, true)
}

func (s *Store) customers(ctx context.Context, ids []string, keep bool) ([]*lifecycle.Customer, *Read, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.customerKey(id)
	}
	vals, err := s.getMany(ctx, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("store: get %d customers: %w", len(ids), err)
	}
	var rd *Read
	if keep {
		rd = &Read{raw: make(map[string]string, len(ids)), pristine: make(map[string]*lifecycle.Customer, len(ids))}
	}
	out := make([]*lifecycle.Customer, len(ids))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		c, err := decodeCustomer([]byte(raw))
		if err != nil {
			return nil, nil, fmt.Errorf("store: decode customer %s: %w", ids[i], err)
		}
		out[i] = c
		if keep {
			rd.raw[ids[i]], rd.pristine[ids[i]] = raw, c.Clone()
		}
	}
	return out, rd, nil
}

// getMany reads the string values of keys, nil for a key that does not exist,
// in one round trip: one MGET, or on Redis Cluster, where one MGET cannot
// read keys of different slots, a pipeline of GETs, which the cluster client
// sends to the master of each key.
func (s *Store) getMany(ctx context.Context, keys []string) ([]any, error) {
	if !s.cluster {
		return s.rdb.MGet(ctx, keys...).Result()
	}
	// One MGET per hash tag (a shard's keys share a slot; a batch is
	// usually one shard's), in one pipeline that go-redis splits by node.
	groups := map[string][]int{}
	var tags []string
	for i, k := range keys {
		tag := hashTag(k)
		if _, ok := groups[tag]; !ok {
			tags = append(tags, tag)
		}
		groups[tag] = append(groups[tag], i)
	}
	p := s.rdb.Pipeline()
	mgets := make([]*redis.SliceCmd, len(tags))
	for g, tag := range tags {
		ks := make([]string, len(groups[tag]))
		for n, i := range groups[tag] {
			ks[n] = keys[i]
		}
		mgets[g] = p.MGet(ctx, ks...)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, err
	}
	vals := make([]any, len(keys))
	for g, tag := range tags {
		for n, v := range mgets[g].Val() {
			vals[groups[tag][n]] = v
		}
	}
	return vals, nil
}

// hashTag is the part of key Redis Cluster hashes: the text between its first
// '{' and the next '}', when not empty; else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// known is the customer id as rd read it, when raw is still what it read.
func (rd *Read) known(id string, raw any) (*lifecycle.Customer, bool) {
	if rd == nil {
		return nil, false
	}
	s, ok := raw.(string)
	if !ok || s != rd.raw[id] {
		return nil, false
	}
	c, ok := rd.pristine[id]
	if !ok {
		return nil, false
	}
	return c.Clone(), true
}

// UpdateMany is Update for many existing customers at once: it WATCHes them, reads
// them in one pipeline and writes every change in one MULTI/EXEC. When another
// client wrote one of them in between, or a change moves an email address, those
// customers go through Update one by one, so fn may run more than once for a
// customer and must derive its change from the customer it is given. Customers
// that do not exist are skipped.
func (s *Store) UpdateMany(ctx context.Context, ids []string, fn func(c *lifecycle.Customer) (*Change, error)) error {
	return s.UpdateManyRead(ctx, ids, nil, fn)
}

// UpdateManyRead is UpdateMany after CustomersRead: a customer whose JSON is
// still what rd read is copied from it, not decoded again. rd may be nil.
func (s *Store) UpdateManyRead(ctx context.Context, ids []string, rd *Read, fn func(c *lifecycle.Customer) (*Change, error)) error {
	exists := func(cur current) bool { return cur.raw != nil }
	var errs []error
	for _, group := range ByShard(ids) { // one transaction per shard
		_, fallback, err := s.sweepBatch(ctx, group, rd, exists, fn)
		if errors.Is(err, redis.TxFailedErr) {
			fallback, err = group, nil
		}
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("store: update %d customers: %w", len(group), err))...)
		}
		for _, id := range fallback {
			if _, err := s.update(ctx, id, "", exists, fn); err != nil {
				errs = append(errs, fmt.Errorf("store: update customer %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}
