package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Results of a send, as counted in the stats: the lifecycle.Outcome of the
// send attempt.
const (
	ResultSent    = string(lifecycle.OutcomeSent)    // the relay accepted the message
	ResultUnknown = string(lifecycle.OutcomeUnknown) // connection lost after DATA: maybe delivered
	ResultBounced = string(lifecycle.OutcomeBounced) // the relay refused the address (5.1.x); suppressed
	ResultRefused = string(lifecycle.OutcomeRefused) // the relay refused the message for good (5xx)
	ResultRetry   = string(lifecycle.OutcomeRetry)   // a temporary failure (4xx, connection): retried later
)

// SMTP error classes, as counted in the stats: mailer.Class, spelt for a metric label.
const (
	SMTPTemporary  = "temporary"
	SMTPPermanent  = "permanent"
	SMTPBadAddress = "bad_address"
	SMTPUnknown    = "unknown"
)

// Send is one send outcome to count: what became of one step for one customer at
// the relay, and the class of the SMTP error when there was one.
type Send struct {
	Campaign string
	Step     string // slug: "welcome"
	Result   string
	// SMTPClass is empty when the relay accepted the message.
	SMTPClass string
}

// SendCount is how many sends of one step ended in one result.
type SendCount struct {
	Campaign, Step, Result string
	Count                  int64
}

// Counts are the counters the workers keep: sends by campaign, step and result,
// and SMTP errors by class, since the Redis keys were created.
type Counts struct {
	Sends []SendCount
	SMTP  map[string]int64
}

// Stats counts send outcomes in Redis, where every worker process adds to the same
// counters and retain web reads them for /metrics: {prefix}stats:sends is a hash of
// "campaign|step|result" → count, {prefix}stats:smtp a hash of SMTP error class →
// count. Counting is best effort: a worker killed between a send and its count
// loses the count, never the send.
type Stats struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewStats returns the stats under prefix (the store's key prefix).
func NewStats(rdb redis.UniversalClient, prefix string) *Stats {
	return &Stats{rdb: rdb, prefix: prefix}
}

func (s *Stats) sendsKey() string { return s.prefix + "stats:sends" }
func (s *Stats) smtpKey() string  { return s.prefix + "stats:smtp" }

// Add counts sends in one round trip.
func (s *Stats) Add(ctx context.Context, sends ...Send) error {
	if len(sends) == 0 {
		return nil
	}
	fields := map[string]int64{}
	classes := map[string]int64{}
	for _, sd := range sends {
		fields[sd.Campaign+"|"+sd.Step+"|"+sd.Result]++
		if sd.SMTPClass != "" {
			classes[sd.SMTPClass]++
		}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for f, n := range fields {
			p.HIncrBy(ctx, s.sendsKey(), f, n)
		}
		for c, n := range classes {
			p.HIncrBy(ctx, s.smtpKey(), c, n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stats: count %d sends: %w", len(sends), err)
	}
	return nil
}

// Read returns the counters.
func (s *Stats) Read(ctx context.Context) (*Counts, error) {
	var sends, smtp *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		sends = p.HGetAll(ctx, s.sendsKey())
		smtp = p.HGetAll(ctx, s.smtpKey())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stats: read: %w", err)
	}
	c := &Counts{SMTP: map[string]int64{}}
	for f, v := range sends.Val() {
		parts := strings.SplitN(f, "|", 3)
		n, err := strconv.ParseInt(v, 10, 64)
		if len(parts) != 3 || err != nil {
			continue // not ours
		}
		c.Sends = append(c.Sends, SendCount{Campaign: parts[0], Step: parts[1], Result: parts[2], Count: n})
	}
	for class, v := range smtp.Val() {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			c.SMTP[class] = n
		}
	}
	return c, nil
}

// countSends counts the outcome of every job of a batch that went to the relay:
// exactly those send recorded in the ledger. It runs once per batch, after the
// sends, so counting adds one round trip per batch, not per email.
func (w *Worker) countSends(ctx context.Context, jobs []*job) {
	var sends []Send
	for _, j := range jobs {
		if !j.recorded || j.out == nil || j.out.found {
			continue
		}
		sd := Send{Campaign: j.key.campaign, Step: j.key.slug, Result: string(j.out.result)}
		switch j.out.result {
		case "":
			continue // no send attempted
		case lifecycle.OutcomeUnknown:
			sd.SMTPClass = SMTPUnknown
		case lifecycle.OutcomeRetry:
			sd.SMTPClass = SMTPTemporary
		case lifecycle.OutcomeBounced:
			sd.SMTPClass = SMTPBadAddress
		case lifecycle.OutcomeRefused:
			sd.SMTPClass = SMTPPermanent
		case lifecycle.OutcomeUnrenderable:
			continue // never reached the relay
		}
		sends = append(sends, sd)
	}
	stats := NewStats(w.ledger.rdb, w.ledger.prefix)
	if err := stats.Add(context.WithoutCancel(ctx), sends...); err != nil {
		w.cfg.Log.Warn("send counters not updated", "error", err)
	}
}
