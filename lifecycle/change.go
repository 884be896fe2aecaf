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
}
