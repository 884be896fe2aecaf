package lifecycle

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/retainmail/retain/campaign"
)

// Action is what to do with an enrollment's next step now.
type Action int

// Actions Decide can return.
const (
	// None: the enrollment is not active or has no step left.
	None Action = iota
	// Wait: the step is not due yet; Decision.Due says when.
	Wait
	// Send: send Decision.Step now, then call Pass(sent=true).
	Send
	// Skip: the step's conditions rule it out; call Pass(sent=false).
	Skip
	// Stop: the enrollment must end (Decision.Reason); call Stop.
	Stop
)

func (a Action) String() string {
	return [...]string{"none", "wait", "send", "skip", "stop"}[a]
}

// Decision is what Decide found for one enrollment.
type Decision struct {
	Action Action
	// Step is the step concerned (Wait, Send, Skip).
	Step *campaign.Step
	// Enrollment is the enrollment decided on (nil for None when there is none).
	Enrollment *Enrollment
	// Due is the step's send time (Wait and Send).
	Due time.Time
	// Reason explains a Skip or Stop.
	Reason string
	// Variant is the A/B variant of Step the customer gets (Send), recorded
	// in Enrollment.AB; empty when the step has no variants.
	Variant string
	// Changes are what following an edit of the campaign changed in the
	// enrollment (steps skipped, the enrollment ended, each with the cause
	// EditedCause); callers record them with the rest.
	Changes []Change
}

// Due returns the campaign IDs of c's active enrollments whose next step is due at
// or before now, earliest first.
func (e *Engine) Due(c *Customer, now time.Time) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[id]
		if enr.Status == Active && enr.Next != "" && !enr.Due.After(now) {
			ids = append(ids, id)
		}
	}
	slices.SortStableFunc(ids, func(a, b string) int { return c.Enrollments[a].Due.Compare(c.Enrollments[b].Due) })
	return ids
}

// NextDue is the earliest send time among c's active enrollments, or zero.
func (e *Engine) NextDue(c *Customer) time.Time {
	var next time.Time
	for _, enr := range c.Enrollments {
		if enr.Status == Active && enr.Next != "" && (next.IsZero() || enr.Due.Before(next)) {
			next = enr.Due
		}
	}
	return next
}

// Decide re-checks everything about the next step of c's enrollment in campaignID
// at now: that the campaign and step still exist (rescheduling when the campaign was
// edited), the customer's subscription, the audience, the step's time and send
// window, and only_if/skip_if. The worker calls it at send time; plan at each due
// time. It changes c only to follow campaign edits.
func (e *Engine) Decide(c *Customer, campaignID string, now time.Time) Decision {
	enr := c.Enrollments[campaignID]
	if enr == nil || enr.Status != Active {
		return Decision{Action: None, Enrollment: enr}
	}
	camp := e.set.Campaign(campaignID)
	if camp == nil {
		return Decision{Action: Stop, Enrollment: enr, Reason: EditedCause + ": campaign removed"}
	}
	// Find the step that comes next in the campaign as it is now, and its send
	// time: the campaign, the step's delay, time of day or window may have been
	// edited since the enrollment was scheduled.
	var edits changes
	e.schedule(c, camp, enr, now, &edits)
	if enr.Status != Active {
		return Decision{Action: None, Enrollment: enr, Changes: edits.list}
	}
	st := stepBySlug(camp, enr.Next)
	d := Decision{Enrollment: enr, Step: st, Due: enr.Due, Changes: edits.list}
	switch {
	case c.Unsubscribed:
		d.Action, d.Reason = Stop, "unsubscribed"
		return d
	case camp.Topic != "" && slices.Contains(c.OptedOut, camp.Topic):
		d.Action, d.Reason = Stop, "opted out of "+camp.Topic
		return d
	case now.Before(enr.Due):
		d.Action = Wait
		return d
	case e.FrequencyCap > 0 && !c.LastSent.IsZero() && now.Before(c.LastSent.Add(e.FrequencyCap)):
		d.Action, d.Due = Wait, inWindow(camp.SendWindow, st.At, c.LastSent.Add(e.FrequencyCap), e.Location(c))
		d.Reason = "frequency cap"
		return d
	case !allowed(camp.SendWindow, now, e.Location(c)):
		d.Action, d.Due = Wait, inWindow(camp.SendWindow, st.At, now, e.Location(c))
		return d
	}
	env := e.env(c, now, nil)
	var ch changes
	switch {
	case !e.eval(camp.Audience, env, &ch):
		d.Action, d.Reason = Stop, "no longer in the audience ("+camp.Audience.Source+")"
	case st.OnlyIf != nil && !e.eval(st.OnlyIf, env, &ch):
		d.Action, d.Reason = Skip, "only_if is false: "+st.OnlyIf.Source
	case st.SkipIf != nil && e.eval(st.SkipIf, env, &ch):
		d.Action, d.Reason = Skip, "skip_if is true: "+st.SkipIf.Source
	case enr.Group == GroupControl:
		d.Action, d.Reason = Skip, HoldoutReason
	default:
		d.Action = Send
		d.Variant = variant(c, enr, st)
	}
	if ch.err != nil {
		d.Action, d.Reason = Skip, ch.err.Error()
	}
	return d
}

// HoldoutReason is why a step of a customer in a campaign's holdout (control)
// group is passed without a send.
const HoldoutReason = "holdout: in the control group"

