package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

func (s *Store) tickKey() string { return s.prefix + "scheduler:tick" }

// RecordTick records at as the moment of the latest scheduler tick: one SET per
// tick, which Health reads to tell whether any scheduler still runs.
func (s *Store) RecordTick(ctx context.Context, at time.Time) error {
	if err := s.rdb.Set(ctx, s.tickKey(), at.UnixMilli(), 0).Err(); err != nil {
		return fmt.Errorf("store: record scheduler tick: %w", err)
	}
	return nil
}

// Backlog is what the due index and the schedulers' tick record say about
// sending: whether emails wait that nobody hands out.
type Backlog struct {
	// OldestDue is the earliest time in the due index (zero when it is empty):
	// the email that has waited longest, when it is in the past.
	OldestDue time.Time
	// LastTick is when a scheduler last finished a tick (zero when none ever
	// did).
	LastTick time.Time
}

// Overdue is how long the oldest due email has waited at now; zero when none is
// due yet.
func (b Backlog) Overdue(now time.Time) time.Duration {
	if b.OldestDue.IsZero() || !b.OldestDue.Before(now) {
		return 0
	}
	return now.Sub(b.OldestDue)
}

// Backlog reads the lowest score of the due index and the last scheduler tick in
// one round trip. The lowest score is taken as the oldest due time whatever else
// the index holds, so a customer a worker holds longer than its lease shows up
// as overdue too.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	oldest, err := s.oldestDue(ctx, s.rdb)
	if err != nil {
		return Backlog{}, fmt.Errorf("store: read the due backlog: %w", err)
	}
	b := Backlog{OldestDue: oldest}
	if v, err := s.rdb.Get(ctx, s.tickKey()).Result(); err == nil {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Backlog{}, fmt.Errorf("store: %s holds %q, not a time in unix ms", s.tickKey(), v)
		}
		b.LastTick = time.UnixMilli(ms)
	}
	return b, nil
}
