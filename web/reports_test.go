package web

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retainmail/retain/report"
)

// reportsNow is the clock of the reports tests.
var reportsNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// reportsCall is what the page asked Deps.Reports for.
type reportsCall struct {
	since    time.Time
	campaign string
}

// reportsBundle is retain web with Deps.Reports answering rep (or err), without
// Redis: the page only lays the report out.
type reportsBundle struct {
	*uiBundle
	mu     sync.Mutex
	called []reportsCall
}

// calls returns the calls so far and forgets them.
func (b *reportsBundle) calls() []reportsCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.called
	b.called = nil
	return c
}

func setupReports(t *testing.T, rep *report.Report, err error) *reportsBundle {
	t.Helper()
	b := &reportsBundle{}
	srv, e := New(Config{APIToken: uiToken, Now: func() time.Time { return reportsNow }, Log: slog.New(slog.DiscardHandler)}, Deps{
		Reports: func(_ context.Context, since time.Time, campaignID string) (*report.Report, error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.called = append(b.called, reportsCall{since, campaignID})
			return rep, err
		},
	})
	if e != nil {
		t.Fatal(e)
	}
	b.uiBundle = &uiBundle{srv: srv, ts: newTestServer(t, srv), now: reportsNow}
	return b
}

// reportFixture has numbers chosen so every figure on the page is known.
func reportFixture() *report.Report {
	return &report.Report{
		Since:     time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
		Generated: reportsNow,
		Campaigns: []report.CampaignReport{{
			ID: "onboarding", Name: "Onboarding",
			Enrolled: 1234, Sent: 2345, Failed: 12, Bounced: 7, Complained: 9, Unsubscribed: 9, Clicked: 456, GoalReached: 300,
			EditSkipped: 1012, EndedByEdit: 3, BounceRate: 7.0 / 2345, ComplaintRate: 9.0 / 2345,
			Paused:     "complaint rate 0.38% over the last 2345 sends (9 complaints) passed 0.3%",
			Conversion: 300.0 / 1234, MedianTimeToGoal: (3*24 + 4) * 3600,
			Steps: []report.StepReport{
				{ID: "onboarding/welcome", Sent: 1234, Failed: 8, Bounced: 5, Complained: 9, Unsubscribed: 4, Clicked: 300},
				{ID: "onboarding/first-project", Sent: 1111, Failed: 4, Bounced: 2, Unsubscribed: 5, Clicked: 156, EditSkipped: 1012},
			},
		}, {
			ID: "winback", Name: "Win-back",
		}},
		Stages: []report.StageCount{{Stage: "lead", Customers: 40}, {Stage: "onboarding", Customers: 120}, {Stage: "active", Customers: 1500}, {Stage: "at_risk", Customers: 80}, {Stage: "churned", Customers: 60}},
		Flows: []report.Flow{
			{From: "onboarding", To: "active", Count: 90}, {From: "active", To: "at_risk", Count: 30}, {From: "at_risk", To: "active", Count: 12}, {From: "churned", To: "active", Count: 5},
		},
		WonBack: 17,
		NPS: report.NPS{Answers: 60, Promoters: 30, Passives: 20, Detractors: 10, Score: 100.0 / 3,
			Weeks: []report.NPSWeek{
				{Week: "2026-W05", Answers: 20, Promoters: 10, Passives: 5, Detractors: 5, Score: 25},
				{Week: "2026-W06", Answers: 30, Promoters: 18, Passives: 10, Detractors: 2, Score: 160.0 / 3},
				{Week: "2026-W07", Answers: 10, Promoters: 2, Passives: 2, Detractors: 6, Score: -40},
				{Week: "2026-W08"},
			}},
		Repeat: report.Repeat{
			Customers: []int{500, 200, 90, 50},
			Next:      []float64{0.4, 0.45, 50.0 / 90},
			Reference: report.RetailReference,
		},
		Cohorts: []report.Cohort{
			{Month: "2026-01", Signups: 200, Active: []int{200, 90, 50}},
			{Month: "2026-02", Signups: 150, Active: []int{150, 60}},
			{Month: "2026-03", Signups: 80, Active: []int{80}},
		},
	}
}

