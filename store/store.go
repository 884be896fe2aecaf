package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Errors callers branch on. Every error the store returns wraps one of these or
// the underlying Redis error, with the customer or email it concerns.
var (
	// ErrNotFound means no customer has that ID or email.
	ErrNotFound = errors.New("customer not found")
	// ErrDuplicate means the event ID was applied to the customer before; nothing
	// was written.
	ErrDuplicate = errors.New("event already applied")
	// ErrEmailTaken means another customer already has the email address.
	ErrEmailTaken = errors.New("email address belongs to another customer")
	// ErrConflict means an update lost the optimistic-locking race MaxAttempts
	// times in a row; nothing was written and the update may be retried.
	ErrConflict = errors.New("too many concurrent updates")
)

// DefaultPrefix is the key prefix New uses when given none.
const DefaultPrefix = "retain:"

// RecentEvents is how many recent events are kept per customer.
const RecentEvents = 50

// Store keeps customers in Redis. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	// cluster: rdb is a Redis Cluster client (keys of different slots live on
	// different nodes).
	cluster bool
	// nextShard is where ClaimDue starts looking.
	nextShard atomic.Int32
	// shardPrefixes are ShardPrefix(prefix, i), built once.
	shardPrefixes [Shards]string

	// MaxAttempts bounds how often Update runs its read-modify-write when other
	// clients keep changing the customer in between. Default 100.
	MaxAttempts int
	// SweepBatch is how many due customers Sweep reads and writes in one
	// transaction. Default 100.
	SweepBatch int
	// Also, when set, is called for every customer write (Update, UpdateMany,
	// Sweep) to add commands to the same MULTI/EXEC: counters kept this way
	// (package report) move exactly when the customer does, and a write that
	// loses its WATCH and is retried adds nothing the first time. It must only
	// queue commands on p. Default nil: nothing is added.
	Also func(ctx context.Context, p redis.Pipeliner, w Written)
}

// Written is one customer write, as Store.Also sees it.
type Written struct {
	ID string
	// Before is the customer as read, nil when the write creates it. It is a
	// shallow copy taken before the update function ran: its plain fields
	// (Stage, LastActivity, LastSent, CreatedAt, Unsubscribed, ...) are as read,
	// but its maps, slices and enrollments are shared with After and may show
	// the function's changes.
	Before *lifecycle.Customer
	// After is the customer as written.
	After *lifecycle.Customer
	// Change is what the update function returned.
	Change *Change
}

// Redis is the client the store works through. Whatever keeps keys beside the
// store's (the send ledger, the queue, the counters) uses it and Prefix, so
// that they always name the same Redis and key space.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Prefix is the prefix of every key the store keeps.
func (s *Store) Prefix() string { return s.prefix }

// New returns a Store keeping every key under prefix (DefaultPrefix when empty).
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, prefix: prefix, cluster: cluster, MaxAttempts: 100, SweepBatch: 100}
	for i := range Shards {
		s.shardPrefixes[i] = ShardPrefix(prefix, i)
	}
	return s
}

// Key names; see the table in doc.go. The customer ID always comes last, so an ID
// holding ':' cannot collide with another customer's keys. A customer's keys,
// and the indexes, leases and locks of its shard, start with its shard's
// prefix (shard.go).
func (s *Store) cp(id string) string          { return CustomerPrefix(s.prefix, id) }
func (s *Store) sp(shard int) string          { return ShardPrefix(s.prefix, shard) }
func (s *Store) customerKey(id string) string { return s.cp(id) + "c:" + id }
func (s *Store) stagesKey(id string) string   { return s.cp(id) + "stages:" + id }
func (s *Store) eventsKey(id string) string   { return s.cp(id) + "events:" + id }
func (s *Store) seenKey(id string) string     { return s.cp(id) + "seen:" + id }
func (s *Store) leaseKey(id string) string    { return s.cp(id) + "lease:" + id }
func (s *Store) wakeKey(shard int) string     { return s.sp(shard) + "wake" }
func (s *Store) dueKey(shard int) string      { return s.sp(shard) + "due" }
func (s *Store) freshKey(shard int, token string) string {
	return s.sp(shard) + "lease-fresh:" + token
}
func (s *Store) requeueLockKey(shard int) string { return s.sp(shard) + "lock:requeue" }
func (s *Store) emailKey(email string) string    { return s.prefix + "email:" + email }
func (s *Store) suppressedKey() string           { return s.prefix + "suppressed" }

// normEmail is the form of an address in the email and suppression indexes:
// trimmed and lower-cased, so Ann@Example.com and ann@example.com are one person.
func normEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// Customer returns the customer with the ID, or an error wrapping ErrNotFound.
func (s *Store) Customer(ctx context.Context, id string) (*lifecycle.Customer, error) {
	return s.customerVia(ctx, s.rdb, id)
}

// customerVia is Customer read through c (a transaction's connection).
func (s *Store) customerVia(ctx context.Context, rdb redis.Cmdable, id string) (*lifecycle.Customer, error) {
	b, err := rdb.Get(ctx, s.customerKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: get customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get customer %s: %w", id, err)
	}
	c, err := decodeCustomer(b)
	if err != nil {
		return nil, fmt.Errorf("store: decode customer %s: %w", id, err)
	}
	return c, nil
}

