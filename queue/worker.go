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
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// Sender sends one message; *mailer.Pool is the real one.
type Sender interface {
	Send(ctx context.Context, m *mailer.Message) error
}

// WorkerConfig configures a Worker. Zero fields take the defaults noted.
type WorkerConfig struct {
	// From is the From address of every email (RETAIN_FROM); required.
	From mail.Address
	// Links builds the unsubscribe, preference and NPS links of one customer
	// in one campaign; required.
	Links func(c *lifecycle.Customer, campaignID string) render.Links
	// UnsubscribeMailto, when set (mailto:unsubscribe@acme.example), is offered in
	// List-Unsubscribe beside the https link.
	UnsubscribeMailto string
	// Rate is the global send rate in emails per second across all workers;
	// 0 is unlimited.
	Rate int
	// ClaimTTL is how long a send stays claimed in the ledger when its worker
	// dies before finishing it; default 2 minutes. It must exceed the SMTP
	// timeout.
	ClaimTTL time.Duration
	// LedgerKeep is how long a finished send is remembered; default 30 days.
	LedgerKeep time.Duration
	// RetryBase is the first wait after a temporary SMTP failure; it doubles
	// per attempt up to RetryMax. Defaults 30 seconds and 1 hour.
	RetryBase, RetryMax time.Duration
	// Now is the clock; default time.Now. Tests pass their own.
	Now func() time.Time
	// Log receives one line per send outcome; default slog.Default().
	Log *slog.Logger
}

// Worker applies events and sends due emails. Handler returns its Asynq handler.
//
// A send goes: Decide (the engine re-checks subscription, audience, conditions,
// window and frequency cap) → suppression list → ledger claim → render → SMTP →
// ledger outcome → the customer's enrollment moves on (store.Update).
//
// The crash window: a worker killed after the relay accepted a message (250) and
// before it wrote "sent" to the ledger leaves a claim that expires after ClaimTTL;
// the step is then sent again, with the same Message-ID. The window is the time of
// one Redis write. A worker killed before the relay's reply sends again too, which
// is right: the relay did not take the message, or (a connection lost after
// DATA) may not have.
type Worker struct {
	cfg      WorkerConfig
	store    *store.Store
	engine   *lifecycle.Engine
	renderer *render.Renderer
	sender   Sender
	applier  *ingest.Applier
	ledger   *ledger
	rate     *rateLimiter
	owner    string
	stopping atomic.Bool
}

// ErrStopping is returned for the customers of a task left unprocessed when the
// worker stops: the task is retried later (and the customers' leases expire).
var ErrStopping = errors.New("worker stopping")

// Stop makes the worker finish the email it is sending and take no further
// customer; call it before the Asynq server's Shutdown.
func (w *Worker) Stop() { w.stopping.Store(true) }

// NewWorker returns a worker. rdb and prefix must be the store's.
func NewWorker(cfg WorkerConfig, rdb redis.UniversalClient, prefix string, st *store.Store, eng *lifecycle.Engine, r *render.Renderer, sender Sender) (*Worker, error) {
	if cfg.From.Address == "" {
		return nil, errors.New("worker: From is required (RETAIN_FROM)")
	}
	if cfg.Links == nil {
		return nil, errors.New("worker: Links is required")
	}
	if prefix == "" {
		prefix = store.DefaultPrefix
	}
	cfg.ClaimTTL = cmpOr(cfg.ClaimTTL, 2*time.Minute)
	cfg.LedgerKeep = cmpOr(cfg.LedgerKeep, 30*24*time.Hour)
	cfg.RetryBase = cmpOr(cfg.RetryBase, 30*time.Second)
	cfg.RetryMax = cmpOr(cfg.RetryMax, time.Hour)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	host, _ := os.Hostname()
	return &Worker{
		cfg: cfg, store: st, engine: eng, renderer: r, sender: sender,
		applier: &ingest.Applier{Store: st, Engine: eng, Now: cfg.Now},
		ledger:  &ledger{rdb: rdb, prefix: prefix, claimTTL: cfg.ClaimTTL, keep: cfg.LedgerKeep},
		rate:    &rateLimiter{rdb: rdb, prefix: prefix, perSec: cfg.Rate},
		owner:   host + ":" + strconv.Itoa(os.Getpid()),
	}, nil
}

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

func (w *Worker) handleEvent(ctx context.Context, t *asynq.Task) error {
	var p EventPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad payload: %v", asynq.SkipRetry, err)
	}
	_, err := w.applier.Event(ctx, p.Customer, p.Event)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil
	case errors.Is(err, ingest.ErrUnknownCustomer):
		w.cfg.Log.Warn("event for an unknown customer dropped", "customer", p.Customer, "event", p.Event.Name)
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	case err != nil:
		return err
	}
	// Something the event made due now goes out from here, not a scheduler
	// tick later.
	return w.Process(ctx, p.Customer)
}

