// Package report keeps the numbers marketers read — per campaign and step funnels,
// stages and the flows between them, NPS by week, the repeat-purchase funnel and
// signup-month cohorts — as counters in Redis that are updated as events and sends
// happen, and reads them back into a Report. Building a report never scans
// customers.
//
// It does not decide anything: the lifecycle engine decides, the store writes,
// and a Recorder, set as store.Store.Also, turns each customer write (the
// customer before and after, the engine's changes, the event) into counter
// updates queued in the same MULTI/EXEC. A write that loses its WATCH is retried
// and counted once; an event ID applied before is refused by the store and not
// counted again.
//
//	st.Also = report.NewRecorder(prefix, set.Lifecycle).Record
//	r, err := report.Read(ctx, rdb, prefix, set, since, "")
//
// # Keys
//
// Every counter is kept once per shard of the store (store.Shards of them;
// see store.ShardOf). A customer write moves the counters of the customer's
// own shard: its keys start with store.CustomerPrefix(p, id), p being the
// store's prefix, as the customer's own keys do, so they share the customer's
// hash slot and the updates stay in the customer's MULTI/EXEC on Redis Cluster
// as on one Redis. Read sums the shards: it reads each key once per shard,
// under store.ShardPrefix(p, i) for every shard i, in the same pipelines (so
// in as many round trips) as one set of counters would take; unions the
// shards' cohort months; and merges their times to goal for the median.
// Sums of per-shard counts are the counts one set of keys would hold, so the
// report is the same. (Layout 1, before store.Layout 2, kept one set of these
// keys under p itself, and the NPS counts as a hash a week,
// {p}report:nps:YYYY-Www: promoters, passives, detractors -> people.)
//
// Written {s} below: a shard's prefix, "retain:{10}:" for shard 0 of the
// default prefix (the braces there are the shard's hash tag; in {id} and the
// like below they mark a placeholder). Days, ISO weeks and months are UTC.
//
//	{s}report:stages              hash  stage -> customers in it now: +1 on creation, -1/+1 on a stage change
//	{s}report:flows:YYYY-MM-DD    hash  "from>to" -> stage changes that day; a period reads one hash a day
//	{s}report:campaign:{id}       hash  enrolled, goal_reached, and per step identity ("onboarding/welcome"):
//	                                    "step|sent"          sent (or maybe sent: connection lost after DATA)
//	                                    "step|failed"        skipped with the outcome refused or unrenderable
//	                                                         (lifecycle.Outcome; not conditions: only_if, skip_if)
//	                                    "step|bounced"       enrollment ended with the outcome bounced
//	                                    "step|edited"        skipped because the campaign was edited (the
//	                                                         step was removed, or now lies before the
//	                                                         customer's place); see lifecycle.Locate
//	                                    ended_by_edit        enrollments an edit ended (no step left, or
//	                                                         the customer's place lost)
//	                                    "step|clicked"       link_clicked events (one per customer, step and URL)
//	                                    "step|unsubscribed"  unsubscribed events, see below
//	                                    control:enrolled     enrollments in the holdout (control) group
//	                                    control:goal_reached goals reached by them; the treatment group
//	                                                         is enrolled and goal_reached minus these
//	                                    "step|v|given"       customers who passed the step with A/B
//	                                                         variant v ("a", "b", …): sent it, or its
//	                                                         send failed for good
//	                                    "step|v|sent"        of them, sent it
//	                                    "step|v|clicked"     step|clicked of those given variant v
//	                                    "step|v|unsubscribed" step|unsubscribed of those given variant v
//	                                    "step|v|goal_reached" goals reached in an enrollment that was
//	                                                         given variant v of the step
//	{s}report:goal:{id}           zset  "customer:enrollment" scored by seconds from enrollment to goal;
//	                                    the median of the shards' union is exact: Read reads every
//	                                    shard's scores, one float per goal reached
//	{s}report:nps                 hash  "YYYY-Www|promoters", "|passives", "|detractors": people, by the
//	                                    week of their answer; see below. One hash for every week, not a
//	                                    key a week, so that moving a person from an earlier week's
//	                                    answer names no key the script does not declare
//	{s}report:nps-answer:{hash}   string "unixms|week|field" of a customer's answer to one survey email,
//	                                    named by a hash of customer, campaign and enrollment; expires
//	                                    after NPSAnswerTTL
//	{s}report:orders              hash  n -> customers who reached n orders
//	{s}report:cohort:YYYY-MM      hash  signups, and "active:YYYY-MM" -> of them, customers active that month
//	{s}report:months              set   the shard's cohort months, so reading them needs no SCAN
//
// Rules worth knowing:
//   - Won back is the moves from at_risk or churned to any stage except churned.
//   - An unsubscribed event (from all emails or from one topic) counts against
//     the last step passed by the enrollment that sent the customer's latest
//     email: the enrollment whose last step is the latest not after LastSent. A
//     customer never sent anything is not counted against any campaign.
//   - The order event is the one the lifecycle counter "orders" counts, or else
//     "order_placed" when some counter counts it; each one adds the customer to
//     n = its new count. With neither, the repeat funnel stays empty.
//   - A customer is active in a month when an activity event (lifecycle.yaml
//     activity:) moves its LastActivity into a later month than before: once per
//     customer and month. The signup month is CreatedAt's.
//   - NPS counts people: one answer per customer and survey email, the survey
//     email being the campaign and enrollment an nps_submitted event names
//     ("campaign", "enrollment"; without an enrollment, the customer's latest
//     in the campaign). A later answer to the same email replaces the earlier
//     one: the person moves from the earlier answer's week and bucket to the new
//     one's, in the same MULTI/EXEC as the customer write (a script reads the
//     stored answer there); an answer older than the one counted, or equal to
//     it, changes nothing. An event with a "comment" repeats its answer and is
//     not counted; one without a "campaign" counts on its own. The script
//     touches only the two keys it is given, the answer key and the NPS hash
//     of the customer's shard, so it runs on Redis Cluster too.
//   - Customers deleted from the store stay in the counters.
//   - Experiments (see stats.go for the statistics): a holdout's control
//     group is the enrollments whose enrolled change has Group
//     lifecycle.GroupControl, and their goal_reached changes; everyone else
//     enrolled is the treatment group, including enrollments from before the
//     holdout was set. A goal counts for variant v of a step when the
//     enrollment reaching it passed the step with v recorded
//     (Enrollment.AB) and not by an edit: exactly the customers
//     "step|v|given" counts, so the goal rate of a variant is of the
//     customers given it. Clicks count for the variant of the step the
//     event names, unsubscribes for that of the step they are attributed to.
package report

