package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/report"
)

// TestReportJSONCountsEventsAppliedByTheCLI applies events with retain event
// --apply, which keeps the counters through the store like every other
// process, and reads them back with retain report --json.
func TestReportJSONCountsEventsAppliedByTheCLI(t *testing.T) {
	_, prefix := redistest.New(t)
	vars := map[string]string{"REDIS_URL": redistest.URL(), "RETAIN_REDIS_PREFIX": prefix, "RETAIN_TEMPLATES": "../../templates"}
	retain := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
		if code := run(append(args, "--campaigns", "../../report/testdata/campaigns"), e); code != exitOK {
			t.Fatalf("retain %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
		}
		return stdout.String()
	}
	retain("event", "--apply", "--email", "ann@example.com", "--id", "a1", "--at", "2026-01-05T09:00:00Z", "ann", "signed_up")
	retain("event", "--apply", "--id", "a2", "--at", "2026-01-10T09:00:00Z", "ann", "order_placed")
	retain("event", "--apply", "--id", "a2", "--at", "2026-01-10T09:00:00Z", "ann", "order_placed") // applied once
	retain("event", "--apply", "--id", "a3", "--at", "2026-01-12T09:00:00Z", "ann", "order_placed")
	retain("event", "--apply", "--email", "bob@example.com", "--id", "b1", "--at", "2026-01-20T09:00:00Z", "bob", "signed_up")

	var got report.Report
	if err := json.Unmarshal([]byte(retain("report", "--json", "--since", "2026-01-01")), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Since.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("since %v, want 2026-01-01", got.Since)
	}
	wantCampaigns := []report.CampaignReport{{ID: "welcome", Name: "Welcome", Enrolled: 2, GoalReached: 1, Conversion: 0.5,
		MedianTimeToGoal: 5 * 24 * 3600, Steps: []report.StepReport{{ID: "welcome/hello"}, {ID: "welcome/tips"}}}}
	if diff := cmp.Diff(wantCampaigns, got.Campaigns); diff != "" {
		t.Errorf("campaigns (-want +got):\n%s", diff)
	}
	wantStages := []report.StageCount{{Stage: "lead"}, {Stage: "onboarding", Customers: 1}, {Stage: "active", Customers: 1}, {Stage: "at_risk"}, {Stage: "churned"}}
	if diff := cmp.Diff(wantStages, got.Stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	wantFlows := []report.Flow{{From: "lead", To: "onboarding", Count: 2}, {From: "onboarding", To: "active", Count: 1}}
	if diff := cmp.Diff(wantFlows, got.Flows); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1, 1, 0, 0}, got.Repeat.Customers); diff != "" {
		t.Errorf("repeat funnel (-want +got):\n%s", diff)
	}
	if len(got.Cohorts) != 1 || got.Cohorts[0].Month != "2026-01" || got.Cohorts[0].Signups != 2 || got.Cohorts[0].Active[0] != 1 {
		t.Errorf("cohorts: %+v, want 2026-01 with 2 signups, 1 active in January", got.Cohorts)
	}

	text := retain("report", "--since", "2026-01-01")
	for _, want := range []string{"welcome/hello", "onboarding", "won back: 0", "27%", "2026-01"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
}

// TestReportTextShowsExperiments: the holdout and the A/B variants of a step
// in the text report, with the method named, the uplift in points with its
// interval, and "not enough data yet" for a comparison under the rule.
func TestReportTextShowsExperiments(t *testing.T) {
	ho := &report.Holdout{Share: 0.1,
		Control:    report.Group{Enrolled: 400, GoalReached: 40, Rate: 0.1},
		Treatment:  report.Group{Enrolled: 3600, GoalReached: 540, Rate: 0.15},
		Comparison: report.Compare(540, 3600, 40, 400)}
	b := report.Compare(56, 70, 48, 80)
	c := report.Compare(3, 10, 48, 80)
	r := &report.Report{Campaigns: []report.CampaignReport{{ID: "welcome", Holdout: ho, Steps: []report.StepReport{
		{ID: "welcome/hello", Variants: []report.VariantReport{
			{Variant: "a", Given: 80, Sent: 79, Clicked: 20, Unsubscribed: 2, GoalReached: 48, GoalRate: 0.6},
			{Variant: "b", Given: 70, Sent: 69, Clicked: 12, GoalReached: 56, GoalRate: 0.8, VsA: &b},
			{Variant: "c", Given: 10, Sent: 10, GoalReached: 3, GoalRate: 0.3, VsA: &c},
		}},
		{ID: "welcome/tips"},
	}}}}
	var out strings.Builder
	printExperiments(&out, r)
	want := `
Experiments: goal conversion (95% interval, Newcombe hybrid score; p: two-sided pooled two-proportion z-test)
  welcome: holdout 10.0% (control: enrolled, sent nothing; treatment: everyone else)
    group      enrolled  goal reached  rate   uplift           95% interval          p
    control    400       40            10.0%
    treatment  3600      540           15.0%  +5.0 pts (+50%)  +1.5 pts to +7.8 pts  0.007  higher
  welcome/hello: A/B variants
    variant  given  sent  clicked  unsubscribed  goal reached  rate   uplift vs a          95% interval           p
    a        80     79    20       2             48            60.0%
    b        70     69    12       0             56            80.0%  +20.0 pts (+33%)     +5.2 pts to +33.4 pts  0.008  higher
    c        10     10    0        0             3             30.0%  not enough data yet
  Uplift is in percentage points of goal rate, against the control group or variant a; shown once each group
  has 30 customers, 5 who reached the goal and 5 who did not.
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("experiments (-want +got):\n%s", diff)
	}

	out.Reset()
	printExperiments(&out, &report.Report{Campaigns: []report.CampaignReport{{ID: "plain", Steps: []report.StepReport{{ID: "plain/one"}}}}})
	if out.Len() != 0 {
		t.Errorf("experiments of a report without any:\n%s", out.String())
	}
}
