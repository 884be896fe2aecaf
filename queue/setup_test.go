package queue

import (
	"context"
	"errors"
	"log/slog"
	"net/mail"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testBundle struct {
	ctx       context.Context
	rdb       *redis.Client
	prefix    string
	clock     *clock
	store     *store.Store
	applier   *ingest.Applier
	worker    *Worker
	scheduler *Scheduler
	client    *Client
	smtp      *smtptest.Server
	pool      *mailer.Pool
}

// setup wires a worker and a scheduler as `retain worker` and `retain scheduler`
// do, on the test Redis and a real SMTP server, with a test clock starting on
// Monday 2 March 2026, 09:00 in Amsterdam.
func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupWith(t, "testdata/campaigns")
}

// setupWith is setup with the campaigns of dir.
func setupWith(t *testing.T, dir string) *testBundle {
	t.Helper()
	set, err := campaign.Load(dir)
	if err != nil {
		t.Fatalf("test campaigns: %v", err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	rdb, _ := redistest.DB(t, redistest.QueueDB)
	prefix := redistest.Prefix()
	srv := smtptest.Start(t)
	cfg, err := mailer.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := mailer.NewPool(cfg)
	t.Cleanup(func() { pool.Close() })

	clk := &clock{t: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
	st := store.New(rdb, prefix)
	eng := lifecycle.New(set)
	log := slog.New(slog.DiscardHandler)
	w, err := NewWorker(WorkerConfig{
		Store: st, Engine: eng, Renderer: r, Sender: pool,
		From:              mail.Address{Name: "Acme", Address: "hello@acme.example"},
		Links:             testLinks,
		UnsubscribeMailto: "mailto:unsubscribe@acme.example",
		RetryBase:         time.Minute,
		Now:               clk.Now,
		Log:               log,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(rdb)
	applier := &ingest.Applier{Store: st, Engine: eng, Now: clk.Now}
	sched, err := NewScheduler(SchedulerConfig{Store: st, Engine: eng, Now: clk.Now, Log: log, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{ctx: t.Context(), rdb: rdb, prefix: prefix, clock: clk, store: st, applier: applier,
		worker: w, scheduler: sched, client: client, smtp: srv, pool: pool}
}

func testLinks(c *lifecycle.Customer, _ string) render.Links {
	return render.NewLinks("https://retain.acme.example/u/"+c.ID, "https://retain.acme.example/p/"+c.ID, nil,
		map[string]string{"Dashboard": "https://app.example.com/"})
}

// signUp creates a customer and applies signed_up now, as an import would.
func (b *testBundle) signUp(t *testing.T, id, firstName string) {
	t.Helper()
	rec := &ingest.Record{ID: id, Email: id + "@example.org", FirstName: firstName,
		Events: []lifecycle.Event{{Name: "signed_up", At: b.clock.Now()}}}
	if err := ingest.Check(rec, b.applier.Engine.Set().Lifecycle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.applier.Record(b.ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// run does what the scheduler and the workers do at the test clock's time: the
// scheduler claims the due customers, and the worker processes each claimed one.
func (b *testBundle) run(t *testing.T) {
	t.Helper()
	for {
		l, err := b.store.ClaimDue(b.ctx, b.clock.Now(), time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			return
		}
		if err := b.worker.ProcessLease(b.ctx, l); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
}

// advance moves the clock and runs what came due.
func (b *testBundle) advance(t *testing.T, d time.Duration) {
	t.Helper()
	b.clock.Advance(d)
	b.run(t)
}
