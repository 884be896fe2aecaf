package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/impact"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// BenchmarkImpactRedis measures `retain impact` on stored customers: the
// example campaigns against an edit of onboarding (the welcome renamed without
// id:, invite-team moved to the end), over RETAIN_BENCH_CUSTOMERS customers
// (default 20,000) in the test Redis, each written through store.Update in the
// state the example campaigns left it in: signed up over the last 120 days, some
// with projects and orders, so customers sit at every place of onboarding,
// education, win-back and the order campaigns. Each iteration is one whole
// run of the command; it reports customers per second and the peak Go heap,
// which must not grow with the number of customers. RETAIN_BENCH_CPUPROFILE=FILE
// profiles the runs only, not the seeding.
//
//	RETAIN_BENCH_CUSTOMERS=1000000 go test -run '^$' -bench ImpactRedis -benchtime 3x ./cmd/retain
func BenchmarkImpactRedis(b *testing.B) {
	n := 20_000
	if s := os.Getenv("RETAIN_BENCH_CUSTOMERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	old, edited := impactBenchProject(b)
	rdb, prefix := redistest.New(b)
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	seedStart := time.Now()
	seedImpactCustomers(b, ctx, store.New(rdb, prefix), old, n, now)
	b.Logf("seeded %d customers in %s", n, time.Since(seedStart).Round(time.Second))

	e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string {
		switch k {
		case "REDIS_URL":
			return redistest.URL()
		case "RETAIN_REDIS_PREFIX":
			return prefix
		}
		return ""
	}}
	args := []string{"impact", "--against", old, "--now", now.Format(time.RFC3339), edited}
	peakHeap := watchHeap()
	if path := os.Getenv("RETAIN_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	var runs []time.Duration
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if code := run(args, e); code != exitProblems && code != exitOK {
			b.Fatalf("retain impact exited %d", code)
		}
		runs = append(runs, time.Since(t0))
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	peak := peakHeap()
	slices.Sort(runs)
	median := runs[len(runs)/2].Seconds()
	b.Logf("%d customers: runs %v (median %.1fs); this process's CPU %.1f µs per customer (Redis not counted)",
		n, runs, median, cpu.Seconds()*1e6/float64(n*len(runs)))
	b.ReportMetric(median, "median-s/run")
	b.ReportMetric(float64(n)/median, "customers/s")
	b.ReportMetric(cpu.Seconds()*1e6/float64(n*len(runs)), "cpu-µs/customer")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// watchHeap samples the Go heap in use every 20 ms until the function it
// returns is called, which returns the peak.
func watchHeap() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	})
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak.Load()
	}
}

// cpuTime is the user and system CPU this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// impactBenchProject writes the example campaigns and an edited copy.
func impactBenchProject(b *testing.B) (old, edited string) {
	b.Helper()
	root := b.TempDir()
	old, edited = filepath.Join(root, "old"), filepath.Join(root, "new")
	for _, dir := range []string{old, edited} {
		for _, sub := range []string{"campaigns", "templates"} {
			if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join("..", "..", sub))); err != nil {
				b.Fatal(err)
			}
		}
	}
	ob := filepath.Join(edited, "campaigns", "onboarding")
	for from, to := range map[string]string{
		"01-welcome.md": "01-welcome-email.md", "01-welcome.nl.md": "01-welcome-email.nl.md",
		"03-invite-team.md": "07-invite-team.md",
	} {
		if err := os.Rename(filepath.Join(ob, from), filepath.Join(ob, to)); err != nil {
			b.Fatal(err)
		}
	}
	return old, edited
}

// seedImpactCustomers writes n customers as the campaigns in dir would have
// left them at now: a few hundred distinct histories, each replayed on the
// engine, given fresh IDs and written through store.Update in parallel.
func seedImpactCustomers(b *testing.B, ctx context.Context, st *store.Store, dir string, n int, now time.Time) {
	b.Helper()
	set, err := campaign.Load(filepath.Join(dir, "campaigns"))
	if err != nil {
		b.Fatal(err)
	}
	a := impact.NewAnalyzer(set, set, now, 24*time.Hour)
	const kinds = 480
	templates := make([]*lifecycle.Customer, kinds)
	for i := range templates {
		signup := now.Add(-time.Duration(i) * 6 * time.Hour) // the last 120 days
		evs := []lifecycle.Event{{Name: "signed_up", At: signup}}
		if i%3 == 0 {
			evs = append(evs, lifecycle.Event{Name: "project_created", At: signup.Add(26 * time.Hour)})
		}
		if i%5 == 0 {
			evs = append(evs, lifecycle.Event{Name: "order_placed", At: signup.Add(50 * time.Hour)})
		}
		if i%7 == 0 {
			evs = append(evs, lifecycle.Event{Name: "logged_in", At: signup.Add(time.Duration(i%40) * 24 * time.Hour)})
		}
		plan := []string{"free", "team", "business"}[i%3]
		c := &lifecycle.Customer{ID: "t", Email: "t@example.com", Stage: "lead", Locale: []string{"en", "nl"}[i%2],
			Timezone: "Europe/Amsterdam", Attributes: map[string]any{"plan": plan, "company": "Acme Ltd"}}
		if templates[i], err = a.Replay(c, evs); err != nil {
			b.Fatal(err)
		}
	}
	eng := lifecycle.New(set)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c := templates[i%kinds].Clone()
				c.ID = fmt.Sprintf("cus_%07d", i)
				c.Email = c.ID + "@example.com"
				err := st.Update(ctx, c.ID, "", func(*lifecycle.Customer) (*store.Change, error) {
					return &store.Change{Customer: c, Wake: eng.NextWake(c), Due: eng.NextDue(c)}, nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}
