package web

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/report"
)

// The reports page: the numbers marketers read to see whether the sequences
// work, behind the same Basic auth as the preview pages.
//
//	GET /reports?since=YYYY-MM-DD&campaign=ID
//
// since starts the period the flows, NPS and funnels cover (default: the day 30
// days before now, UTC); campaign narrows the campaign funnels to one campaign.
// The report itself comes from Deps.Reports; the page only lays it out, with
// charts drawn as inline SVG (svg.go).
func (s *Server) reportRoutes() {
	s.mux.Handle("GET /reports", s.requireBasic(http.HandlerFunc(s.reportsPage)))
}

// reportsView is what reports.html shows.
type reportsView struct {
	page
	// Since and Campaign are the form's values.
	Since     string
	Campaign  string
	Campaigns []campaignOption
	// Error says why the query was refused; Unavailable why there is no report.
	Error       string
	Unavailable string

	Report    *report.Report
	Generated string
	Funnels   []funnelView
	Stages    template.HTML
	Flows     []flowView
	WonBack   string
	NPS       *npsView
	Repeat    *repeatView
	Cohorts   *cohortView
}

type campaignOption struct {
	ID, Name string
	Selected bool
}

type funnelView struct {
	ID, Name                                                        string
	Enrolled, Sent, Failed, Bounced, Unsubscribed, Clicked, Reached string
	Conversion, Median                                              string
	// EditSkipped counts steps skipped because of campaign edits, and
	// EndedByEdit enrollments ended by one; EndedByEdit is "" when none.
	EditSkipped, EndedByEdit string
	// Complained counts complaints; ComplaintRate and BounceRate are of the
	// emails sent, ComplaintWarn says when complaints pass what mailbox
	// providers allow; Paused why the campaign stopped sending.
	Complained, ComplaintRate, BounceRate, ComplaintWarn, Paused string
	Chart                                                        template.HTML
	Steps                                                        []stepRow
	// Holdout compares the control group with the treatment, Variants each
	// step's A/B variants with its variant a; nil and empty without.
	Holdout  *experimentView
	Variants []experimentView
}

// experimentView is one experiment's table: a holdout (control, treatment)
// or a step's A/B variants (a, b, …).
type experimentView struct {
	// Share is a holdout's share of the customers ("10%"), Step the step
	// whose variants these are.
	Step, Share string
	Rows        []experimentRow
}

// experimentRow is a group or variant: its counts, goal rate and, but for
// the baseline (control, a), the comparison with the baseline.
type experimentRow struct {
	Name                                     string
	Customers, Sent, Clicked, Unsub, Reached string
	Rate                                     string
	Baseline                                 bool
	NotEnough                                bool
	// Uplift, Interval and P are digits, signs and words only, written as
	// is (see npsView.Score); Verdict says higher, lower or no clear
	// difference, and Class colours it (good, bad or none).
	Uplift, Interval, P template.HTML
	Verdict, Class      string
}

type stepRow struct {
	ID, Sent, Failed, Bounced, Complained, Unsubscribed, Clicked, ClickRate, EditSkipped string
}

type flowView struct {
	From, To, Count string
	WonBack         bool
}

type npsView struct {
	// Score is digits and a sign only, written as is: html/template would
	// write the plus as &#43;, which page searches (and tests) do not find.
	Score                           template.HTML
	Answers                         string
	Promoters, Passives, Detractors string
	// Class colours the score: good (> 0), bad (< 0) or mid.
	Class string
	Split template.HTML
	Weeks template.HTML
}

type repeatView struct {
	Rows  []repeatRow
	Chart template.HTML
	// Orders are how many customers placed at least 1, 2, 3, 4 orders.
	Orders []string
}

type repeatRow struct {
	Step, Yours, Reference string
	// Diff compares yours to the reference ("+13 points"); empty without data.
	// It is digits, a sign and words only (see npsView.Score).
	Diff template.HTML
	Good bool
}

