package lifecycle

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/retainmail/retain/campaign"
)

// maxCascade bounds how many stage changes one call may make, so rules that lead
// in a circle (a → b after 0, b → a after 0) cannot loop forever.
const maxCascade = 64

// Engine decides what happens to customers under one campaign set. It holds no
// customer state and is safe for concurrent use.
type Engine struct {
	set      *campaign.Set
	lc       *campaign.Lifecycle
	activity map[string]bool
	byStage  map[string][]*campaign.Campaign
	byEvent  map[string][]*campaign.Campaign
	zones    sync.Map // time zone name → *time.Location

	// FrequencyCap, when set, is the least time between two emails to one
	// customer across all campaigns: a step due sooner waits.
	FrequencyCap time.Duration
	// RetryBase is the wait after a first temporary send failure; it doubles
	// per attempt up to RetryMax (Record, Backoff). Defaults 30 seconds and 1
	// hour.
	RetryBase, RetryMax time.Duration
}

// New returns the engine for set, which must have loaded without problems.
func New(set *campaign.Set) *Engine {
	e := &Engine{set: set, lc: set.Lifecycle, activity: map[string]bool{},
		byStage: map[string][]*campaign.Campaign{}, byEvent: map[string][]*campaign.Campaign{}}
	for _, a := range e.lc.Activity {
		e.activity[a] = true
	}
	for _, c := range set.Campaigns {
		if c.Trigger.Stage != "" {
			e.byStage[c.Trigger.Stage] = append(e.byStage[c.Trigger.Stage], c)
		}
		if c.Trigger.Event != "" {
			e.byEvent[c.Trigger.Event] = append(e.byEvent[c.Trigger.Event], c)
		}
	}
	return e
}

// Set returns the campaigns the engine decides with.
func (e *Engine) Set() *campaign.Set { return e.set }

// Location returns the customer's time zone, or the lifecycle default when the
// customer has none or an unknown one. Zones are loaded once per engine.
func (e *Engine) Location(c *Customer) *time.Location {
	if c.Timezone == "" {
		return e.lc.Timezone
	}
	if loc, ok := e.zones.Load(c.Timezone); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		loc = e.lc.Timezone
	}
	e.zones.Store(c.Timezone, loc)
	return loc
}

// NewCustomer returns a customer who enters stage (the first stage when empty) at
// at, with the enrollments that entering it triggers.
func (e *Engine) NewCustomer(id, email, stage string, at time.Time) (*Customer, []Change, error) {
	if stage == "" {
		if len(e.lc.Stages) == 0 {
			return nil, nil, fmt.Errorf("lifecycle has no stages")
		}
		stage = e.lc.Stages[0].Name
	}
	if !e.lc.HasStage(stage) {
		return nil, nil, fmt.Errorf("unknown stage %q%s", stage, campaign.DidYouMean(stage, e.lc.StageNames()))
	}
	c := &Customer{ID: id, Email: email, Stage: stage, StageSince: at, CreatedAt: at, LastEvent: at}
	var ch changes
	e.enterStage(c, stage, at, &ch)
	return c, ch.list, ch.err
}

// SetStage moves c to stage at at for cause (an import or an operator), with the
// exits and enrollments that follow. Moving to the current stage does nothing.
func (e *Engine) SetStage(c *Customer, stage string, at time.Time, cause string) ([]Change, error) {
	if !e.lc.HasStage(stage) {
		return nil, fmt.Errorf("unknown stage %q%s", stage, campaign.DidYouMean(stage, e.lc.StageNames()))
	}
	var ch changes
	if stage != c.Stage {
		e.moveStage(c, stage, at, cause, &ch)
	}
	return ch.list, ch.err
}

