package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

func numCPU() int { return runtime.NumCPU() }

// phaseBare runs the bare go-mail loop against both sinks: the reference the
// pipeline is compared with.
func (h *harness) phaseBare(ctx context.Context) error {
	for _, s := range []struct {
		sink   *sinkProc
		label  string
		target string
	}{
		{h.slow, "bare go-mail loop, 2 ms relay", "≈2,300/s seen here before"},
		{h.fast, "bare go-mail loop, immediate relay", "ceiling for the CPU-bound run"},
	} {
		if err := s.sink.reset(); err != nil {
			return err
		}
		cpuHarness, cpuSink := selfCPU(), s.sink.cpu()
		elapsed, err := bareLoop(ctx, s.sink.smtpAddr, h.cfg.conns, h.cfg.nBare, h.set, h.renderer, h.cfg.bounceDomain)
		if err != nil {
			return err
		}
		cpuHarness, cpuSink = selfCPU()-cpuHarness, s.sink.cpu()-cpuSink
		st, err := s.sink.waitCount(ctx, h.cfg.nBare, h.cfg.timeoutPhase)
		if err != nil {
			return err
		}
		h.note("%s: CPU used in %.2fs wall: harness (render, build, go-mail) %.2fs, sink %.2fs", s.label, elapsed.Seconds(), cpuHarness.Seconds(), cpuSink.Seconds())
		if s.sink == h.slow {
			h.bareRelay = st.rate()
		} else {
			h.bareFast = st.rate()
		}
		h.add(fmt.Sprintf("%s (%d conns, %d msgs)", s.label, h.cfg.conns, st.Count), perSec(st.rate()), s.target)
		h.add(fmt.Sprintf("  CPU ms per email: loop %.3f, sink %.3f; bytes per email at the sink %d B", cpuHarness.Seconds()*1000/float64(st.Count), cpuSink.Seconds()*1000/float64(st.Count), st.perEmail()), "", "")
	}
	h.note("bare loop: each message is rendered per send with the render package (step %s, ~500 words) and built as the worker builds it (queue.Message: the same links, click tracking and headers; mailer.Message.BuildFor with 8BITMIME, which the sink announces) and sent with go-mail's Client.Send; go-mail clients stay connected for the whole run (the worker's pool reconnects every 100 messages, its default max_per_conn)", benchStep)
	return nil
}

// pipelineRun is what one run of the real worker and scheduler measured.
type pipelineRun struct {
	st          sinkStats
	startToLast time.Duration // scheduler start → last message at the sink
	cpu         map[string]time.Duration
	redisCmds   int64            // commands Redis processed meanwhile (server-wide; a cluster's masters summed)
	redisReads  int64            // reads of client requests meanwhile: about the round trips
	cmdCalls    map[string]int64 // of those, per command (INFO commandstats, scripts' calls included)
}

