// Package lifecycle is retain's engine: given the campaigns, a customer's state and
// an event or the current time, it decides stage changes, enrollments, exits, goals
// reached, and which email is due when.
//
// It is pure: no Redis, no clock, no network. Callers pass the time in and persist
// the Customer it changes (package store); the worker and `retain plan` drive the
// same methods, so what plan prints is what is sent.
//
//	e := lifecycle.New(set)
//	changes, err := e.Apply(c, lifecycle.Event{Name: "signed_up", At: now})
//	wake := e.NextWake(c)          // when the next time rule can fire: index it
//	d := e.Decide(c, "onboarding", now)
//	if d.Action == lifecycle.Send { /* render, send */ e.Pass(c, "onboarding", now, true) }
//
// Time: a delay in whole days (2d, 1w) keeps the local wall-clock time across DST
// changes in the customer's timezone; hours and minutes are exact durations. `at`
// moves a send to that local time of day on or after the delay; a send window then
// moves it to the next allowed day and hour.
package lifecycle
