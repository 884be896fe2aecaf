package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// SchedulerConfig configures a Scheduler: the process `retain scheduler`
// runs, and `retain dev` beside its other parts. Zero fields take the defaults
// noted.
type SchedulerConfig struct {
	// Store holds the customers; required. The scheduler takes its sweep lock
	// and queues its tasks on the store's Redis, under its key prefix.
	Store *store.Store
	// Engine runs the time rules; required.
	Engine *lifecycle.Engine
	// Interval between ticks; default DefaultInterval.
	Interval time.Duration
	// Batch is how many due customers one send:due task carries; default
	// DefaultBatch.
	Batch int
	// MaxPerTick is how many due customers one tick (or one top-up between
	// ticks) hands out at most; default 2,000.
	MaxPerTick int
	// Lease is how long a claimed customer is held for the worker that gets
	// its task (see store.Lease); the worker renews it while it works, so
	// when a worker dies, the customer is free again after at most Lease.
	// Default DefaultLease.
	Lease time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives failed ticks and the conditions that failed in a time
	// rule; default slog.Default().
	Log *slog.Logger
}

// Defaults of SchedulerConfig, which retain scheduler's flags show.
const (
	DefaultInterval = time.Second
	DefaultBatch    = 50
	// DefaultLease is how long a scheduler's lease on due customers lasts
	// unless the worker that has them renews it.
	DefaultLease = 15 * time.Second
)

// Validate reports every required field that is missing and every value out
// of range, at once.
func (c *SchedulerConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("scheduler: Store is required"))
	}
	if c.Engine == nil {
		errs = append(errs, errors.New("scheduler: Engine is required"))
	}
	if c.Interval < 0 || c.Batch < 0 || c.MaxPerTick < 0 || c.Lease < 0 {
		errs = append(errs, errors.New("scheduler: Interval, Batch, MaxPerTick and Lease must not be negative"))
	}
	if c.Lease != 0 && c.Lease < cmpOr(c.Interval, DefaultInterval) {
		errs = append(errs, errors.New("scheduler: Lease must not be shorter than Interval"))
	}
	return errors.Join(errs...)
}

// Scheduler hands due customers to the workers and runs the time rules. Any
// number may run at once: claims are atomic, and the time-rule sweep takes a lock
// per tick, so no work is done twice.
//
// It paces what it hands out by what the workers take: the send:due tasks
// waiting in the queue for a worker are kept at about what the workers took in
// half a second, at least minPending, and while more customers are due than
// that, Run tops the queue up ten times per interval. So no worker waits for
// the scheduler, and a batch never waits in the queue long enough for its
// lease to need renewing before its worker starts.
type Scheduler struct {
	cfg     SchedulerConfig
	rdb     redis.UniversalClient
	lockKey string
	store   *store.Store
	applier *ingest.Applier
	client  *Client
	bc      *broadcaster
	stop    context.CancelFunc // set by Run
	done    chan struct{}      // closed when Run's loop returns

	// pacing, used by one goroutine (Run, or the caller of Tick)
	pendingKey string    // Asynq's list of the sends queue's waiting tasks
	lastLen    int64     // its length after the last fill
	lastAt     time.Time // when that was
	rate       float64   // tasks the workers take per second, smoothed
	more       bool      // the last fill stopped with customers still due
}

// minPending is the fewest send:due tasks the scheduler keeps waiting for the
// workers while customers are due.
const minPending = 8

// NewScheduler returns a scheduler configured by cfg (see
// SchedulerConfig.Validate). Run starts it; tests may call Tick instead.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Interval = cmpOr(cfg.Interval, DefaultInterval)
	cfg.Batch = cmpOr(cfg.Batch, DefaultBatch)
	cfg.MaxPerTick = cmpOr(cfg.MaxPerTick, 2000)
	cfg.Lease = cmpOr(cfg.Lease, DefaultLease)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	rdb, prefix := cfg.Store.Redis(), cfg.Store.Prefix()
	applier := &ingest.Applier{Store: cfg.Store, Engine: cfg.Engine, Now: cfg.Now,
		ConditionErrors: NewConditionErrors(rdb, prefix, cfg.Log, cfg.Now).Report}
	return &Scheduler{cfg: cfg, rdb: rdb, lockKey: prefix + "lock:sweep", store: cfg.Store, applier: applier, client: NewClient(rdb),
		bc:         newBroadcaster(cfg.Store, cfg.Engine, cfg.Log),
		pendingKey: asynqPendingKey(QueueSends)}, nil
}

// asynqPendingKey is the list where Asynq keeps a queue's tasks that wait for
// a worker (TestAsynqPendingKey checks it against Asynq's own count).
func asynqPendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// Run starts ticking in the background and returns; the scheduler runs until
// Close.
func (s *Scheduler) Run(ctx context.Context) error {
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.loop(ctx)
	}()
	return nil
}

