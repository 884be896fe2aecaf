package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/inbox"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
	"github.com/retainmail/retain/web"
)

// processStart is when the process started, for the "ready in" line of retain dev.
var processStart = time.Now()

var devCmd = &command{
	name:    "dev",
	summary: "Run web, worker, scheduler, an in-memory Redis and an SMTP inbox in one process, for development",
	usage:   "dev [--port 8080] [--speed N] [--demo=false] [--campaigns DIR]",
	help: `retain dev runs everything on this machine in one process: retain web, a worker
and the scheduler, Redis in memory (unless REDIS_URL is set), and an SMTP server
whose inbox page keeps every email sent. It loads campaigns/ and templates/,
seeds demo customers at different stages, and prints the addresses to open.

--speed N runs the campaigns' clock N times faster than real time: with
--speed 43200 a month of onboarding plays in a minute. Retries after SMTP
failures still wait in real time.

It watches campaigns/ and templates/: a change that lints is loaded at once; one
that does not is shown (here and on the web pages) while the last version that
linted keeps running. Ctrl-C or SIGTERM stops everything.

Each run has a fresh RETAIN_SECRET and API token (printed) unless they are set.
Environment: REDIS_URL (default: in memory), RETAIN_REDIS_PREFIX, RETAIN_FROM
(default "<sender name> <hello@example.com>"), RETAIN_CAMPAIGNS, RETAIN_TEMPLATES,
RETAIN_SECRET, RETAIN_API_TOKEN, PORT (default 8080).`,
	run: runDev,
}

func runDev(c *command, e *env, args []string) int {
	fset := c.flags()
	port := fset.String("port", cmpOr(e.getenv("PORT"), "8080"), "HTTP `port` on 127.0.0.1 (0: a free one)")
	speed := fset.Float64("speed", 1, "run the campaigns' clock `N` times faster than real time (43200: a month per minute)")
	demo := fset.Bool("demo", true, "seed demo customers at different stages")
	dirFlag := fset.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fset, e, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(e, "unexpected argument %q", pos[0])
	}
	if *speed <= 0 {
		return c.usageError(e, "--speed must be positive (1 is real time)")
	}
	if _, err := strconv.ParseUint(*port, 10, 16); err != nil {
		return c.usageError(e, "--port %q is not a port number", *port)
	}
	d, err := resolveDirs(cmpOr(*dirFlag, campaignsDir(e)), e.getenv("RETAIN_TEMPLATES"))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	seen := fingerprint(d) // before loading: a change made meanwhile is reloaded
	l, code := loadCheckedDirs(c, e, d)
	if l == nil {
		return code
	}

	a, err := startDev(ctx, e, d, *port, devClock{start: time.Now(), speed: *speed})
	if err != nil {
		fmt.Fprintf(e.stderr, "retain dev: %v\n", err)
		return exitProblems
	}
	defer a.close()
	if err := a.load(l); err != nil {
		fmt.Fprintf(e.stderr, "retain dev: %v\n", err)
		return exitProblems
	}
	// Once for the worker and scheduler of this process, as at their start;
	// reloads are not recorded.
	recordDeploy(ctx, a.log, a.store, l.set)
	a.printStart(d, *demo)
	fmt.Fprintf(e.stdout, "\nready in %s — watching %s and %s for changes; Ctrl-C stops\n",
		time.Since(processStart).Round(time.Millisecond), d.campaigns, d.templates)

	errc := make(chan error, 1)
	go func() { errc <- a.http.Serve(a.listener) }()
	go a.watch(ctx, d, seen, 500*time.Millisecond)
	select {
	case err := <-errc:
		fmt.Fprintf(e.stderr, "retain dev: %v\n", err)
		return exitProblems
	case <-ctx.Done():
	}
	fmt.Fprintln(e.stdout, "stopping")
	return exitOK
}

// devClock is retain dev's clock: real time since start, times speed.
type devClock struct {
	start time.Time
	speed float64
}

// Now is the campaigns' time.
func (c devClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.speed))
}

