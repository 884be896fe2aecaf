// Package web is retain web: the process that customers' clicks and the product's
// events reach. It serves the JSON API behind a bearer token (events, customers,
// timelines), the pages links in emails lead to (one-click unsubscribe, email
// preferences, NPS answers, tracked clicks), the campaign preview pages, the
// people pages (people.go: a customer and every email it was sent), and the
// operators' endpoints (/healthz, /metrics, the Asynq monitor).
//
// It decides nothing itself: events are queued for the workers (package queue),
// customers are read and written through package store, timelines come from
// package plan, and links are verified by package link.
package web

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// Config configures the server: the process `retain web` runs, and `retain
// dev` beside its other parts. Zero fields take the defaults noted.
type Config struct {
	// APIToken guards /api/ and the operators' pages (RETAIN_API_TOKEN); required.
	APIToken string
	// MaxBody is the largest request body accepted, in bytes; default 1 MiB.
	MaxBody int64
	// HealthMaxOverdue is how long the oldest due email may wait, and how long
	// ago the last scheduler tick may be, before /healthz reports the
	// deployment degraded (RETAIN_HEALTH_MAX_OVERDUE); default 5 minutes.
	HealthMaxOverdue time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log; default slog.Default().
	Log *slog.Logger
	// Addr is where Run listens (":" + PORT); default ":8080".
	Addr string
	// ShutdownTimeout is how long Close lets the requests in flight finish;
	// default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// DefaultShutdownTimeout is Config.ShutdownTimeout's default.
const DefaultShutdownTimeout = 10 * time.Second

// ReadHeaderTimeout is how long Run waits for a request's headers: a client
// that sends them slowly does not hold a connection open.
const ReadHeaderTimeout = 10 * time.Second

// Deps are the parts of retain the server works with.
type Deps struct {
	// Store holds the customers. The operators' endpoints read the queue,
	// the counters and the failed events beside them, on the store's Redis
	// under its key prefix. Without it they answer that Redis is missing.
	Store    *store.Store
	Engine   *lifecycle.Engine
	Renderer *render.Renderer
	Queue    *queue.Client
	Signer   *link.Signer
	// Applier writes customers (PUT /api/customers/{id}).
	Applier *ingest.Applier
	// Sender is shown on the pages customers see.
	Sender campaign.Sender
	// Problems are what the campaigns' lint found when they were loaded; the
	// preview pages show them. Engine and Renderer are nil or partial then.
	Problems campaign.Problems
	// ProblemsNote, when set, replaces the advice shown under Problems. retain
	// dev sets it when it refused a change: Problems are then the change's, and
	// Engine and Renderer are the last version that linted, still running.
	ProblemsNote string
	// Reports reads the report the reports page shows: the period from since to
	// now, narrowed to one campaign's funnel when campaignID is not empty. When
	// nil, the page says reports are not available.
	Reports func(ctx context.Context, since time.Time, campaignID string) (*report.Report, error)
	// Webhooks, when set, serves /webhooks/{provider}: the relay providers'
	// bounce and complaint events (bounce/webhook.Handler).
	Webhooks http.Handler
	// TestSend, when set, lets the step preview send the step to an
	// address (SMTP_URL and RETAIN_FROM given to retain web).
	TestSend *TestSend
}

// Server is retain web. It is an http.Handler; Run serves it on Config.Addr.
type Server struct {
	cfg    Config
	d      Deps
	rdb    redis.UniversalClient // the store's, nil without one
	prefix string
	mux    *http.ServeMux
	http   *http.Server // set by Run
}

// New returns the server.
func New(cfg Config, d Deps) (*Server, error) {
	if cfg.APIToken == "" {
		return nil, errors.New("web: APIToken is required (RETAIN_API_TOKEN)")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.HealthMaxOverdue <= 0 {
		cfg.HealthMaxOverdue = DefaultHealthMaxOverdue
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Addr = cmp.Or(cfg.Addr, ":8080")
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	s := &Server{cfg: cfg, d: d, mux: http.NewServeMux()}
	if d.Store != nil {
		s.rdb, s.prefix = d.Store.Redis(), d.Store.Prefix()
	}
	s.routes()
	return s, nil
}

// Run listens on Config.Addr and serves in the background; the server runs
// until Close. A port that cannot be listened on is its error.
func (s *Server) Run(ctx context.Context) error {
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: ReadHeaderTimeout}
	go func() {
		if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Log.Error("web stopped serving", "error", err)
		}
	}()
	return nil
}

// Close stops listening and waits up to Config.ShutdownTimeout for the
// requests in flight.
func (s *Server) Close() error {
	if s.http == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.http.Shutdown(ctx)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// requireToken lets a request through when it carries the API token as a bearer
// token, compared in constant time; otherwise it answers 401.
func (s *Server) requireToken(next http.Handler) http.Handler {
	want := []byte(s.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="retain"`)
			writeError(w, http.StatusUnauthorized, "", "a valid bearer token is required: Authorization: Bearer $RETAIN_API_TOKEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is the body of every error the JSON API returns.
type apiError struct {
	Error string `json:"error"`
	// Field names the offending field of the request, when one is at fault.
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, field, reason string) {
	writeJSON(w, status, apiError{Error: reason, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