// Close stops the ticks and waits for the one in progress, and for the
// broadcast evaluations it started (stopped: another scheduler, or this one
// after a restart, starts them over).
func (s *Scheduler) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	s.bc.wait()
	return nil
}

// WaitBroadcasts waits for the broadcast evaluations that ticks started.
func (s *Scheduler) WaitBroadcasts() { s.bc.wait() }

// loop ticks until ctx ends, topping the queue up between ticks while more
// customers are due than it holds. A failing tick is logged and retried next
// tick: a Redis outage stalls the schedule, it never drops it.
func (s *Scheduler) loop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	topUp := time.NewTicker(max(s.cfg.Interval/10, time.Millisecond))
	defer topUp.Stop()
	for {
		if _, _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Error("scheduler tick failed", "error", err)
		}
		if !s.untilTick(ctx, t.C, topUp.C) {
			return
		}
	}
}

// untilTick waits for the next tick, topping the queue up meanwhile while the
// last fill left customers due; false when ctx ended.
func (s *Scheduler) untilTick(ctx context.Context, tick, topUp <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return true
		case <-topUp:
			if !s.more {
				continue
			}
			if _, err := s.fill(ctx, s.cfg.Now()); err != nil && ctx.Err() == nil {
				s.cfg.Log.Error("scheduler top-up failed", "error", err)
			}
		}
	}
}

// Tick runs the time rules that are due and enqueues every customer with an
// email due, in batches. It returns how many customers it swept and enqueued.
func (s *Scheduler) Tick(ctx context.Context) (swept, enqueued int, err error) {
	now := s.cfg.Now()
	// The tick's time, for /healthz and /metrics (store.Backlog): recorded once
	// the due customers are handed out, so a scheduler that cannot hand them
	// out looks stopped.
	defer func() {
		if err == nil {
			err = s.store.RecordTick(ctx, now)
		}
	}()
	ok, err := s.rdb.SetNX(ctx, s.lockKey, "1", s.cfg.Interval).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("scheduler lock: %w", err)
	}
	if ok {
		swept, err = s.applier.Sweep(ctx, now, 0)
		if err != nil {
			s.cfg.Log.Error("time-rule sweep", "error", err)
		}
	}
	var errs []error
	// Broadcasts that are due have their audience evaluated once, in the
	// background; the customers it enrols are due like any other.
	if err := s.bc.check(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("broadcasts: %w", err))
	}
	// Customers of a worker that died are due again once their lease ran out.
	if n, err := s.store.RequeueLost(ctx, s.cfg.Lease); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		s.cfg.Log.Warn("customers of lost leases are due again: a worker stopped before it finished them", "customers", n)
	}
	enqueued, err = s.fill(ctx, now)
	return swept, enqueued, errors.Join(append(errs, err)...)
}

// fill claims due customers and enqueues them in batches until the sends
// queue holds what the workers take in half a second (see Scheduler), none is
// due, or it handed out MaxPerTick. It returns how many it enqueued.
func (s *Scheduler) fill(ctx context.Context, now time.Time) (enqueued int, err error) {
	s.more = false
	n, err := s.rdb.LLen(ctx, s.pendingKey).Result()
	if err != nil {
		return 0, fmt.Errorf("scheduler: read the sends queue: %w", err)
	}
	s.pace(n)
	want := max(minPending, int64(math.Ceil(s.rate/2)))
	defer func() { s.lastLen, s.lastAt = n, time.Now() }()
	for n < want {
		if enqueued >= s.cfg.MaxPerTick {
			s.more = true
			return enqueued, nil
		}
		l, err := s.store.ClaimDue(ctx, now, s.cfg.Lease, s.cfg.Batch)
		if err != nil || l == nil {
			return enqueued, err
		}
		if err := s.client.EnqueueSends(ctx, l); err != nil {
			// Free the customers for the next tick rather than wait out
			// the lease.
			return enqueued, errors.Join(err, s.store.ReleaseLease(ctx, l))
		}
		enqueued += len(l.IDs)
		n++
		// A lease holds the customers of one shard: a short one says only
		// that its shard has no more due; ClaimDue's nil says none has.
	}
	s.more = true
	return enqueued, nil
}

// pace updates the rate at which the workers take tasks from the length n of
// the queue now, and what it was after the last fill.
func (s *Scheduler) pace(n int64) {
	dt := time.Since(s.lastAt).Seconds()
	if s.lastAt.IsZero() || dt < 0.01 {
		return
	}
	taken := float64(max(s.lastLen-n, 0)) / dt
	if dt > 5 { // idle for a while: start over
		s.rate = taken
		return
	}
	s.rate = 0.5*s.rate + 0.5*taken
}
