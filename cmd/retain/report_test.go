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
