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
	"github.com/retainmail/retain/store"
)

// Read builds the report of the counters under prefix (the store's; its default
// when empty) for the campaigns of set: flows and NPS cover the days and ISO
// weeks from since to now; campaign funnels, stages, the repeat funnel and the
// cohorts are everything counted so far. campaignID, when not empty, keeps only
// that campaign. Every counter is kept per shard (see the package
// documentation) and summed here over the store.Shards shards. It reads a fixed
// set of keys in two pipelines — the first of every shard's hashes whose key
// is known up front (one per day of the period, one per campaign), its NPS
// hash and time-to-goal sets, the second of the cohort months the shards list
// — and never scans.
func Read(ctx context.Context, rdb redis.UniversalClient, prefix string, set *campaign.Set, since time.Time, campaignID string) (*Report, error) {
	return read(ctx, rdb, prefix, set, since, campaignID, time.Now())
}

// shardReads are the replies of one shard in Read's first pipeline.
type shardReads struct {
	stages, orders *redis.MapStringStringCmd
	months         *redis.StringSliceCmd
	camps          []*redis.MapStringStringCmd // by campaign
	goals          []*redis.ZSliceCmd          // by campaign
	flows          []*redis.MapStringStringCmd // by day
	nps            *redis.SliceCmd             // HMGET of npsFields
}