func TestReportsPageShowsTheReportsNumbers(t *testing.T) {
	b := setupReports(t, reportFixture(), nil)
	resp, body := b.get(t, "/reports", basicAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	wantContains(t, "/reports", body,
		// The campaign funnel, with thousands separators.
		`<div class="v">1,234</div><div class="k">Enrolled</div>`,
		`<div class="v">300</div><div class="k">Goal reached</div>`,
		`<div class="v">24%</div><div class="k">Conversion</div>`,
		`<div class="v">3 days 4 h</div><div class="k">Median time to goal</div>`,
		`<td class="mono">onboarding/welcome</td><td class="num">1,234</td><td class="num">8</td><td class="num">5</td><td class="num">9</td><td class="num">4</td><td class="num">300</td><td class="num">24%</td>`,
		`<td class="mono">onboarding/first-project</td><td class="num">1,111</td><td class="num">4</td><td class="num">2</td><td class="num">0</td><td class="num">5</td><td class="num">156</td><td class="num">14%</td><td class="num">1,012</td>`,
		// Deliverability: the rates, the limit passed, the pause.
		`<div class="v">0.3%</div><div class="k">Bounce rate</div>`,
		`<div class="v">0.38%</div><div class="k">Complaint rate</div>`,
		"Complaints are over the 0.3% mailbox providers allow.",
		`<p class="error" id="paused-onboarding"><strong>Paused:</strong> complaint rate 0.38% over the last 2345 sends (9 complaints) passed 0.3%. Resume with <code>retain campaign resume onboarding</code>.</p>`,
		// Campaign edits: steps skipped and enrollments ended by them.
		"3 enrollments ended because the campaign was edited",
		`<strong>2,345</strong>`, "456 · 19% of sent", "300 · 24% of enrolled",
		// A campaign nobody entered has no conversion rather than 0% or NaN.
		`<div class="v">—</div><div class="k">Conversion</div>`,
		// Stages now and the flows, won back highlighted.
		"1,500 · 83%", "churned: 60 · 3%",
		`<div class="v good" id="won-back">17</div>`,
		`<tr class="wonback"><td>at_risk</td><td>active<span class="tag">won back</span></td><td class="num">12</td></tr>`,
		`<tr class="wonback"><td>churned</td><td>active<span class="tag">won back</span></td><td class="num">5</td></tr>`,
		`<tr><td>active</td><td>at_risk</td><td class="num">30</td></tr>`,
		// NPS.
		`<div class="score good" id="nps-score">+33</div><div class="k">NPS · 60 answers</div>`,
		"30 (50%)", "20 (33%)", "10 (17%)",
		"2026-W06: NPS +53 from 30 answers", "2026-W07: NPS -40 from 10 answers", ">W08<", ">-100<", ">+100<",
		// Repeat purchases beside the reference.
		`<td>P(2nd after 1st)</td><td class="num"><strong>40%</strong></td><td class="num">27%</td><td class="num good">+13 points</td>`,
		`<td>P(3rd after 2nd)</td><td class="num"><strong>45%</strong></td><td class="num">45%</td><td class="num good">same</td>`,
		`<td>P(4th after 3rd)</td><td class="num"><strong>56%</strong></td><td class="num">54%</td><td class="num good">+2 points</td>`,
		"Yours: P(2nd after 1st) 40%", "Retail reference: P(2nd after 1st) 27%",
		"<strong>500</strong> → <strong>200</strong> → <strong>90</strong> → <strong>50</strong>",
		// Cohorts.
		`<td>Jan 2026</td><td class="num">200</td>`,
		`title="90 of 200 active in month 1">45%</td>`,
		`title="50 of 200 active in month 2">25%</td>`,
		`title="60 of 150 active in month 1">40%</td>`,
		`<td>Mar 2026</td><td class="num">80</td><td class="cell" style="background: #2856c7; color: #ffffff" title="80 of 80 active in month 0">100%</td><td class="cell none"></td><td class="cell none"></td>`,
		// The form shows the period and the campaigns.
		`name="since" value="2026-01-31"`, `<option value="onboarding">Onboarding</option>`,
		`<a href="/reports">Reports</a>`,
	)
	if n := strings.Count(body, "No data yet"); n != 1 {
		t.Errorf("the page says No data yet %d times, want once: for the win-back campaign nobody entered", n)
	}
	if n := strings.Count(body, `class="wonback"`); n != 2 {
		t.Errorf("%d won-back rows highlighted, want 2", n)
	}
	if n := checkSVGs(t, body); n != 5 {
		t.Errorf("%d charts, want 5: the onboarding funnel, stages, NPS split, NPS by week, repeat purchases", n)
	}
}

// svgRE finds the inline charts; they do not nest.
var svgRE = regexp.MustCompile(`(?s)<svg .*?</svg>`)

// checkSVGs parses every chart in body as XML, checks that it has a title, and
// returns how many there are.
func checkSVGs(t *testing.T, body string) int {
	t.Helper()
	svgs := svgRE.FindAllString(body, -1)
	for i, s := range svgs {
		dec := xml.NewDecoder(strings.NewReader(s))
		var first []string
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("chart %d is not well-formed XML: %v\n%s", i, err, s)
				break
			}
			if el, ok := tok.(xml.StartElement); ok && len(first) < 2 {
				first = append(first, el.Name.Local)
			}
		}
		if len(first) < 2 || first[0] != "svg" || first[1] != "title" {
			t.Errorf("chart %d starts with %v, want svg, then its title", i, first)
		}
		for _, bad := range []string{"NaN", "Inf"} {
			if strings.Contains(s, bad) {
				t.Errorf("chart %d has %s in it:\n%s", i, bad, s)
			}
		}
	}
	return len(svgs)
}