// pipeline seeds n customers whose first step is due at one moment in the past,
// then starts the worker, waits until it is up, starts the scheduler, and waits
// for n messages at the sink. The worker and scheduler are the real processes,
// on b. afterSeed, when set, looks at the seeded keys before the worker starts.
func (h *harness) pipeline(ctx context.Context, b *backend, phase string, s *sinkProc, n int, profile string, afterSeed func(context.Context, string)) (pipelineRun, error) {
	var pr pipelineRun
	prefix := h.prefix(phase)
	defer redistest.Delete(context.WithoutCancel(ctx), b.rdb, prefix)
	defer cleanAsynq(context.WithoutCancel(ctx), b.rdb)

	t := time.Now()
	if err := seed(ctx, b.rdb, prefix, h.set, n, t.Add(-time.Minute)); err != nil {
		return pr, err
	}
	fmt.Printf("  seeded %d customers due at one moment in %s\n", n, time.Since(t).Round(time.Millisecond))
	if afterSeed != nil {
		afterSeed(ctx, prefix)
	}
	if err := s.reset(); err != nil {
		return pr, err
	}
	env := h.env(b.url, prefix, s)
	if profile != "" {
		env = append(env, "RETAIN_BENCH_CPUPROFILE="+profile)
	}
	logs := filepath.Join(h.out, "logs")
	worker, err := start("worker", filepath.Join(logs, phase+"-worker.log"), env, h.retainBin, h.workerArgs()...)
	if err != nil {
		return pr, err
	}
	defer worker.stop()
	if err := worker.waitLog("worker started", 30*time.Second); err != nil {
		return pr, err
	}
	if profile != "" {
		worker.cmd.Process.Signal(syscall.SIGUSR1)
	}
	before := map[string]time.Duration{"worker": worker.cpu(), "redis": b.cpu(), "sink": s.cpu(), "harness": selfCPU()}
	cmds0, reads0 := redisCommands(ctx, b)
	stats0 := commandStats(ctx, b)
	begin := time.Now()
	sched, err := start("scheduler", filepath.Join(logs, phase+"-scheduler.log"), env, h.retainBin, "scheduler")
	if err != nil {
		return pr, err
	}
	defer sched.stop()
	pr.st, err = s.waitCount(ctx, n, h.cfg.timeoutPhase)
	if err != nil {
		return pr, err
	}
	pr.startToLast = time.Unix(0, pr.st.Last).Sub(begin)
	pr.cpu = map[string]time.Duration{"worker": worker.cpu(), "scheduler": sched.cpu(), "redis": b.cpu(), "sink": s.cpu(), "harness": selfCPU()}
	for k, v := range before {
		pr.cpu[k] -= v
	}
	cmds1, reads1 := redisCommands(ctx, b)
	pr.redisCmds, pr.redisReads = cmds1-cmds0, reads1-reads0
	pr.cmdCalls = commandStats(ctx, b)
	for k, v := range stats0 {
		pr.cmdCalls[k] -= v
	}
	if profile != "" {
		worker.cmd.Process.Signal(syscall.SIGUSR2)
		time.Sleep(200 * time.Millisecond)
	}
	if pr.st.Count != n {
		h.note("%s: the sink counted %d messages for %d customers", phase, pr.st.Count, n)
	}
	return pr, nil
}

// cpuLine says how much CPU each process used during a run, against the wall time.
func cpuLine(pr pipelineRun) string {
	wall := time.Duration(pr.st.Last - pr.st.First)
	var parts []string
	for _, k := range []string{"worker", "redis", "scheduler", "sink", "harness"} {
		parts = append(parts, fmt.Sprintf("%s %.2fs", k, pr.cpu[k].Seconds()))
	}
	return fmt.Sprintf("CPU used from scheduler start to last message (%.2fs wall, %d cores): %s; first→last %.2fs",
		pr.startToLast.Seconds(), numCPU(), strings.Join(parts, ", "), wall.Seconds())
}

// perEmailLine is the CPU milliseconds per email of every process, the figure
// to compare changes by on a noisy machine.
func perEmailLine(pr pipelineRun) string {
	var parts []string
	for _, k := range []string{"worker", "redis", "scheduler", "sink"} {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, pr.cpuPerEmail(k)))
	}
	return strings.Join(parts, ", ")
}

// cpuPerEmail is process k's CPU milliseconds per email at the sink.
func (pr pipelineRun) cpuPerEmail(k string) float64 {
	return pr.cpu[k].Seconds() * 1000 / float64(max(pr.st.Count, 1))
}

// commandsLine lists the commands Redis ran per email, most first.
func commandsLine(pr pipelineRun) string {
	type kv struct {
		cmd string
		n   int64
	}
	var all []kv
	for k, v := range pr.cmdCalls {
		if v > 0 {
			all = append(all, kv{k, v})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.n - a.n) })
	var parts []string
	for _, c := range all {
		parts = append(parts, fmt.Sprintf("%s %.2f", c.cmd, float64(c.n)/float64(max(pr.st.Count, 1))))
	}
	return strings.Join(parts, ", ")
}