// dev is a running retain dev: the parts that live as long as the process, and
// the generation built from the last campaigns that linted.
type dev struct {
	e        *env
	log      *slog.Logger
	clock    devClock
	rdb      redis.UniversalClient
	mem      *miniredis.Miniredis // nil with REDIS_URL
	store    *store.Store
	signer   *link.Signer
	tokens   *bounce.Tokens // sign the Message-IDs, as the worker's
	token    string
	base     string
	inbox    *inbox.Inbox
	pool     *mailer.Pool
	listener net.Listener
	http     *http.Server
	stopTick context.CancelFunc

	mu     sync.Mutex // held while cur is replaced or stopped
	cur    *devGen
	web    atomic.Pointer[http.Handler] // the web server of cur, with the problems of a refused change
	notice atomic.Pointer[[]string]     // the refused change's problems, for the inbox pages
}

// devGen is what one version of the campaigns runs: worker and scheduler, and
// the applier that seeds the demo customers.
type devGen struct {
	loaded  *loaded
	applier *ingest.Applier
	worker  *queue.Worker
	sched   *queue.Scheduler
}

func (g *devGen) stop() {
	g.worker.Close()
	g.sched.Close()
}

// startDev starts what outlives a reload: Redis, the SMTP inbox, the mailer pool
// and the HTTP listener.
func startDev(ctx context.Context, e *env, d dirs, port string, clock devClock) (a *dev, err error) {
	a = &dev{e: e, log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), clock: clock}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	tickCtx, cancel := context.WithCancel(context.Background())
	a.stopTick = cancel
	if e.getenv("REDIS_URL") != "" {
		if a.store, a.rdb, err = openStore(ctx, e); err != nil {
			return a, err
		}
	} else {
		if a.mem, err = miniredis.Run(); err != nil {
			return a, fmt.Errorf("start in-memory Redis: %w", err)
		}
		a.rdb = redis.NewClient(&redis.Options{Addr: a.mem.Addr()})
		a.store = store.New(a.rdb, e.getenv("RETAIN_REDIS_PREFIX"))
		go tickExpiry(tickCtx, a.mem, 100*time.Millisecond)
	}
	secret := e.getenv("RETAIN_SECRET")
	if secret == "" {
		secret = randomHex(32)
	}
	a.token = e.getenv("RETAIN_API_TOKEN")
	if a.token == "" {
		a.token = randomHex(24)
	}
	if a.listener, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", port)); err != nil {
		return a, fmt.Errorf("listen on port %s: %w (choose another with --port, or --port 0 for a free one)", port, err)
	}
	a.base = "http://localhost:" + strconv.Itoa(a.listener.Addr().(*net.TCPAddr).Port)
	a.tokens = bounce.NewTokens([]byte(secret))
	if a.signer, err = link.NewSigner(secret, a.base); err != nil {
		return a, err
	}
	a.inbox, err = inbox.Start(inbox.Config{Now: clock.Now, Log: a.log, Notice: func() []string {
		if n := a.notice.Load(); n != nil {
			return *n
		}
		return nil
	}})
	if err != nil {
		return a, err
	}
	smtpCfg, err := mailer.ParseURL(a.inbox.URL())
	if err != nil {
		return a, err
	}
	smtpCfg.PoolSize = max(smtpCfg.PoolSize, queue.DefaultConcurrency) // as retain worker: one connection per task in flight
	a.pool = mailer.NewPool(smtpCfg)
	// Not retain web's own listener (web.Server.Run): the inbox is served
	// beside it, and a reload swaps the web server for one on the new
	// campaigns. Its timeouts are retain web's.
	mux := http.NewServeMux()
	mux.Handle("/inbox/", a.inbox)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*a.web.Load()).ServeHTTP(w, r) }))
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: web.ReadHeaderTimeout}
	return a, nil
}

// tickExpiry moves miniredis's clock with the real one, so keys with a TTL
// (ledger claims, rate counters, locks) expire: miniredis only expires keys when
// told time has passed.
func tickExpiry(ctx context.Context, m *miniredis.Miniredis, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.FastForward(now.Sub(last))
			last = now
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// close stops everything, the generation first so in-flight sends finish.
func (a *dev) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil {
		a.cur.stop()
		a.cur = nil
	}
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), web.DefaultShutdownTimeout)
		a.http.Shutdown(ctx)
		cancel()
	} else if a.listener != nil {
		a.listener.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.inbox != nil {
		a.inbox.Close()
	}
	if a.rdb != nil {
		a.rdb.Close()
	}
	if a.stopTick != nil {
		a.stopTick()
	}
	if a.mem != nil {
		a.mem.Close()
	}
}

