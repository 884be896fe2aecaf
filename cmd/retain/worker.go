package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

var workerCmd = &command{
	name:    "worker",
	summary: "Run the worker: apply queued events and send due emails over SMTP",
	usage:   "worker [--concurrency N] [--rate N] [--frequency-cap DURATION] [--campaigns DIR]",
	help: `The worker takes event:apply and send:due tasks from Redis, re-checks each due
step (subscription, suppression, audience, conditions, send window, frequency
cap), renders it, sends it through the SMTP relay and records it in the send
ledger, so a task run twice never sends twice. It refuses to start on campaigns
that do not lint. SIGTERM or Ctrl-C stops taking work and lets in-flight sends
finish (up to --shutdown-timeout).

Environment (required unless a default is shown):
  SMTP_URL             smtp://user:pass@relay:587 or smtps://relay:465
                       (?tls=mandatory|opportunistic|none, ?pool=N, ?max_per_conn=N)
  RETAIN_FROM          From address, e.g. "Acme <hello@acme.example>"
  RETAIN_BASE_URL      where retain web answers, for unsubscribe and preference links
  RETAIN_SECRET        at least 32 bytes; signs those links (openssl rand -hex 32)
  RETAIN_UNSUBSCRIBE_MAILTO  optional mailto: offered in List-Unsubscribe too
  RETAIN_BOUNCE_DOMAIN optional: give each email the Return-Path
                       bounces+<token>@DOMAIN, whose MX is retain inbound, so
                       bounces and complaints map back to customer, campaign
                       and step (default: the From address; the relay's
                       bounces then reach retain only through its webhook)
  RETAIN_DKIM_KEYS     optional: sign each email with DKIM, e.g.
                       acme.example:s2026:/etc/retain/dkim.pem[,DOMAIN:SELECTOR:KEYFILE...]
                       (PEM RSA or Ed25519; default: unsigned, the relay signs;
                       retain dkim check compares the keys with DNS)
  REDIS_URL            default redis://127.0.0.1:6379/0
  RETAIN_REDIS_PREFIX  default "retain:"
  RETAIN_CAMPAIGNS     default: the current directory`,
	run: runWorker,
}