// pipelineRows adds the per-email figures of a pipeline run to the table.
func (h *harness) pipelineRows(phase string, b *backend, pr pipelineRun) {
	h.add("  CPU ms per email: "+perEmailLine(pr), "", "")
	h.add("  worker CPU per email", fmt.Sprintf("%.3f ms", pr.cpuPerEmail("worker")), "≤ 0.20 ms")
	h.add("  Redis commands per email ("+b.scope+")", fmt.Sprintf("%.1f", float64(pr.redisCmds)/float64(max(pr.st.Count, 1))), "≤ 5")
	h.add("  Redis round trips per email (reads of requests, "+b.scope+")", fmt.Sprintf("%.1f", float64(pr.redisReads)/float64(max(pr.st.Count, 1))), "")
	h.add("  Redis CPU per email", fmt.Sprintf("%.3f ms", pr.cpuPerEmail("redis")), "")
	h.add("  bytes per email at the sink", fmt.Sprintf("%d B", pr.st.perEmail()), "")
	h.note("%s: %s", phase, cpuLine(pr))
	h.note("%s: Redis commands per email, by command (scripts' calls counted as Redis counts them): %s", phase, commandsLine(pr))
}

func (h *harness) phaseRelay(ctx context.Context) error {
	pr, err := h.pipeline(ctx, h.single, "relay", h.slow, h.cfg.nRelay, "", nil)
	if err != nil {
		return err
	}
	h.add(fmt.Sprintf("retain, 2 ms relay (%d customers due at once)", h.cfg.nRelay), perSec(pr.st.rate()), "")
	if h.bareRelay > 0 {
		h.add("  ratio to the bare loop, 2 ms relay", fmt.Sprintf("%.2f", pr.st.rate()/h.bareRelay), "≥ 0.95")
	}
	h.add("  scheduler start → last message", perSec(float64(pr.st.Count)/pr.startToLast.Seconds()), "")
	h.pipelineRows("relay", h.single, pr)
	return nil
}

func (h *harness) phaseCPU(ctx context.Context) error {
	profile := ""
	if h.cfg.cpuProfile {
		profile = filepath.Join(h.out, "worker-cpu.pprof")
	}
	pr, err := h.pipeline(ctx, h.single, "cpu", h.fast, h.cfg.nCPU, profile, nil)
	if err != nil {
		return err
	}
	h.cpuRate = pr.st.rate()
	h.add(fmt.Sprintf("retain, immediate relay (%d customers due at once)", h.cfg.nCPU), perSec(pr.st.rate()), "listmonk 3,282/s on this machine (median, HTML only, no click tracking; issue 14)")
	h.add("  scheduler start → last message", perSec(float64(pr.st.Count)/pr.startToLast.Seconds()), "")
	if h.bareFast > 0 {
		h.add("  ratio to the bare loop, immediate relay", fmt.Sprintf("%.2f", pr.st.rate()/h.bareFast), "")
	}
	h.pipelineRows("cpu", h.single, pr)
	if profile != "" {
		out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=40", h.retainBin, profile).CombinedOutput()
		txt := filepath.Join(h.out, "worker-cpu.txt")
		os.WriteFile(txt, out, 0o644)
		if err != nil {
			h.note("go tool pprof: %v", err)
		} else {
			h.note("worker CPU profile: %s (top functions in %s)", profile, txt)
		}
	}
	return nil
}

