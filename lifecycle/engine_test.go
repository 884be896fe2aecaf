package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/retainmail/retain/campaign"
	"golang.org/x/tools/txtar"
)

func engine(t testing.TB) *Engine {
	t.Helper()
	return engineOf(t, "testdata/engine.txtar")
}

// engineOf is the engine of the campaigns in the txtar archive at path.
func engineOf(t testing.TB, path string) *Engine {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, f := range ar.Files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data}
	}
	set, err := campaign.LoadFS(fsys, "campaigns")
	if err != nil {
		var probs campaign.Problems
		errors.As(err, &probs)
		t.Fatalf("test campaigns have problems:\n%v", probs)
	}
	return New(set)
}

var ams = mustLoc("Europe/Amsterdam")

func mustLoc(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// at parses "2026-03-27 10:00" in loc.
func at(loc *time.Location, s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		panic(err)
	}
	return t
}

// brief renders changes as one line each, times in loc, for readable diffs.
func brief(loc *time.Location, chs []Change) []string {
	var out []string
	for _, c := range chs {
		s := fmt.Sprintf("%s %s", c.At.In(loc).Format("Mon 2006-01-02 15:04"), c.Kind)
		switch c.Kind {
		case KindStage:
			s += fmt.Sprintf(" %s→%s (%s)", c.From, c.To, c.Reason)
		case KindSent, KindSkipped:
			s += " " + c.Step
			if c.Reason != "" {
				s += " (" + c.Reason + ")"
			}
		default:
			s += fmt.Sprintf(" %s#%d", c.Campaign, c.Enrollment)
			if c.Reason != "" {
				s += " (" + c.Reason + ")"
			}
		}
		out = append(out, s)
	}
	return out
}

