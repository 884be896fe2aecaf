package lifecycle

import (
	"slices"
	"time"

	"github.com/retainmail/retain/campaign"
)

// Broadcasts returns the broadcasts of the engine's campaigns (kind:
// broadcast), by ID.
func (e *Engine) Broadcasts() []*campaign.Campaign {
	var out []*campaign.Campaign
	for _, c := range e.set.Campaigns {
		if c.IsBroadcast() {
			out = append(out, c)
		}
	}
	return out
}

// BroadcastAt is when broadcast camp is sent to a customer in zone loc: its
// send_at instant, or its local send_at on loc's wall clock (a time a DST
// change skips moves forward by the gap, as at: does), then moved into the
// campaign's send window if it has one.
func BroadcastAt(camp *campaign.Campaign, loc *time.Location) time.Time {
	s := camp.Broadcast.SendAt
	t := s.Instant
	if s.Local {
		y, m, d := s.Date.Date()
		t = localTime(y, m, d, s.Date.Hour(), s.Date.Minute(), 0, 0, loc)
	}
	return inWindow(camp.SendWindow, nil, t, loc)
}

// BroadcastGrace is how long after its send time a broadcast may still be
// sent: the lifecycle's backfill grace, and at least an hour, so that a
// grace set near 0 for imports does not skip broadcasts that a scheduler
// gets to a tick late.
func (e *Engine) BroadcastGrace() time.Duration { return max(e.lc.BackfillGrace, time.Hour) }

// Choice is what a broadcast's audience evaluation decides for one customer.
type Choice int

// Choices, in the order Choose checks them.
const (
	// ChoiceHad: the customer is enrolled in the broadcast already (an
	// evaluation that ran before, or was interrupted).
	ChoiceHad Choice = iota
	// ChoiceUnsubscribed: unsubscribed from every email.
	ChoiceUnsubscribed
	// ChoiceOptedOut: opted out of the broadcast's topic.
	ChoiceOptedOut
	// ChoiceSuppressed: the address is on the suppression list. The engine
	// does not know suppressions: the caller that looked it up says so.
	ChoiceSuppressed
	// ChoiceOutside: not in the audience.
	ChoiceOutside
	// ChoiceError: the audience condition failed while running for this
	// customer (a missing attribute of another type): counted apart, and
	// not enrolled.
	ChoiceError
	// ChoiceLate: the customer's send time passed longer ago than the
	// lifecycle's backfill grace: the broadcast would mail the past.
	ChoiceLate
	// ChoiceControl: in the audience and in the holdout: enrolled in the
	// control group, sent nothing.
	ChoiceControl
	// ChoiceSend: in the audience; gets the email at their send time.
	ChoiceSend
)

var choiceNames = [...]string{"already enrolled", "unsubscribed", "opted out of the topic", "suppressed", "not in the audience", "audience condition failed", "send time long past", "control group", "sent"}

func (ch Choice) String() string { return choiceNames[ch] }

// Choices lists every choice, in order.
var Choices = []Choice{ChoiceHad, ChoiceUnsubscribed, ChoiceOptedOut, ChoiceSuppressed, ChoiceOutside, ChoiceError, ChoiceLate, ChoiceControl, ChoiceSend}

// Enrols reports whether the customer is enrolled (ChoiceSend, ChoiceControl).
func (ch Choice) Enrols() bool { return ch == ChoiceControl || ch == ChoiceSend }

// Choose decides broadcast camp for c at now, the moment its audience is
// evaluated. A suppressed address is the caller's to check: the engine does
// not know suppressions. Choose does not change c.
func (e *Engine) Choose(c *Customer, camp *campaign.Campaign, now time.Time) Choice {
	switch {
	case c.Enrollments[camp.ID] != nil:
		return ChoiceHad
	case c.Unsubscribed:
		return ChoiceUnsubscribed
	case camp.Topic != "" && slices.Contains(c.OptedOut, camp.Topic):
		return ChoiceOptedOut
	}
	switch ok, err := e.Matches(c, camp.Audience, now); {
	case err != nil:
		return ChoiceError
	case !ok:
		return ChoiceOutside
	}
	if BroadcastAt(camp, e.Location(c)).Before(now.Add(-e.BroadcastGrace())) {
		return ChoiceLate
	}
	if InHoldout(c.ID, camp) {
		return ChoiceControl
	}
	return ChoiceSend
}

// EnrollBroadcast enrols c in broadcast camp at now when Choose says so, due
// at the customer's send time (BroadcastAt), and returns the choice and the
// changes. Enrolling twice is impossible: a customer enrolled once is
// ChoiceHad, so an evaluation may run again after a crash.
func (e *Engine) EnrollBroadcast(c *Customer, camp *campaign.Campaign, now time.Time) (Choice, []Change) {
	choice := e.Choose(c, camp, now)
	if !choice.Enrols() {
		return choice, nil
	}
	var ch changes
	e.enroll(c, camp, now, &ch)
	return choice, ch.list
}
