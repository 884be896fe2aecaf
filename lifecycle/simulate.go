package lifecycle

import (
	"fmt"
	"slices"
	"time"

	"github.com/retainmail/retain/campaign"
)

// maxSteps bounds a simulation, in case rules and campaigns keep producing work at
// the same moment forever.
const maxSteps = 100_000

// Simulate runs c forward on a simulated clock until until, as the worker and the
// scheduler would: events are applied at their times, time rules fire at their
// moments, and every due step is decided at its send time and passed — sent when
// Decide says Send, skipped with its reason otherwise. At one moment, time rules go
// first, then events, then sends. It returns every change in order.
//
// `retain plan` prints what Simulate returns; it calls the same methods the worker
// does, so the plan is what is sent (short of a failed delivery).
func (e *Engine) Simulate(c *Customer, events []Event, until time.Time) ([]Change, error) {
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	return e.simulate(c, events, time.Time{}, until, false)
}

// simulate runs c until until on events sorted by time; sends due before
// notBefore happen at notBefore (time rules keep their own moments). With
// broadcasts, each broadcast first due from notBefore on has its audience
// decided for c at that moment, as the scheduler does (a suppressed address
// is not known here).
func (e *Engine) simulate(c *Customer, events []Event, notBefore, until time.Time, broadcasts bool) ([]Change, error) {
	var out []Change
	add := func(chs []Change, err error) error {
		out = append(out, chs...)
		return err
	}
	var pending []*campaign.Campaign // broadcasts to decide, by their first due time
	if broadcasts {
		for _, camp := range e.Broadcasts() {
			if at := camp.Broadcast.SendAt.Earliest(); !at.Before(notBefore) && !at.After(until) {
				pending = append(pending, camp)
			}
		}
		slices.SortStableFunc(pending, func(a, b *campaign.Campaign) int {
			return a.Broadcast.SendAt.Earliest().Compare(b.Broadcast.SendAt.Earliest())
		})
	}
	for range maxSteps {
		var next time.Time
		due := e.NextDue(c)
		if !due.IsZero() && due.Before(notBefore) {
			due = notBefore
		}
		var decide time.Time
		if len(pending) > 0 {
			decide = pending[0].Broadcast.SendAt.Earliest()
		}
		for _, t := range []time.Time{e.NextWake(c), due, decide} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if len(events) > 0 && (next.IsZero() || !next.Before(events[0].At)) {
			next = events[0].At
		}
		if next.IsZero() || next.After(until) {
			return out, nil
		}
		if err := add(e.CatchUp(c, next)); err != nil {
			return out, err
		}
		for len(events) > 0 && !events[0].At.After(next) {
			if err := add(e.Apply(c, events[0])); err != nil {
				return out, fmt.Errorf("event %s at %s: %w", events[0].Name, events[0].At.Format(time.RFC3339), err)
			}
			events = events[1:]
		}
		for len(pending) > 0 && !pending[0].Broadcast.SendAt.Earliest().After(next) {
			_, chs := e.EnrollBroadcast(c, pending[0], next)
			out = append(out, chs...)
			pending = pending[1:]
		}
		if next.Before(notBefore) {
			continue // nothing is sent before notBefore
		}
		for _, id := range e.Due(c, next) {
			d := e.Decide(c, id, next)
			out = append(out, d.Changes...)
			switch d.Action {
			case Send:
				if err := add(e.Pass(c, id, next, true, "")); err != nil {
					return out, err
				}
			case Skip:
				if err := add(e.Pass(c, id, next, false, d.Reason)); err != nil {
					return out, err
				}
			case Stop:
				out = append(out, e.Stop(c, id, next, d.Reason)...)
			case Wait:
				d.Enrollment.Due = d.Due // outside the send window: the worker reschedules too
			}
		}
	}
	return out, fmt.Errorf("simulation did not settle after %d steps: do rules or campaigns loop?", maxSteps)
}