func runWorker(c *command, e *env, args []string) int {
	fs := c.flags()
	concurrency := fs.Int("concurrency", queue.DefaultConcurrency, "tasks processed at once (each sends one email at a time)")
	rate := fs.Int("rate", 0, "global send rate in emails per second across all workers (0: unlimited)")
	freqCap := fs.String("frequency-cap", "0", "least time between two emails to one customer, across campaigns (`duration` such as 20h; 0: none)")
	shutdown := fs.Duration("shutdown-timeout", queue.DefaultShutdownTimeout, "how long SIGTERM waits for in-flight sends")
	trackClicks := fs.Bool("track-clicks", true, "turn links in emails into signed redirects through retain web that record a link_clicked event")
	claimTTL := fs.Duration("claim-ttl", queue.DefaultClaimTTL, "how long a send stays claimed from the start of its SMTP exchange when its worker dies mid-send (longer than the SMTP timeout)")
	waitReplicas := fs.Int("wait-replicas", -1, "make each claim and outcome in the send ledger reach this many Redis replicas (WAIT) before a send goes ahead; 0: no wait (default: 1 when the Redis primary has replicas connected at start, else 0)")
	waitAOF := fs.Bool("wait-aof", false, "also wait until the primary's append-only file has each claim and outcome on disk (WAITAOF, Redis 7.2 and later)")
	waitTimeout := fs.Duration("wait-timeout", time.Second, "how long --wait-replicas and --wait-aof wait; a claim that is not durable by then is not sent")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	capDur, err := parseOptionalDuration(*freqCap)
	if err != nil {
		problems = append(problems, "--frequency-cap: "+err.Error())
	}
	smtpCfg, err := mailer.ParseURL(e.getenv("SMTP_URL"))
	if e.getenv("SMTP_URL") == "" {
		problems = append(problems, "SMTP_URL is not set: give the relay, e.g. smtp://user:pass@smtp.example.com:587")
	} else if err != nil {
		problems = append(problems, "SMTP_URL: "+err.Error())
	}
	from, err := mail.ParseAddress(e.getenv("RETAIN_FROM"))
	if e.getenv("RETAIN_FROM") == "" {
		problems = append(problems, `RETAIN_FROM is not set: give the From address, e.g. "Acme <hello@acme.example>"`)
	} else if err != nil {
		problems = append(problems, fmt.Sprintf("RETAIN_FROM %q is not an email address: %v", e.getenv("RETAIN_FROM"), err))
	}
	var signer *link.Signer
	switch {
	case e.getenv("RETAIN_BASE_URL") == "" || e.getenv("RETAIN_SECRET") == "":
		if e.getenv("RETAIN_BASE_URL") == "" {
			problems = append(problems, "RETAIN_BASE_URL is not set: give the https address of retain web, for unsubscribe links")
		}
		if e.getenv("RETAIN_SECRET") == "" {
			problems = append(problems, fmt.Sprintf("RETAIN_SECRET is not set: give the secret that signs unsubscribe, NPS and click links, the same as retain web's (at least %d bytes: openssl rand -hex 32)", link.MinSecret))
		}
	default:
		if signer, err = linkSigner(e, false); err != nil {
			problems = append(problems, err.Error())
		}
	}
	mailto := e.getenv("RETAIN_UNSUBSCRIBE_MAILTO")
	if mailto != "" && !strings.HasPrefix(mailto, "mailto:") {
		problems = append(problems, fmt.Sprintf("RETAIN_UNSUBSCRIBE_MAILTO %q must be a mailto: URL such as mailto:unsubscribe@acme.example", mailto))
	}
	var dkimWarnings []string
	if spec := e.getenv(dkimEnv); spec != "" {
		keys, warnings, dkimProblems := dkimKeys(spec)
		smtpCfg.DKIM, dkimWarnings = keys, warnings
		problems = append(problems, dkimProblems...)
	}
	bounceDomain := strings.ToLower(strings.TrimSpace(e.getenv("RETAIN_BOUNCE_DOMAIN")))
	if bounceDomain != "" && !validDomain(bounceDomain) {
		problems = append(problems, fmt.Sprintf("RETAIN_BOUNCE_DOMAIN %q is not a domain name: give the domain whose MX is retain inbound, e.g. bounces.acme.example", bounceDomain))
	}
	if *concurrency < 1 {
		problems = append(problems, "--concurrency must be at least 1")
	}
	timeout := smtpCfg.Timeout
	if timeout == 0 {
		timeout = mailer.DefaultTimeout
	}
	if *claimTTL <= timeout {
		problems = append(problems, fmt.Sprintf("--claim-ttl %s must be longer than the SMTP timeout (%s): a claim must outlive the exchange it covers", *claimTTL, timeout))
	}
	if *waitReplicas < -1 || *waitTimeout <= 0 {
		problems = append(problems, "--wait-replicas must be 0 or more and --wait-timeout positive")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "retain worker: %s\n", p)
		}
		return exitUsage
	}
	if smtpCfg.PoolSize < *concurrency {
		smtpCfg.PoolSize = *concurrency // one connection per task in flight
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	ws.engine.FrequencyCap = capDur
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	if !checkRedis(ctx, c, e, log, ws.rdb) {
		return exitProblems
	}
	durable, note, err := durability(ctx, ws.rdb, *waitReplicas, *waitAOF, *waitTimeout)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain worker: %v\n", err)
		return exitProblems
	}
	if note != "" {
		log.Info(note)
	}
	if durable != nil && durable.Follow {
		err := durable.Watch(ctx, ws.rdb, time.Second, func(online int) {
			if online == 0 {
				log.Warn("no Redis replica is online: sends go on without waiting for one, so a failover now could send an email twice")
			} else {
				log.Info("Redis replicas online: each claim and outcome waits for one", "replicas", online)
			}
		})
		if err != nil {
			fmt.Fprintf(e.stderr, "retain worker: cannot read Redis INFO replication: %v\n", err)
			return exitProblems
		}
	}
	if warning, err := checkDurability(ctx, ws.rdb, durable); err != nil {
		fmt.Fprintf(e.stderr, "retain worker: %v\n", err)
		return exitUsage
	} else if warning != "" {
		log.Warn(warning)
	}
	recordDeploy(ctx, log, ws.store, ws.loaded.set)
	froms := []string{from.Address}
	for _, camp := range ws.engine.Set().Campaigns {
		if camp.From != nil {
			froms = append(froms, camp.From.Address)
		}
	}
	logDKIM(log, smtpCfg.DKIM, dkimWarnings, froms)
	pool := mailer.NewPool(smtpCfg)
	defer pool.Close()
	w, err := queue.NewWorker(queue.WorkerConfig{
		Store: ws.store, Engine: ws.engine, Renderer: ws.loaded.renderer, Sender: pool,
		Concurrency:       *concurrency,
		ShutdownTimeout:   *shutdown,
		From:              *from,
		Links:             queue.SignedLinks(signer, ws.engine.Set().Lifecycle.Links, time.Now),
		UnsubscribeMailto: mailto,
		Click:             clickTracking(signer, *trackClicks),
		Tokens:            bounce.NewTokens([]byte(e.getenv("RETAIN_SECRET"))),
		BounceDomain:      bounceDomain,
		Rate:              *rate,
		ClaimTTL:          *claimTTL,
		Durable:           durable,
		Log:               log,
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "retain worker: %v\n", err)
		return exitUsage
	}
	if err := w.Run(ctx); err != nil {
		fmt.Fprintf(e.stderr, "retain worker: %v\n", err)
		return exitProblems
	}
	if strings.HasPrefix(e.getenv("RETAIN_BASE_URL"), "http://") {
		log.Warn("RETAIN_BASE_URL is http: emails go out without RFC 8058 one-click unsubscribe (List-Unsubscribe-Post needs https); use https in production")
	}
	log.Info("worker started", "bounce_domain", cmpOr(bounceDomain, "(none: Return-Path is the From address)"), "concurrency", *concurrency, "smtp", smtpCfg.Redacted(), "redis", store.RedactURL(cmpOr(e.getenv("REDIS_URL"), defaultRedisURL)), "campaigns", len(ws.engine.Set().Campaigns))
	<-ctx.Done()
	log.Info("worker stopping: finishing in-flight sends")
	w.Close()
	log.Info("worker stopped")
	return exitOK
}