// Apply applies event ev to c: first any time rule that fired before it, then
// counters and activity, goals, exits, the first matching event transition, and
// event-triggered enrollments. An event older than the customer's latest event is
// applied at the latest event's time: the engine's clock never runs backwards. A
// condition that fails while running counts as false and comes back as a
// KindConditionError change, not as an error: the rest of the event applies.
func (e *Engine) Apply(c *Customer, ev Event) ([]Change, error) {
	var ch changes
	at := ev.At
	if at.Before(c.LastEvent) {
		at = c.LastEvent
	}
	e.advance(c, at, &ch)
	c.LastEvent = at

	for name, evName := range e.lc.Counters {
		if evName == ev.Name {
			if c.Counters == nil {
				c.Counters = map[string]int{}
			}
			c.Counters[name]++
		}
	}
	if e.activity[ev.Name] {
		c.LastActivity = at
	}
	env := e.env(c, at, &ev)

	for _, id := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[id]
		camp := e.set.Campaign(id)
		if camp == nil {
			continue
		}
		// A goal counts while the customer is in the campaign, and for
		// goal.within after it completed its last step (a broadcast's
		// customers are done the moment it is sent).
		open := enr.Status == Active
		within := enr.Status == Completed && camp.Goal != nil && camp.Goal.Within > 0 && !at.After(enr.Ended.Add(camp.Goal.Within))
		if !open && !within {
			continue
		}
		if g := camp.Goal; g != nil && g.Event == ev.Name && e.holds(g.Where, env, camp.ID, camp.Path, "goal.where", at, &ch) {
			e.end(enr, Converted, at, "goal "+ev.Name, KindGoal, &ch)
			ch.list[len(ch.list)-1].Group = enr.Group
			continue
		}
		if !open {
			continue
		}
		if slices.Contains(camp.Exit.Events, ev.Name) {
			e.end(enr, Exited, at, "event "+ev.Name, KindExited, &ch)
		}
	}

	for _, t := range e.lc.Transitions {
		if t.On == "" || !t.AppliesIn(c.Stage) {
			continue
		}
		if t.On != ev.Name && !(t.On == campaign.ActivityEvent && e.activity[ev.Name]) {
			continue
		}
		if !e.holds(t.Where, env, "", e.lc.Path, "transitions.where", at, &ch) {
			continue
		}
		if t.To != c.Stage {
			e.moveStage(c, t.To, at, "event "+ev.Name, &ch)
			env = e.env(c, at, &ev)
		}
		break
	}

	for _, camp := range e.byEvent[ev.Name] {
		if e.holds(camp.Trigger.Where, env, camp.ID, camp.Path, "trigger.where", at, &ch) {
			if enr := e.enroll(c, camp, at, &ch); enr != nil {
				enr.Event = triggerEvent(camp, ev, at)
			}
		}
	}
	return ch.list, ch.err
}

// Advance applies every time rule that fires at or before now, each at its own
// moment, and returns the changes. It does not send: see Due and Decide.
func (e *Engine) Advance(c *Customer, now time.Time) ([]Change, error) {
	var ch changes
	e.advance(c, now, &ch)
	return ch.list, ch.err
}

func (e *Engine) advance(c *Customer, now time.Time, ch *changes) {
	for range maxCascade {
		t, at := e.nextRule(c)
		if t == nil || at.After(now) {
			return
		}
		cause := "after " + campaign.FormatDuration(t.After) + " in " + c.Stage
		if t.Inactive > 0 {
			cause = campaign.FormatDuration(t.Inactive) + " without activity"
		}
		e.moveStage(c, t.To, at, cause, ch)
	}
}

// NextWake is when the next time rule can fire for c, or zero when none can. Index
// customers by it so a sweep touches only those that are due.
func (e *Engine) NextWake(c *Customer) time.Time {
	_, at := e.nextRule(c)
	return at
}

// nextRule returns the time rule of c's stage that fires first, and when.
func (e *Engine) nextRule(c *Customer) (*campaign.Transition, time.Time) {
	var best *campaign.Transition
	var bestAt time.Time
	loc := e.Location(c)
	for _, t := range e.lc.Transitions {
		if t.On != "" || !t.AppliesIn(c.Stage) || t.To == c.Stage {
			continue
		}
		var at time.Time
		switch {
		case t.After > 0 || t.Inactive == 0:
			at = addDelay(c.StageSince, t.After, loc)
		default:
			from := c.StageSince
			if c.LastActivity.After(from) {
				from = c.LastActivity
			}
			at = addDelay(from, t.Inactive, loc)
		}
		if best == nil || at.Before(bestAt) {
			best, bestAt = t, at
		}
	}
	return best, bestAt
}

