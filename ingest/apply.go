package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// ErrUnknownCustomer means an event names a customer retain has never seen, and no
// email came with it to create one.
var ErrUnknownCustomer = errors.New("unknown customer: import it first, or give an email to create it")

// Applier applies records and events: the engine decides, the store keeps, one
// customer read-modify-write at a time.
type Applier struct {
	Store  *store.Store
	Engine *lifecycle.Engine
	// Now is the clock for stage changes an import makes (default time.Now).
	Now func() time.Time
	// Cause is recorded on the stage changes an upsert makes (default "import").
	Cause string
	// ConditionErrors, when set, receives the changes of each customer a Sweep
	// wrote that hold condition errors (lifecycle.KindConditionError: an
	// audience that failed while running at an enrollment a time rule caused),
	// for the caller to log and count. Record, Upsert and Event return their
	// changes, condition errors among them, to the caller instead.
	ConditionErrors func(ctx context.Context, customerID string, chs []lifecycle.Change)
}

// Result is what applying one record did.
type Result struct {
	Created bool
	// Changed is true when the customer's profile, stage or attributes changed.
	Changed bool
	// Events applied, and events skipped as already applied.
	Events, Duplicates int
	// Changes are the engine's decisions, in order.
	Changes []lifecycle.Change
}

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Record upserts r's customer — creating it (email required) or updating the
// fields r sets — and then applies its events in time order, each exactly once.
// The whole record is first run through the engine on a copy of the customer:
// a record it refuses writes nothing.
func (a *Applier) Record(ctx context.Context, r *Record) (Result, error) {
	if err := a.preflight(ctx, r); err != nil {
		return Result{}, fmt.Errorf("customer %s: %w", r.ID, err)
	}
	res, err := a.Upsert(ctx, r)
	if err != nil {
		return res, err
	}
	// In time order, as the engine's clock runs (and as retain plan replays
	// them), whatever order the file lists them in.
	events := slices.Clone(r.Events)
	slices.SortStableFunc(events, func(x, y lifecycle.Event) int { return x.At.Compare(y.At) })
	for _, ev := range events {
		chs, err := a.Event(ctx, r.ID, ev)
		switch {
		case errors.Is(err, store.ErrDuplicate):
			res.Duplicates++
		case err != nil:
			return res, err
		default:
			res.Events++
			res.Changes = append(res.Changes, chs...)
		}
	}
	return res, nil
}

