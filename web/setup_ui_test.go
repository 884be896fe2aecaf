package web

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// uiToken is the API token of the preview and operations tests.
const uiToken = "ui-test-token-0123456789"

// uiBundle is retain web as `retain web` wires it, on the test Redis, serving the
// campaigns of one test folder.
type uiBundle struct {
	srv      *Server
	ts       *httptest.Server
	rdb      *redis.Client
	prefix   string
	store    *store.Store
	applier  *ingest.Applier
	signer   *link.Signer
	problems campaign.Problems
	now      time.Time
}

// setupUI loads and compiles the campaigns in dir as loadCampaigns does (keeping
// the problems, and what loaded despite them), and starts the server.
func setupUI(t *testing.T, dir string) *uiBundle {
	t.Helper()
	var probs campaign.Problems
	set, err := campaign.Load(dir)
	if err != nil && !errors.As(err, &probs) {
		t.Fatal(err)
	}
	probs = append(campaign.Problems(nil), probs...)
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	var rprobs campaign.Problems
	if err != nil && !errors.As(err, &rprobs) {
		t.Fatal(err)
	}
	probs = append(probs, rprobs...).Sort()

	rdb, _ := redistest.DB(t, redistest.WebDB)
	b := &uiBundle{rdb: rdb, prefix: redistest.Prefix(), problems: probs,
		now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	eng := lifecycle.New(set)
	b.store = store.New(rdb, b.prefix)
	b.applier = &ingest.Applier{Store: b.store, Engine: eng, Now: func() time.Time { return b.now }}
	b.signer, err = link.NewSigner("0123456789abcdef0123456789abcdef", "http://retain.test")
	if err != nil {
		t.Fatal(err)
	}
	b.srv, err = New(Config{APIToken: uiToken, Now: func() time.Time { return b.now }, Log: slog.New(slog.DiscardHandler)}, Deps{
		Store: b.store, Engine: eng, Renderer: r, Queue: queue.NewClient(rdb),
		Signer: b.signer, Applier: b.applier, Sender: set.Lifecycle.Sender,
		Problems: probs,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.ts = httptest.NewServer(b.srv)
	t.Cleanup(b.ts.Close)
	return b
}

// signUp stores a customer who signed up now, as an import would.
func (b *uiBundle) signUp(t *testing.T, rec *ingest.Record) {
	t.Helper()
	rec.Events = []lifecycle.Event{{Name: "signed_up", At: b.now}}
	if err := ingest.Check(rec, b.applier.Engine.Set().Lifecycle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.applier.Record(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
}

// uiAuth says how a test request authenticates.
type uiAuth func(*http.Request)

var (
	noAuth     uiAuth = func(*http.Request) {}
	basicAuth  uiAuth = func(r *http.Request) { r.SetBasicAuth("marketing", uiToken) }
	wrongBasic uiAuth = func(r *http.Request) { r.SetBasicAuth("marketing", uiToken+"x") }
	bearerAuth uiAuth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+uiToken) }
)

// get requests path and returns the response and its body.
func (b *uiBundle) get(t *testing.T, path string, auth uiAuth) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth(req)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// wantContains fails the test for each of wants that body lacks.
func wantContains(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
	if t.Failed() {
		t.Logf("%s:\n%s", what, body)
	}
}

// newTestServer serves h until the test ends.
func newTestServer(t *testing.T, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}
