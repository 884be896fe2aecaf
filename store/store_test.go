package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
)

type testBundle struct {
	ctx    context.Context
	rdb    *redis.Client
	store  *Store
	prefix string
	// cmds records the name of every command the store sends, pipelines and
	// transactions included.
	cmds *recorder
}

// setup gives the test a Store on the test Redis under a key prefix of its own,
// whose keys are deleted at cleanup (see internal/redistest).
func setup(tb testing.TB) *testBundle {
	tb.Helper()
	rdb, prefix := redistest.New(tb)
	rec := &recorder{}
	if _, ok := tb.(*testing.B); !ok {
		rdb.AddHook(rec) // not in benchmarks, whose figures it would skew
	}
	return &testBundle{ctx: tb.Context(), rdb: rdb, store: New(rdb, prefix), prefix: prefix, cmds: rec}
}

// keys returns the test's keys, without the prefix, sorted.
func (b *testBundle) keys(t *testing.T) []string {
	t.Helper()
	keys, err := b.rdb.Keys(b.ctx, b.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], b.prefix)
	}
	slices.Sort(keys)
	return keys
}

// names returns keys as keys does: without the prefix, sorted.
func (b *testBundle) names(keys ...string) []string {
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], b.prefix)
	}
	slices.Sort(keys)
	return keys
}

// dump returns every key of the test with its serialized value.
func (b *testBundle) dump(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range b.keys(t) {
		v, err := b.rdb.Dump(b.ctx, b.prefix+k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// put stores c as it is, with the given wake time.
func (b *testBundle) put(t *testing.T, c *lifecycle.Customer, wake time.Time) {
	t.Helper()
	err := b.store.Update(b.ctx, c.ID, "", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: c, Wake: wake}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type recorder struct {
	mu   sync.Mutex
	cmds []string
}

func (r *recorder) add(cmds ...redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cmds {
		r.cmds = append(r.cmds, c.Name())
	}
}

func (r *recorder) reset() { r.mu.Lock(); r.cmds = nil; r.mu.Unlock() }

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

func (r *recorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *recorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.add(cmd); return next(ctx, cmd) }
}

func (r *recorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.add(cmds...); return next(ctx, cmds) }
}

var t0 = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

// fullCustomer is a customer with every kind of field set.
func fullCustomer(id string) *lifecycle.Customer {
	ams := time.FixedZone("CET", 3600)
	return &lifecycle.Customer{
		ID: id, Email: id + "@example.com", FirstName: "Ann", Name: "Ann Smith",
		Locale: "nl", Timezone: "Europe/Amsterdam",
		Attributes: map[string]any{
			"plan":       "team",
			"seats":      12,
			"mrr":        49.0,
			"ratio":      0.125,
			"vip":        true,
			"trial_ends": time.Date(2026, 4, 1, 10, 0, 0, 123456789, ams),
			"note":       nil,
		},
		Counters:     map[string]int{"orders": 2, "logins": 17, "projects": 1},
		Stage:        "onboarding",
		StageSince:   t0,
		CreatedAt:    t0.Add(-time.Hour),
		LastActivity: t0.Add(time.Minute),
		LastEvent:    t0.Add(2 * time.Minute),
		Unsubscribed: true,
		OptedOut:     []string{"education"},
		Enrollments: map[string]*lifecycle.Enrollment{
			"onboarding": {
				Campaign: "onboarding", Number: 1, Started: t0, Status: lifecycle.Active,
				Passed: []string{"onboarding/welcome"}, Last: t0.Add(time.Hour),
				Next: "onboarding/first-project", Due: t0.Add(49 * time.Hour),
			},
			"win-back": {
				Campaign: "win-back", Number: 2, Started: t0.Add(-90 * 24 * time.Hour),
				Status: lifecycle.Exited, Ended: t0, Reason: "stage left", Last: t0,
			},
		},
	}
}

func TestCustomerRoundTripKeepsTypes(t *testing.T) {
	b := setup(t)
	want := fullCustomer("c1")
	b.put(t, want, time.Time{})

	got, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for name, v := range want.Attributes {
		if fmt.Sprintf("%T", v) != fmt.Sprintf("%T", got.Attributes[name]) {
			t.Errorf("attribute %s: %T became %T", name, v, got.Attributes[name])
		}
	}
	byEmail, err := b.store.CustomerByEmail(b.ctx, " C1@Example.COM")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, byEmail); diff != "" {
		t.Errorf("by email (-want +got):\n%s", diff)
	}
}

func TestEventDataKeepsTypes(t *testing.T) {
	b := setup(t)
	ev := lifecycle.Event{ID: "e1", Name: "order_placed", At: t0, Data: map[string]any{
		"total": 19.0, "items": 3, "coupon": "SPRING", "paid_at": t0,
		"lines": []any{map[string]any{"sku": "A1", "qty": 2}},
	}}
	err := b.store.Update(b.ctx, "c1", "e1", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: &lifecycle.Customer{ID: "c1", Stage: "lead"}, Event: &ev}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.store.Events(b.ctx, "c1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lifecycle.Event{ev}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestUpdateRejectsAttributeOfUnknownType(t *testing.T) {
	b := setup(t)
	c := &lifecycle.Customer{ID: "c1", Attributes: map[string]any{"seats": int64(3)}}
	err := b.store.Update(b.ctx, "c1", "", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: c}, nil
	})
	if err == nil || !strings.Contains(err.Error(), `"seats": int64 cannot be stored`) {
		t.Errorf("err = %v, want one naming the attribute and its type", err)
	}
	if keys := b.keys(t); len(keys) != 0 {
		t.Errorf("keys written: %v", keys)
	}
}