// load starts a generation on l, which lints clean, and stops the one before.
// Worker, scheduler and web are configured as retain worker, retain scheduler
// and retain web are by default, but for what makes dev what it is: the
// campaigns' clock (--speed), the terminal's log, and the inbox as relay.
func (a *dev) load(l *loaded) error {
	from, err := fromAddress(a.e, l.set.Lifecycle)
	if err != nil {
		return err
	}
	if a.store.Also == nil {
		// Set once, before anything writes: a reload keeps the first
		// lifecycle's order counter for the report.
		countReports(a.store, a.e, l)
	}
	eng := lifecycle.New(l.set)
	// No Durable (retain worker's --wait-replicas): the in-memory Redis has no
	// replica to fail over to.
	w, err := queue.NewWorker(queue.WorkerConfig{
		Store: a.store, Engine: eng, Renderer: l.renderer, Sender: a.pool,
		From:   *from,
		Links:  queue.SignedLinks(a.signer, l.set.Lifecycle.Links, a.clock.Now),
		Tokens: a.tokens,
		Click:  clickTracking(a.signer, true),
		Now:    a.clock.Now,
		Log:    slog.New(newDevSends(a.e.stdout, a.clock.Now, a.log.Handler())),
	})
	if err != nil {
		return err
	}
	// A tick every 200 ms, not every second: at --speed 43200 a second is
	// half a day of campaign time, and the developer is watching the inbox.
	// Leases are Redis TTLs, in real time at any speed (the in-memory Redis
	// is fast-forwarded by the wall clock), so they keep their default.
	sched, err := queue.NewScheduler(queue.SchedulerConfig{Store: a.store, Engine: eng, Interval: 200 * time.Millisecond, Now: a.clock.Now, Log: a.log})
	if err != nil {
		return err
	}
	h, err := a.webHandler(l, nil)
	if err != nil {
		return err
	}
	if a.cur != nil {
		a.cur.stop()
		a.cur = nil
	}
	if err := w.Run(context.Background()); err != nil {
		return err
	}
	if err := sched.Run(context.Background()); err != nil {
		w.Close()
		return err
	}
	a.cur = &devGen{loaded: l, applier: &ingest.Applier{Store: a.store, Engine: eng, Now: a.clock.Now}, worker: w, sched: sched}
	a.web.Store(&h)
	a.notice.Store(nil)
	return nil
}

// webHandler is retain web on the campaigns of l, showing probs (a change that
// was refused) on its pages.
func (a *dev) webHandler(l *loaded, probs campaign.Problems) (http.Handler, error) {
	d := webDeps(a.store, a.signer, l, nil, a.clock.Now)
	if from, err := fromAddress(a.e, l.set.Lifecycle); err == nil {
		// "Send me this" lands in the inbox, like every email of dev.
		d.TestSend = &web.TestSend{Sender: a.pool, From: *from}
	}
	// l linted and keeps running; probs are those of a change dev refused.
	d.Problems = probs
	d.ProblemsNote = "retain dev did not load this change: the last version of the campaigns that linted keeps running until these are fixed."
	// /healthz judges in campaign time: scale its limit as the clock runs.
	maxOverdue := time.Duration(float64(web.DefaultHealthMaxOverdue) * max(a.clock.speed, 1))
	return web.New(web.Config{APIToken: a.token, Log: a.log, Now: a.clock.Now, HealthMaxOverdue: maxOverdue}, d)
}

// refuse keeps the running generation and shows probs, the problems of a change.
func (a *dev) refuse(probs campaign.Problems) {
	lines := make([]string, 0, len(probs)+1)
	for _, p := range probs {
		lines = append(lines, p.String())
	}
	lines = append(lines, "The last version of the campaigns that linted keeps running until these are fixed.")
	a.notice.Store(&lines)
	g := a.cur
	h, err := a.webHandler(g.loaded, probs)
	if err != nil {
		a.log.Error("dev: web server", "error", err)
	} else {
		a.web.Store(&h)
	}
	// Said once the pages show it, so what the terminal says is what they show.
	fmt.Fprintf(a.e.stdout, "not reloaded: the change has %s; the last version that linted keeps running\n", plural(len(probs), "problem"))
	for _, p := range probs {
		fmt.Fprintf(a.e.stdout, "  %s\n", p)
	}
}

