package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// Sender sends one message once fence allowed it; *mailer.Pool is the real
// one (see mailer.Pool.SendFenced).
type Sender interface {
	SendFenced(ctx context.Context, m *mailer.Message, fence func(context.Context) error) error
}

// WorkerConfig configures a Worker: the process `retain worker` runs, and
// `retain dev` beside its other parts. Zero fields take the defaults noted.
type WorkerConfig struct {
	// Store holds the customers; required. The worker keeps its send ledger,
	// rate limit and counters beside them, under the store's Redis client and
	// key prefix, and takes its tasks from the Asynq queues on that Redis.
	Store *store.Store
	// Engine decides what is due; required.
	Engine *lifecycle.Engine
	// Renderer renders the emails; required.
	Renderer *render.Renderer
	// Sender sends them (a *mailer.Pool, with at least Concurrency
	// connections); required.
	Sender Sender
	// Concurrency is how many tasks Run processes at once; default
	// DefaultConcurrency.
	Concurrency int
	// ShutdownTimeout is how long Close waits for the tasks in flight to
	// finish their sends; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// From is the From address of every email (RETAIN_FROM); required.
	From mail.Address
	// Links builds the unsubscribe, preference and NPS links of one customer
	// in one campaign; required.
	Links func(c *lifecycle.Customer, campaignID string) render.Links
	// Click, when set, makes the http(s) links of every email tracked: it returns
	// the signed redirect of url, a link of step (its identity) of campaign sent
	// to customer — link.Signer.ClickURL — or an error for a URL to leave as it
	// is. The unsubscribe, preference and NPS links are never rewritten. Default
	// nil: links are sent as written. There is no open-tracking pixel.
	Click func(customer, campaign, step, url string) (string, error)
	// UnsubscribeMailto, when set (mailto:unsubscribe@acme.example), is offered in
	// List-Unsubscribe beside the https link.
	UnsubscribeMailto string
	// Tokens, when set, sign each email's Message-ID (bounce.Tokens.MessageID),
	// so the reports of receivers and providers that quote it name the send;
	// default nil: a hash of the send (mailer.MessageID).
	Tokens *bounce.Tokens
	// BounceDomain, when set with Tokens, gives each email a Return-Path of its
	// own, bounces+<token>@BounceDomain (VERP), whose bounces retain inbound
	// receives (RETAIN_BOUNCE_DOMAIN); default empty: the From address.
	BounceDomain string
	// Rate is the global send rate in emails per second across all workers;
	// 0 is unlimited.
	Rate int
	// ClaimTTL is how long a send stays claimed in the ledger from the moment
	// its SMTP exchange begins, when its worker dies before recording the
	// outcome; default DefaultClaimTTL. It must exceed the SMTP timeout, which
	// bounds the exchange of one message, and should exceed the time a Redis
	// restart takes (the outcome is written once Redis is back).
	ClaimTTL time.Duration
	// Durable, when set, makes every claim durable before its send goes to
	// SMTP, and every outcome once written (see Durability); default nil:
	// Redis acknowledges writes from memory.
	Durable *Durability
	// Lease is how long the worker leases a customer it processes for an
	// event (see store.Lease); default DefaultLease. A scheduler's batch comes
	// with its own lease time. Either is renewed every third of it while the
	// worker works on the customers.
	Lease time.Duration
	// LedgerKeep is how long a finished send is remembered; default 30 days.
	LedgerKeep time.Duration
	// RetryBase is the first wait after a temporary SMTP failure; it doubles
	// per attempt up to RetryMax. When set, they become the engine's
	// (lifecycle.Engine.RetryBase and RetryMax: defaults 30 seconds and 1
	// hour), which schedules the retries.
	RetryBase, RetryMax time.Duration
	// Now is the clock; default time.Now. Tests pass their own.
	Now func() time.Time
	// Log receives one line per send outcome, and Asynq's warnings; default
	// slog.Default().
	Log *slog.Logger
}

// Defaults of WorkerConfig, which retain worker's flags show.
const (
	DefaultConcurrency     = 10
	DefaultShutdownTimeout = 30 * time.Second
	DefaultClaimTTL        = 45 * time.Second
)

