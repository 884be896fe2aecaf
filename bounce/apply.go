package bounce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// The events an Applier records on a customer (report counts them per step).
const (
	EventBounced     = "email_bounced"
	EventSoftBounced = "email_soft_bounced"
	EventComplained  = "complained"
)

// Applier applies the policy of lifecycle.yaml's deliverability: section to
// reports: a permanent failure of the address suppresses it; temporary
// failures (and permanent ones about the message, not the address: 5.7.1
// blocked as spam) count, and SoftBounces of them within SoftBounceWindow
// suppress it; a complaint unsubscribes the person from everything and
// suppresses the address. Each is an event on the customer (its history, the
// report's counts per campaign and step) and may pause the campaign (see
// Pauser).
type Applier struct {
	Store  *store.Store
	Engine *lifecycle.Engine
	Tokens *Tokens
	Log    *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Apply applies reports; it is a Sink. Each report is applied once however
// often it arrives: suppressions and counts are keyed by its ID (or a hash of
// its content), the customer's event by the same.
func (a *Applier) Apply(ctx context.Context, reports []Report) error {
	var errs []error
	for i := range reports {
		if err := a.apply(ctx, &reports[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// match is what a report was matched to.
type match struct {
	customer *lifecycle.Customer
	// campaign and step ("campaign/slug") of the email, when known;
	// enrollment its round (0 when not known).
	campaign, step string
	enrollment     int
	// how it was matched: "return-path", "message-id", "recipient".
	how string
}

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Applier) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

func (a *Applier) apply(ctx context.Context, r *Report) error {
	now := a.now()
	if r.ID == "" {
		r.ID = contentID(r)
	}
	if r.At.IsZero() || r.At.After(now) {
		r.At = now
	}
	m, err := a.match(ctx, r)
	if err != nil {
		return err
	}
	addr := r.Recipient
	if m.customer != nil && m.how != "recipient" {
		// The address the email went to, even when a forward changed the
		// recipient the receiver reports.
		addr = m.customer.Email
	}
	log := a.log().With("source", r.Source, "kind", string(r.Kind), "campaign", m.campaign, "step", m.step, "matched_by", m.how)
	if m.customer != nil {
		log = log.With("customer", m.customer.ID)
	}
	if addr == "" {
		log.Warn("bounce report ignored: it names no address retain sent to", "message_id", r.MessageID)
		return nil
	}
	policy := a.Engine.Set().Lifecycle.Deliverability
	suppressed, why := false, ""
	switch r.Kind {
	case Permanent:
		if addressFailed(r.Status) {
			suppressed, why = true, "bounced"+withStatus(r.Status)+" ("+r.Source+")"
			break
		}
		fallthrough // about the message (blocked, too big): counts like a temporary failure
	case Temporary:
		n, err := a.Store.CountSoftBounce(ctx, addr, r.ID, r.At, now, policy.SoftBounceWindow)
		if err != nil {
			return err
		}
		if n >= policy.SoftBounces {
			suppressed, why = true, fmt.Sprintf("%d delivery failures within %s, the last%s (%s)", n, campaign.FormatDuration(policy.SoftBounceWindow), withStatus(r.Status), r.Source)
		}
	case Complaint:
		suppressed, why = true, "complained: marked an email as spam ("+r.Source+")"
	default:
		return fmt.Errorf("bounce: unknown report kind %q", r.Kind)
	}
	if suppressed {
		if err := a.Store.Suppress(ctx, addr, why, r.At); err != nil {
			return err
		}
	}
	if m.customer != nil {
		if err := a.record(ctx, r, m, suppressed); err != nil {
			return err
		}
	}
	log.Info("bounce report applied", "status", r.Status, "suppressed", suppressed, "diagnostic", clip(r.Diagnostic, 200))
	if m.campaign != "" && (r.Kind == Complaint || suppressed && r.Kind == Permanent) {
		p, err := CheckPause(ctx, a.Store, policy, m.campaign, now)
		if err != nil {
			return err
		}
		if p != nil {
			log.Warn("campaign paused: it sends nothing until `retain campaign resume "+m.campaign+"`", "reason", p.Reason)
		}
	}
	return nil
}

// record writes the report as an event on the customer, once: a complaint
// also unsubscribes them from everything.
func (a *Applier) record(ctx context.Context, r *Report, m match, suppressed bool) error {
	name := map[Kind]string{Permanent: EventBounced, Temporary: EventSoftBounced, Complaint: EventComplained}[r.Kind]
	if r.Kind == Permanent && !addressFailed(r.Status) {
		name = EventSoftBounced
	}
	data := map[string]any{"source": r.Source, "matched_by": m.how, "suppressed": suppressed}
	if m.campaign != "" {
		data["campaign"], data["step"] = m.campaign, m.step
	}
	if m.enrollment > 0 {
		data["enrollment"] = m.enrollment
	}
	if r.Status != "" {
		data["status"] = r.Status
	}
	if r.Diagnostic != "" {
		data["diagnostic"] = clip(r.Diagnostic, 300)
	}
	ev := &lifecycle.Event{ID: "bounce:" + r.ID, Name: name, At: r.At, Data: data}
	eng := a.Engine
	err := a.Store.Update(ctx, m.customer.ID, ev.ID, func(c *lifecycle.Customer) (*store.Change, error) {
		if c == nil {
			return nil, nil // erased since
		}
		if r.Kind == Complaint {
			if !c.Unsubscribed {
				data["unsubscribed"] = true
			}
			c.Unsubscribed = true
		}
		return &store.Change{Customer: c, Event: ev, Wake: eng.NextWake(c), Due: eng.NextDue(c)}, nil
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil
	}
	return err
}

// match finds the customer and step a report is about: by the Return-Path's
// token, the Message-ID's token, or the recipient's address.
func (a *Applier) match(ctx context.Context, r *Report) (match, error) {
	var refs []Ref
	var hows []string
	if r.Token != "" {
		if ref, err := a.Tokens.Parse(r.Token); err == nil {
			refs, hows = append(refs, ref), append(hows, "return-path")
		}
	}
	if r.MessageID != "" && a.Tokens != nil {
		if ref, err := a.Tokens.ParseMessageID(r.MessageID); err == nil {
			refs, hows = append(refs, ref), append(hows, "message-id")
		}
	}
	for i, ref := range refs {
		c, err := a.customerOf(ctx, ref, r.Recipient, refs)
		if err != nil {
			return match{}, err
		}
		if c == nil {
			continue
		}
		step := ref.StepOf(a.stepIDs())
		camp, _, _ := strings.Cut(step, "/")
		return match{customer: c, campaign: camp, step: step, enrollment: ref.Enrollment, how: hows[i]}, nil
	}
	if r.Recipient == "" {
		return match{}, nil
	}
	c, err := a.Store.CustomerByEmail(ctx, r.Recipient)
	if errors.Is(err, store.ErrNotFound) {
		return match{how: "recipient"}, nil
	}
	if err != nil {
		return match{}, err
	}
	// Without a token the report's email is the customer's last one.
	m := match{customer: c, how: "recipient"}
	var last time.Time
	for id, e := range c.Enrollments {
		if len(e.Passed) > 0 && e.Last.After(last) {
			last, m.campaign, m.step, m.enrollment = e.Last, id, id+"/"+e.Passed[len(e.Passed)-1], e.Number
		}
	}
	return m, nil
}

// customerOf reads the customer a token names: by its ID, or, for a token
// with a hash of it, the customer of a full token among refs or of the
// recipient's address, when the hash matches. Nil when none does.
func (a *Applier) customerOf(ctx context.Context, ref Ref, rcpt string, refs []Ref) (*lifecycle.Customer, error) {
	id := ref.Customer
	if id == "" {
		for _, o := range refs {
			if o.Customer != "" && ref.MatchesCustomer(o.Customer) {
				id = o.Customer
			}
		}
	}
	if id == "" && rcpt != "" {
		c, err := a.Store.CustomerByEmail(ctx, rcpt)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, err
		case ref.MatchesCustomer(c.ID):
			return c, nil
		}
		return nil, nil
	}
	if id == "" {
		return nil, nil
	}
	c, err := a.Store.Customer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return c, err
}

func (a *Applier) stepIDs() []string {
	var ids []string
	for _, c := range a.Engine.Set().Campaigns {
		for _, st := range c.Steps {
			ids = append(ids, st.ID)
		}
	}
	return ids
}

// addressFailed reports whether a permanent failure's status is about the
// address itself, so that no later email can reach it: 5.1.x (bad mailbox or
// domain), 5.2.1 (mailbox disabled), or no status at all (a provider's hard
// bounce). Others (5.7.1 blocked as spam, 5.3.4 too big) are about the
// message or the sender, and count like temporary failures.
func addressFailed(status string) bool {
	return status == "" || strings.HasPrefix(status, "5.1.") || status == "5.2.1" || status == "5.0.0"
}

func withStatus(status string) string {
	if status == "" {
		return ""
	}
	return " " + status
}

// contentID identifies a report without an ID of its own by what it says, so
// the same notification delivered twice is one report.
func contentID(r *Report) string {
	h := sha256.New()
	for _, s := range []string{r.Source, string(r.Kind), r.Token, r.MessageID, strings.ToLower(r.Recipient), r.Status, strconv.FormatInt(r.At.Unix(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