// watch polls the campaigns and templates folders every interval and reloads on
// a change; last is the fingerprint of what is loaded.
func (a *dev) watch(ctx context.Context, d dirs, last string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := fingerprint(d)
		if fp == last {
			continue
		}
		last = fp
		a.reload(d)
	}
}

func (a *dev) reload(d dirs) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil {
		return // stopping
	}
	l, probs, err := loadCampaigns(d)
	switch {
	case err != nil:
		a.refuse(campaign.Problems{{Path: d.campaigns, Msg: err.Error()}})
	case len(probs) > 0:
		a.refuse(probs)
	default:
		if err := a.load(l); err != nil {
			a.refuse(campaign.Problems{{Path: d.campaigns, Msg: err.Error()}})
			return
		}
		fmt.Fprintf(a.e.stdout, "reloaded: %s\n", plural(len(l.set.Campaigns), "campaign"))
	}
}

// fingerprint sums up the names, sizes and modification times of the files under
// d: it changes when a file is written, added, removed or renamed.
func fingerprint(d dirs) string {
	var b strings.Builder
	for _, root := range []string{d.campaigns, d.templates} {
		filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			if info, err := de.Info(); err == nil {
				fmt.Fprintf(&b, "%s\x00%d\x00%d\n", path, info.Size(), info.ModTime().UnixNano())
			}
			return nil
		})
	}
	return b.String()
}

