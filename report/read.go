package report

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
)

// Read builds the report of the counters under prefix (the store's; its default
// when empty) for the campaigns of set: flows and NPS cover the days and ISO
// weeks from since to now; campaign funnels, stages, the repeat funnel and the
// cohorts are everything counted so far. campaignID, when not empty, keeps only
// that campaign. It reads a fixed set of keys in three round trips — one hash
// per day and per week of the period, one per campaign and per cohort month —
// and never scans.
func Read(ctx context.Context, rdb redis.UniversalClient, prefix string, set *campaign.Set, since time.Time, campaignID string) (*Report, error) {
	return read(ctx, rdb, prefix, set, since, campaignID, time.Now())
}

func read(ctx context.Context, rdb redis.UniversalClient, prefix string, set *campaign.Set, since time.Time, campaignID string, now time.Time) (*Report, error) {
	k := keys{prefix: cmpPrefix(prefix)}
	since, now = since.UTC(), now.UTC()
	var camps []*campaign.Campaign
	for _, c := range set.Campaigns {
		if campaignID == "" || c.ID == campaignID {
			camps = append(camps, c)
		}
	}
	if campaignID != "" && len(camps) == 0 {
		return nil, fmt.Errorf("report: unknown campaign %q", campaignID)
	}
	days := periodDays(since, now)
	weeks := periodWeeks(since, now)

	// Round trip 1: every hash whose key is known up front.
	var (
		stages, orders *redis.MapStringStringCmd
		months         *redis.StringSliceCmd
		campCmds       = make([]*redis.MapStringStringCmd, len(camps))
		goalCards      = make([]*redis.IntCmd, len(camps))
		flowCmds       = make([]*redis.MapStringStringCmd, len(days))
		npsCmds        = make([]*redis.MapStringStringCmd, len(weeks))
	)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		stages = p.HGetAll(ctx, k.stages())
		orders = p.HGetAll(ctx, k.orders())
		months = p.SMembers(ctx, k.months())
		for i, c := range camps {
			campCmds[i] = p.HGetAll(ctx, k.campaign(c.ID))
			goalCards[i] = p.ZCard(ctx, k.goal(c.ID))
		}
		for i, d := range days {
			flowCmds[i] = p.HGetAll(ctx, k.flows(d))
		}
		for i, w := range weeks {
			npsCmds[i] = p.HGetAll(ctx, k.nps(w))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: read counters: %w", err)
	}

	// Round trip 2: the middle of each time-to-goal set, and the cohorts.
	cohortMonths := months.Val()
	slices.Sort(cohortMonths)
	medians := make([][]*redis.ZSliceCmd, len(camps))
	cohortCmds := make([]*redis.MapStringStringCmd, len(cohortMonths))
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range camps {
			for _, rank := range middle(goalCards[i].Val()) {
				medians[i] = append(medians[i], p.ZRangeWithScores(ctx, k.goal(c.ID), rank, rank))
			}
		}
		for i, m := range cohortMonths {
			cohortCmds[i] = p.HGetAll(ctx, k.cohort(m))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: read counters: %w", err)
	}

	r := &Report{Since: since, Generated: now, Campaigns: []CampaignReport{}, Stages: []StageCount{}, Flows: []Flow{}, Cohorts: []Cohort{}}
	for i, c := range camps {
		r.Campaigns = append(r.Campaigns, campaignReport(c, counts(campCmds[i].Val()), medians[i]))
	}
	r.Stages = stageCounts(set, counts(stages.Val()))
	r.Flows, r.WonBack = flows(set, flowCmds)
	r.NPS = nps(weeks, npsCmds)
	r.Repeat = repeat(counts(orders.Val()))
	for i, m := range cohortMonths {
		r.Cohorts = append(r.Cohorts, cohort(m, counts(cohortCmds[i].Val()), now))
	}
	return r, nil
}

// middle is the ranks whose mean is the median of n sorted values.
func middle(n int64) []int64 {
	switch {
	case n == 0:
		return nil
	case n%2 == 1:
		return []int64{n / 2}
	default:
		return []int64{n/2 - 1, n / 2}
	}
}

func counts(h map[string]string) map[string]int {
	out := make(map[string]int, len(h))
	for f, v := range h {
		n, _ := strconv.Atoi(v)
		out[f] = n
	}
	return out
}

func campaignReport(c *campaign.Campaign, h map[string]int, median []*redis.ZSliceCmd) CampaignReport {
	cr := CampaignReport{ID: c.ID, Name: c.Name, Enrolled: h["enrolled"], GoalReached: h["goal_reached"], EndedByEdit: h["ended_by_edit"], Steps: []StepReport{}}
	ids := make([]string, 0, len(c.Steps))
	for _, st := range c.Steps {
		ids = append(ids, st.ID)
	}
	// Steps since removed from the campaign keep their counts, after the others.
	var gone []string
	for f := range h {
		if step, _, ok := strings.Cut(f, "|"); ok && !slices.Contains(ids, step) && !slices.Contains(gone, step) {
			gone = append(gone, step)
		}
	}
	slices.Sort(gone)
	for _, id := range append(ids, gone...) {
		s := StepReport{ID: id, Sent: h[id+"|sent"], Failed: h[id+"|failed"], Bounced: h[id+"|bounced"],
			Unsubscribed: h[id+"|unsubscribed"], Clicked: h[id+"|clicked"], EditSkipped: h[id+"|edited"]}
		cr.Sent += s.Sent
		cr.Failed += s.Failed
		cr.Bounced += s.Bounced
		cr.Unsubscribed += s.Unsubscribed
		cr.Clicked += s.Clicked
		cr.EditSkipped += s.EditSkipped
		cr.Steps = append(cr.Steps, s)
	}
	if cr.Enrolled > 0 {
		cr.Conversion = float64(cr.GoalReached) / float64(cr.Enrolled)
	}
	var sum float64
	for _, z := range median {
		if v := z.Val(); len(v) == 1 {
			sum += v[0].Score
		}
	}
	if len(median) > 0 {
		cr.MedianTimeToGoal = sum / float64(len(median))
	}
	return cr
}