func TestCustomerNotFound(t *testing.T) {
	b := setup(t)
	if _, err := b.store.Customer(b.ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Customer: err = %v, want ErrNotFound", err)
	}
	if _, err := b.store.CustomerByEmail(b.ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CustomerByEmail: err = %v, want ErrNotFound", err)
	}
}

func TestUpdateCreatesUpdatesAndAppendsHistory(t *testing.T) {
	b := setup(t)
	var seen []string // the stage fn was given, "<nil>" for no customer
	step := func(eventID, to string, at time.Time) {
		t.Helper()
		err := b.store.Update(b.ctx, "c1", eventID, func(c *lifecycle.Customer) (*Change, error) {
			from := ""
			seen = append(seen, "<nil>")
			if c == nil {
				c = &lifecycle.Customer{ID: "c1", Email: "ann@example.com", CreatedAt: at}
			} else {
				from, seen[len(seen)-1] = c.Stage, c.Stage
			}
			c.Stage, c.StageSince = to, at
			return &Change{
				Customer: c,
				History:  []lifecycle.StageChange{{From: from, To: to, At: at, Cause: eventID}},
				Event:    &lifecycle.Event{ID: eventID, Name: eventID, At: at},
			}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	step("signed_up", "onboarding", t0)
	step("onboarding_completed", "active", t0.Add(time.Hour))

	if !slices.Equal(seen, []string{"<nil>", "onboarding"}) {
		t.Errorf("fn saw %q, want no customer, then one in onboarding", seen)
	}
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Stage != "active" || !c.CreatedAt.Equal(t0) {
		t.Errorf("stored stage %q created %v, want active created %v", c.Stage, c.CreatedAt, t0)
	}
	hist, err := b.store.History(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := []lifecycle.StageChange{
		{From: "", To: "onboarding", At: t0, Cause: "signed_up"},
		{From: "onboarding", To: "active", At: t0.Add(time.Hour), Cause: "onboarding_completed"},
	}
	if diff := cmp.Diff(want, hist); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func TestUpdateKeepsFiftyNewestEventsNewestFirst(t *testing.T) {
	b := setup(t)
	b.put(t, &lifecycle.Customer{ID: "c1", Stage: "active"}, time.Time{})
	for i := range 60 {
		ev := &lifecycle.Event{ID: fmt.Sprint("e", i), Name: "login", At: t0.Add(time.Duration(i) * time.Minute)}
		err := b.store.Update(b.ctx, "c1", ev.ID, func(c *lifecycle.Customer) (*Change, error) {
			c.Counters = map[string]int{"logins": c.Counters["logins"] + 1}
			return &Change{Customer: c, Event: ev}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	all, err := b.store.Events(b.ctx, "c1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != RecentEvents || all[0].ID != "e59" || all[49].ID != "e10" {
		t.Errorf("got %d events from %s to %s, want 50 from e59 to e10", len(all), all[0].ID, all[len(all)-1].ID)
	}
	three, err := b.store.Events(b.ctx, "c1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if ids := []string{three[0].ID, three[1].ID, three[2].ID}; !slices.Equal(ids, []string{"e59", "e58", "e57"}) {
		t.Errorf("Events(3) = %v", ids)
	}
}

func TestUpdateDuplicateEventWritesNothing(t *testing.T) {
	b := setup(t)
	apply := func() error {
		return b.store.Update(b.ctx, "c1", "import-1:line-7", func(c *lifecycle.Customer) (*Change, error) {
			if c == nil {
				c = &lifecycle.Customer{ID: "c1", Stage: "lead"}
			}
			c.Counters = map[string]int{"orders": c.Counters["orders"] + 1}
			return &Change{Customer: c, Event: &lifecycle.Event{ID: "import-1:line-7", Name: "order_placed", At: t0}}, nil
		})
	}
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	before := b.dump(t)
	b.cmds.reset()
	if err := apply(); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second apply: err = %v, want ErrDuplicate", err)
	}
	if diff := cmp.Diff(before, b.dump(t)); diff != "" {
		t.Errorf("keys changed (-before +after):\n%s", diff)
	}
	b.cmds.reset()
	called := false
	err := b.store.Update(b.ctx, "c1", "import-1:line-7", func(*lifecycle.Customer) (*Change, error) {
		called = true
		return nil, nil
	})
	if !errors.Is(err, ErrDuplicate) || called {
		t.Errorf("err = %v, fn called = %v; want ErrDuplicate without calling fn", err, called)
	}
	if w := writes(b.cmds.names()); len(w) > 0 {
		t.Errorf("duplicate sent write commands %v", w)
	}
}

// writes returns the commands among names that could change data.
func writes(names []string) []string {
	var out []string
	for _, n := range names {
		switch n {
		case "watch", "unwatch", "get", "zscore", "hget", "ping", "hello", "client":
		default:
			out = append(out, n)
		}
	}
	return out
}

func TestUpdateUnchangedWritesNothing(t *testing.T) {
	b := setup(t)
	b.put(t, fullCustomer("c1"), t0.Add(time.Hour))
	before := b.dump(t)
	b.cmds.reset()
	// fn decodes into fresh values, so equal JSON, not pointer identity, is what
	// tells the change is empty.
	err := b.store.Update(b.ctx, "c1", "", func(c *lifecycle.Customer) (*Change, error) {
		return &Change{Customer: fullCustomer("c1"), Wake: t0.Add(time.Hour)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := writes(b.cmds.names()); len(w) > 0 {
		t.Errorf("unchanged update sent %v (all commands: %v)", w, b.cmds.names())
	}
	if diff := cmp.Diff(before, b.dump(t)); diff != "" {
		t.Errorf("keys changed (-before +after):\n%s", diff)
	}
	b.cmds.reset()
	if err := b.store.Update(b.ctx, "c1", "", func(*lifecycle.Customer) (*Change, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if w := writes(b.cmds.names()); len(w) > 0 {
		t.Errorf("nil change sent %v", w)
	}
	// The recorder does see a real write, so the checks above can fail.
	b.cmds.reset()
	err = b.store.Update(b.ctx, "c1", "", func(*lifecycle.Customer) (*Change, error) { return &Change{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if w := writes(b.cmds.names()); !slices.Contains(w, "zrem") || !slices.Contains(w, "exec") {
		t.Errorf("clearing the wake sent %v, want a zrem in a transaction", w)
	}
}

func TestConcurrentUpdatesAllApply(t *testing.T) {
	b := setup(t)
	b.put(t, &lifecycle.Customer{ID: "c1", Stage: "active"}, time.Time{})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				errs <- b.store.Update(b.ctx, "c1", "", func(c *lifecycle.Customer) (*Change, error) {
					if c.Counters == nil {
						c.Counters = map[string]int{}
					}
					c.Counters["logins"]++
					return &Change{Customer: c}, nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Counters["logins"]; got != workers*each {
		t.Errorf("logins = %d, want %d", got, workers*each)
	}
}

func TestUpdateGivesUpWithErrConflict(t *testing.T) {
	b := setup(t)
	b.put(t, &lifecycle.Customer{ID: "c1"}, time.Time{})
	b.store.MaxAttempts = 3
	calls := 0
	err := b.store.Update(b.ctx, "c1", "", func(c *lifecycle.Customer) (*Change, error) {
		calls++
		// Someone else writes the customer between our read and our write.
		if err := b.rdb.Set(b.ctx, b.store.customerKey("c1"), `{"id":"c1","stage":"x"}`, 0).Err(); err != nil {
			return nil, err
		}
		c.Stage = "active"
		return &Change{Customer: c}, nil
	})
	if !errors.Is(err, ErrConflict) || calls != 3 {
		t.Errorf("err = %v after %d calls, want ErrConflict after 3", err, calls)
	}
}

func TestUpdatePassesFnErrorThrough(t *testing.T) {
	b := setup(t)
	boom := errors.New("boom")
	err := b.store.Update(b.ctx, "c1", "", func(*lifecycle.Customer) (*Change, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

func TestEmailIndexFollowsEmailChange(t *testing.T) {
	b := setup(t)
	b.put(t, &lifecycle.Customer{ID: "c1", Email: "old@example.com"}, time.Time{})
	err := b.store.Update(b.ctx, "c1", "", func(c *lifecycle.Customer) (*Change, error) {
		c.Email = "New@Example.com"
		return &Change{Customer: c}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.CustomerByEmail(b.ctx, "old@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old address: err = %v, want ErrNotFound", err)
	}
	c, err := b.store.CustomerByEmail(b.ctx, "new@example.com")
	if err != nil || c.ID != "c1" {
		t.Errorf("new address: %v, %v; want c1", c, err)
	}
	if diff := cmp.Diff(b.names(b.store.customerKey("c1"), b.store.emailKey("new@example.com")), b.keys(t)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if owner, _ := b.rdb.Get(b.ctx, b.prefix+"email:new@example.com").Result(); owner != "c1" {
		t.Errorf("email:new@example.com = %q, want c1", owner)
	}
}

func TestEmailOfAnotherCustomerIsRefused(t *testing.T) {
	b := setup(t)
	b.put(t, &lifecycle.Customer{ID: "c1", Email: "ann@example.com"}, time.Time{})
	err := b.store.Update(b.ctx, "c2", "", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: &lifecycle.Customer{ID: "c2", Email: "ANN@example.com"}}, nil
	})
	if !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("err = %v, want ErrEmailTaken", err)
	}
	if _, err := b.store.Customer(b.ctx, "c2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("c2 was stored: %v", err)
	}
	c, err := b.store.CustomerByEmail(b.ctx, "ann@example.com")
	if err != nil || c.ID != "c1" {
		t.Errorf("ann@example.com -> %v, %v; want c1", c, err)
	}
}

func TestSuppression(t *testing.T) {
	b := setup(t)
	sup, err := b.store.Suppression(b.ctx, "ann@example.com")
	if err != nil || sup != nil {
		t.Fatalf("before: %v, %v; want nil, nil", sup, err)
	}
	if err := b.store.Suppress(b.ctx, "Ann@Example.com", "550 5.1.1 no such user", t0); err != nil {
		t.Fatal(err)
	}
	sup, err = b.store.Suppression(b.ctx, "ann@example.com ")
	if err != nil {
		t.Fatal(err)
	}
	want := &Suppression{Email: "ann@example.com", Reason: "550 5.1.1 no such user", At: t0}
	if diff := cmp.Diff(want, sup); diff != "" {
		t.Errorf("suppression (-want +got):\n%s", diff)
	}
}

func TestDeleteRemovesEveryKey(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"c1", "c1:x"} {
		err := b.store.Update(b.ctx, id, "e-"+id, func(*lifecycle.Customer) (*Change, error) {
			return &Change{
				Customer: fullCustomer(id),
				History:  []lifecycle.StageChange{{To: "onboarding", At: t0, Cause: "signed_up"}},
				Event:    &lifecycle.Event{ID: "e-" + id, Name: "signed_up", At: t0},
				Wake:     t0.Add(time.Hour),
			}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	others := b.dump(t)
	if err := b.store.Delete(b.ctx, "c1:x"); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Delete(b.ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if keys := b.keys(t); len(keys) != 0 {
		t.Errorf("left after Delete: %v (had %d keys)", keys, len(others))
	}
	if err := b.store.Delete(b.ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
}

func TestDeleteLeavesOtherCustomers(t *testing.T) {
	b := setup(t)
	b.put(t, fullCustomer("c1"), t0)
	b.put(t, fullCustomer("c2"), t0)
	if err := b.store.Delete(b.ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.names(b.store.customerKey("c2"), b.store.emailKey("c2@example.com"), b.store.wakeKey(ShardOf("c2"))), b.keys(t)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if c, err := b.store.CustomerByEmail(b.ctx, "c2@example.com"); err != nil || c.ID != "c2" {
		t.Errorf("c2 by email: %v, %v", c, err)
	}
}

func redisZ(at time.Time, member string) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}

// TestUpdateManyReadDecodesOnlyWhatChanged: UpdateManyRead hands fn the
// customers as they are stored now: a copy of what CustomersRead read for
// those nobody wrote since, and a fresh read of one written meanwhile; what
// the caller did to the customers CustomersRead returned does not leak in.
func TestUpdateManyReadDecodesOnlyWhatChanged(t *testing.T) {
	b := setup(t)
	b.put(t, &lifecycle.Customer{ID: "c1", Stage: "lead", FirstName: "Ada"}, time.Time{})
	b.put(t, &lifecycle.Customer{ID: "c2", Stage: "lead", FirstName: "Grace"}, time.Time{})
	custs, rd, err := b.store.CustomersRead(b.ctx, []string{"c1", "c2"})
	if err != nil || len(custs) != 2 {
		t.Fatalf("read: %v %v", custs, err)
	}
	custs[0].FirstName, custs[1].FirstName = "changed by the caller", "changed by the caller"
	// Someone else writes c2 in between.
	if err := b.store.Update(b.ctx, "c2", "", func(c *lifecycle.Customer) (*Change, error) {
		c.Stage = "active"
		return &Change{Customer: c}, nil
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]lifecycle.Customer{}
	err = b.store.UpdateManyRead(b.ctx, []string{"c1", "c2"}, rd, func(c *lifecycle.Customer) (*Change, error) {
		seen[c.ID] = *c
		c.Counters = map[string]int{"orders": 1}
		return &Change{Customer: c}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := seen["c1"]; c.FirstName != "Ada" || c.Stage != "lead" {
		t.Errorf("c1 as fn saw it: %+v, want it as stored", c)
	}
	if c := seen["c2"]; c.FirstName != "Grace" || c.Stage != "active" {
		t.Errorf("c2 as fn saw it: %+v, want the other writer's stage", c)
	}
	for _, id := range []string{"c1", "c2"} {
		got, err := b.store.Customer(b.ctx, id)
		if err != nil || got.Counters["orders"] != 1 {
			t.Errorf("%s after the update: %+v %v", id, got, err)
		}
	}
}
