package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

type testBundle struct {
	ctx     context.Context
	rdb     *redis.Client
	prefix  string
	store   *store.Store
	applier *Applier
	l       *campaign.Lifecycle
	now     time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	set, err := campaign.Load("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := redistest.New(t)
	st := store.New(rdb, prefix)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	return &testBundle{ctx: t.Context(), rdb: rdb, prefix: prefix, store: st, l: set.Lifecycle, now: now,
		applier: &Applier{Store: st, Engine: lifecycle.New(set), Now: func() time.Time { return now }}}
}

// importFile applies every good record of path and returns the results and the bad
// lines, as retain import does.
func (b *testBundle) importFile(t *testing.T, path string) ([]Result, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(path, f, b.l)
	if err != nil {
		t.Fatal(err)
	}
	var results []Result
	var bad []string
	for {
		rec, err := r.Next()
		if err != nil {
			var ie *Error
			if errors.As(err, &ie) {
				bad = append(bad, ie.Error())
				continue
			}
			break
		}
		res, err := b.applier.Record(b.ctx, rec)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		results = append(results, res)
	}
	return results, bad
}

// dump is every key under the test's prefix with its value, to compare states.
func (b *testBundle) dump(t *testing.T) map[string]string {
	t.Helper()
	keys, err := redistest.Keys(b.ctx, b.rdb, b.prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		v, err := b.rdb.Dump(b.ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func TestImportTwiceChangesNothingTheSecondTime(t *testing.T) {
	b := setup(t)
	first, bad := b.importFile(t, "testdata/customers.csv")
	if want := []string{"testdata/customers.csv:5: attribute \"seats\" must be a whole number, got many (string)"}; !slices.Equal(bad, want) {
		t.Errorf("bad rows = %q, want %q", bad, want)
	}
	var created, events int
	for _, r := range first {
		if r.Created {
			created++
		}
		events += r.Events
	}
	if created != 3 || events != 4 {
		t.Errorf("first import: %d created, %d events; want 3 and 4", created, events)
	}
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Stage != "active" || c.Counters["orders"] != 1 || c.Attributes["seats"] != 5 || c.FirstName != "Ada" {
		t.Errorf("c1 after import = stage %s, counters %v, attributes %v, %q", c.Stage, c.Counters, c.Attributes, c.FirstName)
	}
	history, _ := b.store.History(b.ctx, "c1")
	if len(history) != 2 || history[0].To != "onboarding" || history[1].To != "active" || history[1].Cause != "event order_placed" {
		t.Errorf("c1 history = %+v", history)
	}

	before := b.dump(t)
	second, _ := b.importFile(t, "testdata/customers.csv")
	for _, r := range second {
		if r.Created || r.Changed || r.Events != 0 {
			t.Errorf("second import changed something: %+v", r)
		}
	}
	var dups int
	for _, r := range second {
		dups += r.Duplicates
	}
	if dups != 4 {
		t.Errorf("second import: %d duplicate events, want 4", dups)
	}
	after := b.dump(t)
	if len(before) != len(after) {
		t.Errorf("keys before %d, after %d", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("key %s changed on the second import", k)
		}
	}
}

func TestEventForUnknownCustomerIsRefused(t *testing.T) {
	b := setup(t)
	_, err := b.applier.Event(b.ctx, "nobody", lifecycle.Event{Name: "logged_in", At: b.now})
	if !errors.Is(err, ErrUnknownCustomer) {
		t.Errorf("err = %v, want ErrUnknownCustomer", err)
	}
	if keys, _ := redistest.Keys(b.ctx, b.rdb, b.prefix); len(keys) != 0 {
		t.Errorf("a refused event wrote %v", keys)
	}
}

func TestImportStageStartsACustomerAndMoveStageMovesIt(t *testing.T) {
	b := setup(t)
	rec := &Record{ID: "c9", Email: "c9@example.com", Stage: "lead"}
	if _, err := b.applier.Record(b.ctx, rec); err != nil {
		t.Fatal(err)
	}
	res, err := b.applier.Record(b.ctx, &Record{ID: "c9", Stage: "active"})
	if err != nil || res.Changed {
		t.Fatalf("stage of an existing customer: %+v, %v; want nothing changed", res, err)
	}
	if _, err := b.applier.MoveStage(b.ctx, "c9", "active", "upgraded by sales"); err != nil {
		t.Fatal(err)
	}
	history, _ := b.store.History(b.ctx, "c9")
	if len(history) != 1 || history[0] != (lifecycle.StageChange{From: "lead", To: "active", At: b.now, Cause: "upgraded by sales"}) {
		t.Errorf("history = %+v", history)
	}
	if _, err := b.applier.MoveStage(b.ctx, "nobody", "active", ""); !errors.Is(err, ErrUnknownCustomer) {
		t.Errorf("MoveStage of an unknown customer: %v", err)
	}
	if _, err := b.applier.Record(b.ctx, &Record{ID: "c10", FirstName: "No Email"}); err == nil {
		t.Error("a new customer without an email was created")
	}
}

func TestSweepMovesOnlyDueCustomers(t *testing.T) {
	b := setup(t)
	// Three customers become active at different times; the lifecycle moves active
	// customers to at_risk after 21 days without activity.
	for i, day := range []int{1, 5, 20} {
		at := time.Date(2026, 3, day, 10, 0, 0, 0, time.UTC)
		rec := &Record{ID: fmt.Sprintf("c%d", i), Email: fmt.Sprintf("c%d@example.com", i),
			Events: []lifecycle.Event{{Name: "order_placed", At: at}}}
		if err := Check(rec, b.l); err != nil {
			t.Fatal(err)
		}
		if _, err := b.applier.Record(b.ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC) // c0 (due 22 March) and c1 (26 March) are due
	n, err := b.applier.Sweep(b.ctx, now, 0)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 customers", n, err)
	}
	for id, want := range map[string]string{"c0": "at_risk", "c1": "at_risk", "c2": "active"} {
		c, err := b.store.Customer(b.ctx, id)
		if err != nil || c.Stage != want {
			t.Errorf("%s stage = %v, %v; want %s", id, c.Stage, err, want)
		}
	}
	h, _ := b.store.History(b.ctx, "c0")
	if last := h[len(h)-1]; last.To != "at_risk" || !last.At.Equal(time.Date(2026, 3, 22, 10, 0, 0, 0, time.UTC)) || last.Cause != "21d without activity" {
		t.Errorf("c0 moved %+v; want at_risk at its own moment, 22 March 10:00", last)
	}
	if n, _ := b.applier.Sweep(b.ctx, now, 0); n != 0 {
		t.Errorf("a second sweep at the same time touched %d customers", n)
	}
}