// Pass records that the next step of c's enrollment in campaignID was sent (or
// skipped) at at, and schedules the step after it from then, or completes the
// enrollment.
func (e *Engine) Pass(c *Customer, campaignID string, at time.Time, sent bool, reason string) ([]Change, error) {
	enr := c.Enrollments[campaignID]
	camp := e.set.Campaign(campaignID)
	if enr == nil || enr.Status != Active || enr.Next == "" || camp == nil {
		return nil, fmt.Errorf("pass %s for %s: no active enrollment with a next step", campaignID, c.ID)
	}
	var ch changes
	kind := KindSent
	if !sent {
		kind = KindSkipped
	}
	ch.add(Change{Kind: kind, At: at, Campaign: camp.ID, Enrollment: enr.Number, Step: camp.ID + "/" + enr.Next, Reason: reason, Variant: enr.AB[enr.Next]})
	enr.Passed = append(enr.Passed, enr.Next)
	// The next step's delay counts from when this one was due, not from
	// when a worker got to it: processing latency must not shift a sequence
	// (an at: time would slip a whole day for a send a second late). A step
	// passed much later than due (an outage) counts from its pass instead, so
	// the next one does not follow on its heels.
	base := at
	if !enr.Due.IsZero() && at.After(enr.Due) && at.Sub(enr.Due) <= onTime {
		base = enr.Due
	}
	enr.Last, enr.Attempts = base, 0
	if sent {
		c.LastSent = at
	}
	e.schedule(c, camp, enr, at, &ch)
	return ch.list, ch.err
}

// onTime is how late a step may be passed and still count as passed when due
// (see Pass).
const onTime = time.Hour

// Stop ends c's enrollment in campaignID as exited, for reason (a Decision's).
func (e *Engine) Stop(c *Customer, campaignID string, at time.Time, reason string) []Change {
	enr := c.Enrollments[campaignID]
	if enr == nil || enr.Status != Active {
		return nil
	}
	var ch changes
	e.end(enr, Exited, at, reason, KindExited, &ch)
	return ch.list
}

// Record applies what became of a send of the next step of c's enrollment in
// campaignID at at, detail being the relay's words: sent (or maybe sent)
// passes the step as sent; refused or unrenderable passes it as skipped; a
// bounced address ends the enrollment; a retry counts an attempt and makes the
// step due again after the backoff (RetryBase doubling per attempt, up to
// RetryMax). Each change it returns carries the outcome.
func (e *Engine) Record(c *Customer, campaignID string, at time.Time, o Outcome, detail string) ([]Change, error) {
	enr := c.Enrollments[campaignID]
	if enr == nil || enr.Status != Active || enr.Next == "" {
		return nil, fmt.Errorf("record %s of %s for %s: no active enrollment with a next step", o, campaignID, c.ID)
	}
	step := campaignID + "/" + enr.Next
	var chs []Change
	var err error
	switch o {
	case OutcomeSent:
		chs, err = e.Pass(c, campaignID, at, true, "")
	case OutcomeUnknown:
		chs, err = e.Pass(c, campaignID, at, true, "connection lost after DATA: "+detail)
	case OutcomeRefused, OutcomeUnrenderable:
		chs, err = e.Pass(c, campaignID, at, false, string(o)+": "+detail)
	case OutcomeBounced:
		chs = e.Stop(c, campaignID, at, "bounced: "+detail)
	case OutcomeRetry:
		return e.Retry(c, campaignID, at, detail), nil
	default:
		return nil, fmt.Errorf("record %s: unknown outcome %q", step, o)
	}
	// The change of the step itself (sent, skipped or exited: the first)
	// carries the outcome; those that follow it, such as the enrollment
	// completed, do not.
	if len(chs) > 0 {
		chs[0].Outcome, chs[0].Step = o, step
	}
	return chs, err
}

// Retry records a temporary failure of the send of the next step of c's
// enrollment in campaignID at at: it counts the attempt and makes the step due
// again after Backoff(attempts).
func (e *Engine) Retry(c *Customer, campaignID string, at time.Time, detail string) []Change {
	enr := c.Enrollments[campaignID]
	if enr == nil || enr.Status != Active || enr.Next == "" {
		return nil
	}
	enr.Attempts++
	enr.Due = at.Add(e.Backoff(enr.Attempts))
	return []Change{{Kind: KindRetry, At: at, Campaign: campaignID, Enrollment: enr.Number,
		Step: campaignID + "/" + enr.Next, Reason: detail, Outcome: OutcomeRetry}}
}

// Backoff is the wait before attempt n+1 of a send after n temporary
// failures: RetryBase doubling per attempt, at most RetryMax.
func (e *Engine) Backoff(n int) time.Duration {
	base, most := cmpOr(e.RetryBase, 30*time.Second), cmpOr(e.RetryMax, time.Hour)
	return min(base<<min(max(n-1, 0), 20), most)
}

// Postpone makes the next step of c's enrollment in campaignID due at until,
// without counting an attempt: a Decision to Wait (the send window, the
// frequency cap), or another worker holding the send.
func (e *Engine) Postpone(c *Customer, campaignID string, until time.Time) {
	if enr := c.Enrollments[campaignID]; enr != nil && enr.Status == Active && enr.Next != "" {
		enr.Due = until
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func stepBySlug(camp *campaign.Campaign, slug string) *campaign.Step {
	for _, st := range camp.Steps {
		if st.Slug == slug {
			return st
		}
	}
	return nil
}