func read(ctx context.Context, rdb redis.UniversalClient, prefix string, set *campaign.Set, since time.Time, campaignID string, now time.Time) (*Report, error) {
	prefix = cmpPrefix(prefix)
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
	var npsFields []string
	for _, w := range weeks {
		for _, f := range npsBuckets {
			npsFields = append(npsFields, npsWeekField(w, f))
		}
	}

	// Pipeline 1: every key known up front, in every shard. The time-to-goal
	// sets are read whole: the exact median of their union needs every score
	// (see median).
	shards := make([]shardReads, store.Shards)
	var paused *redis.MapStringStringCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		paused = p.HGetAll(ctx, store.PausedKey(prefix))
		for i := range shards {
			k, s := shardKeys(prefix, i), &shards[i]
			s.stages = p.HGetAll(ctx, k.stages())
			s.orders = p.HGetAll(ctx, k.orders())
			s.months = p.SMembers(ctx, k.months())
			for _, c := range camps {
				s.camps = append(s.camps, p.HGetAll(ctx, k.campaign(c.ID)))
				s.goals = append(s.goals, p.ZRangeWithScores(ctx, k.goal(c.ID), 0, -1))
			}
			for _, d := range days {
				s.flows = append(s.flows, p.HGetAll(ctx, k.flows(d)))
			}
			if len(npsFields) > 0 {
				s.nps = p.HMGet(ctx, k.nps(), npsFields...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: read counters: %w", err)
	}

	// Pipeline 2: the cohorts of every month any shard lists, in every shard.
	seen := map[string]bool{}
	var cohortMonths []string
	for _, s := range shards {
		for _, m := range s.months.Val() {
			if !seen[m] {
				seen[m] = true
				cohortMonths = append(cohortMonths, m)
			}
		}
	}
	slices.Sort(cohortMonths)
	cohortCmds := make([][]*redis.MapStringStringCmd, len(cohortMonths))
	if len(cohortMonths) > 0 {
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, m := range cohortMonths {
				for s := range store.Shards {
					cohortCmds[i] = append(cohortCmds[i], p.HGetAll(ctx, shardKeys(prefix, s).cohort(m)))
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("report: read counters: %w", err)
		}
	}

	r := &Report{Since: since, Generated: now, Campaigns: []CampaignReport{}, Stages: []StageCount{}, Flows: []Flow{}, Cohorts: []Cohort{}}
	stages, orders, npsCounts := map[string]int{}, map[string]int{}, map[string]int{}
	var flowCmds []*redis.MapStringStringCmd
	for _, s := range shards {
		addCounts(stages, s.stages)
		addCounts(orders, s.orders)
		flowCmds = append(flowCmds, s.flows...)
		if s.nps != nil {
			for j, v := range s.nps.Val() {
				if v, ok := v.(string); ok {
					n, _ := strconv.Atoi(v)
					npsCounts[npsFields[j]] += n
				}
			}
		}
	}
	for i, c := range camps {
		h := map[string]int{}
		var scores []float64
		for _, s := range shards {
			addCounts(h, s.camps[i])
			for _, z := range s.goals[i].Val() {
				scores = append(scores, z.Score)
			}
		}
		cr := campaignReport(c, h, median(scores))
		cr.Paused = store.PauseReason(paused.Val()[c.ID])
		r.Campaigns = append(r.Campaigns, cr)
	}
	r.Stages = stageCounts(set, stages)
	r.Flows, r.WonBack = flows(set, flowCmds)
	r.NPS = nps(weeks, npsCounts)
	r.Repeat = repeat(orders)
	for i, m := range cohortMonths {
		h := map[string]int{}
		for _, cmd := range cohortCmds[i] {
			addCounts(h, cmd)
		}
		r.Cohorts = append(r.Cohorts, cohort(m, h, now))
	}
	return r, nil
}

// npsBuckets are the fields an NPS answer counts in, by week (npsWeekField).
var npsBuckets = []string{"promoters", "passives", "detractors"}

// median is the median of the times to goal of all shards, exact: the mean of
// the middle one or two once sorted, as the ranks of one sorted set would give.
// It holds every score, one float per goal reached (the replies it comes from
// also hold each member, until the report is built): shards give no rank in
// their union, and no other way reads it in as few round trips.
func median(scores []float64) float64 {
	mid := middle(int64(len(scores)))
	if len(mid) == 0 {
		return 0
	}
	slices.Sort(scores)
	var sum float64
	for _, rank := range mid {
		sum += scores[rank]
	}
	return sum / float64(len(mid))
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

// addCounts adds the counters of one shard's hash to sum. A field in any
// shard is in sum, even at 0, as it would be in one hash.
func addCounts(sum map[string]int, h *redis.MapStringStringCmd) {
	for f, n := range counts(h.Val()) {
		sum[f] += n
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

// campaignReport is the funnel of c from its counters h, summed over the
// shards, and the median time to goal.
func campaignReport(c *campaign.Campaign, h map[string]int, median float64) CampaignReport {
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
			SoftBounced: h[id+"|soft_bounced"], Complained: h[id+"|complained"],
			Unsubscribed: h[id+"|unsubscribed"], Clicked: h[id+"|clicked"], EditSkipped: h[id+"|edited"],
			Variants: variants(stepOf(c, id), id, h)}
		cr.Sent += s.Sent
		cr.Failed += s.Failed
		cr.Bounced += s.Bounced
		cr.SoftBounced += s.SoftBounced
		cr.Complained += s.Complained
		cr.Unsubscribed += s.Unsubscribed
		cr.Clicked += s.Clicked
		cr.EditSkipped += s.EditSkipped
		cr.Steps = append(cr.Steps, s)
	}
	if cr.Enrolled > 0 {
		cr.Conversion = float64(cr.GoalReached) / float64(cr.Enrolled)
	}
	if cr.Sent > 0 {
		cr.BounceRate = float64(cr.Bounced) / float64(cr.Sent)
		cr.ComplaintRate = float64(cr.Complained) / float64(cr.Sent)
	}
	cr.MedianTimeToGoal = median
	cr.Holdout = holdout(c, h)
	return cr
}

// holdout is the experiment of campaign c from its counters h: nil when c has
// no holdout and no control group was ever counted (counters from before
// holdouts have none: every enrollment is then in the treatment group).
func holdout(c *campaign.Campaign, h map[string]int) *Holdout {
	if c.Holdout <= 0 && h[controlEnrolled] == 0 {
		return nil
	}
	ho := &Holdout{
		Share:     float64(c.Holdout) / 10_000,
		Control:   group(h[controlEnrolled], h[controlGoal]),
		Treatment: group(h["enrolled"]-h[controlEnrolled], h["goal_reached"]-h[controlGoal]),
	}
	ho.Comparison = Compare(ho.Treatment.GoalReached, ho.Treatment.Enrolled, ho.Control.GoalReached, ho.Control.Enrolled)
	return ho
}

// stepOf is c's step with identity id, nil for one since removed.
func stepOf(c *campaign.Campaign, id string) *campaign.Step {
	for _, st := range c.Steps {
		if st.ID == id {
			return st
		}
	}
	return nil
}

func group(enrolled, reached int) Group {
	g := Group{Enrolled: enrolled, GoalReached: reached}
	if enrolled > 0 {
		g.Rate = float64(reached) / float64(enrolled)
	}
	return g
}

// variants are the A/B variants of step id (st, nil for a step since
// removed) from the counters h: a, the step's variants, then any other
// variant counted (since removed), each but a compared with a. Nil when the
// step has no variants and none was counted.
func variants(st *campaign.Step, id string, h map[string]int) []VariantReport {
	var names []string
	if st != nil && len(st.AB) > 0 {
		names = append(names, campaign.VariantA)
		for _, v := range st.AB {
			names = append(names, v.Name)
		}
	}
	var gone []string
	for f := range h {
		rest, ok := strings.CutPrefix(f, id+"|")
		if !ok {
			continue
		}
		if v, _, ok := strings.Cut(rest, "|"); ok && !slices.Contains(names, v) && !slices.Contains(gone, v) {
			gone = append(gone, v)
		}
	}
	if len(names) == 0 && len(gone) > 0 {
		names = append(names, campaign.VariantA)
	}
	slices.Sort(gone)
	for _, v := range gone {
		if !slices.Contains(names, v) {
			names = append(names, v)
		}
	}
	var out []VariantReport
	for _, v := range names {
		field := func(what string) int { return h[variantField(id, v, what)] }
		r := VariantReport{Variant: v, Given: field("given"), Sent: field("sent"), Clicked: field("clicked"),
			Unsubscribed: field("unsubscribed"), GoalReached: field("goal_reached")}
		if r.Given > 0 {
			r.GoalRate = float64(r.GoalReached) / float64(r.Given)
		}
		out = append(out, r)
	}
	for i := 1; i < len(out); i++ {
		vs := Compare(out[i].GoalReached, out[i].Given, out[0].GoalReached, out[0].Given)
		out[i].VsA = &vs
	}
	return out
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

// flows sums the flow hashes of every day and shard.
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

// nps reads the NPS fields of weeks, summed over the shards: h holds
// npsWeekField(week, bucket) -> people.
func nps(weeks []string, h map[string]int) NPS {
	out := NPS{Weeks: []NPSWeek{}}
	for _, w := range weeks {
		wk := NPSWeek{Week: w, Promoters: h[npsWeekField(w, "promoters")], Passives: h[npsWeekField(w, "passives")], Detractors: h[npsWeekField(w, "detractors")]}
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