// printStart seeds the demo customers when asked and prints what to open.
func (a *dev) printStart(d dirs, demo bool) {
	w := a.e.stdout
	fmt.Fprintf(w, "retain dev: %s from %s, layouts from %s\n", plural(len(a.cur.loaded.set.Campaigns), "campaign"), d.campaigns, d.templates)
	if a.mem != nil {
		fmt.Fprintln(w, "Redis: in memory (set REDIS_URL to use a real one); nothing is kept after Ctrl-C")
	} else {
		fmt.Fprintf(w, "Redis: %s\n", store.RedactURL(a.e.getenv("REDIS_URL")))
	}
	fmt.Fprintf(w, "SMTP: every email goes to the inbox at %s, none leaves this machine\n", a.inbox.Addr())
	if a.clock.speed == 1 {
		fmt.Fprintln(w, "Time: real time (--speed 43200 plays a month in a minute)")
	} else {
		fmt.Fprintf(w, "Time: --speed %s: a real minute is %s of campaign time\n",
			strconv.FormatFloat(a.clock.speed, 'f', -1, 64), humanDuration(time.Duration(float64(time.Minute)*a.clock.speed)))
	}
	if demo {
		fmt.Fprintln(w, "\nDemo customers:")
		for _, line := range seedDemo(context.Background(), a.cur.applier, a.cur.loaded.set.Lifecycle, a.clock.Now()) {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	fmt.Fprintf(w, `
Open:
  inbox      %[1]s/inbox/
  campaigns  %[1]s/campaigns   (any user name, password: the API token)
  monitor    %[1]s/monitor/    (same)
  API        %[1]s/api/events  POST, Authorization: Bearer <API token> (docs/api.md)
API token: %[2]s
`, a.base, a.token)
}

// humanDuration writes d in the largest whole unit that fits: 30 days, 12 hours.
func humanDuration(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d >= 2*day:
		return fmt.Sprintf("%.3g days", float64(d)/float64(day))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.3g hours", d.Hours())
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.3g minutes", d.Minutes())
	}
	return d.String()
}

// demoCustomer is one customer retain dev seeds, with what to expect from it.
type demoCustomer struct {
	rec    ingest.Record
	then   string // a stage to move the customer to after its events
	expect string
}

// demoCustomers are the customers retain dev seeds at now: a new sign-up (in
// Dutch), one who has made a project already, an active customer, one at risk
// and a first-time buyer.
func demoCustomers(now time.Time) []demoCustomer {
	day := 24 * time.Hour
	return []demoCustomer{
		{rec: ingest.Record{ID: "demo-sanne", Email: "sanne.devries@example.com", FirstName: "Sanne", Name: "Sanne de Vries", Locale: "nl", Timezone: "Europe/Amsterdam",
			Attributes: map[string]any{"plan": "team", "company": "Tulp Design"},
			Events:     []lifecycle.Event{{Name: "signed_up", At: now}}},
			expect: "signed up just now: the onboarding welcome (in Dutch) arrives at once"},
		{rec: ingest.Record{ID: "demo-jonas", Email: "jonas.berg@example.com", FirstName: "Jonas", Name: "Jonas Berg", Locale: "en", Timezone: "Europe/Stockholm",
			Attributes: map[string]any{"plan": "business", "company": "Fjord Analytics"},
			Events:     []lifecycle.Event{{Name: "signed_up", At: now}, {Name: "project_created", At: now.Add(time.Minute)}}},
			expect: "signed up and made a project: onboarding skips the first-project nudge; steps for customers with a project (only_if: customer.projects >= 1) reach him"},
		{rec: ingest.Record{ID: "demo-maya", Email: "maya.patel@example.com", FirstName: "Maya", Name: "Maya Patel", Locale: "en", Timezone: "Europe/London",
			Stage: "active", Attributes: map[string]any{"plan": "business", "company": "Northwind", "account_manager": "Lotte"},
			Events: []lifecycle.Event{{Name: "project_created", At: now}}},
			expect: "active: continuous education and the NPS survey, in their send windows"},
		{rec: ingest.Record{ID: "demo-tom", Email: "tom.becker@example.com", FirstName: "Tom", Name: "Tom Becker", Locale: "en", Timezone: "Europe/Berlin",
			Stage: "active", Attributes: map[string]any{"plan": "free", "company": "Becker & Co"},
			Events: []lifecycle.Event{{Name: "project_created", At: now.Add(-25 * day)}}},
			then:   "at_risk",
			expect: "quiet for 25 days, at risk: the win-back sequence"},
		{rec: ingest.Record{ID: "demo-lucas", Email: "lucas.janssen@example.com", FirstName: "Lucas", Name: "Lucas Janssen", Locale: "en", Timezone: "Europe/Amsterdam",
			Attributes: map[string]any{"last_product": "Desk planner 2026"},
			Events:     []lifecycle.Event{{Name: "order_placed", At: now, Data: map[string]any{"product": "Desk planner 2026"}}}},
			expect: "first order just now: the second-order nudges"},
	}
}

// seedDemo applies the demo customers and describes each, or why it was skipped
// (campaigns without the stages or attributes it uses).
func seedDemo(ctx context.Context, ap *ingest.Applier, lc *campaign.Lifecycle, now time.Time) []string {
	var out []string
	for _, dc := range demoCustomers(now) {
		rec := dc.rec
		who := fmt.Sprintf("%-26s %-15s", rec.Email, rec.Name)
		for k := range rec.Attributes {
			if _, ok := lc.Attributes[k]; !ok {
				delete(rec.Attributes, k) // the lifecycle does not declare it
			}
		}
		err := seedOne(ctx, ap, lc, &rec, dc.then)
		if err != nil {
			out = append(out, fmt.Sprintf("%s skipped: %v", who, err))
			continue
		}
		stage := "?"
		if c, err := ap.Store.Customer(ctx, rec.ID); err == nil && c != nil {
			stage = c.Stage
		}
		out = append(out, fmt.Sprintf("%s %-10s %-2s  %s", who, stage, cmpOr(rec.Locale, lc.Locale), dc.expect))
	}
	return out
}

func seedOne(ctx context.Context, ap *ingest.Applier, lc *campaign.Lifecycle, rec *ingest.Record, then string) error {
	for _, s := range []string{rec.Stage, then} {
		if s != "" && !lc.HasStage(s) {
			return fmt.Errorf("the lifecycle has no stage %q", s)
		}
	}
	if err := ingest.Check(rec, lc); err != nil {
		return err
	}
	if _, err := ap.Record(ctx, rec); err != nil {
		return err
	}
	if then != "" {
		if _, err := ap.MoveStage(ctx, rec.ID, then, "demo"); err != nil {
			return err
		}
	}
	return nil
}
