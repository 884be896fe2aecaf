// Command bench measures retain's sending pipeline end to end on this machine:
// the real `retain worker` and `retain scheduler` processes against Redis and a
// separate SMTP sink process, next to a bare go-mail loop to the same sink. Run it
// from the repository root:
//
//	go run ./bench
//
// It prints a table and writes it to bench/out/results.txt. See bench/README.md
// for what each figure measures.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/render"
)

type config struct {
	bounceDomain string
	redisURL     string
	conns        int
	nBare        int
	nRelay       int
	nCPU         int
	nEnroll      int
	kLatency     int
	latencyRate  int
	cpuProfile   bool
	phases       string
	timeoutPhase time.Duration
	workerArgs   string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.redisURL, "redis", "redis://127.0.0.1:6379/15", "Redis `URL`; the harness owns this DB's asynq:* keys (Asynq's queues are not prefixed) and uses a fresh retain-bench:<run>: prefix")
	flag.IntVar(&cfg.conns, "conns", 20, "SMTP connections of the bare loop, and the worker's --concurrency")
	flag.IntVar(&cfg.nBare, "bare", 10000, "messages per bare-loop run")
	flag.IntVar(&cfg.nRelay, "relay", 20000, "customers in the relay-bound run")
	flag.IntVar(&cfg.nCPU, "cpu", 20000, "customers in the CPU-bound run")
	flag.IntVar(&cfg.nEnroll, "enroll", 100000, "enrollments for the memory and enqueue/claim figures")
	flag.IntVar(&cfg.kLatency, "latency", 2000, "events in the latency run")
	flag.IntVar(&cfg.latencyRate, "latency-rate", 200, "events per second in the latency run")
	flag.BoolVar(&cfg.cpuProfile, "cpuprofile", false, "take a CPU profile of the worker during the CPU-bound run (bench/out/worker-cpu.pprof, top in worker-cpu.txt)")
	flag.StringVar(&cfg.phases, "phases", "bare,relay,cpu,cluster,latency,enroll", "comma-separated phases to run")
	flag.StringVar(&cfg.workerArgs, "worker-args", "", "more flags for retain worker, space-separated (such as \"--wait-replicas 0\")")
	flag.StringVar(&cfg.bounceDomain, "bounce-domain", "", "RETAIN_BOUNCE_DOMAIN of the worker (and the bare loop's Return-Path): each email gets a VERP Return-Path")
	flag.DurationVar(&cfg.timeoutPhase, "timeout", 3*time.Minute, "longest wait for one phase's messages")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// harness is one run's shared state.
type harness struct {
	cfg        config
	root, out  string
	retainBin  string
	rdb        *redis.Client // the single Redis of -redis
	single     *backend      // the same, for the pipeline
	run        string        // random run ID in every prefix
	set        *campaign.Set
	renderer   *render.Renderer
	slow, fast *sinkProc // 2 ms relay, immediate relay
	rows       []row
	notes      []string

	bareRelay, bareFast float64 // emails/s of the bare loop, for the ratios
	cpuRate             float64 // emails/s of phase cpu, for the cluster's ratio
}

// row is one line of the results table.
type row struct{ figure, value, target string }

func (h *harness) add(figure, value, target string) {
	h.rows = append(h.rows, row{figure, value, target})
	fmt.Printf("  %-58s %s\n", figure, value)
}

func (h *harness) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	h.notes = append(h.notes, s)
	fmt.Println("  note:", s)
}

