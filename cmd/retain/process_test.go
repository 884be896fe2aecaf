package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// These tests run retain worker and retain scheduler as the separate processes
// the Procfile starts, against the test Redis and a real SMTP server, and signal
// them as an operator or a crash would.

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// retainBinary builds the retain command once per test run.
func retainBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "retain-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "retain")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

type processBundle struct {
	bin    string
	env    []string
	smtp   *smtptest.Server
	st     *store.Store
	rdb    redis.UniversalClient // on Redis Cluster, a ClusterClient
	prefix string
}

// ledgerPattern matches, in KEYS or SCAN, every ledger entry under prefix:
// each is in its customer's shard, prefix+"{tag}:ledger:…" (the braces are
// literal in a pattern).
func ledgerPattern(prefix string) string { return prefix + "{*}:ledger:*" }

// ledger reads every ledger entry, key → value (readLedger).
func (b *processBundle) ledger(t *testing.T) map[string]string {
	t.Helper()
	out, err := readLedger(t.Context(), b.rdb, b.prefix)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readLedger reads every ledger entry under prefix, key → value: KEYS on every
// master (on Redis Cluster), a GET per key in one pipeline (the keys are in
// many slots).
func readLedger(ctx context.Context, rdb redis.UniversalClient, prefix string) (map[string]string, error) {
	keys, err := redistest.Keys(ctx, rdb, strings.TrimSuffix(ledgerPattern(prefix), "*"))
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	for i, k := range keys {
		if v, err := cmds[i].Result(); err == nil {
			out[k] = v
		}
	}
	return out, nil
}

// ledgerSent counts the sends the ledger records as sent.
func (b *processBundle) ledgerSent(t *testing.T) int {
	t.Helper()
	n := 0
	for _, v := range b.ledger(t) {
		if v == "sent" {
			n++
		}
	}
	return n
}

// waitSettled waits until the processes have nothing left to send: the ledger
// records sent sends and nothing else (no claim), no customer is due, and no
// send task waits in the queue. (The task the killed worker was running stays
// active until Asynq's recoverer takes it back, 30 s or more after the kill;
// when it runs again the ledger stops every send it holds.) It fails the test
// when that takes longer than timeout.
func (b *processBundle) waitSettled(t *testing.T, sent int, timeout time.Duration) {
	t.Helper()
	ins := asynq.NewInspectorFromRedisClient(b.rdb)
	var why string
	settled := func() bool {
		why = b.unsettled(t, ins, sent)
		return why == ""
	}
	if !waitUntil(timeout, settled) {
		t.Errorf("not settled after %s: %s", timeout, why)
	}
}

// unsettled says what the processes still have to do, or "".
func (b *processBundle) unsettled(t *testing.T, ins *asynq.Inspector, sent int) string {
	t.Helper()
	entries, n := b.ledger(t), 0
	for _, v := range entries {
		if v == "sent" {
			n++
		}
	}
	if n != sent || len(entries) != sent {
		return fmt.Sprintf("the ledger holds %d entries, %d of them sent; want %d sent", len(entries), n, sent)
	}
	next, err := b.st.NextDueAt(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !next.IsZero() {
		return fmt.Sprintf("a customer is due at %s", next.Format(time.RFC3339Nano))
	}
	// GetQueueInfo's error for a queue never used is not ErrQueueNotFound.
	queues, err := ins.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(queues, queue.QueueSends) {
		return ""
	}
	q, err := ins.GetQueueInfo(queue.QueueSends)
	if err != nil {
		t.Fatal(err)
	}
	if n := q.Pending + q.Scheduled + q.Retry; n > 0 {
		return fmt.Sprintf("%d send tasks wait in the queue", n)
	}
	return ""
}

// waitUntil polls cond until it holds or timeout passes, and says whether it held.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return cond()
		}
	}
	return true
}

// waitFor polls cond until it holds, failing the test, with what it waited for,
// when that takes longer than timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitUntil(timeout, cond) {
		t.Fatalf("waited %s for %s", timeout, what)
	}
}