// Validate reports every required field that is missing and every value out
// of range, at once.
func (c *WorkerConfig) Validate() error {
	var errs []error
	require := func(missing bool, what string) {
		if missing {
			errs = append(errs, fmt.Errorf("worker: %s is required", what))
		}
	}
	require(c.Store == nil, "Store")
	require(c.Engine == nil, "Engine")
	require(c.Renderer == nil, "Renderer")
	require(c.Sender == nil, "Sender")
	require(c.From.Address == "", "From (RETAIN_FROM)")
	require(c.Links == nil, "Links")
	if c.Concurrency < 0 || c.Rate < 0 || c.ShutdownTimeout < 0 || c.ClaimTTL < 0 || c.Lease < 0 || c.LedgerKeep < 0 {
		errs = append(errs, errors.New("worker: Concurrency, Rate and the durations must not be negative"))
	}
	return errors.Join(errs...)
}

// Worker applies events and sends due emails. Handler returns its Asynq handler.
//
// A send:due task carries a batch of customers, processed together in a few
// round trips (see ProcessMany): Decide (the engine re-checks subscription,
// audience, conditions, window and frequency cap) → suppression list → ledger
// read → render → ledger claim (the fence) → SMTP → ledger outcome, written the
// moment the relay answers → every customer's enrollment moves on in one
// transaction.
//
// Fencing: the worker holds its batch's customers by their lease token
// (store.Lease), renewed while it works, and each send by a claim token in the
// ledger, taken with SET NX right before SMTP (the fence); both are compared
// whenever they are used or released. A send whose entry holds another
// worker's claim or an outcome is never sent, and a lease that ran out is
// never acted on: another worker may hold it now.
//
// The crash window: a worker killed after the relay accepted a message (250) and
// before its ledger write — one or two Redis round trips, shared by the sends
// in flight — leaves a claim that expires after ClaimTTL; the step is then sent
// again, with the same Message-ID. A worker killed before the relay's reply
// sends again too, which is right: the relay did not take the message, or (a
// connection lost after DATA) may not have. The customers of a dead worker are free again after Lease.
type Worker struct {
	cfg      WorkerConfig
	store    *store.Store
	engine   *lifecycle.Engine
	renderer *render.Renderer
	sender   Sender
	srv      *asynq.Server // set by Run
	applier  *ingest.Applier
	ledger   *ledger
	rate     *rateLimiter
	owner    string
	stopping atomic.Bool
	paused   pausedCache
}

// ErrStopping is returned for the customers of a task left unprocessed when the
// worker stops: the task is retried later (and the customers' leases expire).
var ErrStopping = errors.New("worker stopping")

// NewWorker returns a worker configured by cfg (see WorkerConfig.Validate).
// Run starts it on the Asynq queues; tests may call its Process methods
// directly instead.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eng := cfg.Engine
	cfg.Concurrency = cmpOr(cfg.Concurrency, DefaultConcurrency)
	cfg.ShutdownTimeout = cmpOr(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.ClaimTTL = cmpOr(cfg.ClaimTTL, DefaultClaimTTL)
	cfg.Lease = cmpOr(cfg.Lease, DefaultLease)
	cfg.LedgerKeep = cmpOr(cfg.LedgerKeep, 30*24*time.Hour)
	if cfg.RetryBase != 0 {
		eng.RetryBase = cfg.RetryBase
	}
	if cfg.RetryMax != 0 {
		eng.RetryMax = cfg.RetryMax
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	st, rdb, prefix := cfg.Store, cfg.Store.Redis(), cfg.Store.Prefix()
	host, _ := os.Hostname()
	return &Worker{
		cfg: cfg, store: st, engine: eng, renderer: cfg.Renderer, sender: cfg.Sender,
		applier: &ingest.Applier{Store: st, Engine: eng, Now: cfg.Now},
		ledger:  newLedger(rdb, prefix, cfg.ClaimTTL, cfg.LedgerKeep, cfg.Durable),
		rate:    &rateLimiter{rdb: rdb, prefix: prefix, perSec: cfg.Rate},
		owner:   host + ":" + strconv.Itoa(os.Getpid()),
	}, nil
}

// Run starts taking tasks from the Asynq queues, Concurrency at once, and
// returns; the worker runs until Close.
func (w *Worker) Run(context.Context) error {
	w.srv = asynq.NewServerFromRedisClient(w.store.Redis(), asynq.Config{
		Concurrency:       w.cfg.Concurrency,
		Queues:            Queues,
		ShutdownTimeout:   w.cfg.ShutdownTimeout,
		TaskCheckInterval: 50 * time.Millisecond,
		Logger:            asynqLogger{w.cfg.Log},
		LogLevel:          asynq.WarnLevel,
	})
	return w.srv.Start(w.Handler())
}

// Close makes the worker finish the emails it is sending and take no further
// customer, then waits up to ShutdownTimeout for its tasks to return. The
// customers of a task it left are free again when their lease runs out.
func (w *Worker) Close() error {
	w.stopping.Store(true)
	if w.srv != nil {
		w.srv.Shutdown()
	}
	return nil
}

// asynqLogger sends Asynq's own log lines to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Handler routes retain's task types to the worker.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeEvent, w.handleEvent)
	mux.HandleFunc(TypeSend, w.handleSend)
	return mux
}

