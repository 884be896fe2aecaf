package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/hibiken/asynq"

	"github.com/retainmail/retain/store"
)

// The failed-event list (dead letters). An event:apply task that cannot be
// applied — its payload does not parse, its customer is unknown, or applying it
// still fails on Asynq's last retry — is kept in the store's failed-event list
// with the error, and the task ends there: Asynq does not archive it, so its
// TaskID does not block the event forever (hibiken/asynq #1055). `retain event
// --failed` lists the entries, retain web shows them on /monitor/failed-events
// and counts them in /metrics, and `retain event --replay` queues them again
// once the cause is fixed. Only when the list cannot be written either (Redis
// failing) does the task go back to Asynq, to be retried or archived.

// deadLetter keeps the event of t (p, or t's payload when it does not parse) in
// the failed-event list with cause. It returns nil once the entry is kept, for
// the task to end, or an error for Asynq to retry when it could not be.
func (w *Worker) deadLetter(ctx context.Context, t *asynq.Task, p *EventPayload, cause error) error {
	f := store.FailedEvent{Error: cause.Error(), At: w.cfg.Now(), Attempts: attempts(ctx)}
	log := w.cfg.Log.With("error", cause.Error(), "attempts", f.Attempts)
	if p != nil {
		f.Customer, f.Event = p.Customer, &p.Event
		log = log.With("customer", p.Customer, "event", p.Event.Name, "event_id", p.Event.ID)
	} else {
		f.Payload = string(t.Payload())
	}
	if err := w.store.AddFailedEvent(context.WithoutCancel(ctx), f); err != nil {
		log.Error("event not applied, and not kept in the failed-event list either: Asynq retries it", "list_error", err)
		return fmt.Errorf("%v; keeping it in the failed-event list: %w", cause, err)
	}
	log.Warn("event not applied: kept in the failed-event list (retain event --failed, then --replay)")
	return nil
}

// attempts is how many times the task running under ctx has been tried,
// counting this time.
func attempts(ctx context.Context) int {
	n, _ := asynq.GetRetryCount(ctx)
	return n + 1
}

// lastAttempt reports whether the task running under ctx has no retry left.
func lastAttempt(ctx context.Context) bool {
	n, ok := asynq.GetRetryCount(ctx)
	max, ok2 := asynq.GetMaxRetry(ctx)
	return ok && ok2 && n >= max
}

// ErrNoFailedEvent means a replay named an ID the failed-event list does not hold.
var ErrNoFailedEvent = errors.New("no such failed event")

// ErrNotReplayable means a failed event's payload did not parse: there is no
// event to queue again.
var ErrNotReplayable = errors.New("its payload does not parse, so there is no event to queue again")

// ReplayFailed queues the failed events with the given IDs again (every one
// when ids is empty) and removes each from the list once it is queued. It
// returns those queued; an ID the list does not hold, or an entry that cannot
// be replayed, is in the error (ErrNoFailedEvent, ErrNotReplayable), after the
// others were queued. An event applied meanwhile is not applied twice: the
// customer's applied-event IDs stop it.
func (c *Client) ReplayFailed(ctx context.Context, st *store.Store, ids []string) ([]store.FailedEvent, error) {
	return takeFailed(ctx, st, ids, func(f store.FailedEvent) error {
		if f.Event == nil {
			return fmt.Errorf("failed event %s: %w", f.ID, ErrNotReplayable)
		}
		b, err := json.Marshal(EventPayload{Customer: f.Customer, Event: *f.Event})
		if err != nil {
			return fmt.Errorf("queue: encode event: %w", err)
		}
		// A TaskID of its own: the first task's may still exist (archived by an
		// older version), which would swallow the enqueue. The same entry
		// replayed twice at once is still queued once.
		id := taskID("event-replay", f.Customer, f.Event.ID, strconv.FormatInt(f.At.UnixNano(), 10))
		_, err = c.c.EnqueueContext(ctx, asynq.NewTask(TypeEvent, b), asynq.Queue(QueueEvents), asynq.TaskID(id), asynq.MaxRetry(25))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("queue: replay event %s for %s: %w", f.Event.Name, f.Customer, err)
		}
		return nil
	})
}

// DropFailed removes the failed events with the given IDs (every one when ids
// is empty) from the list without queueing them, and returns them.
func DropFailed(ctx context.Context, st *store.Store, ids []string) ([]store.FailedEvent, error) {
	return takeFailed(ctx, st, ids, func(store.FailedEvent) error { return nil })
}

// takeFailed runs do on each selected entry and removes from the list those it
// succeeds on.
func takeFailed(ctx context.Context, st *store.Store, ids []string, do func(store.FailedEvent) error) ([]store.FailedEvent, error) {
	all, err := st.FailedEvents(ctx, 0)
	if err != nil {
		return nil, err
	}
	var done []store.FailedEvent
	var errs []error
	for _, id := range ids {
		if !slices.ContainsFunc(all, func(f store.FailedEvent) bool { return f.ID == id }) {
			errs = append(errs, fmt.Errorf("%s: %w", id, ErrNoFailedEvent))
		}
	}
	for _, f := range all {
		if len(ids) > 0 && !slices.Contains(ids, f.ID) {
			continue
		}
		if err := do(f); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := st.RemoveFailedEvent(ctx, f); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, f)
	}
	return done, errors.Join(errs...)
}