// setupProcesses seeds n customers whose welcome email is due now.
func setupProcesses(t *testing.T, n int) *processBundle {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := retainBinary(t)
	rdb, redisURL := redistest.DB(t, redistest.CmdDB)
	prefix := redistest.Prefix()
	srv := smtptest.Start(t)
	set, err := campaign.Load("testdata/e2e/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, prefix)
	applier := &ingest.Applier{Store: st, Engine: lifecycle.New(set)}
	for i := range n {
		rec := &ingest.Record{ID: fmt.Sprintf("c%03d", i), Email: fmt.Sprintf("c%03d@example.org", i), FirstName: fmt.Sprint("Customer ", i),
			Events: []lifecycle.Event{{Name: "signed_up", At: time.Now()}}}
		if err := ingest.Check(rec, set.Lifecycle); err != nil {
			t.Fatal(err)
		}
		if _, err := applier.Record(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(),
		"REDIS_URL="+redisURL, "RETAIN_REDIS_PREFIX="+prefix, "SMTP_URL="+srv.URL(),
		"RETAIN_FROM=Acme <hello@acme.example>", "RETAIN_BASE_URL=https://retain.acme.example", "RETAIN_SECRET=0123456789abcdef0123456789abcdef",
		"RETAIN_CAMPAIGNS=testdata/e2e/campaigns", "RETAIN_TEMPLATES=../../templates")
	return &processBundle{bin: bin, env: env, smtp: srv, st: st, rdb: rdb, prefix: prefix}
}

// start runs `retain args...` in the background; its output goes to the test log
// when the test fails.
func (b *processBundle) start(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return b.startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables.
func (b *processBundle) startEnv(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := b.startOut(t, env, args...)
	return cmd
}

// startOut is startEnv that also returns the process's output as it grows.
func (b *processBundle) startOut(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Env = append(b.env, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("retain %s:\n%s", strings.Join(args, " "), out.String())
		}
	})
	return cmd, out
}

// messageIDs counts the messages the relay accepted by Message-ID.
func messageIDs(msgs []smtptest.Message) map[string]int {
	ids := map[string]int{}
	for _, m := range msgs {
		ids[m.Header.Get("Message-ID")]++
	}
	return ids
}

func TestWorkerKilledMidRunLosesNothingAndSendsNothingTwice(t *testing.T) {
	const customers = 120
	b := setupProcesses(t, customers)
	b.smtp.SetDelay(5 * time.Millisecond)
	killAt, killed := make(chan struct{}), make(chan struct{})
	b.smtp.OnMail(func(n int) {
		if n == 40 {
			close(killAt)
			<-killed // the MAIL reply waits until the worker is dead
		}
	})
	b.start(t, "scheduler", "--interval", "100ms", "--lease", "2s")
	// One SMTP connection, so the kill lands while the only send in flight
	// waits for the relay's MAIL reply: claimed in the ledger, not delivered.
	// (With several connections a kill can also land in another send's
	// instant between the relay's 250 and the ledger write: that is the
	// documented crash window, in which that one email goes out twice.)
	worker := b.startEnv(t, []string{"SMTP_URL=" + b.smtp.URL() + "&pool=1&timeout=1s"}, "worker", "--concurrency", "1", "--claim-ttl", "2s")
	select {
	case <-killAt:
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d emails arrived before the kill point", len(b.smtp.Messages()))
	}
	// Kill outside the documented window: once every email the relay took is
	// recorded in the ledger (the previous send's goroutine may still be
	// writing it while the next one's MAIL waits here).
	for deadline := time.Now().Add(10 * time.Second); b.ledgerSent(t) < len(b.smtp.Messages()); {
		if time.Now().After(deadline) {
			t.Fatalf("the ledger records %d sends, the relay took %d", b.ledgerSent(t), len(b.smtp.Messages()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	worker.Process.Signal(syscall.SIGKILL)
	worker.Wait()
	close(killed)
	before := len(b.smtp.Messages())
	b.smtp.OnMail(nil)

	b.startEnv(t, []string{"SMTP_URL=" + b.smtp.URL() + "&timeout=1s"}, "worker", "--concurrency", "4", "--claim-ttl", "2s")
	b.smtp.Wait(customers, 60*time.Second)
	// A duplicate would come after the claims the killed worker held expire,
	// when its customers are handed out again: wait until nothing is left to
	// hand out.
	b.waitSettled(t, customers, 30*time.Second)
	msgs := b.smtp.Messages()
	ids := messageIDs(msgs)
	if len(ids) != customers {
		t.Errorf("%d distinct emails arrived, want %d (killed after %d)", len(ids), customers, before)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
	}
	if len(msgs) != customers {
		t.Errorf("%d messages in all, want %d", len(msgs), customers)
	}
}

func TestSIGTERMDrainsTheSendInFlight(t *testing.T) {
	b := setupProcesses(t, 60)
	b.smtp.SetDelay(20 * time.Millisecond)
	b.start(t, "scheduler", "--interval", "100ms", "--lease", "2s")
	worker := b.start(t, "worker", "--concurrency", "1")
	stopAt := make(chan struct{})
	var once sync.Once
	b.smtp.OnMail(func(n int) {
		if n == 10 {
			once.Do(func() { close(stopAt) })
		}
	})
	select {
	case <-stopAt:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not start sending")
	}
	worker.Process.Signal(syscall.SIGTERM) // while the 10th send waits for the relay
	done := make(chan error, 1)
	go func() { done <- worker.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("worker exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("worker did not stop within 15 s of SIGTERM")
	}
	// Every send begun before the worker stopped arrived (none was cut off
	// between MAIL and the end of DATA), and the worker began no more after.
	// Once the relay has closed the dead worker's connections, it has read
	// every command the worker sent.
	waitFor(t, 10*time.Second, "the relay to close the stopped worker's connections", func() bool { return b.smtp.Open() == 0 })
	begun, arrived := b.smtp.Mails(), len(b.smtp.Messages())
	if arrived != begun || arrived < 10 {
		t.Errorf("%d sends begun, %d arrived; want every begun send (at least the 10th) to arrive", begun, arrived)
	}
	if arrived >= 60 {
		t.Errorf("all %d emails went out: the worker did not stop taking work", arrived)
	}
}
