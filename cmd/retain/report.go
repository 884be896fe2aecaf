package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/report"
)

var reportCmd = &command{
	name:    "report",
	summary: "Print campaign funnels, stages and flows, NPS, the repeat-purchase funnel and cohorts",
	usage:   "report [--json] [--campaign ID] [--since DATE] [--campaigns DIR]",
	help: `The numbers come from counters the workers, the scheduler, retain web and
retain event/import keep as they change customers; reading them never scans
customers. Stage flows and NPS cover --since until now; campaign funnels, the
customers per stage, the repeat-purchase funnel and the cohorts count
everything since the counters began. Days, ISO weeks and months are UTC.

A campaign with a holdout and a step with A/B variants get an Experiments
table: the goal conversion of the control group against the others, and of
each variant against variant a, with the uplift in percentage points, its 95%
interval (Newcombe's hybrid score interval) and the p-value of the pooled
two-proportion z-test; "not enough data yet" until each group has 30
customers, 5 who reached the goal and 5 who did not. See docs/reports.md.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS.

Examples:
  retain report
  retain report --campaign onboarding --since 2026-01-01 --json`,
	run: runReport,
}

func runReport(c *command, e *env, args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print the report as JSON")
	campaignID := fs.String("campaign", "", "report only the campaign with this `ID`")
	sinceFlag := fs.String("since", "", "start of the period for flows and NPS (`DATE`; default 30 days ago)")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(e, "unexpected argument %q", pos[0])
	}
	l, code := loadChecked(c, e, *dirFlag)
	if l == nil {
		return code
	}
	since := time.Now().AddDate(0, 0, -30)
	if *sinceFlag != "" {
		t, err := ingest.ParseTime(*sinceFlag, time.UTC)
		if err != nil {
			return c.usageError(e, "--since: %v", err)
		}
		since = t
	}
	if *campaignID != "" && l.set.Campaign(*campaignID) == nil {
		return c.usageError(e, "--campaign: no campaign %q", *campaignID)
	}
	ctx := context.Background()
	_, rdb, err := openStore(ctx, e)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain report: %v\n", err)
		return exitProblems
	}
	defer rdb.Close()
	r, err := report.Read(ctx, rdb, e.getenv("RETAIN_REDIS_PREFIX"), l.set, since, *campaignID)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain report: %v\n", err)
		return exitProblems
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "retain report: %v\n", err)
			return exitProblems
		}
		return exitOK
	}
	printReport(e.stdout, r)
	return exitOK
}

// printReport writes r as plain-text tables.
func printReport(out io.Writer, r *report.Report) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells ...any) {
		for _, c := range cells {
			fmt.Fprintf(w, "%v\t", c)
		}
		fmt.Fprintln(w)
	}
	pct := func(n, of int) string {
		if of == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", float64(n)*100/float64(of))
	}
	fmt.Fprintf(out, "Report since %s (generated %s)\n", r.Since.Format(time.DateOnly), r.Generated.Format(time.RFC3339))

	fmt.Fprintln(out, "\nCampaigns (since the counters began)")
	line("campaign / step", "enrolled", "sent", "failed", "bounced", "complaints", "unsubscribed", "clicked", "click rate", "goal", "conversion", "median to goal", "edited")
	for _, c := range r.Campaigns {
		median := "-"
		if c.GoalReached > 0 {
			median = time.Duration(c.MedianTimeToGoal * float64(time.Second)).Round(time.Minute).String()
		}
		edited := "-"
		if c.EditSkipped+c.EndedByEdit > 0 {
			edited = fmt.Sprintf("%d skipped, %d ended", c.EditSkipped, c.EndedByEdit)
		}
		line(c.ID, c.Enrolled, c.Sent, c.Failed, c.Bounced, c.Complained, c.Unsubscribed, c.Clicked, pct(c.Clicked, c.Sent), c.GoalReached,
			fmt.Sprintf("%.1f%%", c.Conversion*100), median, edited)
		for _, s := range c.Steps {
			line("  "+s.ID, "", s.Sent, s.Failed, s.Bounced, s.Complained, s.Unsubscribed, s.Clicked, pct(s.Clicked, s.Sent), "", "", "", s.EditSkipped)
		}
	}
	w.Flush()
	printExperiments(out, r)
	printDeliverability(out, r)

	fmt.Fprintln(out, "\nCustomers per stage now")
	for _, s := range r.Stages {
		line(s.Stage, s.Customers)
	}
	w.Flush()
	fmt.Fprintf(out, "\nStage flows since %s (won back: %d)\n", r.Since.Format(time.DateOnly), r.WonBack)
	if len(r.Flows) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, f := range r.Flows {
		line(f.From, "→", f.To, f.Count)
	}
	w.Flush()

	n := r.NPS
	fmt.Fprintf(out, "\nNPS %+.0f (%d answers: %d promoters, %d passives, %d detractors)\n", n.Score, n.Answers, n.Promoters, n.Passives, n.Detractors)
	line("week", "answers", "promoters", "passives", "detractors", "NPS")
	for _, wk := range n.Weeks {
		score := "-"
		if wk.Answers > 0 {
			score = fmt.Sprintf("%+.0f", wk.Score)
		}
		line(wk.Week, wk.Answers, wk.Promoters, wk.Passives, wk.Detractors, score)
	}
	w.Flush()

	fmt.Fprintln(out, "\nRepeat purchase")
	line("orders", "customers", "P(next)", "retail reference")
	for i, c := range r.Repeat.Customers {
		next, ref := "", ""
		if i < len(r.Repeat.Next) {
			next = pct(r.Repeat.Customers[i+1], c)
		}
		if i < len(r.Repeat.Reference) {
			ref = fmt.Sprintf("%.0f%%", r.Repeat.Reference[i]*100)
		}
		line(fmt.Sprintf("%d+", i+1), c, next, ref)
	}
	w.Flush()

	fmt.Fprintln(out, "\nCohorts by signup month: active in month +0, +1, …")
	width := 0
	for _, c := range r.Cohorts {
		width = max(width, len(c.Active))
	}
	head := []any{"signed up", "customers"}
	for i := range width {
		head = append(head, fmt.Sprintf("+%d", i))
	}
	line(head...)
	for _, c := range r.Cohorts {
		row := []any{c.Month, c.Signups}
		for _, a := range c.Active {
			row = append(row, pct(a, c.Signups))
		}
		line(row...)
	}
	w.Flush()
}

