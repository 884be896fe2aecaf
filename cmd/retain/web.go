package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/bounce/webhook"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
	"github.com/retainmail/retain/web"
)

var webCmd = &command{
	name:    "web",
	summary: "Run retain web: the events API, unsubscribe and NPS pages, click redirects, campaign preview and monitoring",
	usage:   "web [--health-max-overdue DURATION] [--campaigns DIR]",
	help: `retain web serves, on $PORT (default 8080):
  /api/events, /api/customers/{id}[/timeline]   JSON API, Authorization: Bearer $RETAIN_API_TOKEN
  /u/{token} /p/{token} /nps/{token} /c/{token}  what links in emails lead to (RFC 8058
                                                 one-click unsubscribe, preferences, NPS, clicks)
  /campaigns                                     campaign preview (HTTP Basic auth, password $RETAIN_API_TOKEN)
  /monitor/                                      the Asynq monitor (same auth)
  /monitor/failed-events                         events the workers could not apply (same auth)
  /webhooks/{ses,sendgrid,postmark,mailgun}     relay providers' bounce and complaint events, each
                                                 verified by its provider (docs/webhooks.md); on
                                                 for the providers configured below
  /metrics /healthz /readyz                      Prometheus metrics; the deployment's health
                                                 (Redis, overdue emails, scheduler ticks); Redis
                                                 only, for load balancers

When the campaigns do not lint, the preview pages show the problems and the API
answers 503 until they are fixed and retain web is restarted.

Environment (required unless a default is shown):
  RETAIN_API_TOKEN     bearer token of the API and password of the operators' pages
  RETAIN_HEALTH_MAX_OVERDUE  default 5m: see --health-max-overdue
  RETAIN_SECRET        the secret the worker signs links with (at least 32 bytes)
  RETAIN_BASE_URL      the public address of this server, as in the links
  PORT                 default 8080
  SMTP_URL, RETAIN_FROM  optional, as for the worker: the step preview's
                       "Send me this" sends a test email through the relay
  RETAIN_WEBHOOK_SES_TOPICS     SNS topic ARNs (comma-separated, or *) to take SES
                                bounces and complaints from; unset: off
  RETAIN_WEBHOOK_SENDGRID_KEY   SendGrid's signed event webhook verification key
  RETAIN_WEBHOOK_POSTMARK_AUTH  user:password of the Postmark webhook's Basic auth
  RETAIN_WEBHOOK_MAILGUN_KEY    Mailgun's HTTP webhook signing key
  REDIS_URL            default redis://127.0.0.1:6379/0
  RETAIN_REDIS_PREFIX  default "retain:"
  RETAIN_CAMPAIGNS     default: the current directory`,
	run: runWeb,
}

func runWeb(c *command, e *env, args []string) int {
	fs := c.flags()
	maxOverdueFlag := fs.String("health-max-overdue", "", "how long the oldest due email may wait, and the last scheduler tick be ago, before /healthz answers 503 degraded (a `duration` such as 90s or 5m; default $RETAIN_HEALTH_MAX_OVERDUE, else 5m)")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	maxOverdue, err := healthMaxOverdue(*maxOverdueFlag, e.getenv("RETAIN_HEALTH_MAX_OVERDUE"))
	if err != nil {
		problems = append(problems, err.Error())
	}
	token := e.getenv("RETAIN_API_TOKEN")
	if len(token) < 16 {
		problems = append(problems, "RETAIN_API_TOKEN must be set to at least 16 characters (openssl rand -hex 24)")
	}
	signer, err := linkSigner(e, false)
	if err != nil {
		problems = append(problems, err.Error())
	}
	hooks, err := webhook.FromEnv(e.getenv)
	if err != nil {
		problems = append(problems, err.Error())
	}
	testSend, pool, err := webTestSend(e)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if pool != nil {
		defer pool.Close()
	}
	port := cmpOr(e.getenv("PORT"), "8080")
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "retain web: %s\n", p)
		}
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir := cmpOr(*dirFlag, campaignsDir(e))
	d, err := resolveDirs(dir, e.getenv("RETAIN_TEMPLATES"))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	l, lintProblems, err := loadCampaigns(d)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain web: %v\n", err)
		return exitProblems
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	st, rdb, err := openStore(ctx, e)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain web: %v\n", err)
		return exitProblems
	}
	defer rdb.Close()
	if len(lintProblems) == 0 {
		countReports(st, e, l)
	} else {
		log.Warn("campaigns have lint problems: the API answers 503, the preview pages list them", "problems", len(lintProblems))
	}
	addr := net.JoinHostPort("", port)
	deps := webDeps(st, signer, l, lintProblems, nil)
	deps.TestSend = testSend
	if on := hooks.Enabled(); len(on) > 0 {
		if len(lintProblems) > 0 {
			// 503, not 404: the providers deliver the events again later.
			log.Warn("bounce webhooks answer 503 while the campaigns have lint problems", "providers", strings.Join(on, ","))
			deps.Webhooks = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "300")
				http.Error(w, "retain web's campaigns do not lint: the event is not applied; deliver it again later", http.StatusServiceUnavailable)
			})
		} else {
			hooks.Log = log
			ap := &bounce.Applier{Store: st, Engine: lifecycle.New(l.set), Tokens: bounce.NewTokens([]byte(e.getenv("RETAIN_SECRET"))), Log: log}
			deps.Webhooks = webhook.Handler(hooks, ap.Apply)
			log.Info("bounce webhooks on", "providers", strings.Join(on, ","), "path", "/webhooks/{provider}")
		}
	}
	srv, err := web.New(web.Config{APIToken: token, HealthMaxOverdue: maxOverdue, Log: log, Addr: addr}, deps)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain web: %v\n", err)
		return exitUsage
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(e.stderr, "retain web: %v\n", err)
		return exitProblems
	}
	log.Info("web started", "addr", addr, "base_url", baseURL(e), "redis", store.RedactURL(cmpOr(e.getenv("REDIS_URL"), defaultRedisURL)))
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		log.Error("web shutdown", "error", err)
	}
	log.Info("web stopped")
	return exitOK
}

