package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/plan"
	"github.com/retainmail/retain/render"
)

var planCmd = &command{
	name:    "plan",
	summary: "Print a customer's coming timeline: stage changes, each email and each skipped step",
	usage:   "plan --customer FILE [--from TIME] [--horizon 90d] [--json] [--campaigns DIR]",
	help: `The customer file is JSON, as for preview, with the customer's event history:
  {"id": "c42", "email": "ada@example.com", "first_name": "Ada",
   "timezone": "Europe/Amsterdam", "stage": "lead", "attributes": {"plan": "team"},
   "events": [{"name": "signed_up", "at": "2026-03-02T14:10:00+01:00"}]}
"stage" is the stage the customer starts in (default: the first stage); the
events are replayed from the first one. plan runs the same engine the worker and
scheduler run, on a simulated clock, as if the file were imported at --from
(retain import --apply): the events up to --from are applied then, a step they
made due more than backfill_grace (lifecycle.yaml, 24h) before --from is
skipped as stale, and one due less long ago goes out at --from. What happens
before --from is not printed; the timeline runs from --from until the campaigns
end or the horizon.

TIME is RFC 3339 (2026-03-14T09:30:00Z), "2026-03-14 09:30" or 2026-03-14, in the
customer's timezone when it has no offset. The default is now.

--json prints one object:
  {"customer": "c42", "timezone": "Europe/Amsterdam",
   "from": "<RFC 3339>", "until": "<RFC 3339>", "stage": "<stage at the horizon>",
   "timeline": [{"kind": "email|skip|stage|enrolled|exited|goal_reached|completed",
     "at": "<UTC, RFC 3339>", "local": "<customer time, RFC 3339>",
     "campaign": "onboarding", "enrollment": 1, "step": "onboarding/first-project",
     "variant": "b", "file": "campaigns/onboarding/02-first-project.b.md", "subject": "...",
     "from": "lead", "to": "onboarding", "reason": "..."}]}
Fields that do not apply to a kind are left out; "variant" is the A/B variant the
customer gets of a step that has variants ("a" is the step's own file), as the
worker assigns it.

Exit status: 0 printed, 1 the campaigns or the customer file have problems, 2 usage error.

Examples:
  retain plan --customer ada.json
  retain plan --customer ada.json --from 2026-03-01 --horizon 180d --json`,
	run: runPlan,
}

func runPlan(c *command, e *env, args []string) int {
	fs := c.flags()
	customerPath := fs.String("customer", "", "customer `FILE` (JSON) with its event history (required)")
	fromFlag := fs.String("from", "", "start of the timeline (`TIME`; default now)")
	horizonFlag := fs.String("horizon", "90d", "how far ahead to plan (a `duration` such as 90d or 26w)")
	asJSON := fs.Bool("json", false, "print the timeline as JSON")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(e, "unexpected argument %q", pos[0])
	}
	if *customerPath == "" {
		return c.usageError(e, "--customer FILE is required")
	}
	horizon, err := campaign.ParseDuration(*horizonFlag)
	if err != nil || horizon <= 0 {
		return c.usageError(e, "--horizon: %v", errOr(err, "must be longer than 0"))
	}
	dir := campaignsDir(e)
	if *dirFlag != "" {
		dir = *dirFlag
	}
	d, err := resolveDirs(dir, cmpOr(*templates, e.getenv("RETAIN_TEMPLATES")))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	l, code := loadCheckedDirs(c, e, d)
	if l == nil {
		return code
	}
	rec, err := ingest.ReadCustomerFile(*customerPath, l.set.Lifecycle)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain plan: %v\n", err)
		return exitProblems
	}
	eng := lifecycle.New(l.set)
	from := time.Now()
	if *fromFlag != "" {
		loc := l.set.Lifecycle.Timezone
		if rec.Timezone != "" {
			loc, _ = time.LoadLocation(rec.Timezone)
		}
		if from, err = ingest.ParseTime(*fromFlag, loc); err != nil {
			return c.usageError(e, "--from: %v", err)
		}
	}
	until := from.Add(horizon)

	cust, _, err := ingest.NewCustomer(eng, rec, from) // as an import at --from
	if err != nil {
		fmt.Fprintf(e.stderr, "retain plan: %s: %v\n", *customerPath, err)
		return exitProblems
	}
	data := render.SampleData(l.set, baseURL(e))
	data.Customer, _ = readCustomer(*customerPath, l.set.Lifecycle)
	out, err := plan.Build(eng, l.renderer, cust, rec.Events, data, from, until)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain plan: %v\n", err)
		return exitProblems
	}
	loc := eng.Location(cust)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	printPlan(e.stdout, out, loc, horizon)
	return exitOK
}

func printPlan(w io.Writer, p *plan.Timeline, loc *time.Location, horizon time.Duration) {
	from, _ := time.Parse(time.RFC3339, p.From)
	fmt.Fprintf(w, "Plan for %s (%s) from %s, %s ahead\n\n", p.Customer, p.Timezone, from.In(loc).Format("Mon 2006-01-02 15:04 MST"), campaign.FormatDuration(horizon))
	if len(p.Entries) == 0 {
		fmt.Fprintln(w, "Nothing happens in this period.")
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCAL TIME\tUTC\tWHAT\tDETAIL")
	for _, e := range p.Entries {
		at, _ := time.Parse(time.RFC3339, e.At)
		var what, detail string
		switch e.Kind {
		case "email":
			what, detail = "email "+e.Step, filepath.Base(e.File)
			if e.Variant != "" {
				what += " (variant " + e.Variant + ")"
			}
			if e.Subject != "" {
				detail = fmt.Sprintf("%q", e.Subject)
			}
		case "skip":
			what, detail = "skip  "+e.Step, e.Reason
		case "stage":
			what, detail = "stage "+e.From+" → "+e.To, e.Reason
		default:
			what = strings.ReplaceAll(e.Kind, "_", " ") + " " + e.Campaign
			if e.Enrollment > 1 {
				what += fmt.Sprintf(" (#%d)", e.Enrollment)
			}
			if e.Kind != "enrolled" {
				detail = e.Reason
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", at.In(loc).Format("Mon 2006-01-02 15:04 MST"), at.UTC().Format("01-02 15:04Z"), what, detail)
	}
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	fmt.Fprintf(w, "\nStage at the end: %s\n", p.Stage)
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}