func (w *Worker) handleSend(ctx context.Context, t *asynq.Task) error {
	var p SendPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: bad payload: %v", asynq.SkipRetry, err)
	}
	var errs []error
	for _, id := range p.Customers {
		if w.stopping.Load() || ctx.Err() != nil {
			return ErrStopping // the rest come again with the task's retry or their lease's end
		}
		if err := w.Process(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Process sends every email of the customer that is due now, one after the other,
// and writes the customer's next due time back to the due index.
func (w *Worker) Process(ctx context.Context, id string) error {
	c, err := w.store.Customer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	now := w.cfg.Now()
	for _, campID := range w.engine.Due(c, now) {
		if c, err = w.step(ctx, c, campID, now); err != nil {
			return err
		}
	}
	// Nothing due (any more): put the customer's real next due time back, which
	// ends the scheduler's lease.
	_, err = w.commit(ctx, c, "", 0, "", func(*lifecycle.Customer) []lifecycle.Change { return nil })
	return err
}

// step decides and carries out the next step of one enrollment, and returns the
// customer as stored afterwards.
func (w *Worker) step(ctx context.Context, c *lifecycle.Customer, campID string, now time.Time) (*lifecycle.Customer, error) {
	d := w.engine.Decide(c, campID, now)
	enr := d.Enrollment
	if enr == nil {
		return c, nil
	}
	n, slug := enr.Number, enr.Next
	log := w.cfg.Log.With("customer", c.ID, "campaign", campID, "enrollment", n, "step", slug)
	switch d.Action {
	case lifecycle.None:
		return c, nil
	case lifecycle.Wait:
		return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
			cur.Enrollments[campID].Due = d.Due
			return nil
		})
	case lifecycle.Skip:
		log.Info("step skipped", "reason", d.Reason)
		return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
			chs, _ := w.engine.Pass(cur, campID, now, false, d.Reason)
			return chs
		})
	case lifecycle.Stop:
		log.Info("enrollment stopped", "reason", d.Reason)
		return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
			return w.engine.Stop(cur, campID, now, d.Reason)
		})
	}

	// Send.
	if sup, err := w.store.Suppression(ctx, c.Email); err != nil {
		return c, err
	} else if sup != nil {
		log.Info("enrollment stopped", "reason", "suppressed: "+sup.Reason)
		return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
			return w.engine.Stop(cur, campID, now, "address suppressed: "+sup.Reason)
		})
	}
	key := w.ledger.key(c.ID, campID, n, slug)
	state, err := w.ledger.claim(ctx, key, w.owner)
	if err != nil {
		return c, err
	}
	switch state {
	case ledgerClaimed:
		return c, nil // another worker is sending it right now
	case ledgerSent, ledgerUnknown:
		return w.passed(ctx, c, campID, n, slug, now, true, "")
	case ledgerFailed:
		return w.passed(ctx, c, campID, n, slug, now, false, "refused by the relay")
	}

	msg, err := w.message(c, d.Step, n)
	if err != nil {
		// The customer's data cannot make a valid email (a line break in a
		// header): nothing was sent, and retrying will not help.
		log.Warn("step skipped", "reason", err.Error())
		w.ledger.finish(ctx, key, ledgerFailed)
		return w.passed(ctx, c, campID, n, slug, now, false, "cannot render: "+err.Error())
	}
	if err := w.rate.wait(ctx); err != nil {
		w.ledger.release(context.WithoutCancel(ctx), key)
		return c, err
	}
	// The SMTP exchange finishes even when shutdown begins: a drained send is
	// recorded, not abandoned between DATA and the reply.
	sendErr := w.sender.Send(context.WithoutCancel(ctx), msg)
	ctx = context.WithoutCancel(ctx)
	switch class := classify(sendErr); class {
	case delivered:
		if err := w.ledger.finish(ctx, key, ledgerSent); err != nil {
			return c, err
		}
		log.Info("email sent", "message_id", msg.MessageID)
		return w.passed(ctx, c, campID, n, slug, w.cfg.Now(), true, "")
	case mailer.Unknown:
		w.ledger.finish(ctx, key, ledgerUnknown)
		log.Warn("email maybe sent: connection lost after DATA", "message_id", msg.MessageID, "error", sendErr)
		return w.passed(ctx, c, campID, n, slug, w.cfg.Now(), true, "sent-unknown")
	case mailer.BadAddress:
		w.ledger.finish(ctx, key, ledgerFailed)
		log.Warn("address refused: suppressed", "error", sendErr)
		if err := w.store.Suppress(ctx, c.Email, sendErr.Error(), now); err != nil {
			return c, err
		}
		return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
			return w.engine.Stop(cur, campID, now, "bounced: "+sendErr.Error())
		})
	case mailer.Permanent:
		w.ledger.finish(ctx, key, ledgerFailed)
		log.Warn("email refused", "error", sendErr)
		return w.passed(ctx, c, campID, n, slug, now, false, "refused: "+sendErr.Error())
	default: // Temporary: nothing was delivered; try again later
		w.ledger.release(ctx, key)
		attempt := enr.Attempts + 1
		wait := min(w.cfg.RetryBase<<min(attempt-1, 20), w.cfg.RetryMax)
		log.Warn("send failed, will retry", "attempt", attempt, "in", wait.String(), "error", sendErr)
		return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
			e := cur.Enrollments[campID]
			e.Attempts, e.Due = attempt, now.Add(wait)
			return nil
		})
	}
}