func TestReportsPageWithoutDataSaysNoDataYet(t *testing.T) {
	zeros := &report.Report{
		Campaigns: []report.CampaignReport{{ID: "onboarding", Name: "Onboarding", Steps: []report.StepReport{{ID: "onboarding/welcome"}}}},
		Stages:    []report.StageCount{{Stage: "lead", Customers: 0}, {Stage: "active", Customers: 0}},
		NPS:       report.NPS{Weeks: []report.NPSWeek{{Week: "2026-W09"}}},
		Repeat:    report.Repeat{Customers: []int{0, 0, 0, 0}, Next: []float64{0, 0, 0}, Reference: report.RetailReference},
		Cohorts:   []report.Cohort{{Month: "2026-03", Signups: 0, Active: []int{0}}},
	}
	for name, rep := range map[string]*report.Report{"empty": {}, "zeros": zeros} {
		t.Run(name, func(t *testing.T) {
			b := setupReports(t, rep, nil)
			resp, body := b.get(t, "/reports", basicAuth)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d:\n%s", resp.StatusCode, body)
			}
			if n := strings.Count(body, "No data yet"); n < 3 {
				t.Errorf("the page says No data yet %d times, want it in every empty section:\n%s", n, body)
			}
			wantContains(t, "/reports", body, "No data yet: no NPS answers", "No data yet: no orders placed")
			checkSVGs(t, body)
			if strings.Contains(body, "NaN") || strings.Contains(body, "Inf") {
				t.Errorf("the page shows NaN or Inf:\n%s", body)
			}
		})
	}
	b := setupReports(t, &report.Report{}, nil)
	_, body := b.get(t, "/reports", basicAuth)
	wantContains(t, "empty report", body, "No data yet: no customer was enrolled", "No data yet: no customers.",
		"No data yet: no stage changes", "No data yet: no signups.")
}

func TestReportsPageNeedsTheTokenAsBasicPassword(t *testing.T) {
	b := setupReports(t, reportFixture(), nil)
	for name, auth := range map[string]uiAuth{"no credentials": noAuth, "wrong password": wrongBasic, "bearer token": bearerAuth} {
		resp, body := b.get(t, "/reports", auth)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("/reports with %s: %d, want 401 asking for Basic auth", name, resp.StatusCode)
		}
		if strings.Contains(body, "1,234") {
			t.Errorf("/reports with %s shows the report", name)
		}
	}
	if calls := b.calls(); len(calls) != 0 {
		t.Errorf("unauthenticated requests read the report %d times", len(calls))
	}
}

