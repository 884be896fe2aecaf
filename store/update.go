package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Change is what an update writes. The zero Change writes nothing but a wake
// removal (see Wake).
type Change struct {
	// Customer is the new state; nil leaves it unchanged. Its ID must be the
	// updated customer's.
	Customer *lifecycle.Customer
	// History is appended to the stage history.
	History []lifecycle.StageChange
	// Event is recorded in the recent events; its ID, if any, joins the seen set.
	Event *lifecycle.Event
	// Wake is when the customer's next time rule can fire; zero removes the
	// customer from the wake index.
	Wake time.Time
	// Due is when the customer's next email is due; zero removes the customer
	// from the due index.
	Due time.Time
	// Changes are the engine's decisions that led to this change, for
	// Store.Also (the report counters); the store itself does not write them.
	Changes []lifecycle.Change
}

// Update runs a read-modify-write of one customer under optimistic locking: it
// reads the customer, calls fn with it (nil when the customer does not exist
// yet) and writes the returned Change in one MULTI/EXEC that fails if anyone
// wrote the customer in between, in which case it reads and calls fn again, up to
// MaxAttempts times (then ErrConflict). fn may thus run more than once and must
// have no side effects beyond its result. A nil Change writes nothing.
//
// When eventID is not empty and was applied before (it is in the customer's seen
// set), Update returns ErrDuplicate without calling fn. eventID joins the seen
// set with the Change. A Change that leaves the stored customer JSON, the wake
// time, the history and the events as they are writes nothing.
//
// Errors from fn are returned wrapped, unchanged for errors.Is.
func (s *Store) Update(ctx context.Context, id, eventID string, fn func(c *lifecycle.Customer) (*Change, error)) error {
	if id == "" {
		return errors.New("store: update: empty customer ID")
	}
	_, err := s.update(ctx, id, eventID, nil, fn)
	if err != nil {
		return fmt.Errorf("store: update customer %s: %w", id, err)
	}
	return nil
}

// update is Update with a guard: when guard is set and returns false for the
// customer as read, fn is not called and ran is false.
func (s *Store) update(ctx context.Context, id, eventID string, guard func(current) bool, fn func(*lifecycle.Customer) (*Change, error)) (ran bool, err error) {
	key := s.customerKey(id)
	// The addresses reserved for the customer (email.go), and the write that
	// went through: its new address is confirmed and its old one released
	// once it is written; others reserved on the way are released.
	var reserved []string
	var done *write
	defer func() { s.settleEmails(ctx, id, reserved, done) }()
	// once is one attempt under WATCH. When the write would take an address
	// not reserved yet, it writes nothing and returns the address; the next
	// attempt reuses that write if it finds the customer as it was, rather
	// than calling fn again.
	var planned *write
	var plannedOn current
	once := func() (need string, err error) {
		ran, done = false, nil
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			var get *redis.StringCmd
			var wake, due, seen *redis.FloatCmd
			_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				get = p.Get(ctx, key)
				wake = p.ZScore(ctx, s.wakeKey(ShardOf(id)), id)
				due = p.ZScore(ctx, s.dueKey(ShardOf(id)), id)
				if eventID != "" {
					seen = p.ZScore(ctx, s.seenKey(id), eventID)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if seen != nil {
				switch err := seen.Err(); {
				case err == nil:
					return fmt.Errorf("event %s: %w", eventID, ErrDuplicate)
				case !errors.Is(err, redis.Nil):
					// Not knowing whether the event was applied is not "not
					// applied": applying it again could count it twice.
					return fmt.Errorf("event %s: read the applied events: %w", eventID, err)
				}
			}
			cur, err := readCurrent(get, wake, due)
			if err != nil {
				return err
			}
			if guard != nil && !guard(cur) {
				return nil
			}
			ran = true
			w := planned
			if w == nil || !cur.same(plannedOn) {
				if w, err = s.plan(id, eventID, cur, fn); err != nil || w == nil {
					return err
				}
			}
			planned = nil
			if w.emailChanged() && w.newEmail != "" && !slices.Contains(reserved, w.newEmail) {
				if s.cluster {
					// The address's key is on another node than the
					// WATCH's connection: reserve it apart and come back.
					need, planned, plannedOn = w.newEmail, w, cur
					return nil
				}
				// One server: reserve on the WATCH's own connection (the
				// address's key is not watched), saving a second read.
				if err := s.reserveEmail(ctx, tx, w.newEmail, id); err != nil {
					return err
				}
				reserved = append(reserved, w.newEmail)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				s.queue(ctx, p, w)
				return nil
			})
			if err == nil {
				done = w
			}
			return err
		}, key)
		return need, err
	}
	err = s.retry(ctx, func() error {
		for range 4 {
			need, err := once()
			if need == "" {
				return err
			}
			// The write takes an address: reserve it, on a connection of
			// its own (not the WATCH's, which waits), and run again.
			if err := s.reserveEmail(ctx, s.rdb, need, id); err != nil {
				return err
			}
			reserved = append(reserved, need)
		}
		return errors.New("the email address changed on every attempt")
	})
	return ran, err
}

