package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// benchSweep stores customers customers, 1% of them due, and measures one
// Sweep of the due ones; fn moves each wake 21 days ahead. The wake scores are
// put back outside the timer after every sweep.
func benchSweep(b *testing.B, customers, batch int) {
	t := setup(b)
	t.store.SweepBatch = batch
	now := t0
	var due []redis.Z
	p := t.rdb.Pipeline()
	for i := range customers {
		id := fmt.Sprintf("cus_%016d", i)
		wake := now.Add(time.Duration(1+i%1000) * time.Hour) // not due
		if i%100 == 0 {
			wake = now.Add(-time.Duration(i) * time.Second)
			due = append(due, redis.Z{Score: float64(wake.UnixMilli()), Member: id})
		}
		blob, err := encodeCustomer(realisticCustomer(id, 1))
		if err != nil {
			b.Fatal(err)
		}
		p.Set(t.ctx, t.store.customerKey(id), blob, 0)
		p.ZAdd(t.ctx, t.store.wakeKey(ShardOf(id)), redis.Z{Score: float64(wake.UnixMilli()), Member: id})
		if p.Len() >= 2000 {
			if _, err := p.Exec(t.ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(t.ctx); err != nil {
		b.Fatal(err)
	}
	next := now.Add(21 * 24 * time.Hour)
	fn := func(c *lifecycle.Customer) (*Change, error) {
		c.LastEvent = now // a real change, so the customer is rewritten too
		return &Change{Customer: c, Wake: next}, nil
	}
	b.ReportAllocs()
	for b.Loop() {
		n, err := t.store.Sweep(t.ctx, now, 0, fn)
		if err != nil || n != len(due) {
			b.Fatalf("Sweep = %d, %v; want %d", n, err, len(due))
		}
		b.StopTimer()
		for _, z := range due {
			if err := t.rdb.ZAdd(t.ctx, t.store.wakeKey(ShardOf(z.Member.(string))), z).Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(due)), "ns/due")
}

func BenchmarkSweep100kCustomers1PercentDue(b *testing.B) { benchSweep(b, 100_000, 100) }

// BenchmarkSweep10kCustomers1PercentDue is the same with a tenth of the
// customers: ns/due should match the 100k figure, since a sweep touches only the
// due part of the wake index.
func BenchmarkSweep10kCustomers1PercentDue(b *testing.B) { benchSweep(b, 10_000, 100) }

// BenchmarkSweep100kCustomers1PercentDueUnbatched shows what batching buys: one
// Update per due customer.
func BenchmarkSweep100kCustomers1PercentDueUnbatched(b *testing.B) { benchSweep(b, 100_000, 1) }