// CustomerByEmail returns the customer with the email address (compared without
// case), or an error wrapping ErrNotFound.
func (s *Store) CustomerByEmail(ctx context.Context, email string) (*lifecycle.Customer, error) {
	addr := normEmail(email)
	v, err := s.rdb.Get(ctx, s.emailKey(addr)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: get customer by email %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get customer by email %s: %w", email, err)
	}
	id, _, _ := emailOwner(v)
	c, err := s.Customer(ctx, id)
	if err != nil {
		return nil, err
	}
	if normEmail(c.Email) != addr { // an entry left by a write that did not finish
		return nil, fmt.Errorf("store: get customer by email %s: %w", email, ErrNotFound)
	}
	return c, nil
}

// History returns the customer's stage changes, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]lifecycle.StageChange, error) {
	raw, err := s.rdb.LRange(ctx, s.stagesKey(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: stage history %s: %w", id, err)
	}
	out := make([]lifecycle.StageChange, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("store: decode stage history %s: %w", id, err)
		}
	}
	return out, nil
}

// Events returns the customer's n most recent events (all kept, at most
// RecentEvents, when n <= 0), newest first.
func (s *Store) Events(ctx context.Context, id string, n int) ([]lifecycle.Event, error) {
	stop := int64(n) - 1
	if n <= 0 {
		stop = -1
	}
	raw, err := s.rdb.LRange(ctx, s.eventsKey(id), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("store: recent events %s: %w", id, err)
	}
	out := make([]lifecycle.Event, len(raw))
	for i, r := range raw {
		if out[i], err = decodeEvent([]byte(r)); err != nil {
			return nil, fmt.Errorf("store: decode recent events %s: %w", id, err)
		}
	}
	return out, nil
}

// Delete erases the customer: profile, stage history, recent events, consent
// log, seen event IDs, its wake entry and its email index entry (GDPR erasure).
// The suppression list is kept: it holds addresses that must not be mailed
// again, which is why it is keyed by address and not by customer. Delete
// returns an error wrapping ErrNotFound when the customer had no keys.
func (s *Store) Delete(ctx context.Context, id string) error {
	key := s.customerKey(id)
	var released string
	err := s.retry(ctx, func() error {
		return s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			var email string
			b, err := tx.Get(ctx, key).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				c, err := decodeCustomer(b)
				if err != nil {
					return fmt.Errorf("decode: %w", err)
				}
				email = normEmail(c.Email)
			}
			var del *redis.IntCmd
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				del = p.Del(ctx, key, s.stagesKey(id), s.eventsKey(id), s.seenKey(id), s.consentKey(id))
				p.ZRem(ctx, s.wakeKey(ShardOf(id)), id)
				p.ZRem(ctx, s.dueKey(ShardOf(id)), id)
				return nil
			})
			if err == nil && del.Val() == 0 {
				return ErrNotFound
			}
			if err == nil {
				released = email
			}
			return err
		}, key)
	})
	if released != "" {
		// The address's entry goes after the customer, if it is still
		// this customer's (email.go).
		s.settleEmail(ctx, released, id, "release")
	}
	if err != nil {
		return fmt.Errorf("store: delete customer %s: %w", id, err)
	}
	return nil
}

// Suppression is an address that must not be mailed, and why.
type Suppression struct {
	Email  string    `json:"-"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Suppress records that the address must not be mailed (a hard bounce, a
// complaint). An address suppressed already keeps its first entry: the
// earliest reason and date, which an import or a hand-added entry may have
// given. Addresses are compared without case.
func (s *Store) Suppress(ctx context.Context, email, reason string, at time.Time) error {
	b, err := json.Marshal(Suppression{Reason: reason, At: at})
	if err != nil {
		return fmt.Errorf("store: suppress %s: %w", email, err)
	}
	if err := s.rdb.HSetNX(ctx, s.suppressedKey(), normEmail(email), b).Err(); err != nil {
		return fmt.Errorf("store: suppress %s: %w", email, err)
	}
	return nil
}

// Suppression returns the address's suppression, or nil when it may be mailed.
func (s *Store) Suppression(ctx context.Context, email string) (*Suppression, error) {
	sups, err := s.Suppressions(ctx, []string{email})
	if err != nil {
		return nil, err
	}
	return sups[0], nil
}

// Suppressions looks up many addresses in one round trip; an address not on the
// list is nil in the result.
func (s *Store) Suppressions(ctx context.Context, emails []string) ([]*Suppression, error) {
	if len(emails) == 0 {
		return nil, nil
	}
	norm := make([]string, len(emails))
	for i, e := range emails {
		norm[i] = normEmail(e)
	}
	vals, err := s.rdb.HMGet(ctx, s.suppressedKey(), norm...).Result()
	if err != nil {
		return nil, fmt.Errorf("store: suppressions: %w", err)
	}
	out := make([]*Suppression, len(emails))
	for i, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue
		}
		sup := &Suppression{Email: norm[i]}
		if err := json.Unmarshal([]byte(raw), sup); err != nil {
			return nil, fmt.Errorf("store: decode suppression %s: %w", emails[i], err)
		}
		out[i] = sup
	}
	return out, nil
}