// printExperiments writes each campaign's holdout comparison and each step's
// A/B variants, with the uplift of the goal rate and its 95% interval, or
// "not enough data yet" (see report.Compare). Nothing without experiments.
func printExperiments(out io.Writer, r *report.Report) {
	has := false
	for _, c := range r.Campaigns {
		has = has || c.Holdout != nil
		for _, s := range c.Steps {
			has = has || len(s.Variants) > 0
		}
	}
	if !has {
		return
	}
	// Left-aligned, every row as wide as its head (tabwriter aligns a column
	// over the consecutive lines that have it), no padding at line ends.
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "\nExperiments: goal conversion (%s)\n", report.Method)
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	width := 0
	row := func(cells ...string) {
		if cells[0] == "    group" || cells[0] == "    variant" {
			width = len(cells)
		}
		for len(cells) < width {
			cells = append(cells, "")
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	for _, c := range r.Campaigns {
		if h := c.Holdout; h != nil {
			w.Flush()
			fmt.Fprintf(&buf, "  %s: holdout %s (control: enrolled, sent nothing; treatment: everyone else)\n", c.ID, percent(h.Share))
			row("    group", "enrolled", "goal reached", "rate", "uplift", "95% interval", "p", "")
			row("    control", strconv.Itoa(h.Control.Enrolled), strconv.Itoa(h.Control.GoalReached), rate(h.Control.Rate, h.Control.Enrolled))
			row(append([]string{"    treatment", strconv.Itoa(h.Treatment.Enrolled), strconv.Itoa(h.Treatment.GoalReached), rate(h.Treatment.Rate, h.Treatment.Enrolled)}, comparison(&h.Comparison)...)...)
		}
		for _, s := range c.Steps {
			if len(s.Variants) == 0 {
				continue
			}
			w.Flush()
			fmt.Fprintf(&buf, "  %s: A/B variants\n", s.ID)
			row("    variant", "given", "sent", "clicked", "unsubscribed", "goal reached", "rate", "uplift vs a", "95% interval", "p", "")
			for _, v := range s.Variants {
				cells := []string{"    " + v.Variant, strconv.Itoa(v.Given), strconv.Itoa(v.Sent), strconv.Itoa(v.Clicked), strconv.Itoa(v.Unsubscribed),
					strconv.Itoa(v.GoalReached), rate(v.GoalRate, v.Given)}
				if v.VsA != nil {
					cells = append(cells, comparison(v.VsA)...)
				}
				row(cells...)
			}
		}
	}
	w.Flush()
	fmt.Fprintf(&buf, "  Uplift is in percentage points of goal rate, against the control group or variant a; shown once each group\n"+
		"  has %d customers, %d who reached the goal and %d who did not.\n", report.MinCustomers, report.MinOutcomes, report.MinOutcomes)
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(out, strings.TrimRight(line, " \n"))
	}
}

// comparison is the uplift, interval, p-value and verdict cells of c, or
// "not enough data yet".
func comparison(c *report.Comparison) []string {
	if !c.Enough {
		return []string{report.VerdictNotEnough, "", "", ""}
	}
	uplift := points(c.Uplift)
	if c.RelativeUplift != nil {
		uplift += fmt.Sprintf(" (%+.0f%%)", *c.RelativeUplift*100)
	}
	p := fmt.Sprintf("%.3f", c.P)
	if c.P < 0.001 {
		p = "<0.001"
	}
	return []string{uplift, points(c.Low) + " to " + points(c.High), p, c.Verdict}
}

// points writes a difference of rates in percentage points: "+5.0 pts".
func points(d float64) string { return fmt.Sprintf("%+.1f pts", d*100) }

// rate writes a rate as a percentage, "-" for an empty group.
func rate(r float64, of int) string {
	if of == 0 {
		return "-"
	}
	return percent(r)
}

func percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

// printDeliverability writes each campaign's bounce and complaint rates
// against the limits mailbox providers set, and the paused campaigns.
func printDeliverability(out io.Writer, r *report.Report) {
	fmt.Fprintf(out, "\nDeliverability (complaints: aim under %.1f%%, at most %.1f%%)\n", report.ComplaintTarget*100, report.ComplaintLimit*100)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range r.Campaigns {
		if c.Sent == 0 && c.Paused == "" {
			continue
		}
		verdict := "ok"
		switch {
		case c.ComplaintRate > report.ComplaintLimit:
			verdict = "complaints over the limit"
		case c.ComplaintRate > report.ComplaintTarget:
			verdict = "complaints over the target"
		}
		if c.Paused != "" {
			verdict = "PAUSED: " + c.Paused + " (retain campaign resume " + c.ID + ")"
		}
		fmt.Fprintf(w, "  %s\tbounce rate %.2f%%\tcomplaint rate %.2f%%\t%s\n", c.ID, c.BounceRate*100, c.ComplaintRate*100, verdict)
	}
	w.Flush()
}
