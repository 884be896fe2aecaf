package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// syncBuffer is a log destination tests read while workers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// orderCampaigns are the test campaigns plus an orders counter and two
// campaigns triggered by order_placed: big-order only for totals over 100.
func orderCampaigns(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/campaigns")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"big-order/campaign.md":  "---\nname: Big order\ntrigger: {event: order_placed, where: 'event.data.total > 100'}\n---\n",
		"big-order/01-thanks.md": "---\nsubject: Thanks for the big order\ndelay: 1d\n---\nThanks.\n",
		"any-order/campaign.md":  "---\nname: Any order\ntrigger: {event: order_placed}\n---\n",
		"any-order/01-thanks.md": "---\nsubject: Thanks for your order\ndelay: 1d\n---\nThanks.\n",
	}
	for name, body := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lc := filepath.Join(dir, "lifecycle.yaml")
	b, err := os.ReadFile(lc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lc, append(b, "counters: {orders: order_placed}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// eventWorker replaces the bundle's worker and applier with ones running the
// campaigns in dir, logging to the returned buffer.
func (b *testBundle) eventWorker(t *testing.T, dir string) *syncBuffer {
	t.Helper()
	set, err := campaign.Load(dir)
	if err != nil {
		t.Fatalf("campaigns: %v", err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	eng := lifecycle.New(set)
	logs := &syncBuffer{}
	w, err := NewWorker(WorkerConfig{
		Store: b.store, Engine: eng, Renderer: r, Sender: b.pool,
		From:  mail.Address{Name: "Acme", Address: "hello@acme.example"},
		Links: testLinks, Now: b.clock.Now, Log: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.worker = w
	b.applier = &ingest.Applier{Store: b.store, Engine: eng, Now: b.clock.Now}
	return logs
}

// eventTask is the event:apply task of ev for customer, as EnqueueEvent makes it.
func eventTask(t *testing.T, customer string, ev lifecycle.Event) *asynq.Task {
	t.Helper()
	p, err := json.Marshal(EventPayload{Customer: customer, Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(TypeEvent, p)
}

// TestEventWithAFailingConditionStillAppliesAndIsLoggedOnceAndCounted sends two
// order_placed events whose big-order trigger (event.data.total > 100) fails
// while running: one without a total, one with a string total. Before, the task
// failed and Asynq retried and archived it, losing the counter and the other
// campaign's enrollment; now the condition counts as false, the rest applies,
// one line is logged for the campaign and both errors are counted.
func TestEventWithAFailingConditionStillAppliesAndIsLoggedOnceAndCounted(t *testing.T) {
	b := setup(t)
	logs := b.eventWorker(t, orderCampaigns(t))
	b.signUp(t, "c1", "Ada")
	h := b.worker.Handler()
	for i, data := range []map[string]any{{"sku": "T-100"}, {"total": "lots"}} {
		ev := lifecycle.Event{ID: "order-" + string(rune('1'+i)), Name: "order_placed", At: b.clock.Now(), Data: data}
		if err := h.ProcessTask(b.ctx, eventTask(t, "c1", ev)); err != nil {
			t.Fatalf("event %d: %v; want it applied, its failing condition counted as false", i+1, err)
		}
	}
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Counters["orders"] != 2 {
		t.Errorf("orders = %d, want 2", c.Counters["orders"])
	}
	if enr := c.Enrollments["any-order"]; enr == nil || enr.Status != lifecycle.Active {
		t.Errorf("any-order = %+v, want enrolled", enr)
	}
	if enr := c.Enrollments["big-order"]; enr != nil {
		t.Errorf("big-order = %+v, want no enrollment: its condition failed", enr)
	}
	counts, err := ReadConditionErrors(b.ctx, b.rdb, b.prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 1 || counts["big-order"] != 2 {
		t.Errorf("condition errors = %v, want big-order: 2", counts)
	}
	out := logs.String()
	if n := strings.Count(out, "condition failed and counted as false"); n != 1 {
		t.Errorf("%d condition lines logged, want 1 (once per campaign):\n%s", n, out)
	}
	if !strings.Contains(out, "campaign=big-order") || !strings.Contains(out, "big-order/campaign.md:3:") || !strings.Contains(out, "trigger.where") {
		t.Errorf("the condition line does not name the campaign, the file and the condition:\n%s", out)
	}
	if n, _ := b.store.FailedEventCount(b.ctx); n != 0 {
		t.Errorf("%d failed events, want none", n)
	}
}

// TestUnknownCustomerAndBadPayloadAreKeptAndReplayed: an event for a customer
// retain does not know and a payload that does not parse used to be dropped
// (archived by Asynq at best). Both are kept in the failed-event list; once the
// customer is imported, a replay queues the event again, and it applies.
func TestUnknownCustomerAndBadPayloadAreKeptAndReplayed(t *testing.T) {
	b := setup(t)
	h := b.worker.Handler()
	ev := lifecycle.Event{ID: "e1", Name: "logged_in", At: b.clock.Now()}
	if err := h.ProcessTask(b.ctx, eventTask(t, "ghost", ev)); err != nil {
		t.Errorf("unknown customer: %v, want the task done and the event kept", err)
	}
	if err := h.ProcessTask(b.ctx, asynq.NewTask(TypeEvent, []byte(`{"customer": 42`))); err != nil {
		t.Errorf("bad payload: %v, want the task done and the payload kept", err)
	}
	failed, err := b.store.FailedEvents(b.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 2 {
		t.Fatalf("failed events = %+v, want the bad payload and the unknown customer's event", failed)
	}
	bad, ghost := failed[0], failed[1]
	if bad.Payload != `{"customer": 42` || !strings.Contains(bad.Error, "bad payload") || bad.Event != nil {
		t.Errorf("bad payload entry = %+v", bad)
	}
	if ghost.Customer != "ghost" || ghost.Event == nil || ghost.Event.ID != "e1" ||
		!strings.Contains(ghost.Error, "unknown customer") || ghost.Attempts != 1 || !ghost.At.Equal(b.clock.Now()) {
		t.Errorf("unknown customer entry = %+v", ghost)
	}

	// The customer is imported; the replay queues its event, once.
	if _, err := b.applier.Upsert(b.ctx, &ingest.Record{ID: "ghost", Email: "ghost@example.org"}); err != nil {
		t.Fatal(err)
	}
	queued, err := b.client.ReplayFailed(b.ctx, b.store, nil)
	if len(queued) != 1 || queued[0].ID != ghost.ID {
		t.Errorf("replayed %+v, want the unknown customer's event", queued)
	}
	if !errors.Is(err, ErrNotReplayable) {
		t.Errorf("replay error = %v, want the bad payload reported as not replayable", err)
	}
	if _, err := b.client.ReplayFailed(b.ctx, b.store, []string{"nope"}); !errors.Is(err, ErrNoFailedEvent) {
		t.Errorf("replay of an unknown ID: %v, want ErrNoFailedEvent", err)
	}
	if left, _ := b.store.FailedEvents(b.ctx, 0); len(left) != 1 || left[0].ID != bad.ID {
		t.Errorf("left in the list: %+v, want only the bad payload", left)
	}
	tasks, err := asynq.NewInspectorFromRedisClient(b.rdb).ListPendingTasks(QueueEvents)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("pending event tasks = %v, %v; want the replay", tasks, err)
	}
	if err := h.ProcessTask(b.ctx, asynq.NewTask(tasks[0].Type, tasks[0].Payload)); err != nil {
		t.Fatalf("replayed event: %v", err)
	}
	evs, err := b.store.Events(b.ctx, "ghost", 10)
	if err != nil || len(evs) != 1 || evs[0].ID != "e1" {
		t.Errorf("ghost's events = %+v, %v; want e1 applied", evs, err)
	}

	if dropped, err := DropFailed(b.ctx, b.store, []string{bad.ID}); err != nil || len(dropped) != 1 {
		t.Errorf("drop = %+v, %v", dropped, err)
	}
	if n, _ := b.store.FailedEventCount(b.ctx); n != 0 {
		t.Errorf("%d failed events after the drop, want none", n)
	}
}

// TestEventFailingThroughItsLastRetryIsKept runs a real Asynq server: an event
// whose customer record cannot be read fails every attempt. After the last
// retry it used to be archived by Asynq, where nothing counted or replayed it;
// now it is in the failed-event list, with its attempts, and Asynq holds
// nothing.
func TestEventFailingThroughItsLastRetryIsKept(t *testing.T) {
	b := setup(t)
	if err := b.rdb.Set(b.ctx, store.CustomerPrefix(b.prefix, "c1")+"c:c1", "not a customer", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ev := lifecycle.Event{ID: "e1", Name: "logged_in", At: b.clock.Now()}
	if _, err := asynq.NewClientFromRedisClient(b.rdb).EnqueueContext(b.ctx, eventTask(t, "c1", ev),
		asynq.Queue(QueueEvents), asynq.MaxRetry(1)); err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{
		Concurrency: 1, Queues: Queues, LogLevel: asynq.FatalLevel,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 0 },
		DelayedTaskCheckInterval: 50 * time.Millisecond, TaskCheckInterval: 50 * time.Millisecond,
	})
	if err := srv.Start(b.worker.Handler()); err != nil {
		t.Fatal(err)
	}
	var failed []store.FailedEvent
	for deadline := time.Now().Add(15 * time.Second); len(failed) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			srv.Shutdown()
			info, _ := asynq.NewInspectorFromRedisClient(b.rdb).GetQueueInfo(QueueEvents)
			t.Fatalf("the event is not in the failed-event list after its last retry; Asynq's queue: %+v", info)
		}
		var err error
		if failed, err = b.store.FailedEvents(b.ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	srv.Shutdown()
	f := failed[0]
	if len(failed) != 1 || f.Customer != "c1" || f.Event == nil || f.Event.ID != "e1" || f.Attempts != 2 || f.Error == "" {
		t.Errorf("failed events = %+v, want c1's e1 after 2 attempts, with the error", failed)
	}
	info, err := asynq.NewInspectorFromRedisClient(b.rdb).GetQueueInfo(QueueEvents)
	if err != nil {
		t.Fatal(err)
	}
	if info.Archived != 0 || info.Retry != 0 || info.Pending != 0 {
		t.Errorf("Asynq's events queue: %d archived, %d retry, %d pending; want the task done", info.Archived, info.Retry, info.Pending)
	}
}

// TestSchedulerTickIsRecordedForHealth: a tick records its time, which
// /healthz and /metrics compare with the oldest due email (store.Backlog).
func TestSchedulerTickIsRecordedForHealth(t *testing.T) {
	b := setup(t)
	b.signUp(t, "c1", "Ada") // the welcome is due now
	signup := b.clock.Now()
	b.clock.Advance(36 * time.Second)
	bl, err := b.store.Backlog(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bl.LastTick.IsZero() || bl.Overdue(b.clock.Now()) != 36*time.Second {
		t.Errorf("before any tick: %+v, overdue %v; want no tick and 36s overdue", bl, bl.Overdue(b.clock.Now()))
	}
	if _, _, err := b.scheduler.Tick(b.ctx); err != nil {
		t.Fatal(err)
	}
	if bl, err = b.store.Backlog(b.ctx); err != nil {
		t.Fatal(err)
	}
	if !bl.LastTick.Equal(b.clock.Now()) {
		t.Errorf("last tick = %v, want the tick's time %v", bl.LastTick, b.clock.Now())
	}
	if !bl.OldestDue.Equal(signup) {
		t.Errorf("oldest due = %v, want the welcome's due time %v (claimed, not yet sent)", bl.OldestDue, signup)
	}
}

// TestAsynqPendingKey: the scheduler paces itself by the length of the list
// where Asynq keeps the sends queue's waiting tasks; the list must be the one
// Asynq counts as pending.
func TestAsynqPendingKey(t *testing.T) {
	b := setup(t)
	b.signUp(t, "c1", "Ada")
	b.signUp(t, "c2", "Grace")
	if _, n, err := b.scheduler.Tick(b.ctx); err != nil || n != 2 {
		t.Fatalf("tick: %d enqueued, %v", n, err)
	}
	info, err := asynq.NewInspectorFromRedisClient(b.rdb).GetQueueInfo(QueueSends)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.rdb.LLen(b.ctx, asynqPendingKey(QueueSends)).Val(); n != int64(info.Pending) || n == 0 {
		t.Errorf("LLEN %s = %d, Asynq counts %d pending", asynqPendingKey(QueueSends), n, info.Pending)
	}
}
