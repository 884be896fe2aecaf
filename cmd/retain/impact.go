package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/impact"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

var impactCmd = &command{
	name:    "impact",
	summary: "Tell what an edit of the campaigns does to the customers already in them",
	usage:   "impact [--against REF|DIR] [--customers FILE.jsonl] [--json] [--horizon 365d] [--now TIME] [DIR]",
	help: `impact loads the campaigns in DIR (default $RETAIN_CAMPAIGNS, else the current
directory) and the campaigns they are compared with: --against a git revision
(a branch, tag or commit of the repository holding DIR; default HEAD, so
uncommitted edits are compared with the last commit) or a folder. It then runs
every customer forward on the real engine twice, under the old and the edited
campaigns, from now until the horizon, and reports per campaign and step:

  again      customers who would get a step they had in the same enrollment
             (or the step it was renamed from): must be 0
  lost       customers the old campaigns would send the step to, and the
             edited ones would not
  gained     customers only the edited campaigns send the step to
  skipped    customers whose enrollment records the step as skipped by the edit
  completes, exits
             enrollments that end otherwise because of the edit
  enrols, no longer enrols
             enrollments only one of the two versions makes
  next send moves
             customers whose next email of the campaign comes earlier or later,
             by how much (up to 1h, 1d, 1w, longer)

each with up to 5 example customer IDs.

Customers come from Redis (REDIS_URL, RETAIN_REDIS_PREFIX): every stored
customer, read with SCAN and pipelined reads in batches; it writes nothing, so
it may run against production. Or from --customers FILE.jsonl, in the import
format: each customer's events are replayed under the old campaigns up to now,
as the deployed worker would have done. A progress line is drawn on a terminal.

Exit status: 0 nothing surprising, 1 some customer would get an email again or
lose steps (or the campaigns have problems), 2 usage error.

Examples:
  retain impact --against origin/main
  retain impact --against origin/main --customers sample.jsonl --json > impact.json`,
	run: runImpact,
}

func runImpact(c *command, e *env, args []string) int {
	fs := c.flags()
	ref := fs.String("against", "HEAD", "compare with the campaigns at this git `REF` or in this folder")
	customersPath := fs.String("customers", "", "customers `FILE.jsonl` (import format) instead of the customers in Redis")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	horizonFlag := fs.String("horizon", "365d", "how far ahead to run customers (a `duration`)")
	nowFlag := fs.String("now", "", "run customers from this `TIME` instead of now (RFC 3339 or 2026-03-14 09:30 UTC), for reproducible reports")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return c.usageError(e, "one folder at most, got %d", len(pos))
	}
	horizon, err := campaign.ParseDuration(*horizonFlag)
	if err != nil || horizon <= 0 {
		return c.usageError(e, "--horizon: %v", errOr(err, "must be longer than 0"))
	}
	dir := campaignsDir(e)
	if len(pos) == 1 {
		dir = pos[0]
	}
	d, err := resolveDirs(dir, cmpOr(*templates, e.getenv("RETAIN_TEMPLATES")))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	cur, code := loadCheckedDirs(c, e, d)
	if cur == nil {
		return code
	}
	// Customers were scheduled by the old campaigns, problems or not.
	prev, code := loadAgainst(c, e, *ref, d, "compared as far as they load")
	if prev == nil {
		return code
	}

	now := time.Now()
	if *nowFlag != "" {
		if now, err = ingest.ParseTime(*nowFlag, time.UTC); err != nil {
			return c.usageError(e, "--now: %v", err)
		}
	}
	a := impact.NewAnalyzer(prev.set, cur.set, now, horizon)
	ctx := context.Background()
	started := time.Now()
	src := "Redis"
	var tally *impact.Tally
	if *customersPath != "" {
		src = *customersPath
		tally, err = impactFromFile(a, *customersPath, cur.set.Lifecycle, e)
	} else {
		tally, src, err = impactFromRedis(ctx, a, e)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "retain impact: %v\n", err)
		return exitProblems
	}
	if err := tally.Err(); err != nil {
		fmt.Fprintf(e.stderr, "retain impact: %v\n", err)
		return exitProblems
	}
	r := a.Report(tally)
	fmt.Fprintf(e.stderr, "retain impact: %s from %s in %s\n", plural(r.Customers, "customer"), src, time.Since(started).Round(time.Millisecond))
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		printImpact(e.stdout, r, *ref, d.campaigns)
	}
	if r.Surprising() {
		return exitProblems
	}
	return exitOK
}

// impactFromRedis runs every stored customer through a, in parallel, one
// batch in memory per goroutine.
func impactFromRedis(ctx context.Context, a *impact.Analyzer, e *env) (*impact.Tally, string, error) {
	st, rdb, err := openStore(ctx, e)
	if err != nil {
		return nil, "", err
	}
	defer rdb.Close()
	src := "Redis " + store.RedactURL(cmpOr(e.getenv("REDIS_URL"), defaultRedisURL)) + " prefix " + cmpOr(e.getenv("RETAIN_REDIS_PREFIX"), "retain:")
	total, _ := st.CountCustomers(ctx)
	bar := newImpactProgress(e.stderr, total)
	tallies := make([]*impact.Tally, runtime.GOMAXPROCS(0))
	for i := range tallies {
		tallies[i] = a.NewTally()
	}
	bar.start()
	err = st.ScanCustomers(ctx, 500, len(tallies), func(w int, b []*lifecycle.Customer) error {
		for _, c := range b {
			tallies[w].Add(c)
		}
		bar.add(len(b))
		return nil
	})
	bar.stop()
	if err != nil {
		return nil, "", err
	}
	for _, t := range tallies[1:] {
		tallies[0].Merge(t)
	}
	return tallies[0], src, nil
}

