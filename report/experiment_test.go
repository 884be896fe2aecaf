package report

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// setupExperiment is setup with the welcome campaign made an experiment: a
// holdout of holdout basis points, and its hello step split between its own
// content (a) and a variant b for splitB percent of the customers.
func setupExperiment(t *testing.T, holdout, splitB int) *testBundle {
	t.Helper()
	b := setup(t)
	welcome := b.set.Campaign("welcome")
	welcome.Holdout = holdout
	hello := b.set.Step("welcome/hello")
	hello.AB = []*campaign.ABVariant{{Name: "b", Split: splitB, Content: hello.Content}}
	return b
}

// work runs the welcome campaign's due step for a customer as the worker's
// settle does: Decide (which records the A/B variant), then the relay's
// outcome o of a send, or the skip Decide chose (a held-out customer's).
func (b *testBundle) work(t *testing.T, id string, at time.Time, o lifecycle.Outcome) lifecycle.Decision {
	t.Helper()
	var d lifecycle.Decision
	b.settle(t, id, at, func(c *lifecycle.Customer) []lifecycle.Change {
		d = b.engine.Decide(c, "welcome", at)
		chs := d.Changes
		var more []lifecycle.Change
		var err error
		switch d.Action {
		case lifecycle.Send:
			more, err = b.engine.Record(c, "welcome", at, o, "")
		case lifecycle.Skip:
			more, err = b.engine.Pass(c, "welcome", at, false, d.Reason)
		default:
			t.Fatalf("%s: decision %s, want send or skip", id, d.Action)
		}
		if err != nil {
			t.Fatal(err)
		}
		return append(chs, more...)
	})
	return d
}

// TestHoldoutAndVariantsAreCountedPerGroupAndVariant plays 60 customers
// through a welcome campaign with a 30% holdout and a 50/50 test of its first
// step. Who is held out and who gets b is the engine's (by a hash of the
// customer); the test works out what each group and variant must count from
// the same assignment functions and checks the counters and the report.
func TestHoldoutAndVariantsAreCountedPerGroupAndVariant(t *testing.T) {
	b := setupExperiment(t, 3000, 50)
	welcome, hello := b.set.Campaign("welcome"), b.set.Step("welcome/hello")

	type counts struct{ enrolled, reached int }
	var control, treatment counts
	want := map[string]*VariantReport{"a": {Variant: "a"}, "b": {Variant: "b"}}
	refused := false
	for i := range 60 {
		id := fmt.Sprintf("c%02d", i)
		start := day(1, 5, 9).Add(time.Duration(i) * time.Minute)
		b.create(t, id, start)
		b.event(t, id, id+"-signup", "signed_up", start, nil)

		held := lifecycle.InHoldout(id, welcome)
		v := lifecycle.AssignVariant(id, hello)
		o := lifecycle.OutcomeSent
		if !held && !refused {
			o, refused = lifecycle.OutcomeRefused, true // one send of its variant refused for good
		}
		d := b.work(t, id, start.Add(time.Hour), o)
		switch {
		case held && (d.Action != lifecycle.Skip || d.Reason != lifecycle.HoldoutReason):
			t.Fatalf("%s is held out but was decided %s (%s)", id, d.Action, d.Reason)
		case !held && (d.Action != lifecycle.Send || d.Variant != v):
			t.Fatalf("%s decided %s of variant %q, want send of %q", id, d.Action, d.Variant, v)
		}

		g := &treatment
		if held {
			g = &control
		}
		g.enrolled++
		var row *VariantReport
		if !held {
			row = want[v]
			row.Given++
			if o == lifecycle.OutcomeSent {
				row.Sent++
			}
		}
		if !held && o == lifecycle.OutcomeSent && i%4 == 0 {
			b.event(t, id, id+"-click", "link_clicked", start.Add(2*time.Hour), click("welcome/hello"))
			row.Clicked++
		}
		if i%3 != 0 {
			b.event(t, id, id+"-order", "order_placed", start.Add(3*time.Hour), nil)
			g.reached++
			if row != nil {
				row.GoalReached++
			}
		}
		if !held && o == lifecycle.OutcomeSent && i%5 == 1 {
			b.unsubscribe(t, id, start.Add(4*time.Hour))
			row.Unsubscribed++
		}
	}
	if control.enrolled == 0 || treatment.enrolled == 0 || want["a"].Given == 0 || want["b"].Given == 0 {
		t.Fatalf("the hash put nobody in a group: control %+v, treatment %+v, a %+v, b %+v", control, treatment, want["a"], want["b"])
	}

	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "welcome", day(1, 31, 0))
	if err != nil {
		t.Fatal(err)
	}
	cr := got.Campaigns[0]
	wantHoldout := &Holdout{
		Share:      0.3,
		Control:    group(control.enrolled, control.reached),
		Treatment:  group(treatment.enrolled, treatment.reached),
		Comparison: Compare(treatment.reached, treatment.enrolled, control.reached, control.enrolled),
	}
	if diff := cmp.Diff(wantHoldout, cr.Holdout, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("holdout (-want +got):\n%s", diff)
	}
	if cr.Enrolled != 60 || cr.GoalReached != control.reached+treatment.reached {
		t.Errorf("enrolled %d, goal reached %d; want 60, %d", cr.Enrolled, cr.GoalReached, control.reached+treatment.reached)
	}

	var wantVariants []VariantReport
	for _, v := range []string{"a", "b"} {
		r := *want[v]
		r.GoalRate = float64(r.GoalReached) / float64(r.Given)
		wantVariants = append(wantVariants, r)
	}
	vs := Compare(wantVariants[1].GoalReached, wantVariants[1].Given, wantVariants[0].GoalReached, wantVariants[0].Given)
	wantVariants[1].VsA = &vs
	helloReport := cr.Steps[0]
	if diff := cmp.Diff(wantVariants, helloReport.Variants, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("variants of welcome/hello (-want +got):\n%s", diff)
	}
	// The step's own counts are the variants' sums; the held-out customers
	// passed it without a send and count nowhere in it.
	if s := helloReport; s.Sent != want["a"].Sent+want["b"].Sent || s.Failed != 1 ||
		s.Clicked != want["a"].Clicked+want["b"].Clicked || s.Unsubscribed != want["a"].Unsubscribed+want["b"].Unsubscribed {
		t.Errorf("welcome/hello %+v: want the sums of its variants %+v, %+v and 1 failed", s, want["a"], want["b"])
	}
	if tips := cr.Steps[1]; tips.Variants != nil {
		t.Errorf("welcome/tips has no variants, got %+v", tips.Variants)
	}
}

