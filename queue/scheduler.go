package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/store"
)

// SchedulerConfig configures a Scheduler. Zero fields take the defaults noted.
type SchedulerConfig struct {
	// Interval between ticks; default 1 second.
	Interval time.Duration
	// Batch is how many due customers one send:due task carries; default 50.
	Batch int
	// MaxPerTick is how many due customers one tick hands out at most;
	// default 2,000. The rest go on the next ticks, so a large backlog does
	// not wait in the queue longer than its leases last.
	MaxPerTick int
	// Lease is how long a claimed customer is held for the worker that gets
	// its task (see store.Lease); the worker renews it while it works, so
	// when a worker dies, the customer is free again after at most Lease.
	// Default DefaultLease.
	Lease time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log; default slog.Default().
	Log *slog.Logger
}

// DefaultLease is how long a scheduler's lease on due customers lasts unless
// the worker that has them renews it.
const DefaultLease = 15 * time.Second

// Scheduler hands due customers to the workers and runs the time rules. Any
// number may run at once: claims are atomic, and the time-rule sweep takes a lock
// per tick, so no work is done twice.
type Scheduler struct {
	cfg     SchedulerConfig
	rdb     redis.UniversalClient
	lockKey string
	store   *store.Store
	applier *ingest.Applier
	client  *Client
}

// NewScheduler returns a scheduler; rdb and prefix must be the store's.
func NewScheduler(cfg SchedulerConfig, rdb redis.UniversalClient, prefix string, applier *ingest.Applier, client *Client) *Scheduler {
	cfg.Interval = cmpOr(cfg.Interval, time.Second)
	cfg.Batch = cmpOr(cfg.Batch, 50)
	cfg.MaxPerTick = cmpOr(cfg.MaxPerTick, 2000)
	cfg.Lease = cmpOr(cfg.Lease, DefaultLease)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if prefix == "" {
		prefix = store.DefaultPrefix
	}
	return &Scheduler{cfg: cfg, rdb: rdb, lockKey: prefix + "lock:sweep", store: applier.Store, applier: applier, client: client}
}

// Run ticks until ctx ends. A failing tick is logged and retried next tick: a
// Redis outage stalls the schedule, it never drops it.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Error("scheduler tick failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
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
	// Customers of a worker that died are due again once their lease ran out.
	if n, err := s.store.RequeueLost(ctx, s.cfg.Lease); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		s.cfg.Log.Warn("customers of lost leases are due again: a worker stopped before it finished them", "customers", n)
	}
	for {
		l, err := s.store.ClaimDue(ctx, now, s.cfg.Lease, s.cfg.Batch)
		if err != nil {
			return swept, enqueued, errors.Join(append(errs, err)...)
		}
		if l == nil {
			break
		}
		if err := s.client.EnqueueSends(ctx, l); err != nil {
			// Free the customers for the next tick rather than wait out
			// the lease.
			if rerr := s.store.ReleaseLease(ctx, l); rerr != nil {
				errs = append(errs, rerr)
			}
			return swept, enqueued, errors.Join(append(errs, err)...)
		}
		enqueued += len(l.IDs)
		if len(l.IDs) < s.cfg.Batch || enqueued >= s.cfg.MaxPerTick {
			break
		}
	}
	return swept, enqueued, errors.Join(errs...)
}