func TestReportsPagePassesSinceAndCampaignToReports(t *testing.T) {
	b := setupReports(t, reportFixture(), nil)
	for _, tc := range []struct {
		query string
		want  reportsCall
	}{
		// Default: the day 30 days before now (2026-03-02 09:00 UTC).
		{"", reportsCall{time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), ""}},
		{"?since=2026-01-15&campaign=onboarding", reportsCall{time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), "onboarding"}},
		{"?since=2026-03-02", reportsCall{time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), ""}},
	} {
		resp, body := b.get(t, "/reports"+tc.query, basicAuth)
		calls := b.calls()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/reports%s: status %d", tc.query, resp.StatusCode)
		}
		if len(calls) != 1 || !calls[0].since.Equal(tc.want.since) || calls[0].campaign != tc.want.campaign {
			t.Errorf("/reports%s called Reports with %+v, want once with %+v", tc.query, calls, tc.want)
		}
		wantContains(t, "/reports"+tc.query, body, `name="since" value="`+tc.want.since.Format("2006-01-02")+`"`)
	}
	_, body := b.get(t, "/reports?campaign=onboarding", basicAuth)
	wantContains(t, "/reports?campaign=onboarding", body, `<option value="onboarding" selected>Onboarding</option>`)
}

func TestReportsPageRefusesABadSince(t *testing.T) {
	b := setupReports(t, reportFixture(), nil)
	for query, want := range map[string]string{
		"?since=2026-13-01": `since=&#34;2026-13-01&#34; is not a date: write it as YYYY-MM-DD`,
		"?since=yesterday":  `since=&#34;yesterday&#34; is not a date`,
		"?since=2026-03-03": `since=2026-03-03 is in the future`,
	} {
		resp, body := b.get(t, "/reports"+query, basicAuth)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/reports%s: status %d, want 400", query, resp.StatusCode)
		}
		wantContains(t, "/reports"+query, body, want, `<form class="card filters"`)
	}
	if calls := b.calls(); len(calls) != 0 {
		t.Errorf("bad queries read the report: %+v", calls)
	}
}

