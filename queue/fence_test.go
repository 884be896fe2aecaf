package queue

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/mail"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// worker returns another worker on the bundle's Redis, SMTP pool and clock,
// with cfg's changes: a second process, or the same one with other settings.
func (b *testBundle) newWorker(t *testing.T, change func(*WorkerConfig)) *Worker {
	t.Helper()
	set, err := campaign.Load("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := WorkerConfig{
		Store: b.store, Engine: b.applier.Engine, Renderer: r, Sender: b.pool,
		From:  mail.Address{Name: "Acme", Address: "hello@acme.example"},
		Links: testLinks, Now: b.clock.Now, Log: slog.New(slog.DiscardHandler),
	}
	if change != nil {
		change(&cfg)
	}
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// duplicates counts the Message-IDs the relay took more than once.
func duplicates(b *testBundle) (total, dup int) {
	seen := map[string]int{}
	for _, m := range b.smtp.Messages() {
		seen[m.Header.Get("Message-ID")]++
	}
	for _, n := range seen {
		total++
		if n > 1 {
			dup++
		}
	}
	return total, dup
}

// TestSlowBatchAndEventsNeverSendTwice is defect 1 of the fencing issue: a
// worker claims a batch of 16 welcome emails and sends them slowly (each
// takes ~150 ms, four connections), longer than the claims' time to live;
// meanwhile an event arrives for every customer, and its handler processes
// the customer at once. Each welcome must arrive once.
func TestSlowBatchAndEventsNeverSendTwice(t *testing.T) {
	b := setup(t)
	var ids []string
	// 16 customers of one shard: a lease holds the customers of one.
	for i := 0; len(ids) < 16; i++ {
		id := fmt.Sprintf("c%03d", i)
		if store.ShardOf(id) != 0 {
			continue
		}
		b.signUp(t, id, "Ada")
		ids = append(ids, id)
	}
	b.smtp.SetDelay(50 * time.Millisecond) // MAIL, RCPT and DATA: ~150 ms a message
	w := b.newWorker(t, func(c *WorkerConfig) { c.ClaimTTL = 200 * time.Millisecond })
	claimed, err := b.store.ClaimDue(b.ctx, b.clock.Now(), time.Minute, 100)
	if err != nil || len(claimed.IDs) != 16 {
		t.Fatalf("claimed %v, %v", claimed, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.ProcessLease(b.ctx, claimed); err != nil {
			t.Errorf("batch: %v", err)
		}
	})
	time.Sleep(250 * time.Millisecond) // the batch's claims have run out
	for _, id := range ids {
		wg.Go(func() {
			p, _ := json.Marshal(EventPayload{Customer: id, Event: lifecycle.Event{ID: "login-" + id, Name: "logged_in", At: b.clock.Now()}})
			if err := w.handleEvent(b.ctx, asynq.NewTask(TypeEvent, p)); err != nil {
				t.Errorf("event for %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	b.run(t) // whatever is still due goes out now
	total, dup := duplicates(b)
	if total != 16 || dup != 0 {
		t.Errorf("%d customers got their welcome, %d of them twice; want 16, 0", total, dup)
	}
}
