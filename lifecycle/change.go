package lifecycle

import "time"

// Kind says what a Change is.
type Kind string

// Change kinds.
const (
	KindStage     Kind = "stage"
	KindEnrolled  Kind = "enrolled"
	KindExited    Kind = "exited"
	KindGoal      Kind = "goal_reached"
	KindCompleted Kind = "completed"
	KindSent      Kind = "sent"
	KindSkipped   Kind = "skipped"
	// KindRetry: a send failed for now (Outcome retry); the step is due again
	// after a backoff.
	KindRetry Kind = "retry"
	// KindConditionError: a condition of an event or stage change (a trigger,
	// goal or transition where, an audience at enrollment) failed while
	// running and counted as false. Campaign names its campaign, empty for a
	// transition of lifecycle.yaml; Reason says where the condition is and why.
	KindConditionError Kind = "condition_error"
)

// Change is one decision of the engine, in the order it was taken.
type Change struct {
	Kind Kind      `json:"kind"`
	At   time.Time `json:"at"`
	// From and To are the stages of a KindStage change.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Campaign, Enrollment and Step (the step identity) for campaign changes.
	Campaign   string `json:"campaign,omitempty"`
	Enrollment int    `json:"enrollment,omitempty"`
	Step       string `json:"step,omitempty"`
	// Reason is the cause of a stage change, exit or skip.
	Reason string `json:"reason,omitempty"`
	// Outcome, on a sent, skipped or exited change that a send attempt made,
	// is what the relay did with it.
	Outcome Outcome `json:"outcome,omitempty"`
	// Group, on an enrolled or goal_reached change, is the enrollment's
	// group (GroupControl for the holdout, else empty).
	Group string `json:"group,omitempty"`
	// Variant, on a change of a step with A/B variants, is the variant the
	// customer was given ("a", "b", …).
	Variant string `json:"variant,omitempty"`
}

// Outcome is what became of one send attempt: one typed value that the engine
// records on its changes and that the send ledger, the reports and the metrics
// read, instead of matching reasons by prefix.
type Outcome string

// Send outcomes.
const (
	// OutcomeSent: the relay accepted the message (250 after the final ".").
	OutcomeSent Outcome = "sent"
	// OutcomeUnknown: the connection was lost after DATA; the message may have
	// been delivered (RFC 5321 §4.5.3.2), so it counts as sent, never retried.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeRefused: the relay refused the message for good (5xx); the step
	// is skipped.
	OutcomeRefused Outcome = "refused"
	// OutcomeBounced: the relay refused the address (5.1.x); the address is
	// suppressed and the enrollment ends.
	OutcomeBounced Outcome = "bounced"
	// OutcomeUnrenderable: the customer's data cannot make a valid email (a
	// line break in a header); the step is skipped.
	OutcomeUnrenderable Outcome = "unrenderable"
	// OutcomeRetry: a temporary failure (4xx, a connection error); nothing was
	// delivered, and the step is tried again later.
	OutcomeRetry Outcome = "retry"
)

// Sent reports whether the step counts as sent.
func (o Outcome) Sent() bool { return o == OutcomeSent || o == OutcomeUnknown }

// Failed reports whether the step could not be delivered for good.
func (o Outcome) Failed() bool {
	return o == OutcomeRefused || o == OutcomeBounced || o == OutcomeUnrenderable
}