// Upsert creates r's customer (email required) or updates the fields r sets,
// leaving its events to the caller (Event, or the queue). A new customer is
// created at the time of r's first event, or now, in r.Stage (default: the
// first stage). The stage of an existing customer is left alone: r.Stage is
// where a customer starts, and MoveStage is the explicit act that moves one.
func (a *Applier) Upsert(ctx context.Context, r *Record) (Result, error) {
	var res Result
	now := a.now()
	err := a.Store.Update(ctx, r.ID, "", func(c *lifecycle.Customer) (*store.Change, error) {
		res = Result{}
		var chs []lifecycle.Change
		before := ""
		if c == nil {
			if r.Email == "" {
				return nil, fmt.Errorf("new customer %s needs an email", r.ID)
			}
			var err error
			if c, chs, err = NewCustomer(a.Engine, r, now); err != nil {
				return nil, err
			}
			res.Created = true
		} else {
			// r.Stage is where a new customer starts; an existing one keeps its
			// stage (importing a file again changes nothing). MoveStage moves it.
			before = profile(c)
		}
		setProfile(c, r)
		res.Changed = res.Created || profile(c) != before || len(chs) > 0
		res.Changes = chs
		return &store.Change{Customer: c, History: stageChanges(chs), Changes: chs, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
	})
	return res, err
}

// preflight runs what Record would do on a copy of the stored customer, without
// writing, and returns the first error the engine or the store's encoding
// gives.
func (a *Applier) preflight(ctx context.Context, r *Record) error {
	c, err := a.Store.Customer(ctx, r.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if r.Email == "" {
			return fmt.Errorf("new customer %s needs an email", r.ID)
		}
		if c, _, err = NewCustomer(a.Engine, r, a.now()); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	setProfile(c, r)
	for _, ev := range r.Events {
		if _, err := a.Engine.Apply(c, ev); err != nil {
			return fmt.Errorf("event %s: %w", ev.Name, err)
		}
	}
	return nil
}

// MoveStage moves an existing customer to stage now, recording cause in its
// history, with the enrollments and exits the move makes: the explicit act
// behind `retain customer set-stage` and the API's move_to_stage. Moving a
// customer to the stage it is in changes nothing.
func (a *Applier) MoveStage(ctx context.Context, customerID, stage, cause string) ([]lifecycle.Change, error) {
	if !a.Engine.Set().Lifecycle.HasStage(stage) {
		l := a.Engine.Set().Lifecycle
		return nil, fmt.Errorf("stage %q is not declared in %s%s", stage, campaign.LifecycleFile, campaign.DidYouMean(stage, l.StageNames()))
	}
	if err := checkText("cause", cause, 200); err != nil {
		return nil, err
	}
	var out []lifecycle.Change
	err := a.Store.Update(ctx, customerID, "", func(c *lifecycle.Customer) (*store.Change, error) {
		out = nil
		if c == nil {
			return nil, ErrUnknownCustomer
		}
		if c.Stage == stage {
			return nil, nil
		}
		chs, err := a.Engine.SetStage(c, stage, a.now(), cmp.Or(cause, a.Cause, "set by hand"))
		if err != nil {
			return nil, err
		}
		out = chs
		return &store.Change{Customer: c, History: stageChanges(chs), Changes: chs, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
	})
	return out, err
}

// Event applies ev to an existing customer once: an event ID seen before returns
// store.ErrDuplicate and changes nothing.
func (a *Applier) Event(ctx context.Context, customerID string, ev lifecycle.Event) ([]lifecycle.Change, error) {
	var out []lifecycle.Change
	err := a.Store.Update(ctx, customerID, ev.ID, func(c *lifecycle.Customer) (*store.Change, error) {
		if c == nil {
			return nil, ErrUnknownCustomer
		}
		waiting := lifecycle.Waiting(c)
		chs, err := a.Engine.Apply(c, ev)
		if err != nil {
			return nil, err
		}
		// An event from long ago (a backfill) does not mail the past: the
		// steps it scheduled are stale if due long before now (SkipStale,
		// when the worker or the sweep catches the customer up).
		a.Engine.Scheduled(c, a.now(), waiting)
		out = chs
		return &store.Change{Customer: c, History: stageChanges(chs), Changes: chs, Event: &ev, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
	})
	return out, err
}

// setProfile copies the fields r sets onto c.
// NewCustomer is the customer r describes, as an import at now creates it: in
// r.Stage (default: the first stage) at the time of its first event, or now,
// with r's profile, and its enrollments noted as scheduled now — a customer
// created in the past is a backfill (lifecycle.Engine.SkipStale). retain plan
// starts from the same customer, so that the plan is what an import sends.
func NewCustomer(eng *lifecycle.Engine, r *Record, now time.Time) (*lifecycle.Customer, []lifecycle.Change, error) {
	created := now
	for _, ev := range r.Events {
		if ev.At.Before(created) {
			created = ev.At
		}
	}
	c, chs, err := eng.NewCustomer(r.ID, r.Email, r.Stage, created)
	if err != nil {
		return nil, nil, err
	}
	setProfile(c, r)
	eng.Scheduled(c, now, nil)
	return c, chs, nil
}

func setProfile(c *lifecycle.Customer, r *Record) {
	for dst, src := range map[*string]string{&c.Email: r.Email, &c.FirstName: r.FirstName, &c.Name: r.Name, &c.Locale: r.Locale, &c.Timezone: r.Timezone} {
		if src != "" {
			*dst = src
		}
	}
	if len(r.Attributes) > 0 {
		if c.Attributes == nil {
			c.Attributes = map[string]any{}
		}
		maps.Copy(c.Attributes, r.Attributes)
	}
}

// profile summarises what setProfile may change, to tell whether it did.
func profile(c *lifecycle.Customer) string {
	return fmt.Sprint(c.Email, "\x00", c.FirstName, "\x00", c.Name, "\x00", c.Locale, "\x00", c.Timezone, "\x00", c.Attributes)
}

// stageChanges picks the stage changes out of the engine's decisions, for the
// customer's history.
func stageChanges(chs []lifecycle.Change) []lifecycle.StageChange {
	var out []lifecycle.StageChange
	for _, ch := range chs {
		if ch.Kind == lifecycle.KindStage {
			out = append(out, lifecycle.StageChange{From: ch.From, To: ch.To, At: ch.At, Cause: ch.Reason})
		}
	}
	return out
}

// Sweep applies the time rules of every customer whose next rule is due at now,
// at most limit customers (all when limit ≤ 0), and returns how many it touched.
// Only due customers are read: the store's wake index finds them. Two sweeps at
// once do not apply a rule twice (each customer is updated under its WATCH).
func (a *Applier) Sweep(ctx context.Context, now time.Time, limit int) (int, error) {
	// The store calls back once per customer, again when a write is retried:
	// keep the last attempt's condition errors, reported once the sweep is done.
	conds := map[string][]lifecycle.Change{}
	n, err := a.Store.Sweep(ctx, now, limit, func(c *lifecycle.Customer) (*store.Change, error) {
		chs, err := a.Engine.CatchUp(c, now)
		if err != nil {
			return nil, err
		}
		delete(conds, c.ID)
		for _, ch := range chs {
			if ch.Kind == lifecycle.KindConditionError {
				conds[c.ID] = append(conds[c.ID], ch)
			}
		}
		return &store.Change{Customer: c, History: stageChanges(chs), Changes: chs, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
	})
	if a.ConditionErrors != nil {
		for id, chs := range conds {
			a.ConditionErrors(ctx, id, chs)
		}
	}
	return n, err
}