type cohortView struct {
	Months []string // column heads: "Month 0", "Month 1", …
	Rows   []cohortRow
}

type cohortRow struct {
	Month, Signups string
	Cells          []heatCell
}

type heatCell struct {
	Text, Tip string
	// BG and FG are the cell's colours; empty for months not reached yet.
	BG, FG string
}

const dateLayout = "2006-01-02"

func (s *Server) reportsPage(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now().UTC()
	since := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -30)
	q := r.URL.Query()
	v := &reportsView{
		page:     page{Title: "Reports", Problems: s.d.Problems, Note: s.d.ProblemsNote},
		Since:    since.Format(dateLayout),
		Campaign: strings.TrimSpace(q.Get("campaign")),
	}
	status := http.StatusOK
	if raw := strings.TrimSpace(q.Get("since")); raw != "" {
		v.Since = raw
		t, err := time.Parse(dateLayout, raw)
		switch {
		case err != nil:
			v.Error = fmt.Sprintf("since=%q is not a date: write it as YYYY-MM-DD, e.g. %s.", raw, since.Format(dateLayout))
		case t.After(now):
			v.Error = fmt.Sprintf("since=%s is in the future: the report covers the time from since to now (%s).", raw, now.Format(dateLayout))
		default:
			since = t
		}
	}
	set := s.set()
	if v.Error == "" && v.Campaign != "" && set != nil && set.Campaign(v.Campaign) == nil {
		v.Error = fmt.Sprintf("There is no campaign %q: pick one from the list.", v.Campaign)
	}
	if set != nil {
		for _, c := range set.Campaigns {
			v.Campaigns = append(v.Campaigns, campaignOption{c.ID, c.Name, c.ID == v.Campaign})
		}
	}
	switch {
	case v.Error != "":
		status = http.StatusBadRequest
	case s.d.Reports == nil:
		v.Unavailable = "Reports are not available: retain web was started without the report store."
		status = http.StatusServiceUnavailable
	default:
		rep, err := s.d.Reports(r.Context(), since, v.Campaign)
		if err != nil {
			s.cfg.Log.Error("ui: read report", "since", since, "campaign", v.Campaign, "error", err)
			v.Unavailable = "The report could not be read: " + err.Error()
			status = http.StatusServiceUnavailable
			break
		}
		v.fill(rep)
		if set == nil {
			// Without the campaigns, the report names the campaigns to pick from.
			for _, c := range rep.Campaigns {
				v.Campaigns = append(v.Campaigns, campaignOption{c.ID, c.Name, c.ID == v.Campaign})
			}
		}
	}
	if v.Campaign != "" && !hasOption(v.Campaigns, v.Campaign) {
		v.Campaigns = append(v.Campaigns, campaignOption{v.Campaign, v.Campaign, true})
	}
	s.render(w, status, "reports.html", v)
}

func hasOption(opts []campaignOption, id string) bool {
	for _, o := range opts {
		if o.ID == id {
			return true
		}
	}
	return false
}

// fill lays out rep.
func (v *reportsView) fill(rep *report.Report) {
	v.Report = rep
	if !rep.Generated.IsZero() {
		v.Generated = rep.Generated.UTC().Format("2 Jan 2006 15:04 UTC")
	}
	for _, c := range rep.Campaigns {
		v.Funnels = append(v.Funnels, funnel(c))
	}
	if len(rep.Stages) > 0 {
		bars := make([]hbar, len(rep.Stages))
		total := 0
		for _, st := range rep.Stages {
			total += st.Customers
		}
		for i, st := range rep.Stages {
			bars[i] = hbar{Label: st.Stage, Value: st.Customers, Note: share(st.Customers, total), Color: stageColor(st.Stage)}
		}
		v.Stages = hbarChart("Customers per stage now", bars)
	}
	for _, f := range rep.Flows {
		v.Flows = append(v.Flows, flowView{f.From, f.To, formatInt(f.Count), isWonBack(f)})
	}
	v.WonBack = formatInt(rep.WonBack)
	if rep.NPS.Answers > 0 {
		v.NPS = nps(rep.NPS)
	}
	if len(rep.Repeat.Customers) > 0 && rep.Repeat.Customers[0] > 0 {
		v.Repeat = repeat(rep.Repeat)
	}
	if len(rep.Cohorts) > 0 {
		v.Cohorts = cohorts(rep.Cohorts)
	}
}