// handleEvent applies one event. An event that cannot be applied (failed.go) —
// a payload that does not parse, an unknown customer, an error that outlasts
// Asynq's retries — goes to the failed-event list, to be replayed once fixed.
// A condition that fails while the event runs counts as false and is logged
// and counted (condition.go); the rest of the event applies.
func (w *Worker) handleEvent(ctx context.Context, t *asynq.Task) error {
	var p EventPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return w.deadLetter(ctx, t, nil, fmt.Errorf("bad payload: %v", err))
	}
	chs, err := w.applier.Event(ctx, p.Customer, p.Event)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil
	case errors.Is(err, ingest.ErrUnknownCustomer):
		// Kept, not dropped: once the customer is imported, a replay applies it.
		return w.deadLetter(ctx, t, &p, err)
	case err != nil && ctx.Err() == nil && lastAttempt(ctx):
		return w.deadLetter(ctx, t, &p, err)
	case err != nil:
		return err
	}
	w.conditionErrors().Report(ctx, p.Customer, chs)
	// Something the event made due now goes out from here, not a scheduler
	// tick later.
	return w.Process(ctx, p.Customer)
}

func (w *Worker) handleSend(ctx context.Context, t *asynq.Task) error {
	var p SendPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad payload: %v", asynq.SkipRetry, err)
	}
	if w.stopping.Load() {
		return ErrStopping // the task is retried; its customers' leases expire
	}
	if p.Lease == "" {
		// A task queued by a scheduler from before leases had tokens: take
		// the customers nobody holds.
		return w.ProcessMany(ctx, p.Customers)
	}
	ttl := time.Duration(p.LeaseMS) * time.Millisecond
	if ttl <= 0 {
		ttl = w.cfg.Lease
	}
	return w.ProcessLease(ctx, &store.Lease{IDs: p.Customers, Token: p.Lease, TTL: ttl})
}

// Process is ProcessMany for one customer.
func (w *Worker) Process(ctx context.Context, id string) error {
	return w.ProcessMany(ctx, []string{id})
}