// run drives the engine like the worker and scheduler do, from the customer's
// state until until: events in order, time rules and due steps at their moments.
func run(t *testing.T, e *Engine, c *Customer, events []Event, until time.Time) []Change {
	t.Helper()
	out, err := e.Simulate(c, events, until)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOnboardingTimeline(t *testing.T) {
	e := engine(t)
	signup := at(ams, "2026-03-02 14:10") // a Monday
	c, chs, err := e.NewCustomer("c1", "ada@example.com", "", signup)
	if err != nil || len(chs) != 0 {
		t.Fatalf("NewCustomer = %v, %v", chs, err)
	}
	c.Attributes = map[string]any{"plan": "team"}
	got := brief(ams, run(t, e, c, []Event{{Name: "signed_up", At: signup}}, at(ams, "2026-04-15 00:00")))
	want := []string{
		"Mon 2026-03-02 14:10 stage lead→onboarding (event signed_up)",
		"Mon 2026-03-02 14:10 enrolled onboarding#1",
		"Mon 2026-03-02 14:10 sent onboarding/welcome",
		// 2d after the welcome is Wednesday 14:10; at: 09:30 moves it to Thursday.
		"Thu 2026-03-05 09:30 sent onboarding/first-project",
		"Fri 2026-03-06 09:30 sent onboarding/team",
		"Fri 2026-03-13 09:30 sent onboarding/check-in",
		"Fri 2026-03-13 09:30 completed onboarding#1 (all steps passed)",
		// 30 days in onboarding; the DST change of 29 March does not move 14:10.
		"Wed 2026-04-01 14:10 stage onboarding→active (after 30d in onboarding)",
		"Wed 2026-04-01 14:10 enrolled tips#1",
		"Thu 2026-04-02 14:10 sent tips/tip",
		"Thu 2026-04-02 14:10 completed tips#1 (all steps passed)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if c.Stage != "active" || c.Enrollments["onboarding"].Status != Completed {
		t.Errorf("stage %s, onboarding %+v", c.Stage, c.Enrollments["onboarding"])
	}
}

func TestOnlyIfAndSkipIfSkipSteps(t *testing.T) {
	e := engine(t)
	signup := at(ams, "2026-03-02 14:10")
	c, _, _ := e.NewCustomer("c2", "bob@example.com", "", signup)
	c.Attributes = map[string]any{"plan": "free"}
	c.Counters = map[string]int{"orders": 1}
	got := brief(ams, run(t, e, c, []Event{{Name: "signed_up", At: signup}}, at(ams, "2026-03-20 00:00")))
	want := []string{
		"Mon 2026-03-02 14:10 stage lead→onboarding (event signed_up)",
		"Mon 2026-03-02 14:10 enrolled onboarding#1",
		"Mon 2026-03-02 14:10 sent onboarding/welcome",
		"Thu 2026-03-05 09:30 skipped onboarding/first-project (skip_if is true: customer.orders > 0)",
		`Fri 2026-03-06 09:30 skipped onboarding/team (only_if is false: customer.plan == "team")`,
		// A skipped step still counts as passed: the next delay runs from it.
		"Fri 2026-03-13 09:30 sent onboarding/check-in",
		"Fri 2026-03-13 09:30 completed onboarding#1 (all steps passed)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

func TestSendWindowPushesToMonday0900(t *testing.T) {
	e := engine(t)
	// Active on a Friday at 16:30: the tip is due Saturday 16:30, outside mon-fri.
	c, _, _ := e.NewCustomer("c3", "cy@example.com", "lead", at(ams, "2026-03-06 16:30"))
	got := brief(ams, run(t, e, c, []Event{{Name: "order_placed", At: at(ams, "2026-03-06 16:30")}}, at(ams, "2026-03-10 00:00")))
	want := []string{
		"Fri 2026-03-06 16:30 stage lead→active (event order_placed)",
		"Fri 2026-03-06 16:30 enrolled tips#1",
		"Fri 2026-03-06 16:30 enrolled second-order#1",
		"Sat 2026-03-07 16:30 sent second-order/thanks",
		"Mon 2026-03-09 09:00 sent tips/tip",
		"Mon 2026-03-09 09:00 completed tips#1 (all steps passed)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

func TestCustomerFarFromUTC(t *testing.T) {
	e := engine(t)
	auckland := mustLoc("Pacific/Auckland")
	signup := at(auckland, "2026-03-02 14:10")
	c, _, _ := e.NewCustomer("c4", "kiri@example.nz", "", signup)
	c.Timezone = "Pacific/Auckland"
	chs := run(t, e, c, []Event{{Name: "signed_up", At: signup}}, at(auckland, "2026-03-06 00:00"))
	var first Change
	for _, ch := range chs {
		if ch.Step == "onboarding/first-project" {
			first = ch
		}
	}
	// 09:30 on Thursday in Auckland is 20:30 on Wednesday in UTC.
	if got, want := first.At.UTC(), time.Date(2026, 3, 4, 20, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("first-project sent at %v UTC, want %v", got, want)
	}
	if got := first.At.In(auckland).Format("Mon 15:04"); got != "Thu 09:30" {
		t.Errorf("first-project at %s Auckland time, want Thu 09:30", got)
	}
}

func TestDelayKeepsLocalTimeAcrossDST(t *testing.T) {
	loc := ams
	// 28 March 09:30 CET + 1d = 29 March 09:30 CEST (23 hours later).
	got := addDelay(at(loc, "2026-03-28 09:30"), 24*time.Hour, loc)
	if want := at(loc, "2026-03-29 09:30"); !got.Equal(want) || got.Sub(at(loc, "2026-03-28 09:30")) != 23*time.Hour {
		t.Errorf("1d after Saturday 09:30 = %v, want %v (23h later)", got.In(loc), want)
	}
	// Hours stay exact: 36h is 36 real hours across the change.
	if got := addDelay(at(loc, "2026-03-28 09:30"), 36*time.Hour, loc); got.In(loc).Format("01-02 15:04") != "03-29 21:30" {
		// 1d (calendar) + 12h exact: Sunday 09:30 CEST + 12h = 21:30.
		t.Errorf("36h after Saturday 09:30 = %v", got.In(loc))
	}
	// A time of day that does not exist (02:30 on 29 March) moves forward an hour.
	if got := atLocal(at(loc, "2026-03-29 00:00"), 150, loc); got.In(loc).Format("15:04 MST") != "03:30 CEST" {
		t.Errorf("02:30 on the DST day = %v", got.In(loc))
	}
}

func TestRepeatPurchaseTriggers(t *testing.T) {
	e := engine(t)
	first := at(ams, "2026-05-04 10:00")
	c, _, _ := e.NewCustomer("c5", "dee@example.com", "", first)
	events := []Event{
		{Name: "order_placed", At: first},
		{Name: "order_placed", At: at(ams, "2026-05-10 11:00")},
	}
	got := brief(ams, run(t, e, c, events, at(ams, "2026-05-20 00:00")))
	want := []string{
		"Mon 2026-05-04 10:00 stage lead→active (event order_placed)",
		"Mon 2026-05-04 10:00 enrolled tips#1",
		"Mon 2026-05-04 10:00 enrolled second-order#1",
		// Steps due at the same moment go in campaign order.
		"Tue 2026-05-05 10:00 sent second-order/thanks",
		"Tue 2026-05-05 10:00 sent tips/tip",
		"Tue 2026-05-05 10:00 completed tips#1 (all steps passed)",
		// The 2nd order is second-order's goal, and third-order's trigger.
		"Sun 2026-05-10 11:00 goal_reached second-order#1 (goal order_placed)",
		"Sun 2026-05-10 11:00 enrolled third-order#1",
		"Wed 2026-05-13 11:00 sent third-order/regular",
		"Wed 2026-05-13 11:00 completed third-order#1 (all steps passed)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if c.Counters["orders"] != 2 {
		t.Errorf("orders = %d, want 2", c.Counters["orders"])
	}
}

func TestExitOnEventAndGoal(t *testing.T) {
	e := engine(t)
	for _, tc := range []struct {
		event  string
		status Status
		reason string
	}{
		{"account_closed", Exited, "event account_closed"},
		{"project_created", Converted, "goal project_created"},
		{"onboarding_completed", Exited, "left stage onboarding"},
	} {
		signup := at(ams, "2026-03-02 14:10")
		c, _, _ := e.NewCustomer("c6", "eve@example.com", "", signup)
		chs := run(t, e, c, []Event{{Name: "signed_up", At: signup}, {Name: tc.event, At: at(ams, "2026-03-03 10:00")}}, at(ams, "2026-03-20 00:00"))
		enr := c.Enrollments["onboarding"]
		if enr.Status != tc.status || enr.Reason != tc.reason || !enr.Ended.Equal(at(ams, "2026-03-03 10:00")) {
			t.Errorf("after %s: onboarding = %+v, want %s (%s)", tc.event, enr, tc.status, tc.reason)
		}
		for _, ch := range chs {
			if ch.Kind == KindSent && strings.HasPrefix(ch.Step, "onboarding/") && ch.Step != "onboarding/welcome" {
				t.Errorf("after %s: %s was still sent", tc.event, ch.Step)
			}
		}
	}
}

func TestReentry(t *testing.T) {
	e := engine(t)
	start := at(ams, "2026-01-05 10:00")
	c, _, _ := e.NewCustomer("c7", "fay@example.com", "active", start)
	if c.Enrollments["tips"] == nil || c.Enrollments["tips"].Number != 1 {
		t.Fatalf("not enrolled in tips on entering active: %+v", c.Enrollments)
	}
	// Active → at_risk after 21 days without activity, back on activity: tips again?
	// reentry is after: 90d, so not in February, but in May.
	run(t, e, c, []Event{{Name: "logged_in", At: at(ams, "2026-02-10 10:00")}}, at(ams, "2026-02-11 00:00"))
	if n := c.Enrollments["tips"].Number; n != 1 {
		t.Errorf("back to active after 36 days: tips enrollment #%d, want still #1 (reentry after 90d)", n)
	}
	run(t, e, c, []Event{{Name: "logged_in", At: at(ams, "2026-05-11 10:00")}}, at(ams, "2026-05-12 00:00"))
	if n := c.Enrollments["tips"].Number; n != 2 {
		t.Errorf("back to active after 126 days: tips enrollment #%d, want #2", n)
	}
	// onboarding has reentry never (the default): a second sign-up does nothing.
	c2, _, _ := e.NewCustomer("c8", "gus@example.com", "", start)
	run(t, e, c2, []Event{{Name: "signed_up", At: start}, {Name: "onboarding_completed", At: at(ams, "2026-01-06 10:00")}}, at(ams, "2026-01-07 00:00"))
	if _, err := e.SetStage(c2, "onboarding", at(ams, "2026-03-01 10:00"), "import"); err != nil {
		t.Fatal(err)
	}
	if n := c2.Enrollments["onboarding"].Number; n != 1 {
		t.Errorf("onboarding re-entered: #%d, want #1 (reentry never)", n)
	}
}

func TestTimeRulesAndWonBack(t *testing.T) {
	e := engine(t)
	start := at(ams, "2026-01-05 10:00")
	c, _, _ := e.NewCustomer("c9", "hal@example.com", "active", start)
	c.LastActivity = start
	if got, want := e.NextWake(c), at(ams, "2026-01-26 10:00"); !got.Equal(want) {
		t.Errorf("NextWake = %v, want 21 days after the last activity %v", got, want)
	}
	chs, _ := e.Advance(c, at(ams, "2026-06-01 00:00"))
	var stages []string
	for _, ch := range chs {
		if ch.Kind == KindStage {
			stages = append(stages, ch.At.In(ams).Format("2006-01-02 15:04 ")+ch.From+"→"+ch.To+" ("+ch.Reason+")")
		}
	}
	want := []string{
		"2026-01-26 10:00 active→at_risk (21d without activity)",
		"2026-03-27 10:00 at_risk→churned (60d without activity)",
	}
	if diff := cmp.Diff(want, stages); diff != "" {
		t.Errorf("time rules (-want +got):\n%s", diff)
	}
	if !e.NextWake(c).IsZero() {
		t.Errorf("churned has no time rule, NextWake = %v", e.NextWake(c))
	}
	chs, _ = e.Apply(c, Event{Name: "logged_in", At: at(ams, "2026-06-02 08:00")})
	if c.Stage != "active" || chs[0].From != "churned" || chs[0].Reason != "event logged_in" {
		t.Errorf("activity from churned: stage %s, changes %v; want active (won back)", c.Stage, chs)
	}
}

func TestUnsubscribedStopsAndEditedCampaignsReschedule(t *testing.T) {
	e := engine(t)
	signup := at(ams, "2026-03-02 14:10")
	c, _, _ := e.NewCustomer("c10", "ivy@example.com", "", signup)
	e.Apply(c, Event{Name: "signed_up", At: signup})
	if d := e.Decide(c, "onboarding", signup); d.Action != Send || d.Step.Slug != "welcome" {
		t.Fatalf("Decide = %v %v", d.Action, d.Step)
	}
	e.Pass(c, "onboarding", signup, true, "")
	if d := e.Decide(c, "onboarding", signup.Add(time.Hour)); d.Action != Wait || !d.Due.Equal(at(ams, "2026-03-05 09:30")) {
		t.Errorf("Decide before due = %v %v, want wait until Thu 09:30", d.Action, d.Due)
	}
	// The customer's passed steps are known by name: a step that disappears from
	// the campaign is skipped, the enrollment moves on to what now comes next.
	enr := c.Enrollments["onboarding"]
	enr.Next = "removed-step"
	d := e.Decide(c, "onboarding", at(ams, "2026-03-10 10:00"))
	if d.Step == nil || d.Step.Slug != "first-project" {
		t.Errorf("after an edit, Decide picked %v, want first-project", d.Step)
	}
	c.Unsubscribed = true
	if d := e.Decide(c, "onboarding", at(ams, "2026-03-10 10:00")); d.Action != Stop || d.Reason != "unsubscribed" {
		t.Errorf("unsubscribed: Decide = %v (%s), want stop", d.Action, d.Reason)
	}
}

func TestFrequencyCapMakesStepsWait(t *testing.T) {
	e := engine(t)
	e.FrequencyCap = 3 * 24 * time.Hour
	start := at(ams, "2026-05-04 10:00")
	c, _, _ := e.NewCustomer("c11", "jo@example.com", "", start)
	got := brief(ams, run(t, e, c, []Event{{Name: "order_placed", At: start}}, at(ams, "2026-05-12 00:00")))
	want := []string{
		"Mon 2026-05-04 10:00 stage lead→active (event order_placed)",
		"Mon 2026-05-04 10:00 enrolled tips#1",
		"Mon 2026-05-04 10:00 enrolled second-order#1",
		"Tue 2026-05-05 10:00 sent second-order/thanks",
		// The tip was due at the same moment; the cap holds it three days.
		"Fri 2026-05-08 10:00 sent tips/tip",
		"Fri 2026-05-08 10:00 completed tips#1 (all steps passed)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}