func funnel(c report.CampaignReport) funnelView {
	f := funnelView{
		ID: c.ID, Name: c.Name,
		Enrolled: formatInt(c.Enrolled), Sent: formatInt(c.Sent), Failed: formatInt(c.Failed),
		Bounced: formatInt(c.Bounced), Unsubscribed: formatInt(c.Unsubscribed),
		Clicked: formatInt(c.Clicked), Reached: formatInt(c.GoalReached),
		Conversion: "—", Median: formatSeconds(c.MedianTimeToGoal), EditSkipped: formatInt(c.EditSkipped),
		Complained: formatInt(c.Complained), ComplaintRate: fineRate(c.Complained, c.Sent), BounceRate: fineRate(c.Bounced, c.Sent),
		Paused: c.Paused,
	}
	switch {
	case c.ComplaintRate > report.ComplaintLimit:
		f.ComplaintWarn = "Complaints are over the 0.3% mailbox providers allow."
	case c.ComplaintRate > report.ComplaintTarget:
		f.ComplaintWarn = "Complaints are over the 0.1% to aim for."
	}
	if c.EndedByEdit > 0 {
		f.EndedByEdit = formatInt(c.EndedByEdit)
	}
	if f.Name == "" {
		f.Name = c.ID
	}
	if c.Enrolled > 0 {
		f.Conversion = formatPercent(c.Conversion)
	}
	for _, st := range c.Steps {
		f.Steps = append(f.Steps, stepRow{
			ID: st.ID, Sent: formatInt(st.Sent), Failed: formatInt(st.Failed), Bounced: formatInt(st.Bounced), Complained: formatInt(st.Complained),
			Unsubscribed: formatInt(st.Unsubscribed), Clicked: formatInt(st.Clicked), ClickRate: ratio(st.Clicked, st.Sent, ""),
			EditSkipped: formatInt(st.EditSkipped),
		})
	}
	if h := c.Holdout; h != nil {
		// The share as set, to the basis point: 12.5%, not 13%.
		share := strconv.FormatFloat(math.Round(h.Share*10_000)/100, 'f', -1, 64) + "%"
		f.Holdout = &experimentView{Share: share, Rows: []experimentRow{
			{Name: "Control (held out)", Customers: formatInt(h.Control.Enrolled), Reached: formatInt(h.Control.GoalReached),
				Rate: groupRate(h.Control.GoalReached, h.Control.Enrolled), Baseline: true},
			compared(experimentRow{Name: "Treatment (sent the campaign)", Customers: formatInt(h.Treatment.Enrolled), Reached: formatInt(h.Treatment.GoalReached),
				Rate: groupRate(h.Treatment.GoalReached, h.Treatment.Enrolled)}, &h.Comparison),
		}}
	}
	for _, st := range c.Steps {
		if len(st.Variants) == 0 {
			continue
		}
		ev := experimentView{Step: st.ID}
		for _, v := range st.Variants {
			row := experimentRow{Name: v.Variant, Customers: formatInt(v.Given), Sent: formatInt(v.Sent), Clicked: formatInt(v.Clicked),
				Unsub: formatInt(v.Unsubscribed), Reached: formatInt(v.GoalReached), Rate: groupRate(v.GoalReached, v.Given), Baseline: v.VsA == nil}
			if v.VsA != nil {
				row = compared(row, v.VsA)
			}
			ev.Rows = append(ev.Rows, row)
		}
		f.Variants = append(f.Variants, ev)
	}
	if c.Enrolled == 0 && c.Sent == 0 {
		// Nothing to draw: the page says "no data yet" instead of empty bars.
		return f
	}
	f.Chart = hbarChart(f.Name+": enrolled, sent, clicked, goal reached", []hbar{
		{Label: "Enrolled", Value: c.Enrolled, Color: "#6b8fe0"},
		{Label: "Sent", Value: c.Sent, Color: colAccent},
		{Label: "Clicked", Value: c.Clicked, Note: ratio(c.Clicked, c.Sent, "of sent"), Color: "#1d4099"},
		{Label: "Goal reached", Value: c.GoalReached, Note: ratio(c.GoalReached, c.Enrolled, "of enrolled"), Color: colGood},
	})
	return f
}