import "time"

// Report is everything `retain report` and the reports page show.
type Report struct {
	// Since is the start of the period the flows and NPS cover; the campaign
	// funnels, stages, repeat funnel and cohorts count everything so far.
	Since     time.Time        `json:"since"`
	Generated time.Time        `json:"generated"`
	Campaigns []CampaignReport `json:"campaigns"`
	// Stages are the customers per stage now, in lifecycle order.
	Stages []StageCount `json:"stages"`
	// Flows are moves between stages in the period; WonBack counts moves from
	// at_risk or churned back to an active stage.
	Flows   []Flow   `json:"flows"`
	WonBack int      `json:"won_back"`
	NPS     NPS      `json:"nps"`
	Repeat  Repeat   `json:"repeat_purchase"`
	Cohorts []Cohort `json:"cohorts"`
}

// The complaint rates Gmail and Yahoo ask bulk senders for (2024 sender
// guidelines): stay under ComplaintLimit, aim for ComplaintTarget.
const (
	ComplaintTarget = 0.001
	ComplaintLimit  = 0.003
)

// CampaignReport is one campaign's funnel, with its steps.
type CampaignReport struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Enrolled int    `json:"enrolled"`
	Sent     int    `json:"sent"`
	Failed   int    `json:"failed"`
	Bounced  int    `json:"bounced"`
	// SoftBounced counts temporary failures reported after the relay took an
	// email, Complained the people who marked one as spam.
	SoftBounced  int `json:"soft_bounced"`
	Complained   int `json:"complained"`
	Unsubscribed int `json:"unsubscribed"`
	Clicked      int `json:"clicked"`
	// BounceRate is Bounced / Sent and ComplaintRate Complained / Sent (0
	// before the first send). Mailbox providers ask senders to keep
	// complaints under ComplaintLimit and aim for ComplaintTarget.
	BounceRate    float64 `json:"bounce_rate"`
	ComplaintRate float64 `json:"complaint_rate"`
	// Paused says why the campaign stopped sending (auto-pause), empty when it
	// sends.
	Paused string `json:"paused,omitempty"`
	// EditSkipped counts steps skipped because the campaign was edited, and
	// EndedByEdit the enrollments an edit ended (see lifecycle.Locate).
	EditSkipped int `json:"edit_skipped"`
	EndedByEdit int `json:"ended_by_edit"`
	GoalReached int `json:"goal_reached"`
	// Conversion is GoalReached / Enrolled (0 when none enrolled).
	Conversion float64 `json:"conversion"`
	// MedianTimeToGoal from enrollment, in seconds; 0 when no goal was reached.
	MedianTimeToGoal float64 `json:"median_time_to_goal_seconds"`
	// Holdout compares the goal conversion of the customers sent the
	// campaign with its holdout (control) group's; nil for a campaign
	// without a holdout and no control group counted.
	Holdout *Holdout     `json:"holdout,omitempty"`
	Steps   []StepReport `json:"steps"`
}