// phaseLatency enqueues signed_up events for existing leads at a steady rate and
// times each from the enqueue returning to its welcome email at the 2 ms sink.
func (h *harness) phaseLatency(ctx context.Context) error {
	k := h.cfg.kLatency
	prefix := h.prefix("latency")
	defer redistest.Delete(context.WithoutCancel(ctx), h.rdb, prefix)
	defer h.cleanAsynq(context.WithoutCancel(ctx))
	if err := seed(ctx, h.rdb, prefix, h.set, k, time.Time{}); err != nil {
		return err
	}
	s := h.slow
	env := h.env(h.cfg.redisURL, prefix, s)
	logs := filepath.Join(h.out, "logs")
	worker, err := start("worker", filepath.Join(logs, "latency-worker.log"), env, h.retainBin, h.workerArgs()...)
	if err != nil {
		return err
	}
	defer worker.stop()
	sched, err := start("scheduler", filepath.Join(logs, "latency-scheduler.log"), env, h.retainBin, "scheduler")
	if err != nil {
		return err
	}
	defer sched.stop()
	if err := worker.waitLog("worker started", 30*time.Second); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the worker's first poll of the queues
	if err := s.reset(); err != nil {
		return err
	}
	client := queue.NewClient(h.rdb)
	defer client.Close()
	enqueued := make([]time.Time, k)
	every := time.Second / time.Duration(h.cfg.latencyRate)
	begin := time.Now()
	for i := range k {
		if d := time.Until(begin.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		id := customerID(i)
		ev := lifecycle.Event{ID: "signup-" + id, Name: "signed_up", At: time.Now()}
		if err := client.EnqueueEvent(ctx, id, ev); err != nil {
			return err
		}
		enqueued[i] = time.Now()
	}
	if _, err := s.waitCount(ctx, k, h.cfg.timeoutPhase); err != nil {
		return err
	}
	arr, err := s.arrivals()
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, k)
	for i := range k {
		if at, ok := arr[customerEmail(i)]; ok {
			lat = append(lat, at.Sub(enqueued[i]))
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	label := fmt.Sprintf("event → email at the 2 ms sink (%d events at %d/s)", k, h.cfg.latencyRate)
	h.add(label+" p50", ms(pct(0.50)), "≤ 1 s")
	h.add("  p90", ms(pct(0.90)), "")
	h.add("  p99", ms(pct(0.99)), "")
	h.add("  max", ms(lat[len(lat)-1]), "")
	return nil
}

// phaseEnroll makes nEnroll customers enrolled with a step due, measures what
// they cost in Redis, then times one scheduler tick claiming and enqueuing them.
func (h *harness) phaseEnroll(ctx context.Context) error {
	n := h.cfg.nEnroll
	prefix := h.prefix("enroll")
	defer redistest.Delete(context.WithoutCancel(ctx), h.rdb, prefix)
	defer h.cleanAsynq(context.WithoutCancel(ctx))

	before, err := h.usedMemory(ctx)
	if err != nil {
		return err
	}
	t := time.Now()
	if err := seed(ctx, h.rdb, prefix, h.set, n, t); err != nil {
		return err
	}
	seedDur := time.Since(t)
	after, err := h.usedMemory(ctx)
	if err != nil {
		return err
	}
	st := store.New(h.rdb, prefix)
	var due int64
	for i := range store.Shards {
		c, _ := h.rdb.ZCard(ctx, store.ShardPrefix(prefix, i)+"due").Result()
		due += c
	}
	if int(due) != n {
		h.note("enroll: %d customers in the due index, want %d", due, n)
	}
	h.add(fmt.Sprintf("enroll: %d customers through ingest.Applier.Record", n), fmt.Sprintf("%s (%s)", perSec(float64(n)/seedDur.Seconds()), seedDur.Round(time.Millisecond)), "")
	h.note("enroll: each Record creates the customer (one store.Update) and applies its signed_up event (a second Update: enrollment, first step due, due-index entry, stage history, recent event, seen ID), from %d goroutines", seedWorkers)

	perCustomer := float64(after-before) / float64(n)
	h.add("Redis bytes per active enrollment (used_memory Δ / N)", fmt.Sprintf("%.0f B", perCustomer), "≤ 400 B")
	if err := h.memoryBreakdown(ctx, prefix, n); err != nil {
		return err
	}

	client := queue.NewClient(h.rdb)
	defer client.Close()
	t = time.Now()
	enq := 0
	for {
		l, err := st.ClaimDue(ctx, time.Now(), queue.DefaultLease, 50)
		if err != nil {
			return err
		}
		if l == nil {
			break
		}
		if err := client.EnqueueSends(ctx, l); err != nil {
			return err
		}
		enq += len(l.IDs)
	}
	tickDur := time.Since(t)
	h.add(fmt.Sprintf("scheduler claim+enqueue (store.ClaimDue and a send:due task per 50, %d due)", enq), fmt.Sprintf("%s (%s)", perSec(float64(enq)/tickDur.Seconds()), tickDur.Round(time.Millisecond)), "")
	return nil
}

// commandStats is the calls of each command, from INFO commandstats (of a
// cluster, summed over its masters).
func commandStats(ctx context.Context, b *backend) map[string]int64 {
	out := map[string]int64{}
	for _, m := range b.masters {
		info, err := m.Info(ctx, "commandstats").Result()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			calls, _, _ := strings.Cut(rest, ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			out[strings.TrimPrefix(name, "cmdstat_")] += n
		}
	}
	return out
}

// redisCommands is INFO stats total_commands_processed and
// total_reads_processed: commands, and the reads of requests from clients
// that carried them, about one per round trip (a pipeline's commands arrive
// in one read, unless they are too many for one). Of a cluster, they are
// summed over its masters.
func redisCommands(ctx context.Context, b *backend) (cmds, reads int64) {
	for _, m := range b.masters {
		info, err := m.InfoMap(ctx, "stats").Result()
		if err != nil {
			continue
		}
		c, _ := strconv.ParseInt(info["Stats"]["total_commands_processed"], 10, 64)
		r, _ := strconv.ParseInt(info["Stats"]["total_reads_processed"], 10, 64)
		cmds, reads = cmds+c, reads+r
	}
	return cmds, reads
}

func (h *harness) usedMemory(ctx context.Context) (int64, error) {
	info, err := h.rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
}

// memoryBreakdown adds MEMORY USAGE of one customer's keys and of its share of the
// due and wake indexes (one of each per shard).
func (h *harness) memoryBreakdown(ctx context.Context, prefix string, n int) error {
	id := customerID(n / 2)
	cp := store.CustomerPrefix(prefix, id)
	keys := []struct{ label, key string }{
		{"customer JSON", cp + "c:" + id},
		{"stage history", cp + "stages:" + id},
		{"recent events", cp + "events:" + id},
		{"seen event IDs", cp + "seen:" + id},
		{"email index", prefix + "email:" + customerEmail(n/2)},
	}
	var total int64
	var parts []string
	for _, k := range keys {
		u, err := h.rdb.MemoryUsage(ctx, k.key, 0).Result()
		if err != nil && err.Error() != "redis: nil" {
			return fmt.Errorf("MEMORY USAGE %s: %w", k.key, err)
		}
		total += u
		parts = append(parts, fmt.Sprintf("%s %d", k.label, u))
	}
	for _, idx := range []string{"due", "wake"} {
		var u int64
		for i := range store.Shards {
			s, _ := h.rdb.MemoryUsage(ctx, store.ShardPrefix(prefix, i)+idx, 0).Result()
			u += s
		}
		per := float64(u) / float64(n)
		total += int64(per)
		parts = append(parts, fmt.Sprintf("%s index %.0f", idx, per))
	}
	h.add("  MEMORY USAGE of one customer + its index entries", fmt.Sprintf("%d B", total), "")
	h.note("memory of %s, bytes: %s", id, strings.Join(parts, ", "))
	b, err := h.rdb.Get(ctx, cp+"c:"+id).Bytes()
	if err == nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) == nil {
			h.note("customer JSON is %d B, of which the enrollment (\"enrollments\":…) is %d B", len(b), len(m["enrollments"])+len(`"enrollments":,`))
		}
	}
	return nil
}

func perSec(v float64) string { return fmt.Sprintf("%s/s", thousands(int64(v+0.5))) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// workerArgs is the command line of retain worker: --concurrency, then -worker-args.
func (h *harness) workerArgs() []string {
	return append([]string{"worker", "--concurrency", strconv.Itoa(h.cfg.conns)}, strings.Fields(h.cfg.workerArgs)...)
}