// compared fills row's comparison with its baseline from c, or says there is
// not enough data yet.
func compared(row experimentRow, c *report.Comparison) experimentRow {
	if !c.Enough {
		row.NotEnough = true
		return row
	}
	row.Uplift = template.HTML(formatPoints(c.Uplift))
	if c.RelativeUplift != nil {
		row.Uplift += template.HTML(fmt.Sprintf(" (%+.0f%%)", *c.RelativeUplift*100))
	}
	row.Interval = template.HTML(formatPoints(c.Low) + " to " + formatPoints(c.High))
	row.P = template.HTML(strconv.FormatFloat(c.P, 'f', 3, 64))
	if c.P < 0.001 {
		row.P = "&lt;0.001"
	}
	row.Verdict = c.Verdict
	switch c.Verdict {
	case report.VerdictHigher:
		row.Class = "good"
	case report.VerdictLower:
		row.Class = "bad"
	}
	return row
}

// formatPoints writes a difference of rates in percentage points with its
// sign, to a tenth: +5.0 pts.
func formatPoints(d float64) string {
	return fmt.Sprintf("%+.1f pts", d*100)
}

// groupRate is the goal rate of a group to a tenth of a percent (experiment
// rates differ by less than a whole percent), "—" for an empty group.
func groupRate(reached, of int) string {
	if of <= 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(reached)*100/float64(of), 'f', 1, 64) + "%"
}

// isWonBack says whether a flow brings a customer back from at_risk or churned,
// as report counts WonBack.
func isWonBack(f report.Flow) bool {
	lapsed := func(s string) bool { return s == "at_risk" || s == "churned" }
	return lapsed(f.From) && !lapsed(f.To)
}

func stageColor(stage string) string {
	switch stage {
	case "at_risk":
		return colMid
	case "churned":
		return colBad
	case "active":
		return colGood
	}
	return colAccent
}

func nps(n report.NPS) *npsView {
	v := &npsView{
		Score:      template.HTML(formatScore(n.Score)),
		Answers:    formatInt(n.Answers),
		Promoters:  formatInt(n.Promoters) + " (" + share(n.Promoters, n.Answers) + ")",
		Passives:   formatInt(n.Passives) + " (" + share(n.Passives, n.Answers) + ")",
		Detractors: formatInt(n.Detractors) + " (" + share(n.Detractors, n.Answers) + ")",
		Class:      "mid",
	}
	switch {
	case math.Round(n.Score) > 0:
		v.Class = "good"
	case math.Round(n.Score) < 0:
		v.Class = "bad"
	}
	v.Split = npsSplit(n)
	if len(n.Weeks) > 0 {
		v.Weeks = npsWeeks(n.Weeks)
	}
	return v
}