// impactFromFile replays each customer of a JSONL file under the old
// campaigns up to now, then runs it through a.
func impactFromFile(a *impact.Analyzer, path string, lc *campaign.Lifecycle, e *env) (*impact.Tally, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd, err := ingest.NewReader(path, f, lc)
	if err != nil {
		return nil, err
	}
	t := a.NewTally()
	var bad int
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var ie *ingest.Error
		if errors.As(err, &ie) {
			fmt.Fprintf(e.stderr, "%v\n", err)
			bad++
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := ingest.Check(rec, lc); err != nil {
			fmt.Fprintf(e.stderr, "%s:%d: %v\n", path, rec.Line, err)
			bad++
			continue
		}
		c := &lifecycle.Customer{ID: rec.ID, Email: rec.Email, FirstName: rec.FirstName, Name: rec.Name,
			Locale: rec.Locale, Timezone: rec.Timezone, Stage: rec.Stage, Attributes: rec.Attributes}
		c, err = a.Replay(c, rec.Events)
		if err != nil {
			return nil, fmt.Errorf("%s: customer %s: %w", path, rec.ID, err)
		}
		t.Add(c)
	}
	if bad > 0 {
		return nil, fmt.Errorf("%s: %s; fix them (retain import reports the same)", path, plural(bad, "bad line"))
	}
	return t, nil
}

func printImpact(w io.Writer, r *impact.Report, ref, dir string) {
	fmt.Fprintf(w, "Impact of %s against %s on %s customers, %s to %s\n",
		dir, ref, thousands(r.Customers), r.From.UTC().Format("2006-01-02 15:04Z"), r.Until.UTC().Format("2006-01-02"))
	if len(r.Edits) == 0 {
		fmt.Fprintln(w, "\nNo edits: the campaigns are the same.")
	} else {
		fmt.Fprintln(w, "\nEdits:")
		for _, l := range r.Edits {
			fmt.Fprintln(w, "  "+l)
		}
	}
	for _, c := range r.Campaigns {
		fmt.Fprintf(w, "\n%s: %s in it now\n", c.ID, plural(c.InFlight, "customer"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		row := func(what string, n impact.Count) {
			if n.N == 0 {
				return
			}
			ex := ""
			if len(n.Examples) > 0 {
				ex = "e.g. " + strings.Join(n.Examples, " ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", what, thousands(n.N), ex)
		}
		for _, s := range c.Steps {
			row("would get again  "+s.ID, s.Again)
			row("lose             "+s.ID, s.Lost)
			row("skip (edited)    "+s.ID, s.SkippedByEdit)
			row("gain             "+s.ID, s.Gained)
		}
		row("complete because of the edit", c.Completes)
		row("exit because of the edit", c.Exits)
		row("newly enrol", c.Enrols)
		row("no longer enrol", c.NoLongerEnrols)
		row("next send earlier", c.Moves.Earlier)
		row("next send later", c.Moves.Later)
		tw.Flush()
		if m := c.Moves; m.Earlier.N+m.Later.N > 0 {
			b := m.Buckets
			fmt.Fprintf(w, "  moved by: up to 1h %s, up to 1d %s, up to 1w %s, longer %s\n", thousands(b[0]), thousands(b[1]), thousands(b[2]), thousands(b[3]))
		}
		if c.Completes.N+c.Exits.N+c.Enrols.N+c.NoLongerEnrols.N+c.Moves.Earlier.N+c.Moves.Later.N == 0 && len(c.Steps) == 0 {
			fmt.Fprintln(w, "  no change for its customers")
		}
	}
	fmt.Fprintln(w)
	switch {
	case r.Surprising():
		fmt.Fprintf(w, "%s would get an email again, %s would lose steps: review before merging.\n", plural(r.Again, "customer"), plural(r.Lost, "customer"))
	default:
		fmt.Fprintln(w, "No customer gets an email again or loses a step.")
	}
}

// thousands formats n with thin separators: 1,000,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// impactProgress draws "customers read" on a terminal while impact runs.
type impactProgress struct {
	w       io.Writer
	on      bool
	total   int64
	n       atomic.Int64
	started time.Time
	redraw  *redrawer
}

func newImpactProgress(w io.Writer, total int64) *impactProgress {
	return &impactProgress{w: w, on: isTerminal(w), total: total}
}

func (p *impactProgress) add(n int) { p.n.Add(int64(n)) }

func (p *impactProgress) start() {
	p.started = time.Now()
	if !p.on {
		return
	}
	p.redraw = startRedraw(func() {
		n := p.n.Load()
		rate := float64(n) / time.Since(p.started).Seconds()
		fmt.Fprintf(p.w, "\r\033[Kimpact: %s of ~%s customers  %.0f/s", thousands(int(n)), thousands(int(max(p.total, n))), rate)
	})
}

func (p *impactProgress) stop() {
	if !p.on {
		return
	}
	p.redraw.stop()
	fmt.Fprint(p.w, "\r\033[K")
}
