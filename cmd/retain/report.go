package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