// npsSplit is one bar split into promoters, passives and detractors.
func npsSplit(n report.NPS) template.HTML {
	const width, barY, barH = 720.0, 8.0, 30.0
	s := newSVG(width, 70, fmt.Sprintf("NPS answers: %d promoters, %d passives, %d detractors", n.Promoters, n.Passives, n.Detractors))
	x := 0.0
	parts := []struct {
		name  string
		count int
		color string
	}{{"Promoters (9–10)", n.Promoters, colGood}, {"Passives (7–8)", n.Passives, colRef}, {"Detractors (0–6)", n.Detractors, colBad}}
	for _, p := range parts {
		w := 0.0
		if n.Answers > 0 {
			w = width * float64(p.count) / float64(n.Answers)
		}
		tip := fmt.Sprintf("%s: %s (%s)", p.name, formatInt(p.count), share(p.count, n.Answers))
		s.rect(x, barY, w, barH, p.color, tip)
		if w >= 44 {
			s.text(x+w/2, barY+barH/2+5, textStyle{anchor: "middle", fill: "#fff", bold: true}, share(p.count, n.Answers))
		}
		x += w
	}
	// The legend, under the bar.
	lx := 0.0
	for _, p := range parts {
		s.rect(lx, 52, 12, 12, p.color, "")
		label := fmt.Sprintf("%s %s", p.name, formatInt(p.count))
		s.text(lx+18, 62, textStyle{size: 13, fill: colMuted}, label)
		lx += 18 + float64(len(label))*7.2 + 24
	}
	return s.html()
}

// npsWeeks draws the score of each week as a bar up or down from 0 on a fixed
// −100…100 axis, so weeks compare at a glance.
func npsWeeks(weeks []report.NPSWeek) template.HTML {
	const (
		width, height            = 720.0, 280.0
		left, right, top, bottom = 52.0, 12.0, 16.0, 44.0
	)
	plotW, plotH := width-left-right, height-top-bottom
	y := func(score float64) float64 { return top + (100-score)/200*plotH }
	s := newSVG(width, height, "NPS by week, on a scale from −100 to +100")
	for _, g := range []float64{-100, -50, 0, 50, 100} {
		stroke, dashed := colLine, true
		if g == 0 {
			stroke, dashed = colMuted, false
		}
		s.line(left, y(g), width-right, y(g), stroke, dashed)
		s.text(left-8, y(g)+4.5, textStyle{anchor: "end", size: 12, fill: colMuted}, formatScore(g))
	}
	slot := plotW / float64(len(weeks))
	barW := min(slot*0.6, 48)
	// Label every week when they fit, else every few.
	every := int(math.Ceil(float64(len(weeks)) * 58 / plotW))
	for i, wk := range weeks {
		cx := left + slot*(float64(i)+0.5)
		if i%max(every, 1) == 0 {
			s.text(cx, height-bottom+18, textStyle{anchor: "middle", size: 12, fill: colMuted}, shortWeek(wk.Week))
		}
		if wk.Answers == 0 {
			s.text(cx, y(0)-6, textStyle{anchor: "middle", size: 11, fill: colMuted}, "–")
			continue
		}
		top, bot, color := y(wk.Score), y(0), colGood
		if wk.Score < 0 {
			top, bot, color = y(0), y(wk.Score), colBad
		}
		tip := fmt.Sprintf("%s: NPS %s from %s answers", wk.Week, formatScore(wk.Score), formatInt(wk.Answers))
		s.rect(cx-barW/2, top, barW, max(bot-top, 1), color, tip)
		ly := top - 6
		if wk.Score < 0 {
			ly = bot + 15
		}
		if len(weeks) <= 16 {
			s.text(cx, ly, textStyle{anchor: "middle", size: 12, bold: true}, formatScore(wk.Score))
		}
	}
	return s.html()
}

// shortWeek turns "2026-W09" into "W09"; the full week is in the bar's tooltip.
func shortWeek(w string) string {
	if _, after, ok := strings.Cut(w, "-"); ok {
		return after
	}
	return w
}

var repeatSteps = []string{"2nd after 1st", "3rd after 2nd", "4th after 3rd"}

