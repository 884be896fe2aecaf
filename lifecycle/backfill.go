package lifecycle

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Waiting is what c's active enrollments wait for, by campaign: the enrollment
// number and the next step. Take it before applying events, for Scheduled.
func Waiting(c *Customer) map[string]string {
	out := make(map[string]string, len(c.Enrollments))
	for id, enr := range c.Enrollments {
		if enr.Status == Active && enr.Next != "" {
			out[id] = fmt.Sprintf("%d/%s", enr.Number, enr.Next)
		}
	}
	return out
}

// Scheduled notes now, the moment events or time rules were applied, on every
// active enrollment whose next step differs from what it waited for before
// (waiting, from Waiting): the step was scheduled then. SkipStale compares a
// step's due time with it.
func (e *Engine) Scheduled(c *Customer, now time.Time, waiting map[string]string) {
	for id, enr := range c.Enrollments {
		if enr.Status == Active && enr.Next != "" && waiting[id] != fmt.Sprintf("%d/%s", enr.Number, enr.Next) {
			enr.Scheduled = now
		}
	}
}

// SkipStale is the backfill rule: events applied long after they happened (an
// import of old sign-ups), or time rules run long after they fired, must not
// mail the past. A step that was due more than the lifecycle's BackfillGrace
// before the moment it was scheduled (Enrollment.Scheduled) is recorded as
// skipped ("stale: due 2026-03-02") at its due time, so the steps after it
// keep their times; it repeats while the next step is stale too. A step that
// was due after it was scheduled is never stale: a worker that was down sends
// it late, it does not drop it.
//
// Skipping waits until the events are all applied (the worker and the sweep
// call CatchUp): while an import replays a history, a later event of it (a goal
// reached, an exit) still finds the enrollment where it was at that time.
func (e *Engine) SkipStale(c *Customer, now time.Time) []Change {
	var out []Change
	for _, id := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[id]
		for range maxSteps {
			if enr.Status != Active || enr.Next == "" || enr.Scheduled.IsZero() ||
				!enr.Due.Before(enr.Scheduled.Add(-e.lc.BackfillGrace)) || enr.Due.After(now) {
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

// CatchUp applies every time rule that fired up to now (Advance), notes what
// they scheduled, and skips what is stale (SkipStale): a sweep or a worker
// that runs rules late — after a backfill, or an outage — applies the exits
// they imply before any send and does not mail the past.
func (e *Engine) CatchUp(c *Customer, now time.Time) ([]Change, error) {
	waiting := Waiting(c)
	chs, err := e.Advance(c, now)
	e.Scheduled(c, now, waiting)
	return append(chs, e.SkipStale(c, now)...), err
}

// SimulateFrom is Simulate as the worker lives it when a customer's history
// is imported at from (retain import --apply, or the API, with events from the
// past): the events up to from are applied first, without sending anything in
// between, and the steps they made due long before from are skipped as stale
// (SkipStale); from then on it runs as Simulate does, except that what is due
// before from goes out at from. Later events are applied at their times, and
// a broadcast first due from from on has its audience decided at that moment.
// `retain plan` prints what it returns, so that the plan agrees with what is
// sent.
func (e *Engine) SimulateFrom(c *Customer, events []Event, from, until time.Time) ([]Change, error) {
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	var out []Change
	// As the importer does: each event applied at from, noting what it
	// scheduled; then the sweep (or the worker) runs the rules that came due
	// and skips what is stale.
	for len(events) > 0 && !events[0].At.After(from) {
		waiting := Waiting(c)
		chs, err := e.Apply(c, events[0])
		out = append(out, chs...)
		if err != nil {
			return out, fmt.Errorf("event %s at %s: %w", events[0].Name, events[0].At.Format(time.RFC3339), err)
		}
		e.Scheduled(c, from, waiting)
		events = events[1:]
	}
	chs, err := e.CatchUp(c, from)
	out = append(out, chs...)
	if err != nil {
		return out, err
	}
	more, err := e.simulate(c, events, from, until, true)
	return append(out, more...), err
}