// retry runs op until it does not fail on a lost WATCH, at most MaxAttempts
// times, sleeping a short random while between attempts so that contenders
// spread out instead of colliding again.
func (s *Store) retry(ctx context.Context, op func() error) error {
	attempts := max(s.MaxAttempts, 1)
	for i := range attempts {
		err := op()
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if i == attempts-1 {
			break
		}
		ceiling := min(time.Duration(i+1)*500*time.Microsecond, 20*time.Millisecond)
		t := time.NewTimer(rand.N(ceiling) + 50*time.Microsecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return fmt.Errorf("%d attempts: %w", attempts, ErrConflict)
}

// current is a customer as read inside a WATCH.
type current struct {
	raw   []byte // stored JSON; nil when the customer does not exist
	c     *lifecycle.Customer
	email string // normalized stored email
	wake  int64  // wake score, unix ms; 0 when not in the index
	due   int64  // due score, unix ms; 0 when not in the index
}

// same tells whether c is the customer as o was read: the same stored JSON
// and index entries.
func (c current) same(o current) bool {
	return bytes.Equal(c.raw, o.raw) && (c.raw == nil) == (o.raw == nil) && c.wake == o.wake && c.due == o.due
}

func readCurrent(get *redis.StringCmd, wake, due *redis.FloatCmd) (current, error) {
	for _, z := range []*redis.FloatCmd{wake, due} {
		if err := z.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return current{}, err
		}
	}
	raw, err := get.Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return decodeCurrent(nil, wake.Val(), due.Val())
	case err != nil:
		return current{}, err
	}
	return decodeCurrent(raw, wake.Val(), due.Val())
}

// decodeCurrent is readCurrent of values read otherwise (MGET and ZMSCORE):
// raw is the customer key's value, nil when it does not exist; a score of 0
// is no entry.
func decodeCurrent(raw any, wake, due float64) (current, error) {
	cur := current{wake: int64(wake), due: int64(due)}
	var b []byte
	switch v := raw.(type) {
	case nil:
		return cur, nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return cur, fmt.Errorf("customer value of type %T", raw)
	}
	c, err := decodeCustomer(b)
	if err != nil {
		return cur, fmt.Errorf("decode: %w", err)
	}
	cur.raw, cur.c, cur.email = b, c, normEmail(c.Email)
	return cur, nil
}

// write is a Change turned into what to send to Redis.
type write struct {
	id        string
	blob      []byte // customer JSON; always written, so watchers of the key notice
	oldEmail  string
	newEmail  string
	history   [][]byte
	event     []byte
	seen      []string
	seenScore float64
	// written is what Store.Also sees; nil when it is not set.
	written     *Written
	wakeChanged bool
	wake        int64
	dueChanged  bool
	due         int64
	// consent: event is also appended to the consent log (IsConsent).
	consent bool
}

func (w *write) emailChanged() bool { return w.oldEmail != w.newEmail }