// ProcessMany leases those of the customers nobody holds (store.LeaseCustomers)
// and sends what is due to them (ProcessLease), one batch per shard (a batch's
// ledger entries are read at once, which on Redis Cluster needs one hash
// slot). Customers another worker or scheduler batch holds are left to it: it
// writes them back when done, and what is still due then goes out with a
// later batch.
func (w *Worker) ProcessMany(ctx context.Context, ids []string) error {
	var errs []error
	for _, group := range store.ByShard(ids) {
		l, err := w.store.LeaseCustomers(ctx, group, w.cfg.Lease)
		if err == nil && l != nil {
			err = w.ProcessLease(ctx, l)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// job is one email to send in a batch.
type job struct {
	c    *lifecycle.Customer
	key  stepKey
	step *campaign.Step
	// ledgerKey is the send's ledger entry and claim the value this worker's
	// claim takes there at the fence (with its token); free is true when the
	// ledger held nothing for it as the batch began.
	ledgerKey, claim string
	free             bool
	// recorded is true once the outcome is in the ledger.
	recorded bool
	msg      *mailer.Message
	out      *outcome
}

// stepKey names one step of one enrollment of a customer.
type stepKey struct {
	customer, campaign string
	enrollment         int
	slug               string
}

// outcome is what became of a job, applied to the customer when the batch is
// written (by the engine: Engine.Record, Stop, Postpone).
type outcome struct {
	at time.Time
	// result is what the relay did with the send, detail its words; empty
	// when no send was attempted.
	result lifecycle.Outcome
	detail string
	// stop ends the enrollment without a send (a suppressed address).
	stop string
	// wait is how long another worker's claim on the send lasts: the step is
	// looked at again then, no attempt counted.
	wait time.Duration
	// found is true when the outcome is what the ledger already held (another
	// attempt's), not this worker's send: it is not counted again.
	found bool
}

// ProcessLease sends the emails due now to the customers l holds, in a few
// round trips: it renews the lease (dropping customers it lost), reads the
// customers at once, decides each one's next step with the engine, checks
// suppressions and claims the sends in the ledger in one pipeline each,
// renders and sends them concurrently through the SMTP pool — each behind its
// fence —, records the outcomes, and writes every customer back in one
// transaction with its next due time, then releases the lease. While it works,
// a heartbeat renews the lease and the claims of the sends still waiting. A
// customer with several campaigns due gets one email per batch; the rest stay
// due and come next.
func (w *Worker) ProcessLease(ctx context.Context, l *store.Lease) error {
	l, err := w.store.TakeLease(ctx, l)
	if err != nil || l == nil {
		return err
	}
	// Written back or not, the customers are free again when this returns:
	// those not written back are due again at once.
	written := false
	defer func() {
		ctx := context.WithoutCancel(ctx)
		release := func() error { return w.store.ReleaseLease(ctx, l) }
		if written {
			release = func() error { return w.store.EndLease(ctx, l) }
		}
		if err := release(); err != nil {
			w.cfg.Log.Warn("lease not released: it runs out by itself", "customers", len(l.IDs), "error", err)
		}
	}()
	custs, read, err := w.store.CustomersRead(ctx, l.IDs)
	if err != nil {
		return err
	}
	now := w.cfg.Now()
	token := store.NewToken()
	paused, err := w.paused.get(ctx, w.store)
	if err != nil {
		return err
	}
	var jobs []*job
	var controls []control
	outcomes := make(map[stepKey]*outcome)
	for _, c := range custs {
		if c == nil {
			continue
		}
		// Time rules that came due apply before any send, as in a sweep: an
		// exit they imply (leaving onboarding after 30 days) stops the step,
		// and steps they scheduled long ago are stale, not sent.
		w.engine.CatchUp(c, now)
		for _, campID := range w.engine.Due(c, now) {
			d := w.engine.Decide(c, campID, now)
			if d.Action == lifecycle.Skip && d.Reason == lifecycle.HoldoutReason {
				controls = append(controls, control{c.Email, stepKey{c.ID, campID, d.Enrollment.Number, d.Enrollment.Next}})
			}
			if d.Action != lifecycle.Send {
				continue
			}
			if _, ok := paused[campID]; ok {
				// Auto-pause (or retain campaign pause): the step waits
				// where it is; nextDue looks at it again after
				// bounce.PausedWait, or when the campaign resumes.
				continue
			}
			key := stepKey{c.ID, campID, d.Enrollment.Number, d.Enrollment.Next}
			jobs = append(jobs, &job{c: c, step: d.Step, key: key, claim: claimValue(w.owner, token)})
			break // one email per customer per batch
		}
	}
	if err := w.prepare(ctx, jobs, now); err != nil {
		return err
	}
	if err := w.suppressControls(ctx, controls, now, outcomes); err != nil {
		return err
	}
	stopBeat := w.heartbeat(ctx, l)
	w.send(ctx, jobs)
	stopBeat()
	w.countSends(ctx, jobs) // stats.go: /metrics of retain web
	var finish []*job
	for _, j := range jobs {
		if j.out != nil {
			outcomes[j.key] = j.out
		}
		if j.free && !j.recorded {
			finish = append(finish, j)
		}
	}
	// From here on the sends happened: record them even when shutdown begins.
	ctx = context.WithoutCancel(ctx)
	if err := w.ledger.finishAll(ctx, finish); err != nil {
		return err
	}
	err = w.store.UpdateManyRead(ctx, l.IDs, read, func(cur *lifecycle.Customer) (*store.Change, error) {
		chs := w.settle(cur, now, outcomes)
		var history []lifecycle.StageChange
		for _, ch := range chs {
			if ch.Kind == lifecycle.KindStage {
				history = append(history, lifecycle.StageChange{From: ch.From, To: ch.To, At: ch.At, Cause: ch.Reason})
			}
		}
		return &store.Change{Customer: cur, History: history, Changes: chs, Wake: w.engine.NextWake(cur), Due: nextDue(cur, paused, now)}, nil
	})
	written = err == nil
	if written {
		w.checkPauses(ctx, jobs, now)
	}
	return err
}

// heartbeat renews the lease on the batch's customers every third of its time
// to live, until the returned stop is called.
func (w *Worker) heartbeat(ctx context.Context, l *store.Lease) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(l.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := w.store.HoldLease(ctx, l); err != nil {
				w.cfg.Log.Warn("lease renewal failed", "customers", len(l.IDs), "error", err)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// control is a step a customer in a campaign's holdout passes without a send.
type control struct {
	email string
	key   stepKey
}

// suppressControls ends, as a send to a suppressed address ends it, the
// enrollment of each customer of controls whose address is suppressed: the
// control group leaves a campaign for the same reasons as the customers who
// get its emails, or its goal rate would not compare with theirs.
func (w *Worker) suppressControls(ctx context.Context, controls []control, now time.Time, outcomes map[stepKey]*outcome) error {
	if len(controls) == 0 {
		return nil
	}
	emails := make([]string, len(controls))
	for i, c := range controls {
		emails[i] = c.email
	}
	sups, err := w.store.Suppressions(ctx, emails)
	if err != nil {
		return err
	}
	for i, sup := range sups {
		if sup != nil {
			outcomes[controls[i].key] = &outcome{at: now, stop: "address suppressed: " + sup.Reason}
		}
	}
	return nil
}

// prepare drops the jobs of suppressed addresses and of sends the ledger already
// knows (done before, or being sent by another worker), claims the rest and
// builds their messages.
func (w *Worker) prepare(ctx context.Context, jobs []*job, now time.Time) error {
	if len(jobs) == 0 {
		return nil
	}
	emails := make([]string, len(jobs))
	for i, j := range jobs {
		emails[i] = j.c.Email
	}
	sups, err := w.store.Suppressions(ctx, emails)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		j.ledgerKey = w.ledger.key(j.key.customer, j.key.campaign, j.key.enrollment, j.key.slug)
		if sups[i] != nil {
			j.out = &outcome{at: now, stop: "address suppressed: " + sups[i].Reason}
			j.ledgerKey = ""
		}
	}
	founds, err := w.ledger.peekAll(ctx, jobs)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		if j.ledgerKey == "" {
			continue
		}
		if founds[i].state == "" {
			j.free = true
			continue
		}
		j.out = foundOutcome(founds[i], now)
	}
	for _, j := range jobs {
		if !j.free {
			continue
		}
		if j.msg, err = w.message(j.c, j.step, j.key.enrollment); err != nil {
			// The customer's data cannot make a valid email (a line break in a
			// header): nothing is sent, and retrying will not help.
			w.cfg.Log.Warn("step skipped", "customer", j.c.ID, "step", j.step.ID, "reason", err.Error())
			j.out = &outcome{at: now, result: lifecycle.OutcomeUnrenderable, detail: err.Error()}
		}
	}
	return nil
}

// foundOutcome is what to do with a send the ledger already holds.
func foundOutcome(f found, now time.Time) *outcome {
	switch f.state {
	case ledgerSent:
		return &outcome{at: now, found: true, result: lifecycle.OutcomeSent} // sent before; only the bookkeeping was lost
	case ledgerUnknown:
		return &outcome{at: now, found: true, result: lifecycle.OutcomeUnknown, detail: "recorded in the send ledger"}
	case ledgerFailed:
		return &outcome{at: now, found: true, result: lifecycle.OutcomeRefused, detail: "recorded in the send ledger"}
	}
	// Another worker is sending it right now: look again when its claim ends.
	return &outcome{at: now, found: true, wait: max(f.ttl, time.Second)}
}

// sendConcurrency is how many emails of one batch are in flight at once; the
// SMTP pool bounds the connections.
const sendConcurrency = 8

// errFenced is a send stopped at its fence: the claim was no longer this
// worker's.
var errFenced = errors.New("the send's claim is held elsewhere")

// send sends the free jobs concurrently and sets each one's outcome. A job
// waits for its turn, the rate limit and a connection at most ClaimTTL from
// when the batch began; one that could not start by then is left unsent, for a
// later batch.
func (w *Worker) send(ctx context.Context, jobs []*job) {
	waitCtx, cancel := context.WithTimeout(ctx, w.cfg.ClaimTTL)
	defer cancel()
	sem := make(chan struct{}, sendConcurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if !j.free || j.out != nil {
			continue
		}
		if w.stopping.Load() {
			continue // left unsent: sent by a later batch
		}
		select {
		case sem <- struct{}{}:
		case <-waitCtx.Done():
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			j.out = w.sendOne(ctx, waitCtx, j)
			if j.out == nil {
				return // not sent: a claim its fence took is released with the batch
			}
			// The ledger learns the outcome now, not with the rest of the
			// batch: a worker killed later in the batch must not send it again.
			switch err := w.ledger.recordRetrying(context.WithoutCancel(ctx), j); {
			case err == nil:
				j.recorded = true
			case errors.Is(err, errNotDurable):
				j.recorded = true
				w.cfg.Log.Warn("send outcome not durable: a Redis crash now could send it again", "customer", j.key.customer, "step", j.step.ID, "error", err)
			default:
				w.cfg.Log.Error("send outcome not recorded: Redis did not answer; the step is sent again when its claim runs out",
					"customer", j.key.customer, "step", j.step.ID, "message_id", j.msg.MessageID, "error", err)
			}
		})
	}
	wg.Wait()
}

// sendOne sends one message and classifies what happened; nil when it was not
// sent (the wait ran out, or the worker is stopping).
func (w *Worker) sendOne(ctx, waitCtx context.Context, j *job) *outcome {
	log := w.cfg.Log.With("customer", j.key.customer, "campaign", j.key.campaign, "enrollment", j.key.enrollment, "step", j.key.slug)
	if err := w.rate.wait(waitCtx); err != nil {
		return nil
	}
	var held *found
	fence := func(ctx context.Context) error {
		f, err := w.ledger.fence(ctx, j)
		if err != nil {
			return err
		}
		if f != nil {
			held = f
			return errFenced
		}
		return nil
	}
	// The SMTP exchange, once past the fence, finishes even when shutdown
	// begins: a drained send is recorded, not abandoned between DATA and the
	// reply.
	err := w.sender.SendFenced(waitCtx, j.msg, fence)
	now := w.cfg.Now()
	var se *mailer.SendError
	if errors.As(err, &se) && se.Stage == mailer.StageFence {
		if held != nil {
			log.Warn("send stopped at its fence: another worker holds or finished it", "found", held.state)
			return foundOutcome(*held, now) // its record leaves what holds the send as it is
		}
		log.Warn("send not begun: its claim could not be checked", "error", err)
		return nil
	}
	if waitCtx.Err() != nil && errors.As(err, &se) && se.Stage == mailer.StageConnect && errors.Is(err, waitCtx.Err()) {
		log.Info("send not begun in time: left for a later batch", "waited", w.cfg.ClaimTTL.String())
		return nil
	}
	switch classify(err) {
	case delivered:
		log.Info("email sent", "message_id", j.msg.MessageID)
		return &outcome{at: now, result: lifecycle.OutcomeSent}
	case mailer.Unknown:
		log.Warn("email maybe sent: connection lost after DATA", "message_id", j.msg.MessageID, "error", err)
		return &outcome{at: now, result: lifecycle.OutcomeUnknown, detail: err.Error()}
	case mailer.BadAddress:
		log.Warn("address refused: suppressed", "error", err)
		if serr := w.store.Suppress(context.WithoutCancel(ctx), j.c.Email, err.Error(), now); serr != nil {
			log.Error("suppress", "error", serr)
		}
		return &outcome{at: now, result: lifecycle.OutcomeBounced, detail: err.Error()}
	case mailer.Permanent:
		log.Warn("email refused", "error", err)
		return &outcome{at: now, result: lifecycle.OutcomeRefused, detail: err.Error()}
	default: // Temporary: nothing was delivered; try again later
		attempt := j.c.Enrollments[j.key.campaign].Attempts + 1
		log.Warn("send failed, will retry", "attempt", attempt, "in", w.engine.Backoff(attempt).String(), "error", err)
		return &outcome{at: now, result: lifecycle.OutcomeRetry, detail: err.Error()}
	}
}

// settle applies to cur, the customer as stored now, what this batch decided: the
// outcome of its send, if it had one for the step cur is waiting on, and the
// engine's decision for every other enrollment that is due (wait, skip, stop).
func (w *Worker) settle(cur *lifecycle.Customer, now time.Time, outcomes map[stepKey]*outcome) []lifecycle.Change {
	chs, _ := w.engine.CatchUp(cur, now) // as when the batch was decided
	for _, campID := range w.engine.Due(cur, now) {
		// Decide first: it follows an edit of the campaign made since cur was
		// scheduled exactly as it did when the batch was decided, and its
		// changes (steps skipped or the enrollment ended by the edit) are
		// recorded with the rest.
		d := w.engine.Decide(cur, campID, now)
		for _, ch := range d.Changes {
			w.cfg.Log.Info("campaign edit followed", "customer", cur.ID, "campaign", campID, "kind", string(ch.Kind), "step", ch.Step, "reason", ch.Reason)
		}
		chs = append(chs, d.Changes...)
		enr := cur.Enrollments[campID]
		if o, ok := outcomes[stepKey{cur.ID, campID, enr.Number, enr.Next}]; ok && enr.Status == lifecycle.Active {
			switch {
			case o.stop != "":
				// The step first: Stop clears enr.Next.
				step := campID + "/" + enr.Next
				chs = append(chs, withStep(w.engine.Stop(cur, campID, o.at, o.stop), step)...)
			case o.result != "":
				more, _ := w.engine.Record(cur, campID, o.at, o.result, o.detail)
				chs = append(chs, more...)
			case o.wait > 0:
				w.engine.Postpone(cur, campID, now.Add(o.wait))
			}
			continue
		}
		switch d.Action {
		case lifecycle.Wait:
			w.engine.Postpone(cur, campID, d.Due)
		case lifecycle.Skip:
			w.cfg.Log.Info("step skipped", "customer", cur.ID, "campaign", campID, "step", enr.Next, "reason", d.Reason)
			more, _ := w.engine.Pass(cur, campID, now, false, d.Reason)
			chs = append(chs, more...)
		case lifecycle.Stop:
			w.cfg.Log.Info("enrollment stopped", "customer", cur.ID, "campaign", campID, "reason", d.Reason)
			chs = append(chs, w.engine.Stop(cur, campID, now, d.Reason)...)
		}
	}
	return chs
}

// withStep names the step a send outcome ended an enrollment on (a bounce), so
// the report can count it against that step.
func withStep(chs []lifecycle.Change, step string) []lifecycle.Change {
	for i := range chs {
		if chs[i].Step == "" {
			chs[i].Step = step
		}
	}
	return chs
}

// message renders step st for c and builds the message.
func (w *Worker) message(c *lifecycle.Customer, st *campaign.Step, n int) (*mailer.Message, error) {
	return Message(&w.cfg, w.engine, w.renderer, c, st, n)
}

// Message builds the email a worker configured with cfg sends for step st to
// customer c, in round n of the step's campaign (lifecycle.Enrollment.Number),
// rendered by r with the data eng decides (render.NewData): the links of
// cfg.Links, the From address of cfg.From, click tracking when cfg.Click is set
// (render.Renderer.RenderTracked) and the headers. A step with A/B variants
// is rendered in the variant recorded on c's enrollment — the one
// lifecycle.Engine.Decide gave (Decision.Variant) —, so a retry sends the
// variant the first attempt did; the Message-ID stays the step's. Outside a
// worker it makes the exact message the worker would (retain's bench sends
// it). cfg.Now dates it; nil is time.Now.
func Message(cfg *WorkerConfig, eng *lifecycle.Engine, r *render.Renderer, c *lifecycle.Customer, st *campaign.Step, n int) (*mailer.Message, error) {
	links := cfg.Links(c, st.Campaign.ID)
	data := render.NewData(eng, c, links, cfg.From.Address)
	data.Event = render.EventOf(c, st.Campaign)
	email, err := r.RenderVariant(st.ID, variantOf(c, st), data, cfg.Click)
	if err != nil {
		return nil, err
	}
	from, replyTo := StepSender(cfg.From, st, eng.Set().Lifecycle.Sender.Name)
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	return &mailer.Message{
		From:              from,
		To:                mail.Address{Name: cmpOr(c.Name, c.FirstName), Address: c.Email},
		Subject:           email.Subject,
		Text:              email.Text,
		HTML:              email.HTML,
		MessageID:         messageID(cfg.Tokens, st.ID, c, n, domainOf(from.Address)),
		ReturnPath:        returnPath(cfg, st.ID, c, n),
		Date:              now(),
		Unsubscribe:       links.URL(render.LinkUnsubscribe),
		UnsubscribeMailto: cfg.UnsubscribeMailto,
		ReplyTo:           replyTo,
		Headers:           StepHeaders(st, domainOf(from.Address)),
	}, nil
}

// variantOf is the A/B variant of st that c gets: the one Engine.Decide
// recorded on c's enrollment; "" when the step has none.
func variantOf(c *lifecycle.Customer, st *campaign.Step) string {
	if enr := c.Enrollments[st.Campaign.ID]; enr != nil {
		return enr.AB[st.Slug]
	}
	return ""
}

// messageID is the Message-ID of step for customer c in round n: signed by
// tokens when set, else mailer.MessageID.
func messageID(tokens *bounce.Tokens, step string, c *lifecycle.Customer, n int, domain string) string {
	if tokens == nil {
		return mailer.MessageID(step, c.ID, n, domain)
	}
	return tokens.MessageID(bounce.Send{Customer: c.ID, Address: c.Email, Step: step, Enrollment: n}, domain)
}

// returnPath is the VERP Return-Path of step for customer c in round n,
// empty without a bounce domain.
func returnPath(cfg *WorkerConfig, step string, c *lifecycle.Customer, n int) string {
	if cfg.Tokens == nil || cfg.BounceDomain == "" {
		return ""
	}
	return cfg.Tokens.ReturnPath(bounce.Send{Customer: c.ID, Address: c.Email, Step: step, Enrollment: n}, cfg.BounceDomain)
}

// StepSender returns the From and Reply-To of st's emails: its campaign's
// from: and reply_to: when set, else from (RETAIN_FROM) and none; a From
// without a name is named senderName (lifecycle.yaml's sender.name).
func StepSender(from mail.Address, st *campaign.Step, senderName string) (mail.Address, *mail.Address) {
	if st.Campaign.From != nil {
		from = *st.Campaign.From
	}
	if from.Name == "" {
		from.Name = senderName
	}
	return from, st.Campaign.ReplyTo
}

// StepHeaders are the header fields that tell receivers which campaign and
// step an email is, so their complaint and bounce reports line up with
// retain's counts: Feedback-ID (Gmail's feedback loop, by step, campaign and
// topic; the sender ID is the From domain) and, for a campaign with a topic,
// X-Retain-Topic.
func StepHeaders(st *campaign.Step, sender string) []mailer.Header {
	hs := []mailer.Header{mailer.FeedbackID(st.ID, st.Campaign.ID, st.Campaign.Topic, sender)}
	if st.Campaign.Topic != "" {
		hs = append(hs, mailer.Header{Name: "X-Retain-Topic", Value: st.Campaign.Topic})
	}
	return hs
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

// delivered is the class of a send that went through.
const delivered mailer.Class = 0

// classify is mailer.Classify, except that a refusal while connecting (a wrong
// password, 535 at AUTH) is not the message's fault: it stalls sending like an
// outage instead of dropping every message in the queue.
func classify(err error) mailer.Class {
	if err == nil {
		return delivered
	}
	var se *mailer.SendError
	if errors.As(err, &se) && se.Stage == mailer.StageConnect {
		return mailer.Temporary
	}
	return mailer.Classify(err)
}