func repeat(rp report.Repeat) *repeatView {
	v := &repeatView{}
	ref := rp.Reference
	if len(ref) < len(repeatSteps) {
		ref = report.RetailReference
	}
	for i, c := range rp.Customers {
		if i >= 4 {
			break
		}
		v.Orders = append(v.Orders, formatInt(c))
	}
	yours := make([]float64, len(repeatSteps))
	known := make([]bool, len(repeatSteps))
	for i, step := range repeatSteps {
		row := repeatRow{Step: "P(" + step + ")", Yours: "—", Reference: formatPercent(ref[i])}
		if i < len(rp.Customers) && rp.Customers[i] > 0 {
			switch {
			case i < len(rp.Next):
				yours[i] = rp.Next[i]
			case i+1 < len(rp.Customers):
				yours[i] = float64(rp.Customers[i+1]) / float64(rp.Customers[i])
			}
			known[i] = true
			row.Yours = formatPercent(yours[i])
			d := math.Round(yours[i]*100) - math.Round(ref[i]*100)
			row.Diff = template.HTML(fmt.Sprintf("%+.0f points", d))
			if d == 0 {
				row.Diff = "same"
			}
			row.Good = d >= 0
		}
		v.Rows = append(v.Rows, row)
	}
	v.Chart = repeatChart(yours, known, ref)
	return v
}

// repeatChart draws, for each next order, your rate beside the retail
// reference, on a 0…100% axis.
func repeatChart(yours []float64, known []bool, ref []float64) template.HTML {
	const (
		width, height            = 720.0, 290.0
		left, right, top, bottom = 52.0, 12.0, 20.0, 64.0
	)
	plotW, plotH := width-left-right, height-top-bottom
	y := func(p float64) float64 { return top + (1-min(max(p, 0), 1))*plotH }
	s := newSVG(width, height, "Repeat purchases: your chance of a next order beside the retail reference")
	for _, g := range []float64{0, .25, .5, .75, 1} {
		stroke, dashed := colLine, true
		if g == 0 {
			stroke, dashed = colMuted, false
		}
		s.line(left, y(g), width-right, y(g), stroke, dashed)
		s.text(left-8, y(g)+4.5, textStyle{anchor: "end", size: 12, fill: colMuted}, formatPercent(g))
	}
	slot := plotW / float64(len(repeatSteps))
	const barW = 64.0
	for i, step := range repeatSteps {
		cx := left + slot*(float64(i)+0.5)
		s.text(cx, height-bottom+20, textStyle{anchor: "middle", size: 13}, "P("+step+")")
		bars := []struct {
			who   string
			p     float64
			ok    bool
			color string
			x     float64
		}{{"Yours", yours[i], known[i], colAccent, cx - barW - 3}, {"Retail reference", ref[i], true, colRef, cx + 3}}
		for _, b := range bars {
			if !b.ok {
				s.text(b.x+barW/2, y(0)-6, textStyle{anchor: "middle", size: 12, fill: colMuted}, "no data")
				continue
			}
			s.rect(b.x, y(b.p), barW, y(0)-y(b.p), b.color, fmt.Sprintf("%s: P(%s) %s", b.who, step, formatPercent(b.p)))
			s.text(b.x+barW/2, y(b.p)-6, textStyle{anchor: "middle", size: 13, bold: true}, formatPercent(b.p))
		}
	}
	// The legend.
	ly := height - 18
	s.rect(left, ly-10, 12, 12, colAccent, "")
	s.text(left+18, ly, textStyle{size: 13, fill: colMuted}, "Yours")
	s.rect(left+80, ly-10, 12, 12, colRef, "")
	s.text(left+98, ly, textStyle{size: 13, fill: colMuted}, fmt.Sprintf("Retail reference (%s / %s / %s)", formatPercent(ref[0]), formatPercent(ref[1]), formatPercent(ref[2])))
	return s.html()
}