// stageOrder is the lifecycle's stages in order, then any other stage counted
// (since removed from lifecycle.yaml), sorted.
func stageOrder(set *campaign.Set, extra ...map[string]bool) []string {
	order := set.Lifecycle.StageNames()
	var more []string
	for _, m := range extra {
		for s := range m {
			if !slices.Contains(order, s) && !slices.Contains(more, s) {
				more = append(more, s)
			}
		}
	}
	slices.Sort(more)
	return append(order, more...)
}

func stageCounts(set *campaign.Set, h map[string]int) []StageCount {
	seen := map[string]bool{}
	for s, n := range h {
		if n != 0 {
			seen[s] = true
		}
	}
	var out []StageCount
	for _, s := range stageOrder(set, seen) {
		out = append(out, StageCount{Stage: s, Customers: h[s]})
	}
	return out
}

// wonBackFrom are the stages a move out of counts as won back, unless it goes
// to churned.
var wonBackFrom = map[string]bool{"at_risk": true, "churned": true}

func flows(set *campaign.Set, cmds []*redis.MapStringStringCmd) ([]Flow, int) {
	total := map[[2]string]int{}
	stages := map[string]bool{}
	for _, c := range cmds {
		for f, n := range counts(c.Val()) {
			from, to, ok := strings.Cut(f, ">")
			if !ok || n == 0 {
				continue
			}
			total[[2]string{from, to}] += n
			stages[from], stages[to] = true, true
		}
	}
	order := stageOrder(set, stages)
	out := []Flow{}
	won := 0
	for _, from := range order {
		for _, to := range order {
			n := total[[2]string{from, to}]
			if n == 0 {
				continue
			}
			out = append(out, Flow{From: from, To: to, Count: n})
			if wonBackFrom[from] && to != "churned" {
				won += n
			}
		}
	}
	return out, won
}

func nps(weeks []string, cmds []*redis.MapStringStringCmd) NPS {
	out := NPS{Weeks: []NPSWeek{}}
	for i, w := range weeks {
		h := counts(cmds[i].Val())
		wk := NPSWeek{Week: w, Promoters: h["promoters"], Passives: h["passives"], Detractors: h["detractors"]}
		wk.Answers = wk.Promoters + wk.Passives + wk.Detractors
		wk.Score = npsScore(wk.Promoters, wk.Detractors, wk.Answers)
		out.Weeks = append(out.Weeks, wk)
		out.Promoters += wk.Promoters
		out.Passives += wk.Passives
		out.Detractors += wk.Detractors
	}
	out.Answers = out.Promoters + out.Passives + out.Detractors
	out.Score = npsScore(out.Promoters, out.Detractors, out.Answers)
	return out
}

func npsScore(promoters, detractors, answers int) float64 {
	if answers == 0 {
		return 0
	}
	return float64(promoters-detractors) * 100 / float64(answers)
}

// repeat reads the orders hash (n → customers who reached n orders) into the
// funnel, at least as deep as the reference figures.
func repeat(h map[string]int) Repeat {
	depth := len(RetailReference) + 1
	for f := range h {
		if n, err := strconv.Atoi(f); err == nil && n > depth {
			depth = n
		}
	}
	r := Repeat{Customers: make([]int, depth), Next: make([]float64, depth-1), Reference: slices.Clone(RetailReference)}
	for i := range r.Customers {
		r.Customers[i] = h[strconv.Itoa(i+1)]
	}
	for i := range r.Next {
		if r.Customers[i] > 0 {
			r.Next[i] = float64(r.Customers[i+1]) / float64(r.Customers[i])
		}
	}
	return r
}

// cohort reads one signup month's hash; Active runs from the signup month to
// now's month.
func cohort(month string, h map[string]int, now time.Time) Cohort {
	c := Cohort{Month: month, Signups: h["signups"], Active: []int{}}
	start, err := time.Parse("2006-01", month)
	if err != nil {
		return c
	}
	for m := start; !m.After(now); m = m.AddDate(0, 1, 0) {
		c.Active = append(c.Active, h["active:"+monthOf(m)])
	}
	return c
}

// periodDays is every UTC day from since to now, as flow key suffixes.
func periodDays(since, now time.Time) []string {
	var out []string
	for d := since.Truncate(24 * time.Hour); !d.After(now); d = d.AddDate(0, 0, 1) {
		out = append(out, dayOf(d))
	}
	return out
}

// periodWeeks is every ISO week from since's to now's.
func periodWeeks(since, now time.Time) []string {
	var out []string
	start := since.Truncate(24 * time.Hour)
	start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7)) // its Monday
	for d := start; !d.After(now); d = d.AddDate(0, 0, 7) {
		out = append(out, weekOf(d))
	}
	return out
}
