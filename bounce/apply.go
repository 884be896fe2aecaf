package bounce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
// often, and from however many sources, it arrives: a report matched to a
// send counts once per send and kind (a provider's bounce and its
// subscription change, a DSN delivered twice); others by their ID, or a hash
// of what they say. Then each campaign reported on is checked for
// auto-pause, once.
func (a *Applier) Apply(ctx context.Context, reports []Report) error {
	var errs []error
	var camps []string
	for i := range reports {
		camp, err := a.apply(ctx, &reports[i])
		if err != nil {
			errs = append(errs, err)
		}
		if camp != "" && !slices.Contains(camps, camp) {
			camps = append(camps, camp)
		}
	}
	now := a.now()
	for _, id := range camps {
		p, err := CheckPause(ctx, a.Store, a.Engine.Set().Lifecycle.Deliverability, id, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p != nil {
			a.log().Warn("campaign paused: it sends nothing until `retain campaign resume "+id+"`", "campaign", id, "reason", p.Reason)
		}
	}
	return errors.Join(errs...)
}

// match is what a report was matched to.
type match struct {
	// addr is the address the email went to, as the report names it: the
	// one to suppress. Empty when the report cannot be trusted to name it.
	addr     string
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

// apply applies one report and returns the campaign whose rates it changed,
// if any.
func (a *Applier) apply(ctx context.Context, r *Report) (string, error) {
	now := a.now()
	if r.ID == "" {
		r.ID = contentID(r)
	}
	if r.At.IsZero() || r.At.After(now) {
		r.At = now
	}
	m, err := a.match(ctx, r)
	if err != nil {
		return "", err
	}
	log := a.log().With("source", r.Source, "kind", string(r.Kind), "campaign", m.campaign, "step", m.step, "matched_by", m.how)
	if m.customer != nil {
		log = log.With("customer", m.customer.ID)
	}
	if m.addr == "" {
		log.Warn("bounce report ignored: it names no address of an email retain sent", "message_id", r.MessageID)
		return "", nil
	}
	// A report about a send counts once per send and kind, from any source.
	id := r.ID
	if m.step != "" && m.customer != nil {
		id = "send:" + m.customer.ID + ":" + m.step + ":" + strconv.Itoa(m.enrollment) + ":" + string(r.Kind)
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
		n, err := a.Store.CountSoftBounce(ctx, m.addr, id, r.At, now, policy.SoftBounceWindow)
		if err != nil {
			return "", err
		}
		if n >= policy.SoftBounces {
			suppressed, why = true, fmt.Sprintf("%d delivery failures within %s, the last%s (%s)", n, campaign.FormatDuration(policy.SoftBounceWindow), withStatus(r.Status), r.Source)
		}
	case Complaint:
		suppressed, why = true, "complained: marked an email as spam ("+r.Source+")"
	default:
		return "", fmt.Errorf("bounce: unknown report kind %q", r.Kind)
	}
	if suppressed {
		if err := a.Store.Suppress(ctx, m.addr, why, r.At); err != nil {
			return "", err
		}
	}
	counted := false
	if m.customer != nil {
		if counted, err = a.record(ctx, r, m, id, suppressed); err != nil {
			return "", err
		}
	}
	log.Info("bounce report applied", "status", r.Status, "suppressed", suppressed, "first", counted, "diagnostic", clip(r.Diagnostic, 200))
	if counted && (r.Kind == Complaint || suppressed && r.Kind == Permanent) {
		return m.campaign, nil
	}
	return "", nil
}

// record writes the report as an event on the customer, once per id: a
// complaint also unsubscribes them from everything. It reports whether this
// call wrote it (false: applied before).
func (a *Applier) record(ctx context.Context, r *Report, m match, id string, suppressed bool) (bool, error) {
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
	ev := &lifecycle.Event{ID: "bounce:" + id, Name: name, At: r.At, Data: data}
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
		return false, nil
	}
	return err == nil, err
}

// match finds the address, customer and step a report is about. A report
// with a token retain signed (its Return-Path's, or its Message-ID's) is
// about that send only: its recipient must be the address the token was sent
// to, and the customer the one the token names, else nothing of it is
// trusted (a recipient may report their own email with another's address).
// A report without a token (a provider's, signed by the provider) is matched
// by its recipient, and counted against the customer's last email.
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
	addr := strings.ToLower(strings.TrimSpace(r.Recipient))
	if len(refs) > 0 || r.Token != "" {
		for i, ref := range refs {
			if !ref.MatchesAddress(addr) {
				continue
			}
			m := match{addr: addr, how: hows[i], enrollment: ref.Enrollment}
			m.step = ref.StepOf(a.stepIDs())
			m.campaign, _, _ = strings.Cut(m.step, "/")
			c, err := a.Store.CustomerByEmail(ctx, addr)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return match{}, err
			case ref.MatchesCustomer(c.ID):
				m.customer = c
			}
			return m, nil
		}
		// Signed, but not for this recipient: a forward, or a forgery.
		return match{how: hows0(hows)}, nil
	}
	if addr == "" {
		return match{}, nil
	}
	m := match{addr: addr, how: "recipient"}
	c, err := a.Store.CustomerByEmail(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return match{}, err
	}
	m.customer = c
	var last time.Time
	for id, e := range c.Enrollments {
		if len(e.Passed) > 0 && e.Last.After(last) {
			last, m.campaign, m.step, m.enrollment = e.Last, id, id+"/"+e.Passed[len(e.Passed)-1], e.Number
		}
	}
	return m, nil
}

func hows0(hows []string) string {
	if len(hows) == 0 {
		return "return-path"
	}
	return hows[0]
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
// bounce). Others (5.7.1 blocked as spam, 5.3.4 too big, the bare 5.0.0 many
// servers give for policy blocks) are about the message or the sender, and
// count like temporary failures.
func addressFailed(status string) bool {
	return status == "" || strings.HasPrefix(status, "5.1.") || status == "5.2.1"
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