// moveStage records the change from c's stage to to, ends enrollments that exit
// when their stage is left, and enrolls c in the campaigns of the new stage.
func (e *Engine) moveStage(c *Customer, to string, at time.Time, cause string, ch *changes) {
	from := c.Stage
	ch.add(Change{Kind: KindStage, At: at, From: from, To: to, Reason: cause})
	for _, id := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[id]
		camp := e.set.Campaign(id)
		if enr.Status == Active && camp != nil && camp.Exit.StageLeft && camp.Trigger.Stage == from {
			e.end(enr, Exited, at, "left stage "+from, KindExited, ch)
		}
	}
	c.Stage, c.StageSince = to, at
	e.enterStage(c, to, at, ch)
}

func (e *Engine) enterStage(c *Customer, stage string, at time.Time, ch *changes) {
	for _, camp := range e.byStage[stage] {
		e.enroll(c, camp, at, ch)
	}
}

// enroll starts camp for c at at, when the audience and the re-entry rule
// allow, and returns the enrollment it started (nil: none).
func (e *Engine) enroll(c *Customer, camp *campaign.Campaign, at time.Time, ch *changes) *Enrollment {
	prev := c.Enrollments[camp.ID]
	n := 1
	if prev != nil {
		if prev.Status == Active {
			return nil
		}
		switch camp.Reentry.Mode {
		case campaign.ReentryNever:
			return nil
		case campaign.ReentryAfter:
			if at.Before(prev.Started.Add(camp.Reentry.After)) {
				return nil
			}
		}
		n = prev.Number + 1
	}
	if !e.holds(camp.Audience, e.env(c, at, nil), camp.ID, camp.Path, "audience", at, ch) {
		return nil
	}
	enr := &Enrollment{Campaign: camp.ID, Number: n, Started: at, Status: Active, Last: at}
	if InHoldout(c.ID, camp) {
		enr.Group = GroupControl
	}
	if c.Enrollments == nil {
		c.Enrollments = map[string]*Enrollment{}
	}
	c.Enrollments[camp.ID] = enr
	ch.add(Change{Kind: KindEnrolled, At: at, Campaign: camp.ID, Enrollment: n, Group: enr.Group})
	e.schedule(c, camp, enr, at, ch)
	return enr
}

// triggerEvent is what an enrollment keeps of the event ev that started it
// at at: its name, time and the data fields camp declares, typed (a field
// missing or of the wrong type is left out; the API refuses such events for
// campaigns that declare it, see ingest).
func triggerEvent(camp *campaign.Campaign, ev Event, at time.Time) *TriggerEvent {
	te := &TriggerEvent{Name: ev.Name, At: at}
	for name, t := range camp.EventData {
		v, ok := ev.Data[name]
		if !ok {
			continue
		}
		if cv, err := t.Coerce("data."+name, v); err == nil {
			if te.Data == nil {
				te.Data = map[string]any{}
			}
			te.Data[name] = cv
		}
	}
	return te
}