func TestReportsPageWithoutReportsSaysSo(t *testing.T) {
	srv, err := New(Config{APIToken: uiToken, Log: slog.New(slog.DiscardHandler)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	b := &uiBundle{srv: srv, ts: newTestServer(t, srv)}
	resp, body := b.get(t, "/reports", basicAuth)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	wantContains(t, "/reports without Deps.Reports", body, "Reports are not available")

	rb := setupReports(t, nil, errors.New("redis: connection refused"))
	resp, body = rb.get(t, "/reports", basicAuth)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	wantContains(t, "/reports when Reports fails", body, "The report could not be read: redis: connection refused")
}

func TestReportsPageRefusesAnUnknownCampaign(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	var calls int
	b.srv.d.Reports = func(context.Context, time.Time, string) (*report.Report, error) {
		calls++
		return reportFixture(), nil
	}
	resp, body := b.get(t, "/reports?campaign=nope", basicAuth)
	if resp.StatusCode != http.StatusBadRequest || calls != 0 {
		t.Errorf("/reports?campaign=nope: %d after %d reads, want 400 without reading", resp.StatusCode, calls)
	}
	wantContains(t, "/reports?campaign=nope", body, `There is no campaign &#34;nope&#34;`)
	// The campaigns to pick from are the loaded ones.
	_, body = b.get(t, "/reports", basicAuth)
	wantContains(t, "/reports", body, `<option value="onboarding">Onboarding</option>`, `>NPS survey</option>`)
}

func TestFormatHelpersWriteNumbersForHumans(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatInt(0), "0"}, {formatInt(999), "999"}, {formatInt(1234), "1,234"}, {formatInt(1234567), "1,234,567"}, {formatInt(-1234), "-1,234"},
		{formatPercent(0.27), "27%"}, {formatPercent(0), "0%"}, {formatPercent(0.004), "<1%"}, {formatPercent(1), "100%"},
		{share(1, 0), "0%"}, {formatScore(100.0 / 3), "+33"}, {formatScore(-12.4), "-12"}, {formatScore(0.2), "0"},
		{formatSeconds(0), "—"}, {formatSeconds(42), "42 s"}, {formatSeconds(45 * 60), "45 min"},
		{formatSeconds(5*3600 + 12*60), "5 h 12 min"}, {formatSeconds(86400), "1 day"}, {formatSeconds((3*24 + 4) * 3600), "3 days 4 h"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestReportsPageShowsExperiments: a campaign's holdout and a step's A/B
// variants in tables, with the uplift, its interval and p (the holdout is
// report.TestCompareHoldoutByHand's: +5.0 points, +1.5 to +7.8, p 0.007), the
// method named, and "not enough data yet" for a variant under the rule.
func TestReportsPageShowsExperiments(t *testing.T) {
	rep := reportFixture()
	ho := &report.Holdout{Share: 0.1,
		Control:    report.Group{Enrolled: 400, GoalReached: 40, Rate: 0.1},
		Treatment:  report.Group{Enrolled: 3600, GoalReached: 540, Rate: 0.15},
		Comparison: report.Compare(540, 3600, 40, 400)}
	b, c := report.Compare(56, 70, 48, 80), report.Compare(3, 10, 48, 80)
	rep.Campaigns[0].Holdout = ho
	rep.Campaigns[0].Steps[0].Variants = []report.VariantReport{
		{Variant: "a", Given: 80, Sent: 79, Clicked: 20, Unsubscribed: 2, GoalReached: 48, GoalRate: 0.6},
		{Variant: "b", Given: 70, Sent: 69, Clicked: 12, GoalReached: 56, GoalRate: 0.8, VsA: &b},
		{Variant: "c", Given: 10, Sent: 10, GoalReached: 3, GoalRate: 0.3, VsA: &c},
	}
	bundle := setupReports(t, rep, nil)
	resp, body := bundle.get(t, "/reports", basicAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	wantContains(t, "/reports", body,
		`<div class="experiments" id="experiments-onboarding">`,
		`10% of the customers who enrol are held out`,
		`<tr><td>Control (held out)</td><td class="num">400</td><td class="num">40</td><td class="num"><strong>10.0%</strong></td><td colspan="4" class="muted">baseline</td></tr>`,
		`<tr><td>Treatment (sent the campaign)</td><td class="num">3,600</td><td class="num">540</td><td class="num"><strong>15.0%</strong></td><td class="num">+5.0 pts (+50%)</td><td class="num">+1.5 pts to +7.8 pts</td><td class="num">0.007</td><td class="good">higher</td></tr>`,
		`A/B variants of <span class="mono">onboarding/welcome</span>`,
		`<tr><td>a</td><td class="num">80</td><td class="num">79</td><td class="num">20</td><td class="num">2</td><td class="num">48</td><td class="num"><strong>60.0%</strong></td><td colspan="4" class="muted">baseline</td></tr>`,
		`<tr><td>b</td><td class="num">70</td><td class="num">69</td><td class="num">12</td><td class="num">0</td><td class="num">56</td><td class="num"><strong>80.0%</strong></td><td class="num">+20.0 pts (+33%)</td><td class="num">+5.2 pts to +33.4 pts</td><td class="num">0.008</td><td class="good">higher</td></tr>`,
		`<tr><td>c</td><td class="num">10</td><td class="num">10</td><td class="num">0</td><td class="num">0</td><td class="num">3</td><td class="num"><strong>30.0%</strong></td><td colspan="4" class="empty">not enough data yet</td></tr>`,
		`<strong>95% interval, Newcombe hybrid score</strong>`,
		`control group's (or variant a's)`,
		`until each group has 30 customers, 5 who reached the goal and 5 who did not`,
	)
	// The win-back campaign runs no experiment: no table for it.
	if strings.Contains(body, `id="experiments-winback"`) {
		t.Error("an experiments table for a campaign without one")
	}
	// Without enough data the holdout says so instead of an uplift.
	rep.Campaigns[0].Holdout = &report.Holdout{Share: 0.1,
		Control:    report.Group{Enrolled: 12, GoalReached: 1, Rate: 1.0 / 12},
		Treatment:  report.Group{Enrolled: 100, GoalReached: 20, Rate: 0.2},
		Comparison: report.Compare(20, 100, 1, 12)}
	_, body = bundle.get(t, "/reports", basicAuth)
	wantContains(t, "/reports", body,
		`<tr><td>Treatment (sent the campaign)</td><td class="num">100</td><td class="num">20</td><td class="num"><strong>20.0%</strong></td><td colspan="4" class="empty">not enough data yet</td></tr>`)
}