// passed moves the enrollment past the step.
func (w *Worker) passed(ctx context.Context, c *lifecycle.Customer, campID string, n int, slug string, at time.Time, sent bool, reason string) (*lifecycle.Customer, error) {
	return w.commit(ctx, c, campID, n, slug, func(cur *lifecycle.Customer) []lifecycle.Change {
		chs, _ := w.engine.Pass(cur, campID, at, sent, reason)
		return chs
	})
}

// commit applies change to the customer as stored now — when its enrollment in
// campID is still number n waiting for step slug (campID "" for none) — and writes
// it with the next due and wake times. It returns the customer as written.
func (w *Worker) commit(ctx context.Context, c *lifecycle.Customer, campID string, n int, slug string, change func(*lifecycle.Customer) []lifecycle.Change) (*lifecycle.Customer, error) {
	var out *lifecycle.Customer
	err := w.store.Update(ctx, c.ID, "", func(cur *lifecycle.Customer) (*store.Change, error) {
		out = cur
		if cur == nil {
			return nil, nil
		}
		var chs []lifecycle.Change
		if campID == "" || sameStep(cur, campID, n, slug) {
			chs = change(cur)
		}
		var history []lifecycle.StageChange
		for _, ch := range chs {
			if ch.Kind == lifecycle.KindStage {
				history = append(history, lifecycle.StageChange{From: ch.From, To: ch.To, At: ch.At, Cause: ch.Reason})
			}
		}
		return &store.Change{Customer: cur, History: history, Wake: w.engine.NextWake(cur), Due: w.engine.NextDue(cur)}, nil
	})
	if err != nil {
		return c, err
	}
	if out == nil {
		out = c
	}
	return out, nil
}

func sameStep(c *lifecycle.Customer, campID string, n int, slug string) bool {
	e := c.Enrollments[campID]
	return e != nil && e.Status == lifecycle.Active && e.Number == n && e.Next == slug
}

// message renders step st for c and builds the message.
func (w *Worker) message(c *lifecycle.Customer, st *campaign.Step, n int) (*mailer.Message, error) {
	set := w.engine.Set()
	links := w.cfg.Links(c, st.Campaign.ID)
	data := &render.Data{
		Customer: render.Customer{ID: c.ID, Email: c.Email, FirstName: c.FirstName, Name: c.Name,
			Locale: cmpOr(c.Locale, set.Lifecycle.Locale), Timezone: w.engine.Location(c).String(), Stage: c.Stage, Attributes: c.Attributes},
		Links:  links,
		Sender: render.Sender{Name: set.Lifecycle.Sender.Name, Email: w.cfg.From.Address, Address: set.Lifecycle.Sender.Address},
	}
	email, err := w.renderer.Render(st.ID, data)
	if err != nil {
		return nil, err
	}
	from := w.cfg.From
	if from.Name == "" {
		from.Name = set.Lifecycle.Sender.Name
	}
	unsub, _ := links[render.LinkUnsubscribe].(string)
	return &mailer.Message{
		From:              from,
		To:                mail.Address{Name: cmpOr(c.Name, c.FirstName), Address: c.Email},
		Subject:           email.Subject,
		Text:              email.Text,
		HTML:              email.HTML,
		MessageID:         mailer.MessageID(st.ID, c.ID, n, domainOf(from.Address)),
		Date:              w.cfg.Now(),
		Unsubscribe:       unsub,
		UnsubscribeMailto: w.cfg.UnsubscribeMailto,
	}, nil
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
