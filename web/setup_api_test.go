package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

const testToken = "test-token-0123456789"

type testBundle struct {
	ctx     context.Context
	rdb     *redis.Client
	store   *store.Store
	applier *ingest.Applier
	// now is the server's clock: Monday 2 March 2026, 10:00 in Amsterdam.
	now  time.Time
	cfg  Config
	deps Deps
	// url is the test server's address.
	url string
}

// setup starts retain web as `retain web` wires it — store, engine, renderer and
// queue on the test Redis — with the campaigns of testdata/campaigns (typed
// attributes, an onboarding campaign that welcomes at once) and ../templates.
func setup(t *testing.T) *testBundle {
	t.Helper()
	set, err := campaign.Load(filepath.Join("testdata", "campaigns"))
	if err != nil {
		t.Fatalf("test campaigns: %v", err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	rdb, _ := redistest.DB(t, redistest.WebDB)
	st := store.New(rdb, redistest.Prefix())
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	eng := lifecycle.New(set)
	applier := &ingest.Applier{Store: st, Engine: eng, Now: clock}
	b := &testBundle{ctx: t.Context(), rdb: rdb, store: st, applier: applier, now: now,
		cfg:  Config{APIToken: testToken, Now: clock, Log: slog.New(slog.DiscardHandler)},
		deps: Deps{Store: st, Engine: eng, Renderer: r, Queue: queue.NewClient(rdb), Applier: applier}}
	b.url = b.start(t, b.cfg, b.deps)
	return b
}

// start serves a server made of cfg and d and returns its address.
func (b *testBundle) start(t *testing.T, cfg Config, d Deps) string {
	t.Helper()
	s, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

// option changes a request before it is sent.
type option func(*http.Request)

func withToken(tok string) option {
	return func(r *http.Request) {
		if tok == "" {
			r.Header.Del("Authorization")
			return
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
}

func withContentType(ct string) option {
	return func(r *http.Request) {
		if ct == "" {
			r.Header.Del("Content-Type")
			return
		}
		r.Header.Set("Content-Type", ct)
	}
}

// chunked sends the body without a Content-Length.
func chunked(r *http.Request) {
	r.ContentLength = -1
	r.Body = io.NopCloser(r.Body)
}

// do sends a request to the test server with the API token and, when there is a
// body, Content-Type application/json; it returns the response and its body.
func (b *testBundle) do(t *testing.T, method, path, body string, opts ...option) (*http.Response, string) {
	t.Helper()
	return b.doAt(t, b.url, method, path, body, opts...)
}

func (b *testBundle) doAt(t *testing.T, base, method, path, body string, opts ...option) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(out)
}

// gotError is an error answer as tests compare it.
type gotError struct {
	Status int
	Field  string
	Error  string
}

// errorOf decodes an error answer.
func errorOf(t *testing.T, resp *http.Response, body string) gotError {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("error answer has Content-Type %q", ct)
	}
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error answer %q: %v", body, err)
	}
	return gotError{resp.StatusCode, e.Field, e.Error}
}

// pending returns the payloads of the event tasks waiting in the queue.
func (b *testBundle) pending(t *testing.T) []queue.EventPayload {
	t.Helper()
	tasks, err := asynq.NewInspectorFromRedisClient(b.rdb).ListPendingTasks(queue.QueueEvents, asynq.PageSize(10*MaxBatch))
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []queue.EventPayload
	for _, task := range tasks {
		if task.Type != queue.TypeEvent {
			t.Errorf("task of type %q in the events queue", task.Type)
		}
		var p queue.EventPayload
		if err := json.Unmarshal(task.Payload, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// putCustomer creates or updates a customer through the API.
func (b *testBundle) putCustomer(t *testing.T, id, body string) {
	t.Helper()
	resp, got := b.do(t, "PUT", "/api/customers/"+id, body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %d %s", id, resp.StatusCode, got)
	}
}
