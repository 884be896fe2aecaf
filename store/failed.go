package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// MaxFailedEvents bounds the failed-event list: past it, the oldest entries are
// dropped. At a few hundred bytes an entry, a full list takes a few MB.
const MaxFailedEvents = 10000

// failedKey is not under "events:", where a customer named "failed" keeps
// their recent events.
func (s *Store) failedKey() string { return s.prefix + "failed-events" }

// FailedEvent is an event the worker could not apply, kept (the dead-letter
// list) so that an operator can see why, fix the cause and queue it again.
type FailedEvent struct {
	// ID names the entry for a replay: derived from the customer and the event
	// ID (or the payload, when it does not parse), so the same event failing
	// again has the same ID.
	ID       string           `json:"id"`
	Customer string           `json:"customer,omitempty"`
	Event    *lifecycle.Event `json:"event,omitempty"`
	// Payload is the task's payload as it came, when it did not parse into a
	// customer and an event; such an entry cannot be replayed.
	Payload string `json:"payload,omitempty"`
	// Error says why the event could not be applied.
	Error string `json:"error"`
	// At is when the worker gave up on it.
	At time.Time `json:"at"`
	// Attempts is how many times the worker tried to apply it.
	Attempts int `json:"attempts"`

	raw string // the entry as stored, for RemoveFailedEvent
}

// FailedEventID is the ID of the failed-event entry of an event, or of a
// payload that does not parse (customer and eventID empty).
func FailedEventID(customer, eventID, payload string) string {
	src := customer + "\x00" + eventID
	if customer == "" && eventID == "" {
		src = "payload\x00" + payload
	}
	h := sha256.Sum256([]byte(src))
	return hex.EncodeToString(h[:6])
}

// AddFailedEvent puts f at the head of the failed-event list and drops the
// entries past MaxFailedEvents. f.ID is derived when empty.
func (s *Store) AddFailedEvent(ctx context.Context, f FailedEvent) error {
	if f.ID == "" {
		var evID string
		if f.Event != nil {
			evID = f.Event.ID
		}
		f.ID = FailedEventID(f.Customer, evID, f.Payload)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("store: encode failed event: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, s.failedKey(), b)
		p.LTrim(ctx, s.failedKey(), 0, MaxFailedEvents-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: keep failed event %s: %w", f.ID, err)
	}
	return nil
}

// FailedEvents returns the newest n entries of the failed-event list (all when
// n <= 0), newest first. An entry that does not decode comes back with its Error
// saying so and its raw text as Payload.
func (s *Store) FailedEvents(ctx context.Context, n int) ([]FailedEvent, error) {
	vals, err := s.rdb.LRange(ctx, s.failedKey(), 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: read failed events: %w", err)
	}
	out := make([]FailedEvent, 0, len(vals))
	for _, v := range vals {
		var f FailedEvent
		if err := json.Unmarshal([]byte(v), &f); err != nil {
			f = FailedEvent{ID: FailedEventID("", "", v), Payload: v, Error: "unreadable entry: " + err.Error()}
		}
		f.raw = v
		out = append(out, f)
	}
	return out, nil
}

// FailedEventCount returns the length of the failed-event list.
func (s *Store) FailedEventCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.LLen(ctx, s.failedKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: count failed events: %w", err)
	}
	return n, nil
}

// RemoveFailedEvent removes f, as FailedEvents returned it, from the list. An
// entry already removed (by a replay running at the same time) is no error.
func (s *Store) RemoveFailedEvent(ctx context.Context, f FailedEvent) error {
	if f.raw == "" {
		return fmt.Errorf("store: remove failed event %s: not read with FailedEvents", f.ID)
	}
	if err := s.rdb.LRem(ctx, s.failedKey(), 1, f.raw).Err(); err != nil {
		return fmt.Errorf("store: remove failed event %s: %w", f.ID, err)
	}
	return nil
}
