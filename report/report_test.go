package report

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

type testBundle struct {
	ctx     context.Context
	rdb     redis.UniversalClient
	prefix  string
	set     *campaign.Set
	store   *store.Store
	engine  *lifecycle.Engine
	applier *ingest.Applier
	// now is the applier's clock: the fixture's time, set by create and event,
	// as a worker applies an event when it happens (not a backfill).
	now time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	rdb, prefix := redistest.New(t)
	return setupOn(t, rdb, prefix)
}

// setupOn is setup on the Redis rdb (a server, or a Cluster) under prefix.
func setupOn(t *testing.T, rdb redis.UniversalClient, prefix string) *testBundle {
	t.Helper()
	set, err := campaign.Load("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, prefix)
	st.Also = NewRecorder(prefix, set.Lifecycle).Record
	eng := lifecycle.New(set)
	b := &testBundle{ctx: t.Context(), rdb: rdb, prefix: prefix, set: set, store: st, engine: eng}
	b.applier = &ingest.Applier{Store: st, Engine: eng, Now: func() time.Time { return b.now }}
	return b
}

func day(month time.Month, d, hour int) time.Time {
	return time.Date(2026, month, d, hour, 0, 0, 0, time.UTC)
}

// create makes a customer as an import would, at its signup time.
func (b *testBundle) create(t *testing.T, id string, at time.Time) {
	t.Helper()
	b.now = at
	rec := &ingest.Record{ID: id, Email: id + "@example.com", Events: []lifecycle.Event{{Name: "signed_up", At: at}}}
	if _, err := b.applier.Upsert(b.ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// event applies an event as the worker does for a queued one.
func (b *testBundle) event(t *testing.T, id, eventID, name string, at time.Time, data map[string]any) {
	t.Helper()
	b.now = at
	if _, err := b.applier.Event(b.ctx, id, lifecycle.Event{ID: eventID, Name: name, At: at, Data: data}); err != nil {
		t.Fatalf("%s %s: %v", id, name, err)
	}
}

// settle writes a send outcome of the customer's welcome step as the worker's
// settle does: the engine's Pass or Stop, its changes in the store.Change.
func (b *testBundle) settle(t *testing.T, id string, at time.Time, outcome func(c *lifecycle.Customer) []lifecycle.Change) {
	t.Helper()
	err := b.store.Update(b.ctx, id, "", func(c *lifecycle.Customer) (*store.Change, error) {
		chs := outcome(c)
		return &store.Change{Customer: c, Changes: chs, Wake: b.engine.NextWake(c), Due: b.engine.NextDue(c)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (b *testBundle) sent(t *testing.T, id string, at time.Time) {
	t.Helper()
	b.record(t, id, at, lifecycle.OutcomeSent, "")
}

func (b *testBundle) refused(t *testing.T, id string, at time.Time) {
	t.Helper()
	b.record(t, id, at, lifecycle.OutcomeRefused, "554 5.7.1 rejected as spam")
}

func (b *testBundle) bounced(t *testing.T, id string, at time.Time) {
	t.Helper()
	b.record(t, id, at, lifecycle.OutcomeBounced, "550 5.1.1 no such user")
}

// record writes a send outcome of the customer's welcome step as the worker's
// settle does: Engine.Record, its changes in the store.Change.
func (b *testBundle) record(t *testing.T, id string, at time.Time, o lifecycle.Outcome, detail string) {
	t.Helper()
	b.settle(t, id, at, func(c *lifecycle.Customer) []lifecycle.Change {
		chs, err := b.engine.Record(c, "welcome", at, o, detail)
		if err != nil {
			t.Fatal(err)
		}
		return chs
	})
}

// unsubscribe writes an unsubscribe as retain web's one-click link does:
// straight through the store, not through the applier.
func (b *testBundle) unsubscribe(t *testing.T, id string, at time.Time) {
	t.Helper()
	err := b.store.Update(b.ctx, id, "", func(c *lifecycle.Customer) (*store.Change, error) {
		c.Unsubscribed = true
		ev := &lifecycle.Event{Name: "unsubscribed", At: at, Data: map[string]any{"how": "one-click"}}
		return &store.Change{Customer: c, Event: ev, Wake: b.engine.NextWake(c), Due: b.engine.NextDue(c)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func click(step string) map[string]any {
	return map[string]any{"url": "https://example.com/docs", "campaign": "welcome", "step": step}
}

func npsAnswer(score int, category string) map[string]any {
	return map[string]any{"score": score, "category": category, "campaign": "welcome"}
}

// fixture plays four customers through January to March 2026:
//
//	ann  signs up Jan 5, is sent hello, clicks, orders Jan 10 (goal after 5 days)
//	     and Jan 12, goes at_risk on Feb 2 (21 days later, applied with her next
//	     event), is won back by an order on Feb 3, answers NPS 9 (week 6), goes
//	     at_risk again on Feb 24
//	bob  signs up Jan 20, is sent hello, clicks (twice: one click event),
//	     orders Jan 22 (goal after 2 days) and Feb 10, answers NPS 7 (week 7)
//	cat  signs up Feb 2, is sent hello, bounces on tips, answers NPS 3 with a
//	     comment (week 7), unsubscribes
//	dan  signs up Feb 3, hello refused by the relay, orders Feb 4 (goal after
//	     1 day), goes at_risk on Feb 25 and is won back by a login on Mar 1
func (b *testBundle) fixture(t *testing.T) {
	t.Helper()
	b.create(t, "ann", day(1, 5, 9))
	b.event(t, "ann", "ann-1", "signed_up", day(1, 5, 9), nil)
	b.sent(t, "ann", day(1, 5, 10))
	b.event(t, "ann", "ann-2", "link_clicked", day(1, 5, 11), click("welcome/hello"))
	b.event(t, "ann", "ann-3", "order_placed", day(1, 10, 9), nil)
	b.event(t, "ann", "ann-4", "order_placed", day(1, 12, 9), nil)

	b.create(t, "bob", day(1, 20, 9))
	b.event(t, "bob", "bob-1", "signed_up", day(1, 20, 9), nil)
	b.sent(t, "bob", day(1, 20, 10))
	b.event(t, "bob", "bob-click", "link_clicked", day(1, 20, 11), click("welcome/hello"))
	if _, err := b.applier.Event(b.ctx, "bob", lifecycle.Event{ID: "bob-click", Name: "link_clicked", At: day(1, 20, 12), Data: click("welcome/hello")}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second click: %v, want ErrDuplicate", err)
	}
	b.event(t, "bob", "bob-2", "order_placed", day(1, 22, 9), nil)

	b.create(t, "cat", day(2, 2, 9))
	b.event(t, "cat", "cat-1", "signed_up", day(2, 2, 9), nil)
	b.sent(t, "cat", day(2, 2, 10))
	b.bounced(t, "cat", day(2, 3, 10))

	b.create(t, "dan", day(2, 3, 9))
	b.event(t, "dan", "dan-1", "signed_up", day(2, 3, 9), nil)
	b.refused(t, "dan", day(2, 3, 10))
	b.event(t, "dan", "dan-2", "order_placed", day(2, 4, 9), nil)

	b.event(t, "ann", "ann-5", "order_placed", day(2, 3, 9), nil)
	b.event(t, "ann", "ann-nps", "nps_submitted", day(2, 3, 12), npsAnswer(9, "promoter"))
	b.event(t, "bob", "bob-3", "order_placed", day(2, 10, 9), nil)
	b.event(t, "bob", "bob-nps", "nps_submitted", day(2, 10, 12), npsAnswer(7, "passive"))
	b.event(t, "cat", "cat-nps", "nps_submitted", day(2, 11, 12), npsAnswer(3, "detractor"))
	comment := npsAnswer(3, "detractor")
	comment["comment"] = "too many emails"
	b.event(t, "cat", "cat-nps-comment", "nps_submitted", day(2, 11, 13), comment)
	b.unsubscribe(t, "cat", day(2, 11, 14))

	// 21 days without activity: ann (last order Feb 3) and dan (Feb 4).
	if n, err := b.applier.Sweep(b.ctx, day(2, 26, 0), 0); err != nil || n != 2 {
		t.Fatalf("sweep: %d customers, %v; want 2", n, err)
	}
	b.event(t, "dan", "dan-3", "logged_in", day(3, 1, 9), nil)
}

// fixtureReport is the exact report of fixture, read on 2026-03-05 for the
// period from 2026-01-01.
func fixtureReport() *Report {
	var weeks []NPSWeek
	for w := 1; w <= 10; w++ {
		weeks = append(weeks, NPSWeek{Week: weekOf(day(1, 1, 0).AddDate(0, 0, 7*(w-1)))})
	}
	weeks[5] = NPSWeek{Week: "2026-W06", Answers: 1, Promoters: 1, Score: 100}
	weeks[6] = NPSWeek{Week: "2026-W07", Answers: 2, Passives: 1, Detractors: 1, Score: -50}
	return &Report{
		Since:     day(1, 1, 0),
		Generated: day(3, 5, 12),
		Campaigns: []CampaignReport{{
			ID: "welcome", Name: "Welcome",
			Enrolled: 4, Sent: 3, Failed: 1, Bounced: 1, Unsubscribed: 1, Clicked: 2, GoalReached: 3, BounceRate: 1.0 / 3,
			Conversion: 0.75, MedianTimeToGoal: 2 * 24 * 3600,
			Steps: []StepReport{
				{ID: "welcome/hello", Sent: 3, Failed: 1, Unsubscribed: 1, Clicked: 2},
				{ID: "welcome/tips", Bounced: 1},
			},
		}},
		Stages: []StageCount{{"lead", 0}, {"onboarding", 1}, {"active", 2}, {"at_risk", 1}, {"churned", 0}},
		Flows: []Flow{
			{From: "lead", To: "onboarding", Count: 4},
			{From: "onboarding", To: "active", Count: 3},
			{From: "active", To: "at_risk", Count: 3},
			{From: "at_risk", To: "active", Count: 2},
		},
		WonBack: 2,
		NPS:     NPS{Answers: 3, Promoters: 1, Passives: 1, Detractors: 1, Score: 0, Weeks: weeks},
		Repeat: Repeat{
			Customers: []int{3, 2, 1, 0},
			Next:      []float64{2.0 / 3, 0.5, 0},
			Reference: []float64{0.27, 0.45, 0.54},
		},
		Cohorts: []Cohort{
			{Month: "2026-01", Signups: 2, Active: []int{2, 2, 0}},
			{Month: "2026-02", Signups: 2, Active: []int{1, 1}},
		},
	}
}

func TestFixtureGivesExactReport(t *testing.T) {
	b := setup(t)
	b.fixture(t)
	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "", day(3, 5, 12))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixtureReport(), got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestFlowsAndNPSCoverOnlyThePeriod(t *testing.T) {
	b := setup(t)
	b.fixture(t)
	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(2, 24, 0), "welcome", day(3, 5, 12))
	if err != nil {
		t.Fatal(err)
	}
	wantFlows := []Flow{{From: "active", To: "at_risk", Count: 2}, {From: "at_risk", To: "active", Count: 1}}
	if diff := cmp.Diff(wantFlows, got.Flows); diff != "" || got.WonBack != 1 {
		t.Errorf("flows (-want +got):\n%s\nwon back %d, want 1", diff, got.WonBack)
	}
	if got.NPS.Answers != 0 || len(got.NPS.Weeks) != 2 {
		t.Errorf("NPS since Feb 24: %+v, want no answers in weeks 9 and 10", got.NPS)
	}
	if len(got.Campaigns) != 1 || got.Campaigns[0].Enrolled != 4 {
		t.Errorf("campaigns: %+v", got.Campaigns)
	}
}

func TestUnknownCampaignIsAnError(t *testing.T) {
	b := setup(t)
	if _, err := Read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "nope"); err == nil {
		t.Error("no error for an unknown campaign")
	}
}

// TestRetriedUpdateCountsOnce makes an update lose its WATCH to a competing
// write: its first attempt's counters are discarded with its EXEC, so only what
// was written counts.
func TestRetriedUpdateCountsOnce(t *testing.T) {
	b := setup(t)
	b.create(t, "eve", day(1, 5, 9))
	calls := 0
	err := b.store.Update(b.ctx, "eve", "", func(c *lifecycle.Customer) (*store.Change, error) {
		calls++
		if calls == 1 {
			// Another process moves eve meanwhile; this attempt will fail.
			b.event(t, "eve", "eve-1", "signed_up", day(1, 5, 10), nil)
		}
		chs, err := b.engine.SetStage(c, "active", day(1, 6, 9), "operator")
		if err != nil {
			return nil, err
		}
		return &store.Change{Customer: c, Changes: chs, History: stageHistory(chs), Wake: b.engine.NextWake(c), Due: b.engine.NextDue(c)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("update ran %d times, want 2 (one lost to the competing write)", calls)
	}
	// The event again, as a redelivered task: refused, not counted.
	if _, err := b.applier.Event(b.ctx, "eve", lifecycle.Event{ID: "eve-1", Name: "signed_up", At: day(1, 5, 10)}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("redelivered event: %v, want ErrDuplicate", err)
	}
	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "", day(1, 31, 0))
	if err != nil {
		t.Fatal(err)
	}
	wantFlows := []Flow{{From: "lead", To: "onboarding", Count: 1}, {From: "onboarding", To: "active", Count: 1}}
	if diff := cmp.Diff(wantFlows, got.Flows); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
	wantStages := []StageCount{{"lead", 0}, {"onboarding", 0}, {"active", 1}, {"at_risk", 0}, {"churned", 0}}
	if diff := cmp.Diff(wantStages, got.Stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if e := got.Campaigns[0].Enrolled; e != 1 {
		t.Errorf("enrolled %d, want 1", e)
	}
}

func stageHistory(chs []lifecycle.Change) []lifecycle.StageChange {
	var out []lifecycle.StageChange
	for _, ch := range chs {
		if ch.Kind == lifecycle.KindStage {
			out = append(out, lifecycle.StageChange{From: ch.From, To: ch.To, At: ch.At, Cause: ch.Reason})
		}
	}
	return out
}

func TestMedianOfEvenCountIsMeanOfMiddleTwo(t *testing.T) {
	for n, want := range map[int64][]int64{0: nil, 1: {0}, 2: {0, 1}, 3: {1}, 4: {1, 2}} {
		if got := middle(n); !cmp.Equal(got, want) {
			t.Errorf("middle(%d) = %v, want %v", n, got, want)
		}
	}
}

// npsOf is an NPS answer to round n of the welcome survey, as retain web
// records it.
func npsOf(score, n int) map[string]any {
	return map[string]any{"score": score, "category": npsCategoryOf(score), "campaign": "welcome", "enrollment": n}
}

func npsCategoryOf(score int) string {
	switch {
	case score >= 9:
		return "promoter"
	case score >= 7:
		return "passive"
	}
	return "detractor"
}

// TestNPSCountsPeopleAChangedAnswerMovesThem: one answer per customer and
// survey email (campaign and enrollment); a later answer replaces the earlier
// one, in its bucket and its week.
func TestNPSCountsPeopleAChangedAnswerMovesThem(t *testing.T) {
	b := setup(t)
	b.create(t, "eve", day(2, 2, 9))
	b.create(t, "fay", day(2, 2, 9))
	b.event(t, "eve", "eve-a", "nps_submitted", day(2, 3, 12), npsOf(3, 1))  // week 6
	b.event(t, "eve", "eve-b", "nps_submitted", day(2, 3, 13), npsOf(4, 1))  // same bucket
	b.event(t, "eve", "eve-c", "nps_submitted", day(2, 10, 12), npsOf(9, 1)) // week 7: moves
	comment := npsOf(9, 1)
	comment["comment"] = "better now"
	b.event(t, "eve", "eve-d", "nps_submitted", day(2, 10, 13), comment)
	// An earlier answer applied late (a queue retry) does not undo the later one.
	b.event(t, "eve", "eve-late", "nps_submitted", day(2, 3, 14), npsOf(0, 1))
	b.event(t, "fay", "fay-a", "nps_submitted", day(2, 10, 12), npsOf(8, 1))
	// A second round of the survey is another answer of the same person.
	b.event(t, "fay", "fay-b", "nps_submitted", day(2, 11, 12), npsOf(2, 2))

	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(2, 2, 0), "", day(2, 12, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := NPS{Answers: 3, Promoters: 1, Passives: 1, Detractors: 1, Score: 0, Weeks: []NPSWeek{
		{Week: "2026-W06"},
		{Week: "2026-W07", Answers: 3, Promoters: 1, Passives: 1, Detractors: 1, Score: 0},
	}}
	if diff := cmp.Diff(want, got.NPS, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("NPS (-want +got):\n%s", diff)
	}
}

// TestNPSAnswerWithoutEnrollmentIsTheLatestEnrollments: an answer that does
// not say its round (an older link, an event posted to the API) belongs to the
// customer's latest enrollment in its campaign.
func TestNPSAnswerWithoutEnrollmentIsTheLatestEnrollments(t *testing.T) {
	b := setup(t)
	b.create(t, "gus", day(2, 2, 9))
	b.event(t, "gus", "gus-1", "signed_up", day(2, 2, 9), nil) // enrolls in welcome
	b.event(t, "gus", "gus-a", "nps_submitted", day(2, 3, 12), npsAnswer(10, "promoter"))
	b.event(t, "gus", "gus-b", "nps_submitted", day(2, 3, 13), npsOf(6, 1))
	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(2, 2, 0), "", day(2, 4, 0))
	if err != nil {
		t.Fatal(err)
	}
	if n := got.NPS; n.Answers != 1 || n.Detractors != 1 {
		t.Errorf("NPS %+v, want one detractor", n)
	}
}

// TestChangeOnAStepWithoutSlugCountsNoStep: issue 13, defect 9. A bounce whose
// step had lost its slug ("welcome/") was counted on a phantom step of the
// funnel; a change that names no step counts against none.
func TestChangeOnAStepWithoutSlugCountsNoStep(t *testing.T) {
	b := setup(t)
	b.create(t, "ann", day(1, 5, 9))
	b.event(t, "ann", "ann-1", "signed_up", day(1, 5, 9), nil)
	b.settle(t, "ann", day(1, 5, 10), func(c *lifecycle.Customer) []lifecycle.Change {
		chs := b.engine.Stop(c, "welcome", day(1, 5, 10), "bounced: 550 5.1.1 no such user")
		for i := range chs {
			chs[i].Outcome, chs[i].Step = lifecycle.OutcomeBounced, "welcome/"
		}
		chs = append(chs,
			lifecycle.Change{Kind: lifecycle.KindSent, Campaign: "welcome", Step: "welcome/"},
			lifecycle.Change{Kind: lifecycle.KindSkipped, Campaign: "welcome", Step: "", Outcome: lifecycle.OutcomeRefused})
		return chs
	})
	fields, err := b.rdb.HGetAll(b.ctx, customerKeys(cmpPrefix(b.prefix), "ann").campaign("welcome")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if fields["enrolled"] != "1" {
		t.Fatalf("campaign counters %v: ann was not enrolled", fields)
	}
	for f := range fields {
		if strings.Contains(f, "|") && !strings.Contains(f, "/") || strings.Contains(f, "/|") {
			t.Errorf("counted on a step without slug: %s = %s", f, fields[f])
		}
	}
}

// TestCountersArePerShardAndSumToOneReport: every counter a customer's write
// moves is in the customer's shard (the hash slot of its own keys), and Read
// sums the shards into the report one set of counters gave. The fixture's
// customers are in three shards, ann and dan in one.
func TestCountersArePerShardAndSumToOneReport(t *testing.T) {
	ids := []string{"ann", "bob", "cat", "dan"}
	byShard := map[int][]string{}
	for _, id := range ids {
		byShard[store.ShardOf(id)] = append(byShard[store.ShardOf(id)], id)
	}
	if len(byShard) < 3 || len(byShard) == len(ids) {
		t.Fatalf("the fixture's customers are in shards %v: want some apart and some together", byShard)
	}
	b := setup(t)
	rec := NewRecorder(b.prefix, b.set.Lifecycle)
	writes := 0
	b.store.Also = func(ctx context.Context, p redis.Pipeliner, w store.Written) {
		// Record it once aside to see its keys, then for real.
		q := b.rdb.TxPipeline()
		rec.Record(ctx, q, w)
		for _, key := range pipedKeys(t, q.Cmds()) {
			if want := store.CustomerPrefix(b.prefix, w.ID); !strings.HasPrefix(key, want) {
				t.Errorf("a write of %s counts in %s, outside its shard %s", w.ID, key, want)
			}
		}
		q.Discard()
		writes++
		rec.Record(ctx, p, w)
	}
	b.fixture(t)
	if writes == 0 {
		t.Fatal("no write was recorded")
	}

	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "", day(3, 5, 12))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixtureReport(), got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("report summed over the shards (-want +got):\n%s", diff)
	}

	// Each shard holds its own customers' counts: all four enrolled in
	// welcome, and signed up in January (ann, bob) or February (cat, dan).
	for shard, in := range byShard {
		sp := store.ShardPrefix(b.prefix, shard)
		camp, err := b.rdb.HGetAll(b.ctx, sp+"report:campaign:welcome").Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(len(in)); camp["enrolled"] != want {
			t.Errorf("%sreport:campaign:welcome enrolled %q, want %s (%v)", sp, camp["enrolled"], want, in)
		}
		months, err := b.rdb.SMembers(b.ctx, sp+"report:months").Result()
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, id := range in {
			m := map[string]string{"ann": "2026-01", "bob": "2026-01", "cat": "2026-02", "dan": "2026-02"}[id]
			if !slices.Contains(want, m) {
				want = append(want, m)
			}
		}
		if !cmp.Equal(want, months, cmpopts.SortSlices(func(a, b string) bool { return a < b })) {
			t.Errorf("%sreport:months %v, want %v (%v)", sp, months, want, in)
		}
	}
	ann := store.CustomerPrefix(b.prefix, "ann")
	if n, err := b.rdb.HGet(b.ctx, ann+"report:nps", "2026-W06|promoters").Int(); err != nil || n != 1 {
		t.Errorf("ann's NPS answer in %sreport:nps: %d, %v; want 1", ann, n, err)
	}
	if n, err := b.rdb.Exists(b.ctx, customerKeys(b.prefix, "ann").npsAnswer("ann", "welcome", 1)).Result(); err != nil || n != 1 {
		t.Errorf("ann's stored NPS answer: %d, %v; want it in her shard", n, err)
	}
	if n, err := b.rdb.ZCard(b.ctx, store.CustomerPrefix(b.prefix, "bob")+"report:goal:welcome").Result(); err != nil || n != 1 {
		t.Errorf("bob's time to goal: %d entries, %v; want 1 in his shard", n, err)
	}

	// No report key is outside a shard.
	all, err := redistest.Keys(b.ctx, b.rdb, b.prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range all {
		if !strings.Contains(key, "report:") {
			continue
		}
		if !slices.ContainsFunc(slices.Collect(maps.Keys(byShard)), func(i int) bool { return strings.HasPrefix(key, store.ShardPrefix(b.prefix, i)) }) {
			t.Errorf("report key %s is not in the shard of a customer", key)
		}
	}
}

// pipedKeys are the keys of the commands Record queues: HINCRBY, SADD, ZADD
// name theirs first, EVAL after the script and the number of keys.
func pipedKeys(t *testing.T, cmds []redis.Cmder) []string {
	t.Helper()
	var out []string
	for _, c := range cmds {
		args := c.Args()
		switch name := strings.ToLower(c.Name()); name {
		case "hincrby", "sadd", "zadd":
			out = append(out, args[1].(string))
		case "eval", "evalsha":
			n, _ := args[2].(int)
			for _, a := range args[3 : 3+n] {
				out = append(out, a.(string))
			}
		default:
			t.Errorf("Record queued %s: which of its arguments are keys?", name)
		}
	}
	return out
}

// TestFixtureOnClusterGivesExactReport runs the fixture on a Redis Cluster of
// three masters: each customer write, with the counters it moves, is one
// MULTI/EXEC in one hash slot, and Read sums the shards spread over the
// masters into the same report.
func TestFixtureOnClusterGivesExactReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t)
	b := setupOn(t, c.Client(t), "retain:")
	b.fixture(t)
	got, err := read(b.ctx, b.rdb, b.prefix, b.set, day(1, 1, 0), "", day(3, 5, 12))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fixtureReport(), got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("report on a Cluster (-want +got):\n%s", diff)
	}
}