func cohorts(cs []report.Cohort) *cohortView {
	v := &cohortView{}
	n := 0
	for _, c := range cs {
		n = max(n, len(c.Active))
	}
	for i := range n {
		v.Months = append(v.Months, "Month "+strconv.Itoa(i))
	}
	for _, c := range cs {
		row := cohortRow{Month: formatMonth(c.Month), Signups: formatInt(c.Signups)}
		for i := range n {
			if i >= len(c.Active) {
				row.Cells = append(row.Cells, heatCell{})
				continue
			}
			cell := heatCell{Text: share(c.Active[i], c.Signups),
				Tip: fmt.Sprintf("%s of %s active in month %d", formatInt(c.Active[i]), formatInt(c.Signups), i)}
			p := 0.0
			if c.Signups > 0 {
				p = float64(c.Active[i]) / float64(c.Signups)
			}
			cell.BG, cell.FG = heat(p)
			row.Cells = append(row.Cells, cell)
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

// heat blends white into the accent colour by p (0…1), with text that stays
// readable on it.
func heat(p float64) (bg, fg string) {
	p = min(max(p, 0), 1)
	mix := func(from, to int) int { return from + int(math.Round(float64(to-from)*p)) }
	bg = fmt.Sprintf("#%02x%02x%02x", mix(0xf3, 0x28), mix(0xf6, 0x56), mix(0xfc, 0xc7))
	fg = colInk
	if p >= 0.5 {
		fg = "#ffffff"
	}
	return bg, fg
}

// formatMonth turns "2026-03" into "Mar 2026".
func formatMonth(m string) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return m
	}
	return t.Format("Jan 2006")
}

// formatInt writes n with thousands separators: 1,234,567.
func formatInt(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatPercent writes a fraction as a whole percentage: 0.27 → "27%"; a small
// but non-zero share shows as "<1%", not as 0%.
func formatPercent(f float64) string {
	p := math.Round(f * 100)
	if p == 0 && f > 0 {
		return "<1%"
	}
	return strconv.Itoa(int(p)) + "%"
}

// share is part of total as a percentage, "0%" when total is 0.
func share(part, total int) string {
	if total <= 0 {
		return "0%"
	}
	return formatPercent(float64(part) / float64(total))
}

// ratio is part of total with a note ("12% of sent"), or "" when total is 0.
func ratio(part, total int, of string) string {
	if total <= 0 {
		return ""
	}
	return strings.TrimSpace(share(part, total) + " " + of)
}

// fineRate writes part of total as a percentage with up to two decimals
// (0.38%, 5%, 0%): complaint rates live below 1%, where share rounds to
// "<1%". Empty when total is 0.
func fineRate(part, total int) string {
	if total <= 0 {
		return ""
	}
	v := strconv.FormatFloat(float64(part)*100/float64(total), 'f', 2, 64)
	v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
	return v + "%"
}

// formatScore writes an NPS with its sign: +33, 0, -12.
func formatScore(f float64) string {
	r := int(math.Round(f))
	if r > 0 {
		return "+" + strconv.Itoa(r)
	}
	return strconv.Itoa(r)
}

// formatSeconds writes a duration in the two largest units that matter:
// "3 days 4 h", "5 h 12 min", "45 min", "30 s"; "—" for none.
func formatSeconds(sec float64) string {
	if sec <= 0 {
		return "—"
	}
	d := time.Duration(math.Round(sec)) * time.Second
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.Itoa(n) + " " + unit + "s"
	}
	switch {
	case days > 0 && hours > 0:
		return plural(days, "day") + " " + strconv.Itoa(hours) + " h"
	case days > 0:
		return plural(days, "day")
	case hours > 0 && mins > 0:
		return strconv.Itoa(hours) + " h " + strconv.Itoa(mins) + " min"
	case hours > 0:
		return strconv.Itoa(hours) + " h"
	case mins > 0:
		return strconv.Itoa(mins) + " min"
	}
	return strconv.Itoa(int(d/time.Second)) + " s"
}