// logDKIM says which keys sign, by domain, selector and algorithm only, and warns
// for each From address (RETAIN_FROM, then the campaigns' from:) that gets no
// signature.
func logDKIM(log *slog.Logger, keys []mailer.DKIMKey, warnings []string, froms []string) {
	if len(keys) == 0 {
		return
	}
	for _, k := range keys {
		log.Info("DKIM key loaded", "domain", k.Domain, "selector", k.Selector, "algorithm", keyAlgorithm(k))
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	seen := map[string]bool{}
	for i, from := range froms {
		if seen[from] {
			continue
		}
		seen[from] = true
		if len(mailer.DKIMKeysFor(keys, from)) == 0 {
			what := "RETAIN_FROM"
			if i > 0 {
				what = "a campaign's from:"
			}
			log.Warn("no DKIM key for the domain of "+what+" (nor a parent domain): its emails go unsigned", "from", from)
		}
	}
}

// parseOptionalDuration parses a campaign-style duration (20h, 2d) where 0 means none.
func parseOptionalDuration(s string) (time.Duration, error) {
	return campaign.ParseDuration(s)
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// clickTracking is the worker's link rewriter when click tracking is on.
func clickTracking(s *link.Signer, on bool) func(customer, campaign, step, url string) (string, error) {
	if !on {
		return nil
	}
	return s.ClickURL
}

// validDomain reports whether d is a host name an address can have, with a dot
// (RETAIN_BOUNCE_DOMAIN).
func validDomain(d string) bool {
	return strings.Contains(d, ".") && ingest.CheckEmail("bounces@"+d) == nil
}