func run(ctx context.Context, cfg config) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	h := &harness{cfg: cfg, root: root, out: filepath.Join(root, "bench", "out")}
	if err := os.MkdirAll(filepath.Join(h.out, "logs"), 0o755); err != nil {
		return err
	}
	var r [4]byte
	rand.Read(r[:])
	h.run = hex.EncodeToString(r[:])

	campaignsDir := filepath.Join(root, "bench", "testdata", "campaigns")
	if h.set, err = campaign.Load(campaignsDir); err != nil {
		return fmt.Errorf("load bench campaigns: %w", err)
	}
	if h.renderer, err = render.Compile(h.set, filepath.Join(root, "bench", "testdata", "templates")); err != nil {
		return fmt.Errorf("compile bench campaigns: %w", err)
	}

	fmt.Println("building retain and the sink")
	var sinkBin string
	if h.retainBin, sinkBin, err = build(root, h.out); err != nil {
		return err
	}

	opt, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return fmt.Errorf("-redis %s: %w", cfg.redisURL, err)
	}
	opt.PoolSize = 2 * seedWorkers
	h.rdb = redis.NewClient(opt)
	defer h.rdb.Close()
	if err := h.checkDB(ctx); err != nil {
		return err
	}
	h.single = &backend{url: cfg.redisURL, rdb: h.rdb, masters: []*redis.Client{h.rdb}, scope: "server-wide"}
	info, err := h.rdb.InfoMap(ctx, "server").Result()
	if err == nil {
		var pid int
		fmt.Sscan(info["Server"]["process_id"], &pid)
		h.single.pids = []int{pid}
	}
	defer h.cleanAsynq(context.WithoutCancel(ctx))

	if h.slow, err = startSink(sinkBin, filepath.Join(h.out, "logs", "sink-2ms.log"), 2*time.Millisecond); err != nil {
		return err
	}
	defer h.slow.stop()
	if h.fast, err = startSink(sinkBin, filepath.Join(h.out, "logs", "sink-0.log"), 0); err != nil {
		return err
	}
	defer h.fast.stop()
	fmt.Printf("sinks: 2 ms at %s, immediate at %s; Redis %s; run %s\n", h.slow.smtpAddr, h.fast.smtpAddr, cfg.redisURL, h.run)

	phases := strings.Split(cfg.phases, ",")
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"bare", h.phaseBare},
		{"relay", h.phaseRelay},
		{"cpu", h.phaseCPU},
		{"cluster", h.phaseCluster},
		{"latency", h.phaseLatency},
		{"enroll", h.phaseEnroll},
	}
	began := time.Now()
	var errs []error
	for _, s := range steps {
		if !slices.Contains(phases, s.name) {
			continue
		}
		fmt.Printf("\n== %s\n", s.name)
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			h.note("%s: load average before the phase %s (other work on this machine skews every figure)", s.name, strings.Join(strings.Fields(string(b))[:3], " "))
		}
		if err := s.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			fmt.Println("  FAILED:", err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	h.note("whole run took %s", time.Since(began).Round(time.Second))
	if err := h.write(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// moduleRoot is the directory holding go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/retainmail/retain\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the retain repository (go run ./bench)")
		}
		dir = parent
	}
}

// checkDB refuses a DB holding keys that are neither Asynq's nor an earlier
// bench run's: Asynq's queue keys are not prefixed, so the harness needs a DB
// where no one else runs workers.
func (h *harness) checkDB(ctx context.Context) error {
	iter := h.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if !strings.HasPrefix(k, "asynq:") && !strings.HasPrefix(k, "retain-bench:") {
			return fmt.Errorf("%s holds %q: give the harness a Redis DB of its own with -redis (Asynq's queue keys are shared by every worker on a DB)", h.cfg.redisURL, k)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("Redis %s: %w", h.cfg.redisURL, err)
	}
	if err := redistest.Delete(ctx, h.rdb, "retain-bench:"); err != nil {
		return err
	}
	return h.cleanAsynq(ctx)
}

// cleanAsynq deletes Asynq's keys in the harness's DB: queued tasks of a phase
// must not reach the next phase's worker.
func (h *harness) cleanAsynq(ctx context.Context) error { return cleanAsynq(ctx, h.rdb) }

// cleanAsynq deletes Asynq's keys (asynq:{sends}:… and the others) on rdb, a
// single Redis or a cluster (every master).
func cleanAsynq(ctx context.Context, rdb redis.UniversalClient) error {
	return redistest.Delete(ctx, rdb, "asynq:")
}

func (h *harness) prefix(phase string) string { return "retain-bench:" + h.run + ":" + phase + ":" }

// env is the environment of retain processes on the Redis of redisURL, working
// on prefix and sending to s.
func (h *harness) env(redisURL, prefix string, s *sinkProc) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RETAIN_") && !strings.HasPrefix(kv, "REDIS_URL=") && !strings.HasPrefix(kv, "SMTP_URL=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"REDIS_URL="+redisURL,
		"RETAIN_REDIS_PREFIX="+prefix,
		fmt.Sprintf("SMTP_URL=smtp://%s?tls=none&pool=%d", s.smtpAddr, h.cfg.conns),
		"RETAIN_FROM="+benchFrom.String(),
		"RETAIN_BASE_URL="+benchBaseURL,
		"RETAIN_SECRET="+benchSecret,
		"RETAIN_CAMPAIGNS="+filepath.Join(h.root, "bench", "testdata", "campaigns"),
		"RETAIN_BOUNCE_DOMAIN="+h.cfg.bounceDomain,
	)
}

// write saves the table and notes to bench/out/results.txt and prints them.
func (h *harness) write() error {
	var b strings.Builder
	fmt.Fprintf(&b, "retain benchmark, %s, run %s, %d CPUs\n\n", time.Now().Format(time.RFC3339), h.run, numCPU())
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget / reference")
	for _, r := range h.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.figure, r.value, r.target)
	}
	tw.Flush()
	if len(h.notes) > 0 {
		b.WriteString("\n")
		for _, n := range h.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	fmt.Print("\n" + b.String())
	return os.WriteFile(filepath.Join(h.out, "results.txt"), []byte(b.String()), 0o644)
}
