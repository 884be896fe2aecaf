// Package plan builds a customer's coming timeline — stage changes, each email with
// its send time and subject, each skipped step with the reason — by running the
// lifecycle engine on a simulated clock. `retain plan` prints it and retain web's
// timeline API returns it; both get exactly what the worker would do.
package plan

import (
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/render"
)

// Entry is one line of a timeline. Fields that do not apply to a kind are empty.
type Entry struct {
	// Kind: email, skip, stage, enrolled, exited, goal_reached, completed or
	// condition_error (a condition that failed while running and counted as false).
	Kind string `json:"kind"`
	// At is UTC, Local the customer's time, both RFC 3339.
	At         string `json:"at"`
	Local      string `json:"local"`
	Campaign   string `json:"campaign,omitempty"`
	Enrollment int    `json:"enrollment,omitempty"`
	Step       string `json:"step,omitempty"`
	// Variant is the A/B variant of an email of a step that has variants:
	// "a" (the step's own file), "b", …; File is that variant's file.
	Variant string `json:"variant,omitempty"`
	File    string `json:"file,omitempty"`
	Subject string `json:"subject,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Timeline is a customer's plan from From until Until.
type Timeline struct {
	Customer string  `json:"customer"`
	Timezone string  `json:"timezone"`
	From     string  `json:"from"`
	Until    string  `json:"until"`
	Stage    string  `json:"stage"`
	Entries  []Entry `json:"timeline"`
}

// Build runs c forward through events (its history and anything to come) until
// until and returns what happens from from on, as the worker would do it when
// the events up to from are applied at from (lifecycle.Engine.SimulateFrom):
// steps they made due long before are skipped as stale, overdue ones go out
// at from. c is changed: pass a copy of a stored customer. data renders the
// subjects; its Customer is the customer as templates see it.
func Build(eng *lifecycle.Engine, r *render.Renderer, c *lifecycle.Customer, events []lifecycle.Event, data *render.Data, from, until time.Time) (*Timeline, error) {
	changes, err := eng.SimulateFrom(c, events, from, until)
	if err != nil {
		return nil, err
	}
	set := eng.Set()
	loc := eng.Location(c)
	t := &Timeline{Customer: c.ID, Timezone: loc.String(), From: from.Format(time.RFC3339), Until: until.Format(time.RFC3339), Stage: c.Stage, Entries: []Entry{}}
	for _, ch := range changes {
		if ch.At.Before(from) {
			continue // history
		}
		e := Entry{Kind: string(ch.Kind), At: ch.At.UTC().Format(time.RFC3339), Local: ch.At.In(loc).Format(time.RFC3339),
			Campaign: ch.Campaign, Enrollment: ch.Enrollment, Step: ch.Step, Variant: ch.Variant, From: ch.From, To: ch.To, Reason: ch.Reason}
		switch ch.Kind {
		case lifecycle.KindSent:
			e.Kind = "email"
		case lifecycle.KindSkipped:
			e.Kind = "skip"
		}
		if st := set.Step(ch.Step); st != nil {
			e.File = st.ContentForVariant(ch.Variant, data.Customer.Locale).Path
			if e.Kind == "email" && r != nil {
				data.Event = triggerOf(c, st.Campaign, ch.Enrollment, changes, events)
				if email, err := r.RenderVariant(st.ID, ch.Variant, data, nil); err == nil {
					e.Subject = email.Subject
				}
			}
		}
		t.Entries = append(t.Entries, e)
	}
	return t, nil
}

// triggerOf is the event that started enrollment n of c in camp, as the
// worker renders it (render.EventOf): the enrollment's own when it is c's
// latest, else the trigger event applied when enrollment n began.
func triggerOf(c *lifecycle.Customer, camp *campaign.Campaign, n int, changes []lifecycle.Change, events []lifecycle.Event) render.Event {
	if enr := c.Enrollments[camp.ID]; enr != nil && enr.Number == n {
		return render.EventOf(c, camp)
	}
	for _, ch := range changes {
		if ch.Kind != lifecycle.KindEnrolled || ch.Campaign != camp.ID || ch.Enrollment != n {
			continue
		}
		// The trigger event applied last before the enrollment: an event
		// applied late starts it at the customer's clock, after its own time.
		var found *lifecycle.Event
		for i, ev := range events {
			if ev.Name == camp.Trigger.Event && !ev.At.After(ch.At) && (found == nil || !ev.At.Before(found.At)) {
				found = &events[i]
			}
		}
		if found != nil {
			return render.NewEvent(camp, found.Name, found.At, found.Data)
		}
	}
	return render.NewEvent(camp, "", time.Time{}, nil)
}
