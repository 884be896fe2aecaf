package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

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
func (a *Applier) Record(ctx context.Context, r *Record) (Result, error) {
	res, err := a.Upsert(ctx, r)
	if err != nil {
		return res, err
	}
	for _, ev := range r.Events {
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
// created at the time of r's first event, or now.
func (a *Applier) Upsert(ctx context.Context, r *Record) (Result, error) {
	var res Result
	now := a.now()
	created := now
	for _, ev := range r.Events {
		if ev.At.Before(created) {
			created = ev.At
		}
	}
	err := a.Store.Update(ctx, r.ID, "", func(c *lifecycle.Customer) (*store.Change, error) {
		res = Result{}
		var chs []lifecycle.Change
		before := ""
		if c == nil {
			if r.Email == "" {
				return nil, fmt.Errorf("new customer %s needs an email", r.ID)
			}
			var err error
			if c, chs, err = a.Engine.NewCustomer(r.ID, r.Email, r.Stage, created); err != nil {
				return nil, err
			}
			res.Created = true
		} else {
			before = profile(c)
			if r.Stage != "" && r.Stage != c.Stage {
				var err error
				if chs, err = a.Engine.SetStage(c, r.Stage, now, cmp.Or(a.Cause, "import")); err != nil {
					return nil, err
				}
			}
		}
		setProfile(c, r)
		res.Changed = res.Created || profile(c) != before || len(chs) > 0
		res.Changes = chs
		return &store.Change{Customer: c, History: stageChanges(chs), Changes: chs, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
	})
	return res, err
}

// Event applies ev to an existing customer once: an event ID seen before returns
// store.ErrDuplicate and changes nothing.
func (a *Applier) Event(ctx context.Context, customerID string, ev lifecycle.Event) ([]lifecycle.Change, error) {
	var out []lifecycle.Change
	err := a.Store.Update(ctx, customerID, ev.ID, func(c *lifecycle.Customer) (*store.Change, error) {
		if c == nil {
			return nil, ErrUnknownCustomer
		}
		chs, err := a.Engine.Apply(c, ev)
		if err != nil {
			return nil, err
		}
		out = chs
		return &store.Change{Customer: c, History: stageChanges(chs), Changes: chs, Event: &ev, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
	})
	return out, err
}

// setProfile copies the fields r sets onto c.
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
		chs, err := a.Engine.Advance(c, now)
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