// Holdout is a campaign's experiment: the control group, enrolled but sent
// none of its emails, against the treatment group, everyone else enrolled.
type Holdout struct {
	// Share is the campaign's holdout: as a fraction of the customers who
	// enrol (0.1 for holdout: 10%); 0 when it has none any more.
	Share     float64 `json:"share"`
	Control   Group   `json:"control"`
	Treatment Group   `json:"treatment"`
	// Comparison is the treatment's goal conversion against the control's.
	Comparison
}

// Group is the goal conversion of a group of enrollments.
type Group struct {
	Enrolled    int `json:"enrolled"`
	GoalReached int `json:"goal_reached"`
	// Rate is GoalReached / Enrolled, 0 when none enrolled.
	Rate float64 `json:"rate"`
}

// StepReport is one step's counts.
type StepReport struct {
	ID           string `json:"id"`
	Sent         int    `json:"sent"`
	Failed       int    `json:"failed"`
	Bounced      int    `json:"bounced"`
	SoftBounced  int    `json:"soft_bounced"`
	Complained   int    `json:"complained"`
	Unsubscribed int    `json:"unsubscribed"`
	Clicked      int    `json:"clicked"`
	// EditSkipped counts customers who skipped the step because the campaign
	// was edited.
	EditSkipped int `json:"edit_skipped"`
	// Variants are the step's A/B variants, "a" (its own content) first; nil
	// for a step that never had any.
	Variants []VariantReport `json:"variants,omitempty"`
}

// VariantReport is one A/B variant of a step: what the customers given it
// did.
type VariantReport struct {
	Variant string `json:"variant"`
	// Given counts the customers who passed the step with this variant:
	// those sent it, and the few whose send of it failed for good (refused,
	// unrenderable). It is the denominator of GoalRate.
	Given        int `json:"given"`
	Sent         int `json:"sent"`
	Clicked      int `json:"clicked"`
	Unsubscribed int `json:"unsubscribed"`
	// GoalReached counts the goals reached by customers given this variant,
	// in the enrollment they were given it; GoalRate is GoalReached / Given.
	GoalReached int     `json:"goal_reached"`
	GoalRate    float64 `json:"goal_rate"`
	// VsA compares GoalRate with variant a's; nil for a itself.
	VsA *Comparison `json:"vs_a,omitempty"`
}

// StageCount is how many customers are in a stage now.
type StageCount struct {
	Stage     string `json:"stage"`
	Customers int    `json:"customers"`
}

// Flow is how many moves went from one stage to another in the period.
type Flow struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// NPS is the Net Promoter Score of the answers in the period, and by ISO week.
// Answers counts people: one per customer and survey email, their latest
// answer, in the week they gave it.
type NPS struct {
	Answers    int `json:"answers"`
	Promoters  int `json:"promoters"`
	Passives   int `json:"passives"`
	Detractors int `json:"detractors"`
	// Score is %promoters − %detractors, from −100 to 100.
	Score float64   `json:"score"`
	Weeks []NPSWeek `json:"weeks"`
}

// NPSWeek is the NPS of one ISO week ("2026-W09").
type NPSWeek struct {
	Week       string  `json:"week"`
	Answers    int     `json:"answers"`
	Promoters  int     `json:"promoters"`
	Passives   int     `json:"passives"`
	Detractors int     `json:"detractors"`
	Score      float64 `json:"score"`
}

// Repeat is the repeat-purchase funnel from order events: how many customers
// placed at least N orders, and the chance of the next one.
type Repeat struct {
	// Customers[i] is how many customers placed at least i+1 orders.
	Customers []int `json:"customers_with_at_least"`
	// Next[i] is P(order i+2 | order i+1): Customers[i+1] / Customers[i].
	Next []float64 `json:"p_next"`
	// Reference is the retail figures from the seed: P(2nd|1st) 27%,
	// P(3rd|2nd) 45%, P(4th|3rd) 54%.
	Reference []float64 `json:"reference"`
}

// Cohort is the customers who signed up in one month and how many of them were
// active (had an activity event) in each month after.
type Cohort struct {
	Month   string `json:"month"` // "2026-03"
	Signups int    `json:"signups"`
	// Active[i] is how many were active in month i after the signup month
	// (Active[0] is the signup month itself).
	Active []int `json:"active"`
}

// RetailReference is P(2nd|1st), P(3rd|2nd), P(4th|3rd) from the retention seed.
var RetailReference = []float64{0.27, 0.45, 0.54}
