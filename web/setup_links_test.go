package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

const linksSecret = "0123456789abcdef0123456789abcdef"

// linksBundle is a retain web wired as `retain web` does, on the test Redis with
// the example campaigns, for the pages links in emails lead to.
type linksBundle struct {
	ctx    context.Context
	rdb    *redis.Client
	store  *store.Store
	engine *lifecycle.Engine
	signer *link.Signer
	srv    *Server
	// prefix is the store's key prefix.
	prefix string
	// now is the server's clock.
	now time.Time
}

// setupLinks starts the server at Monday 2 March 2026, 09:00 UTC, with
// customer c1 (Ada) signed up and enrolled in onboarding, and c2 (Bob) too.
func setupLinks(t *testing.T) *linksBundle {
	t.Helper()
	set, err := campaign.Load("../campaigns")
	if err != nil {
		t.Fatalf("example campaigns: %v", err)
	}
	rdb, _ := redistest.DB(t, redistest.WebDB)
	prefix := redistest.Prefix()
	st := store.New(rdb, prefix)
	eng := lifecycle.New(set)
	signer, err := link.NewSigner(linksSecret, "https://retain.acme.example")
	if err != nil {
		t.Fatal(err)
	}
	b := &linksBundle{ctx: t.Context(), rdb: rdb, store: st, engine: eng, signer: signer, prefix: prefix,
		now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	qc := queue.NewClient(rdb)
	b.srv, err = New(Config{APIToken: "test-token", Now: func() time.Time { return b.now }, Log: slog.New(slog.DiscardHandler)},
		Deps{Store: st, Engine: eng, Queue: qc, Signer: signer, Sender: set.Lifecycle.Sender})
	if err != nil {
		t.Fatal(err)
	}
	applier := &ingest.Applier{Store: st, Engine: eng, Now: func() time.Time { return b.now }}
	for id, name := range map[string]string{"c1": "Ada", "c2": "Bob"} {
		rec := &ingest.Record{ID: id, Email: id + "@example.org", FirstName: name,
			Events: []lifecycle.Event{{Name: "signed_up", At: b.now}}}
		if err := ingest.Check(rec, set.Lifecycle); err != nil {
			t.Fatal(err)
		}
		if _, err := applier.Record(b.ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// do sends a request to the server and returns the response, body read.
func (b *linksBundle) do(t *testing.T, method, target string, form url.Values) (*http.Response, string) {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequestWithContext(b.ctx, method, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequestWithContext(b.ctx, method, target, nil)
	}
	rec := httptest.NewRecorder()
	b.srv.ServeHTTP(rec, req)
	return rec.Result(), rec.Body.String()
}

// path is the path and query of a signed URL, as the server sees it.
func (b *linksBundle) path(t *testing.T, signed string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(signed, "https://retain.acme.example")
	if !ok {
		t.Fatalf("%s is not under the base URL", signed)
	}
	return rest
}

func (b *linksBundle) customer(t *testing.T, id string) *lifecycle.Customer {
	t.Helper()
	c, err := b.store.Customer(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// queued returns the events queued for the workers, by task ID.
func (b *linksBundle) queued(t *testing.T) map[string]queue.EventPayload {
	t.Helper()
	ins := asynq.NewInspectorFromRedisClient(b.rdb)
	tasks, err := ins.ListPendingTasks(queue.QueueEvents)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	out := make(map[string]queue.EventPayload)
	for _, task := range tasks {
		var p queue.EventPayload
		if err := json.Unmarshal(task.Payload, &p); err != nil {
			t.Fatal(err)
		}
		out[task.ID] = p
	}
	return out
}
