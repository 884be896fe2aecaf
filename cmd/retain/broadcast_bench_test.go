package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// BenchmarkBroadcastAudience measures a broadcast's audience evaluation, as
// the scheduler runs it when the broadcast is due: a scan over
// RETAIN_BENCH_CUSTOMERS stored customers (default 20,000; seeded as for
// BenchmarkImpactRedis), each decided (audience, subscription, topic,
// suppression, holdout), and the chosen enrolled and put on the due index.
// The audience is RETAIN_BENCH_AUDIENCE (default active customers on the
// business plan); 'true' enrols everyone, the most writes. Each iteration
// evaluates a broadcast of its own, so each enrols anew. It reports the
// median time per evaluation, this process's CPU per customer and the peak
// Go heap, which must not grow with the number of customers.
//
//	RETAIN_BENCH_CUSTOMERS=1000000 go test -run '^$' -bench BroadcastAudience -benchtime 3x ./cmd/retain
func BenchmarkBroadcastAudience(b *testing.B) {
	n := 20_000
	if s := os.Getenv("RETAIN_BENCH_CUSTOMERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	audience := cmp.Or(os.Getenv("RETAIN_BENCH_AUDIENCE"), `customer.stage == "active" && customer.plan == "business"`)
	root, _ := impactBenchProject(b)
	dir := filepath.Join(root, "campaigns", "launch")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	files := map[string]string{
		"campaign.md":  fmt.Sprintf("---\nname: Launch\nkind: broadcast\naudience: '%s'\nsend_at: 2026-12-10 09:00 local\ntopic: news\nholdout: 10%%\n---\n", audience),
		"01-launch.md": "---\nsubject: Planning templates\n---\nPlan your quarter in an afternoon.\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	set, err := campaign.Load(filepath.Join(root, "campaigns"))
	if err != nil {
		b.Fatal(err)
	}
	rdb, prefix := redistest.New(b)
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st := store.New(rdb, prefix)
	seedStart := time.Now()
	seedImpactCustomers(b, ctx, st, root, n, now)
	b.Logf("seeded %d customers in %s", n, time.Since(seedStart).Round(time.Second))

	eng := lifecycle.New(set)
	camp := set.Campaign("launch")
	aud := &queue.Audience{Store: st, Engine: eng}
	peakHeap := watchHeap()
	runtime.GC()
	var runs []time.Duration
	var enrolled int64
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		camp.ID = fmt.Sprintf("launch-%d", i) // a broadcast of its own: enrols anew
		t0 := time.Now()
		counts, err := aud.Evaluate(ctx, camp, now, nil)
		if err != nil {
			b.Fatal(err)
		}
		runs = append(runs, time.Since(t0))
		enrolled = counts.Enrolled()
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	peak := peakHeap()
	slices.Sort(runs)
	median := runs[len(runs)/2].Seconds()
	b.Logf("%d customers, audience %s: %d enrolled per run; runs %v (median %.1fs); this process's CPU %.1f µs per customer (Redis not counted)",
		n, audience, enrolled, runs, median, cpu.Seconds()*1e6/float64(n*len(runs)))
	b.ReportMetric(median, "median-s/run")
	b.ReportMetric(float64(n)/median, "customers/s")
	b.ReportMetric(float64(enrolled), "enrolled/run")
	b.ReportMetric(cpu.Seconds()*1e6/float64(n*len(runs)), "cpu-µs/customer")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