// healthMaxOverdue is the --health-max-overdue flag, else
// $RETAIN_HEALTH_MAX_OVERDUE, else web.DefaultHealthMaxOverdue: a positive
// duration (90s, 5m, 1h).
func healthMaxOverdue(flag, env string) (time.Duration, error) {
	name, v := "--health-max-overdue", flag
	if v == "" {
		name, v = "RETAIN_HEALTH_MAX_OVERDUE", env
	}
	if v == "" {
		return web.DefaultHealthMaxOverdue, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q must be a positive duration such as 90s, 5m or 1h", name, v)
	}
	return d, nil
}

// webDeps is what retain web serves the campaigns of l with, on the store st,
// checking links with signer. When the campaigns lint (probs is empty) the
// API runs them, applying with the clock now (nil: time.Now); otherwise it
// answers 503 and the preview pages list probs.
func webDeps(st *store.Store, signer *link.Signer, l *loaded, probs campaign.Problems, now func() time.Time) web.Deps {
	d := web.Deps{
		Store: st, Queue: queue.NewClient(st.Redis()), Signer: signer,
		Sender: l.set.Lifecycle.Sender, Problems: probs, Reports: reportReader(st, l.set),
	}
	if len(probs) == 0 {
		d.Engine = lifecycle.New(l.set)
		d.Renderer = l.renderer
		d.Applier = &ingest.Applier{Store: st, Engine: d.Engine, Now: now, Cause: "api"}
	}
	return d
}

// reportReader reads the reports page's numbers from the counters the processes
// keep beside st's customers.
func reportReader(st *store.Store, set *campaign.Set) func(ctx context.Context, since time.Time, campaignID string) (*report.Report, error) {
	return func(ctx context.Context, since time.Time, campaignID string) (*report.Report, error) {
		return report.Read(ctx, st.Redis(), st.Prefix(), set, since, campaignID)
	}
}

// webTestSend is what the step preview's "Send me this" sends with: the
// relay of SMTP_URL (signing with RETAIN_DKIM_KEYS) from RETAIN_FROM, as
// retain send-test; nil when either is unset.
func webTestSend(e *env) (*web.TestSend, *mailer.Pool, error) {
	if e.getenv("SMTP_URL") == "" || e.getenv("RETAIN_FROM") == "" {
		return nil, nil, nil
	}
	cfg, err := mailer.ParseURL(e.getenv("SMTP_URL"))
	if err != nil {
		return nil, nil, err // it names SMTP_URL
	}
	from, err := mail.ParseAddress(e.getenv("RETAIN_FROM"))
	if err != nil {
		return nil, nil, fmt.Errorf("RETAIN_FROM %q is not an email address: %v", e.getenv("RETAIN_FROM"), err)
	}
	if spec := e.getenv(dkimEnv); spec != "" {
		keys, _, problems := dkimKeys(spec)
		if len(problems) > 0 {
			return nil, nil, errors.New(strings.Join(problems, "; "))
		}
		cfg.DKIM = keys
	}
	cfg.PoolSize = 1
	pool := mailer.NewPool(cfg)
	return &web.TestSend{Sender: pool, From: *from, UnsubscribeMailto: e.getenv("RETAIN_UNSUBSCRIBE_MAILTO")}, pool, nil
}