// schedule sets the enrollment's next step and its due time, or completes the
// enrollment when no step is left. It follows edits of the campaign made since
// the enrollment was last scheduled (see Place): a step that now comes before
// the customer's place, and the awaited step when it was removed, are recorded
// as skipped with the cause EditedCause; a customer whose place cannot be found
// any more leaves the campaign with that cause. at is the moment of the
// decision, for the changes it records.
func (e *Engine) schedule(c *Customer, camp *campaign.Campaign, enr *Enrollment, at time.Time, ch *changes) {
	p := Locate(camp, enr)
	edited := p.Removed != "" || len(p.Before) > 0
	skip := func(slug, why string) {
		reason := EditedCause + ": " + why
		ch.add(Change{Kind: KindSkipped, At: at, Campaign: camp.ID, Enrollment: enr.Number, Step: camp.ID + "/" + slug, Reason: reason})
		enr.Passed = append(enr.Passed, slug)
		enr.Edits = append(enr.Edits, Edit{At: at, Step: slug, Reason: reason})
	}
	if p.Removed != "" {
		skip(p.Removed, "step removed")
	}
	for _, st := range p.Before {
		skip(st.Slug, "the step comes before the customer's place")
	}
	switch {
	case p.Lost:
		e.end(enr, Exited, at, EditedCause+": none of the customer's steps remain", KindExited, ch)
	case p.Next == nil && edited:
		e.end(enr, Completed, at, EditedCause+": no steps left", KindCompleted, ch)
	case p.Next == nil:
		e.end(enr, Completed, enr.Last, "all steps passed", KindCompleted, ch)
	default:
		enr.Next = p.Next.Slug
		enr.Due = sendTime(camp, p.Next, enr.Last, e.Location(c))
	}
}

// EditedCause starts the reason of every change the engine records because a
// campaign was edited while the customer was in it.
const EditedCause = "campaign edited"

// Place is where an enrollment stands in a campaign as the campaign is now.
type Place struct {
	// Next is the step the customer gets next; nil when none is left.
	Next *campaign.Step
	// Before lists the steps the customer never had that now lie before their
	// place (added, or moved there, by an edit): they are skipped.
	Before []*campaign.Step
	// Removed is the slug of the step the customer was waiting for when the
	// campaign no longer has it.
	Removed string
	// Lost is true when neither the awaited step nor any step the customer
	// passed is left in the campaign: the place is unknown.
	Lost bool
}

// Locate finds enr's place in camp. Steps are known by identity (slug), never
// by position, so an edited campaign neither repeats a step nor loses the
// customer's place:
//
//   - A customer who had no step yet is at the start. Otherwise the place is
//     just before the step they are waiting for, or just after the step they
//     had last, whichever comes first in the campaign as it is now. Either may
//     be gone (removed, or renamed without id:); the other then fixes the
//     place, and with neither the place is lost.
//   - From there on, the customer gets each step they have not had, in file
//     order; a step they had is never sent again, wherever it moved.
//   - A step they have not had that lies before the place was added (or moved)
//     behind them: it is skipped, and that is recorded.
func Locate(camp *campaign.Campaign, enr *Enrollment) Place {
	index := func(slug string) int {
		return slices.IndexFunc(camp.Steps, func(st *campaign.Step) bool { return st.Slug == slug })
	}
	var p Place
	if enr.Next != "" && !slices.Contains(enr.Passed, enr.Next) && index(enr.Next) < 0 {
		p.Removed = enr.Next
	}
	start := 0 // a customer who had nothing yet is at the start
	if len(enr.Passed) > 0 {
		start = -1
		if p.Removed == "" && enr.Next != "" && !slices.Contains(enr.Passed, enr.Next) {
			start = index(enr.Next)
		}
		for i := len(enr.Passed) - 1; i >= 0; i-- {
			if r := index(enr.Passed[i]); r >= 0 {
				if start < 0 || r+1 < start {
					start = r + 1
				}
				break
			}
		}
		if start < 0 {
			p.Lost = true
			return p
		}
	}
	for i, st := range camp.Steps {
		if slices.Contains(enr.Passed, st.Slug) {
			continue
		}
		if i < start {
			p.Before = append(p.Before, st)
			continue
		}
		p.Next = st
		break
	}
	return p
}

func (e *Engine) end(enr *Enrollment, s Status, at time.Time, reason string, kind Kind, ch *changes) {
	enr.Status, enr.Ended, enr.Reason = s, at, reason
	enr.Next, enr.Due = "", time.Time{}
	ch.add(Change{Kind: kind, At: at, Campaign: enr.Campaign, Enrollment: enr.Number, Reason: reason})
}

// changes collects decisions and the first expression error.
type changes struct {
	list []Change
	err  error
}

func (ch *changes) add(c Change) { ch.list = append(ch.list, c) }

func (ch *changes) fail(err error) {
	if ch.err == nil {
		ch.err = err
	}
}
