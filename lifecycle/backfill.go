package lifecycle

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Waiting is what c's active enrollments wait for, by campaign: the enrollment
// number and the next step. Take it before applying events, for SkipStale.
func Waiting(c *Customer) map[string]string {
	out := make(map[string]string, len(c.Enrollments))
	for id, enr := range c.Enrollments {
		if enr.Status == Active && enr.Next != "" {
			out[id] = fmt.Sprintf("%d/%s", enr.Number, enr.Next)
		}
	}
	return out
}

// SkipStale is the backfill rule: events applied at now that happened long
// before (an import of old sign-ups) must not mail the past. Every step that
// an enrollment waits for now, that it did not wait for before the events
// (waiting, from Waiting), and that was due more than the lifecycle's
// BackfillGrace before now is recorded as skipped ("stale: due 2026-03-02")
// at its due time, so the steps after it keep their times; it repeats while
// the next step is stale too. Steps the customer was already waiting for are
// left alone: a worker that was down sends them late, it does not drop them.
func (e *Engine) SkipStale(c *Customer, now time.Time, waiting map[string]string) []Change {
	cutoff := now.Add(-e.lc.BackfillGrace)
	var out []Change
	for _, id := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[id]
		for range maxSteps {
			if enr.Status != Active || enr.Next == "" || !enr.Due.Before(cutoff) ||
				waiting[id] == fmt.Sprintf("%d/%s", enr.Number, enr.Next) {
				break
			}
			due := enr.Due
			chs, err := e.Pass(c, id, due, false, "stale: due "+due.In(e.Location(c)).Format("2006-01-02 15:04"))
			out = append(out, chs...)
			if err != nil {
				break
			}
		}
	}
	return out
}

// CatchUp applies every time rule that fired up to now (Advance) and skips
// the steps those rules scheduled long before now (SkipStale): a sweep or a
// worker that runs rules late — after a backfill, or an outage — applies the
// exits they imply before any send and does not mail the past.
func (e *Engine) CatchUp(c *Customer, now time.Time) ([]Change, error) {
	waiting := Waiting(c)
	chs, err := e.Advance(c, now)
	return append(chs, e.SkipStale(c, now, waiting)...), err
}

// SimulateFrom is Simulate as the worker lives it when a customer's history
// is imported at from (retain import --apply, or the API, with events from the
// past): the events up to from are applied first, without sending anything in
// between, and the steps they made due long before from are skipped as stale
// (SkipStale); from then on it runs as Simulate does, except that what is due
// before from goes out at from. Later events are applied at their times.
// `retain plan` prints what it returns, so that the plan agrees with what is
// sent.
func (e *Engine) SimulateFrom(c *Customer, events []Event, from, until time.Time) ([]Change, error) {
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	var out []Change
	// As the importer does: each event applied at from, and the steps it made
	// due long before skipped; then the sweep runs the rules that came due.
	for len(events) > 0 && !events[0].At.After(from) {
		waiting := Waiting(c)
		chs, err := e.Apply(c, events[0])
		out = append(out, chs...)
		if err != nil {
			return out, fmt.Errorf("event %s at %s: %w", events[0].Name, events[0].At.Format(time.RFC3339), err)
		}
		out = append(out, e.SkipStale(c, from, waiting)...)
		events = events[1:]
	}
	chs, err := e.CatchUp(c, from)
	out = append(out, chs...)
	if err != nil {
		return out, err
	}
	more, err := e.simulate(c, events, from, until)
	return append(out, more...), err
}