// TestExperimentReadGivesHandComputedStatistics reads counters as the
// Recorder keeps them, spread over two shards, and checks the report against
// values worked out by hand: the holdout is TestCompareHoldoutByHand's
// (control 40 of 400, treatment 540 of 3600), variant b against a is example
// (a) of Newcombe's Table II (56 of 70 against 48 of 80).
func TestExperimentReadGivesHandComputedStatistics(t *testing.T) {
	b := setupExperiment(t, 1000, 50)
	shard := func(i int) string { return shardKeys(cmpPrefix(b.prefix), i).campaign("welcome") }
	// Shard 0 and shard 1 each hold a part; Read sums them.
	for i, fields := range []map[string]any{{
		"enrolled": 2000, "goal_reached": 290, controlEnrolled: 150, controlGoal: 15,
		"welcome/hello|sent": 70, "welcome/hello|a|given": 30, "welcome/hello|a|sent": 30, "welcome/hello|a|goal_reached": 18,
		"welcome/hello|b|given": 40, "welcome/hello|b|sent": 39, "welcome/hello|b|goal_reached": 30, "welcome/hello|b|clicked": 12,
	}, {
		"enrolled": 2000, "goal_reached": 290, controlEnrolled: 250, controlGoal: 25,
		"welcome/hello|sent": 79, "welcome/hello|a|given": 50, "welcome/hello|a|sent": 49, "welcome/hello|a|goal_reached": 30,
		"welcome/hello|b|given": 30, "welcome/hello|b|sent": 30, "welcome/hello|b|goal_reached": 26, "welcome/hello|a|unsubscribed": 2,
	}} {
		if err := b.rdb.HSet(b.ctx, shard(i), fields).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "welcome", day(1, 31, 0))
	if err != nil {
		t.Fatal(err)
	}
	ho := got.Campaigns[0].Holdout
	if ho == nil {
		t.Fatal("no holdout in the report")
	}
	if ho.Share != 0.1 || ho.Control.Enrolled != 400 || ho.Control.GoalReached != 40 || ho.Treatment.Enrolled != 3600 || ho.Treatment.GoalReached != 540 {
		t.Fatalf("holdout %+v: want 10%%, control 40 of 400, treatment 540 of 3600", ho)
	}
	near(t, "control rate", ho.Control.Rate, 0.10, 1e-12)
	near(t, "treatment rate", ho.Treatment.Rate, 0.15, 1e-12)
	near(t, "uplift", ho.Uplift, 0.05, 1e-12)
	near(t, "relative uplift", *ho.RelativeUplift, 0.5, 1e-12)
	near(t, "interval low", ho.Low, 0.014828, 1e-6)
	near(t, "interval high", ho.High, 0.078380, 1e-6)
	near(t, "p", ho.P, 0.00705, 1e-5)
	if !ho.Enough || ho.Verdict != VerdictHigher {
		t.Errorf("enough %v, verdict %q; want enough, higher", ho.Enough, ho.Verdict)
	}

	vars := got.Campaigns[0].Steps[0].Variants
	if len(vars) != 2 || vars[0].Variant != "a" || vars[1].Variant != "b" {
		t.Fatalf("variants %+v, want a and b", vars)
	}
	a, bv := vars[0], vars[1]
	if a.Given != 80 || a.Sent != 79 || a.GoalReached != 48 || a.Unsubscribed != 2 || a.VsA != nil {
		t.Errorf("variant a %+v: want 48 of 80 given, 79 sent, 2 unsubscribed, no comparison", a)
	}
	if bv.Given != 70 || bv.Sent != 69 || bv.GoalReached != 56 || bv.Clicked != 12 || bv.VsA == nil {
		t.Fatalf("variant b %+v: want 56 of 70 given, 69 sent, 12 clicked, compared with a", bv)
	}
	// 56/70 = 0.8, 48/80 = 0.6: uplift 0.2 (20 points), relative 0.2/0.6.
	near(t, "b goal rate", bv.GoalRate, 0.8, 1e-12)
	near(t, "b uplift", bv.VsA.Uplift, 0.2, 1e-12)
	near(t, "b relative uplift", *bv.VsA.RelativeUplift, 1.0/3, 1e-12)
	// Newcombe 1998, Table II (a), method 10: 0.0524 to 0.3339.
	near(t, "b interval low", bv.VsA.Low, 0.0524, 5e-5)
	near(t, "b interval high", bv.VsA.High, 0.3339, 5e-5)
	// Pooled p = 104/150 = 0.693333; SE = √(0.693333·0.306667·(1/70 + 1/80))
	// = √(0.212622·0.026786) = √0.0056952 = 0.075467; z = 0.2/0.075467 = 2.6502;
	// P = erfc(2.6502/√2) = 0.00804.
	near(t, "b z", bv.VsA.Z, 2.6502, 1e-4)
	near(t, "b p", bv.VsA.P, 0.00804, 1e-5)
	if bv.VsA.Verdict != VerdictHigher {
		t.Errorf("b verdict %q, want higher", bv.VsA.Verdict)
	}
}

