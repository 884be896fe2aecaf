package queue

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// LifecycleConditions is the campaign label of a condition error in a
// transition of lifecycle.yaml, which belongs to no campaign.
const LifecycleConditions = "lifecycle.yaml"

// conditionLogEvery is how often one campaign's failing conditions are logged
// again by one process; the errors in between are counted, not logged.
const conditionLogEvery = time.Hour

// maxConditionLogs bounds the campaigns one process remembers having logged.
const maxConditionLogs = 1000

// ConditionErrors logs and counts the conditions that failed while an event or
// a time rule ran (lifecycle.KindConditionError changes: a trigger, goal or
// transition where, an audience at enrollment). Each counted as false and the
// rest of the event applied; the operator learns of it here: one log line per
// campaign and process at most every hour, with the reason and the number of
// errors since the last line, and a counter per campaign in Redis
// ({prefix}stats:conditions, a hash of campaign → count) that retain web
// exports as retain_condition_errors_total. It is safe for concurrent use.
type ConditionErrors struct {
	rdb    redis.UniversalClient
	key    string
	log    *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	logged map[string]*conditionLog // campaign → when last logged
}

type conditionLog struct {
	at    time.Time
	quiet int // errors since, not logged
}

// NewConditionErrors returns the reporter of one process, counting under prefix
// (the store's) and logging to log with the clock now (default time.Now).
func NewConditionErrors(rdb redis.UniversalClient, prefix string, log *slog.Logger, now func() time.Time) *ConditionErrors {
	if now == nil {
		now = time.Now
	}
	return &ConditionErrors{rdb: rdb, key: conditionsKey(prefix), log: log, now: now, logged: map[string]*conditionLog{}}
}

func conditionsKey(prefix string) string { return prefix + "stats:conditions" }

// Report logs and counts the condition errors among chs, the changes the engine
// made to customer. Counting is best effort, like the send counters: a failure
// is logged.
func (c *ConditionErrors) Report(ctx context.Context, customer string, chs []lifecycle.Change) {
	counts := map[string]int64{}
	for _, ch := range chs {
		if ch.Kind != lifecycle.KindConditionError {
			continue
		}
		label := cmp.Or(ch.Campaign, LifecycleConditions)
		counts[label]++
		if quiet, ok := c.due(label); ok {
			c.log.Warn("condition failed and counted as false", "campaign", label, "customer", customer,
				"reason", ch.Reason, "not_logged_since_last", quiet)
		}
	}
	if len(counts) == 0 {
		return
	}
	_, err := c.rdb.Pipelined(context.WithoutCancel(ctx), func(p redis.Pipeliner) error {
		for label, n := range counts {
			p.HIncrBy(ctx, c.key, label, n)
		}
		return nil
	})
	if err != nil {
		c.log.Warn("condition error counters not updated", "error", err)
	}
}

// due reports whether an error of campaign label is to be logged now, and how
// many were not logged since the last line.
func (c *ConditionErrors) due(label string) (quiet int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	l := c.logged[label]
	if l != nil && now.Sub(l.at) < conditionLogEvery {
		l.quiet++
		return 0, false
	}
	if l == nil && len(c.logged) >= maxConditionLogs {
		for k, old := range c.logged { // forget the lines that are old enough to repeat anyway
			if now.Sub(old.at) >= conditionLogEvery {
				delete(c.logged, k)
			}
		}
		for k := range c.logged { // still full: forget any one
			if len(c.logged) < maxConditionLogs {
				break
			}
			delete(c.logged, k)
		}
	}
	if l != nil {
		quiet = l.quiet
	}
	c.logged[label] = &conditionLog{at: now}
	return quiet, true
}

// ReadConditionErrors returns the condition errors counted under prefix, by
// campaign (LifecycleConditions for lifecycle.yaml).
func ReadConditionErrors(ctx context.Context, rdb redis.UniversalClient, prefix string) (map[string]int64, error) {
	vals, err := rdb.HGetAll(ctx, conditionsKey(prefix)).Result()
	if err != nil {
		return nil, fmt.Errorf("stats: read condition errors: %w", err)
	}
	out := make(map[string]int64, len(vals))
	for label, v := range vals {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[label] = n
		}
	}
	return out, nil
}

// workerConditions holds each worker's ConditionErrors: the log is per process
// (one worker per process), and Worker has no field for it.
var workerConditions sync.Map // *Worker → *ConditionErrors

func (w *Worker) conditionErrors() *ConditionErrors {
	if c, ok := workerConditions.Load(w); ok {
		return c.(*ConditionErrors)
	}
	c, _ := workerConditions.LoadOrStore(w, NewConditionErrors(w.ledger.rdb, w.ledger.prefix, w.cfg.Log, w.cfg.Now))
	return c.(*ConditionErrors)
}
