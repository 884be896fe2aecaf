package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// Task types. They are stable once deployed: renaming one strands queued work.
const (
	TypeEvent = "event:apply"
	TypeSend  = "send:due"
)

// Queues, by priority.
const (
	QueueEvents = "events"
	QueueSends  = "sends"
)

// Queues is the priority table for asynq.Config: events first, so a customer's
// newest facts are in before their next email goes out.
var Queues = map[string]int{QueueEvents: 6, QueueSends: 3}

// EventPayload is the payload of an event:apply task.
type EventPayload struct {
	Customer string          `json:"customer"`
	Event    lifecycle.Event `json:"event"`
}

// SendPayload is the payload of a send:due task: customers the scheduler
// leased, and the lease's token (see store.Lease).
type SendPayload struct {
	Customers []string `json:"customers"`
	Lease     string   `json:"lease,omitempty"`
	// LeaseMS is the lease's time to live, which the worker renews it for.
	LeaseMS int64 `json:"lease_ms,omitempty"`
}

// Client enqueues retain's tasks.
type Client struct {
	c *asynq.Client
}

// NewClient returns a client enqueuing through rdb.
func NewClient(rdb redis.UniversalClient) *Client {
	return &Client{c: asynq.NewClientFromRedisClient(rdb)}
}

// Close releases the client (not the Redis connection it was given).
func (c *Client) Close() error { return nil }

// EnqueueEvent queues ev for the customer. The event must carry its ID: the task ID
// is derived from it, so enqueuing the same event twice while the first is queued
// adds nothing, and the customer's seen set stops it after that.
func (c *Client) EnqueueEvent(ctx context.Context, customerID string, ev lifecycle.Event) error {
	if ev.ID == "" {
		return errors.New("queue: event without an ID")
	}
	b, err := json.Marshal(EventPayload{Customer: customerID, Event: ev})
	if err != nil {
		return fmt.Errorf("queue: encode event: %w", err)
	}
	_, err = c.c.EnqueueContext(ctx, asynq.NewTask(TypeEvent, b),
		asynq.Queue(QueueEvents), asynq.TaskID(taskID("event", customerID, ev.ID)), asynq.MaxRetry(25))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("queue: enqueue event %s for %s: %w", ev.Name, customerID, err)
	}
	return nil
}

// EnqueueSends queues one send:due task for the customers of a lease.
func (c *Client) EnqueueSends(ctx context.Context, l *store.Lease) error {
	b, err := json.Marshal(SendPayload{Customers: l.IDs, Lease: l.Token, LeaseMS: l.TTL.Milliseconds()})
	if err != nil {
		return fmt.Errorf("queue: encode send batch: %w", err)
	}
	// The ID names the lease: a retried enqueue of the same batch adds
	// nothing, a later lease of the same customers is a new task.
	id := taskID("send", l.Token)
	_, err = c.c.EnqueueContext(ctx, asynq.NewTask(TypeSend, b), asynq.Queue(QueueSends), asynq.TaskID(id), asynq.MaxRetry(3))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("queue: enqueue %d due customers: %w", len(l.IDs), err)
	}
	return nil
}

// taskID is a short task ID from its parts.
func taskID(kind string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return kind + ":" + hex.EncodeToString(h[:12])
}