// TestCountersFromBeforeHoldoutsReadAsTreatment: a campaign given a holdout
// after it ran has counters without a control group; the report shows every
// enrollment in the treatment group and says there is not enough data yet.
// A campaign without a holdout and without control counters shows none.
func TestCountersFromBeforeHoldoutsReadAsTreatment(t *testing.T) {
	b := setupExperiment(t, 1000, 50)
	b.create(t, "ann", day(1, 5, 9))
	b.set.Campaign("welcome").Holdout = 0 // enrolled before the holdout
	b.event(t, "ann", "ann-1", "signed_up", day(1, 5, 9), nil)
	b.event(t, "ann", "ann-2", "order_placed", day(1, 6, 9), nil)

	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "welcome", day(1, 31, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ho := got.Campaigns[0].Holdout; ho != nil {
		t.Errorf("holdout %+v of a campaign without one, want nil", ho)
	}

	b.set.Campaign("welcome").Holdout = 1000
	got, err = read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "welcome", day(1, 31, 0))
	if err != nil {
		t.Fatal(err)
	}
	ho := got.Campaigns[0].Holdout
	if ho == nil {
		t.Fatal("no holdout in the report")
	}
	if ho.Control != (Group{}) || ho.Treatment != (Group{Enrolled: 1, GoalReached: 1, Rate: 1}) || ho.Enough || ho.Verdict != VerdictNotEnough {
		t.Errorf("holdout %+v: want an empty control group, ann in the treatment, not enough data yet", ho)
	}
}

// TestExperimentCountersStayInTheCustomersShard: the variant and group
// counters are fields of the campaign hash of the customer's shard, as the
// others are (TestCountersArePerShardAndSumToOneReport checks every key).
func TestExperimentCountersStayInTheCustomersShard(t *testing.T) {
	b := setupExperiment(t, 5000, 50)
	welcome, hello := b.set.Campaign("welcome"), b.set.Step("welcome/hello")
	rec := NewRecorder(b.prefix, b.set.Lifecycle)
	b.store.Also = func(ctx context.Context, p redis.Pipeliner, w store.Written) {
		q := b.rdb.TxPipeline()
		rec.Record(ctx, q, w)
		for _, key := range pipedKeys(t, q.Cmds()) {
			if want := store.CustomerPrefix(b.prefix, w.ID); !strings.HasPrefix(key, want) {
				t.Errorf("a write of %s counts in %s, outside its shard %s", w.ID, key, want)
			}
		}
		q.Discard()
		rec.Record(ctx, p, w)
	}
	for i := range 12 {
		id := fmt.Sprintf("s%02d", i)
		b.create(t, id, day(1, 5, 9))
		b.event(t, id, id+"-1", "signed_up", day(1, 5, 9), nil)
		b.work(t, id, day(1, 5, 10), lifecycle.OutcomeSent)
		b.event(t, id, id+"-2", "order_placed", day(1, 5, 11), nil)

		fields, err := b.rdb.HGetAll(b.ctx, store.CustomerPrefix(b.prefix, id)+"report:campaign:welcome").Result()
		if err != nil {
			t.Fatal(err)
		}
		if lifecycle.InHoldout(id, welcome) {
			if fields[controlEnrolled] == "" || fields[controlGoal] == "" {
				t.Errorf("%s is held out: %v lacks its control counts", id, fields)
			}
			continue
		}
		v := lifecycle.AssignVariant(id, hello)
		for _, what := range []string{"given", "sent", "goal_reached"} {
			if f := variantField("welcome/hello", v, what); fields[f] == "" {
				t.Errorf("%s got %s: %v lacks %s", id, v, fields, f)
			}
		}
	}
}
