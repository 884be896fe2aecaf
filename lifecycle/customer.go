package lifecycle

import (
	"maps"
	"slices"
	"time"
)

// Customer is everything the engine knows of one customer: profile, stage, counters
// and enrollments. The store persists it; the engine reads and changes it.
type Customer struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name,omitempty"`
	Name      string `json:"name,omitempty"`
	// Locale and Timezone are empty for the lifecycle's defaults.
	Locale   string `json:"locale,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Attributes hold the attributes declared in lifecycle.yaml, typed by
	// campaign.Lifecycle.CoerceAttribute.
	Attributes map[string]any `json:"attributes,omitempty"`
	// Counters count events by counter name (lifecycle.yaml counters:).
	Counters map[string]int `json:"counters,omitempty"`

	Stage      string    `json:"stage"`
	StageSince time.Time `json:"stage_since"`
	CreatedAt  time.Time `json:"created_at"`
	// LastActivity is the time of the last activity event; zero when none yet.
	LastActivity time.Time `json:"last_activity,omitzero"`
	// LastEvent is the time of the latest event applied; the engine's clock for
	// this customer never runs backwards past it.
	LastEvent time.Time `json:"last_event,omitzero"`

	// LastSent is when the customer was last sent an email by any campaign, for
	// the frequency cap; zero when never.
	LastSent time.Time `json:"last_sent,omitzero"`

	// Unsubscribed is set when the customer unsubscribed from every email.
	Unsubscribed bool `json:"unsubscribed,omitempty"`
	// OptedOut lists the topics the customer opted out of.
	OptedOut []string `json:"opted_out,omitempty"`

	// Enrollments by campaign ID: the current or latest enrollment of each.
	Enrollments map[string]*Enrollment `json:"enrollments,omitempty"`
}

// Event is something a customer did or that happened to them.
type Event struct {
	// ID makes an event idempotent: applying the same ID twice changes nothing.
	ID   string         `json:"id,omitempty"`
	Name string         `json:"name"`
	At   time.Time      `json:"at"`
	Data map[string]any `json:"data,omitempty"`
}

// StageChange is one move between stages, with its cause.
type StageChange struct {
	From  string    `json:"from"`
	To    string    `json:"to"`
	At    time.Time `json:"at"`
	Cause string    `json:"cause"`
}

// Status is the state of an enrollment.
type Status string

// Enrollment statuses.
const (
	Active    Status = "active"
	Completed Status = "completed"    // every step passed
	Exited    Status = "exited"       // an exit event, leaving the stage, or an audience change
	Converted Status = "goal_reached" // the campaign's goal event happened
)

// Enrollment is one pass of a customer through a campaign.
type Enrollment struct {
	Campaign string `json:"campaign"`
	// Number counts the customer's enrollments in this campaign, from 1; it is part
	// of every ledger entry and Message-ID, so a re-entry sends anew.
	Number  int       `json:"n"`
	Started time.Time `json:"started"`
	Status  Status    `json:"status"`
	// Ended and Reason are set once the enrollment is no longer active.
	Ended  time.Time `json:"ended,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Passed lists the slugs of the steps sent or skipped, in order. Steps are known
	// by slug, so reordering or adding steps to a live campaign is safe.
	Passed []string `json:"passed,omitempty"`
	// Last is when the latest step was passed (Started before the first).
	Last time.Time `json:"last"`
	// Next is the slug of the next step and Due its send time; both empty when the
	// enrollment is not active or has no step left.
	Next string    `json:"next,omitempty"`
	Due  time.Time `json:"due,omitzero"`
	// Attempts counts temporary delivery failures of the next step.
	Attempts int `json:"attempts,omitempty"`
	// Scheduled is when events or time rules last scheduled the next step,
	// when they were applied late enough to matter (see Engine.SkipStale).
	Scheduled time.Time `json:"scheduled,omitzero"`
	// Edits lists the steps skipped because the campaign was edited while the
	// customer was in it (see Locate); an enrollment an edit ended says so in
	// Reason.
	Edits []Edit `json:"edits,omitempty"`
	// Event is the event that enrolled the customer, for an event-triggered
	// campaign: its name, time and the data fields the campaign declares
	// (event_data:), which its templates read as .Event.
	Event *TriggerEvent `json:"ev,omitempty"`
	// Group is GroupControl when the customer is in the campaign's holdout
	// (control) group: enrolled, sent nothing. Empty for everyone else.
	Group string `json:"group,omitempty"`
	// AB records, by step slug, the A/B variant the customer was given of
	// each step with variants ("a" for the step's own content), from when it
	// was first decided to send it: a retry, an edit of the split or a
	// report reads the same one.
	AB map[string]string `json:"ab,omitempty"`
}

// GroupControl is the Group of an enrollment in a campaign's holdout.
const GroupControl = "control"

// TriggerEvent is the event an enrollment began with, as kept with it: the
// campaign's declared data fields only, so an enrollment stays small.
type TriggerEvent struct {
	Name string         `json:"name"`
	At   time.Time      `json:"at"`
	Data map[string]any `json:"data,omitempty"`
}

// Edit is one step an enrollment skipped because its campaign was edited.
type Edit struct {
	At time.Time `json:"at"`
	// Step is the slug of the step skipped.
	Step   string `json:"step"`
	Reason string `json:"reason"`
}

// Clone returns a copy of c that shares nothing the engine changes, so two
// engines can decide on the same customer side by side (retain impact).
// Attribute values are immutable and shared.
func (c *Customer) Clone() *Customer {
	cp := *c
	cp.Attributes = maps.Clone(c.Attributes)
	cp.Counters = maps.Clone(c.Counters)
	cp.OptedOut = slices.Clone(c.OptedOut)
	if c.Enrollments != nil {
		cp.Enrollments = make(map[string]*Enrollment, len(c.Enrollments))
		for id, e := range c.Enrollments {
			ec := *e
			ec.Passed = slices.Clone(e.Passed)
			ec.Edits = slices.Clone(e.Edits)
			ec.AB = maps.Clone(e.AB)
			if e.Event != nil {
				ev := *e.Event
				ev.Data = maps.Clone(e.Event.Data)
				ec.Event = &ev
			}
			cp.Enrollments[id] = &ec
		}
	}
	return &cp
}