// wakeScore is the wake index score of t: unix milliseconds, 0 for the zero time.
func wakeScore(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// plan calls fn on the current customer and turns its Change into a write; nil
// when there is nothing to write.
func (s *Store) plan(id, eventID string, cur current, fn func(*lifecycle.Customer) (*Change, error)) (*write, error) {
	var before *lifecycle.Customer
	if s.Also != nil && cur.c != nil {
		b := *cur.c // fn changes cur.c in place
		before = &b
	}
	ch, err := fn(cur.c)
	if err != nil || ch == nil {
		return nil, err
	}
	w := &write{id: id, blob: cur.raw, oldEmail: cur.email, newEmail: cur.email}
	changed := false
	if ch.Customer != nil {
		if ch.Customer.ID != id {
			return nil, fmt.Errorf("change carries customer %q", ch.Customer.ID)
		}
		b, err := encodeCustomer(ch.Customer)
		if err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
		if !bytes.Equal(b, cur.raw) {
			w.blob, changed = b, true
			w.newEmail = normEmail(ch.Customer.Email)
		}
	}
	if wk := wakeScore(ch.Wake); wk != cur.wake {
		w.wakeChanged, w.wake, changed = true, wk, true
	}
	if d := wakeScore(ch.Due); d != cur.due {
		w.dueChanged, w.due, changed = true, d, true
	}
	for _, h := range ch.History {
		b, err := json.Marshal(h)
		if err != nil {
			return nil, fmt.Errorf("encode stage change: %w", err)
		}
		w.history = append(w.history, b)
		changed = true
	}
	if eventID != "" {
		w.seen = append(w.seen, eventID)
	}
	if e := ch.Event; e != nil {
		if w.event, err = encodeEvent(e); err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		w.consent = IsConsent(e.Name)
		if e.ID != "" && e.ID != eventID {
			w.seen = append(w.seen, e.ID)
		}
		w.seenScore = float64(wakeScore(e.At))
		changed = true
	}
	if !changed {
		return nil, nil
	}
	if w.blob == nil {
		return nil, fmt.Errorf("change without a customer for a customer that does not exist: %w", ErrNotFound)
	}
	if s.Also != nil {
		after := ch.Customer
		if after == nil {
			after = cur.c
		}
		w.written = &Written{ID: id, Before: before, After: after, Change: ch}
	}
	return w, nil
}

// settleEmails is the last step of taking an address (email.go) after an
// update of customer id: done's new address confirmed and its old one
// released, when done changed it; any other address reserved on the way
// released, unless the customer holds it (another update of it took it
// meanwhile).
func (s *Store) settleEmails(ctx context.Context, id string, reserved []string, done *write) {
	if done != nil && done.emailChanged() {
		if done.newEmail != "" {
			s.settleEmail(ctx, done.newEmail, id, "confirm")
		}
		if done.oldEmail != "" {
			s.settleEmail(ctx, done.oldEmail, id, "release")
		}
	}
	for _, addr := range reserved {
		if done != nil && addr == done.newEmail {
			continue
		}
		if c, err := s.Customer(context.WithoutCancel(ctx), id); err == nil && normEmail(c.Email) == addr {
			continue
		}
		s.settleEmail(ctx, addr, id, "release")
	}
}

// queue adds the writes' commands to a MULTI/EXEC pipeline. Writes of many
// customers (a batch) share commands where Redis takes many keys or members in
// one: one MSET for the customer keys, one ZADD and one ZREM per index, and the
// report counters Store.Also increments summed into one HINCRBY per field.
func (s *Store) queue(ctx context.Context, p redis.Pipeliner, ws ...*write) {
	if len(ws) == 0 {
		return
	}
	blobs := make([]any, 0, 2*len(ws))
	for _, w := range ws {
		blobs = append(blobs, s.customerKey(w.id), w.blob)
	}
	p.MSet(ctx, blobs...)
	var wake, due indexWrites
	sums := &summing{Pipeliner: p}
	for _, w := range ws {
		if len(w.history) > 0 {
			args := make([]any, len(w.history))
			for i, h := range w.history {
				args[i] = h
			}
			p.RPush(ctx, s.stagesKey(w.id), args...)
		}
		if w.event != nil {
			p.LPush(ctx, s.eventsKey(w.id), w.event)
			p.LTrim(ctx, s.eventsKey(w.id), 0, RecentEvents-1)
			if w.consent { // never trimmed (consent.go)
				p.RPush(ctx, s.consentKey(w.id), w.event)
			}
		}
		if len(w.seen) > 0 {
			zs := make([]redis.Z, len(w.seen))
			for i, id := range w.seen {
				zs[i] = redis.Z{Score: w.seenScore, Member: id}
			}
			p.ZAdd(ctx, s.seenKey(w.id), zs...)
		}
		wake.put(w.id, w.wakeChanged, w.wake)
		due.put(w.id, w.dueChanged, w.due)
		if w.written != nil {
			s.Also(ctx, sums, *w.written)
		}
	}
	shard := ShardOf(ws[0].id) // a transaction's customers are of one shard
	wake.queue(ctx, p, s.wakeKey(shard))
	due.queue(ctx, p, s.dueKey(shard))
	sums.flush(ctx)
}

// indexWrites are the entries a batch writes to one index.
type indexWrites struct {
	adds []redis.Z
	rems []any
}

// queue adds the index writes to p.
func (ix *indexWrites) queue(ctx context.Context, p redis.Pipeliner, key string) {
	if len(ix.adds) > 0 {
		p.ZAdd(ctx, key, ix.adds...)
	}
	if len(ix.rems) > 0 {
		p.ZRem(ctx, key, ix.rems...)
	}
}

func (ix *indexWrites) put(id string, changed bool, score int64) {
	switch {
	case !changed:
	case score == 0:
		ix.rems = append(ix.rems, id)
	default:
		ix.adds = append(ix.adds, redis.Z{Score: float64(score), Member: id})
	}
}

// summing is a pipeline that holds back HINCRBY and sends one per key and
// field, with the sum, when flushed: the report counters of a batch of 50
// sends of one step are one command, not 50. Every other command goes through
// as it is. The replies of the held back commands are never read (Store.Also
// only queues).
type summing struct {
	redis.Pipeliner
	order []hfield
	sums  map[hfield]int64
}

type hfield struct{ key, field string }

func (s *summing) HIncrBy(ctx context.Context, key, field string, incr int64) *redis.IntCmd {
	f := hfield{key, field}
	if s.sums == nil {
		s.sums = make(map[hfield]int64)
	}
	if _, ok := s.sums[f]; !ok {
		s.order = append(s.order, f)
	}
	s.sums[f] += incr
	return redis.NewIntCmd(ctx)
}

func (s *summing) flush(ctx context.Context) {
	for _, f := range s.order {
		if n := s.sums[f]; n != 0 {
			s.Pipeliner.HIncrBy(ctx, f.key, f.field, n)
		}
	}
}

// anys converts strings to the []any of variadic go-redis calls.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
