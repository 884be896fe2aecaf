package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// Event names the recorder counts; web sends them (web/links.go).
const (
	eventUnsubscribed = "unsubscribed"
	eventNPSSubmitted = "nps_submitted"
	eventLinkClicked  = "link_clicked"
	// bounce.Applier's events: a bounce or complaint reported after the relay
	// took the email, with the campaign and step it was about.
	eventBounced     = "email_bounced"
	eventSoftBounced = "email_soft_bounced"
	eventComplained  = "complained"
)

// Recorder turns customer writes into counter updates. Set its Record as
// store.Store.Also: the counters then change in the same MULTI/EXEC as the
// customer, so a write that is retried or loses its WATCH never counts twice.
type Recorder struct {
	// prefix is the store's key prefix; a write's counters are under its
	// customer's shard prefix (customerKeys).
	prefix string
	// ordersEvent is the event that counts as an order and ordersCounter the
	// lifecycle counter of it; both empty when the lifecycle counts no orders.
	ordersEvent, ordersCounter string
}

// NewRecorder returns the recorder of the store with key prefix (store's
// default when empty) under lifecycle lc. The order event is the one counted by
// the counter named "orders" when lc declares it, else "order_placed" when a
// counter counts that event; without either the repeat funnel stays empty.
func NewRecorder(prefix string, lc *campaign.Lifecycle) *Recorder {
	r := &Recorder{prefix: cmpPrefix(prefix)}
	if ev, ok := lc.Counters["orders"]; ok {
		r.ordersEvent, r.ordersCounter = ev, "orders"
		return r
	}
	for _, name := range sortedKeys(lc.Counters) {
		if lc.Counters[name] == "order_placed" {
			r.ordersEvent, r.ordersCounter = "order_placed", name
			break
		}
	}
	return r
}

// Record queues on p the counter updates of one customer write. It reads
// nothing: everything it needs is in w. Every key it writes is in the
// customer's shard (store.CustomerPrefix), the hash slot of the customer's own
// keys, so the updates join the customer's MULTI/EXEC on Redis Cluster too.
func (r *Recorder) Record(ctx context.Context, p redis.Pipeliner, w store.Written) {
	k := customerKeys(r.prefix, w.ID)
	before, after, ch := w.Before, w.After, w.Change
	if after == nil {
		return
	}
	signup := monthOf(after.CreatedAt)
	switch {
	case before == nil:
		p.HIncrBy(ctx, k.stages(), after.Stage, 1)
		p.HIncrBy(ctx, k.cohort(signup), "signups", 1)
		p.SAdd(ctx, k.months(), signup)
	case before.Stage != after.Stage:
		p.HIncrBy(ctx, k.stages(), before.Stage, -1)
		p.HIncrBy(ctx, k.stages(), after.Stage, 1)
	}
	for _, h := range ch.History {
		p.HIncrBy(ctx, k.flows(dayOf(h.At)), h.From+">"+h.To, 1)
	}
	// Active in a month: counted once per customer and month, the first time
	// its last activity moves into a later month.
	if !after.LastActivity.IsZero() {
		var prev string
		if before != nil && !before.LastActivity.IsZero() {
			prev = monthOf(before.LastActivity)
		}
		if m := monthOf(after.LastActivity); m > prev && m >= signup {
			p.HIncrBy(ctx, k.cohort(signup), "active:"+m, 1)
		}
	}
	for _, c := range ch.Changes {
		r.change(ctx, p, k, w.ID, after, c)
	}
	if ev := ch.Event; ev != nil {
		r.event(ctx, p, k, w.ID, after, ev)
	}
}

// change counts one engine decision against its campaign, in the keys k of
// the customer's shard.
func (r *Recorder) change(ctx context.Context, p redis.Pipeliner, k keys, id string, after *lifecycle.Customer, c lifecycle.Change) {
	if !hasSlug(c.Step) {
		// A change without a step of its own ("campaign/", or none) counts
		// against no step: the funnel would show a phantom one.
		c.Step = ""
	}
	switch c.Kind {
	case lifecycle.KindEnrolled:
		p.HIncrBy(ctx, k.campaign(c.Campaign), "enrolled", 1)
		if c.Group == lifecycle.GroupControl {
			p.HIncrBy(ctx, k.campaign(c.Campaign), controlEnrolled, 1)
		}
	case lifecycle.KindGoal:
		p.HIncrBy(ctx, k.campaign(c.Campaign), "goal_reached", 1)
		if c.Group == lifecycle.GroupControl {
			p.HIncrBy(ctx, k.campaign(c.Campaign), controlGoal, 1)
		}
		if enr := after.Enrollments[c.Campaign]; enr != nil && enr.Number == c.Enrollment {
			secs := c.At.Sub(enr.Started).Seconds()
			p.ZAdd(ctx, k.goal(c.Campaign), redis.Z{Score: secs, Member: id + ":" + strconv.Itoa(c.Enrollment)})
			// The goal counts for the variant the customer was given of
			// each step with variants it passed, as "given" counted it.
			for _, slug := range sortedKeys(enr.AB) {
				if givenVariant(enr, slug) {
					p.HIncrBy(ctx, k.campaign(c.Campaign), variantField(c.Campaign+"/"+slug, enr.AB[slug], "goal_reached"), 1)
				}
			}
		}
	case lifecycle.KindSent:
		if c.Step != "" {
			p.HIncrBy(ctx, k.campaign(c.Campaign), c.Step+"|sent", 1)
			if c.Variant != "" {
				p.HIncrBy(ctx, k.campaign(c.Campaign), variantField(c.Step, c.Variant, "sent"), 1)
				p.HIncrBy(ctx, k.campaign(c.Campaign), variantField(c.Step, c.Variant, "given"), 1)
			}
		}
	case lifecycle.KindSkipped:
		if c.Step != "" && c.Variant != "" && !isEdit(c.Reason) {
			// Given the variant but not sent it: a send of it that failed
			// for good, or a condition false when the send was retried.
			p.HIncrBy(ctx, k.campaign(c.Campaign), variantField(c.Step, c.Variant, "given"), 1)
		}
		switch {
		case c.Step == "":
		case c.Outcome.Failed():
			p.HIncrBy(ctx, k.campaign(c.Campaign), c.Step+"|failed", 1)
		case isEdit(c.Reason):
			p.HIncrBy(ctx, k.campaign(c.Campaign), c.Step+"|edited", 1)
		}
	case lifecycle.KindExited:
		switch {
		case c.Outcome == lifecycle.OutcomeBounced && c.Step != "":
			p.HIncrBy(ctx, k.campaign(c.Campaign), c.Step+"|bounced", 1)
		case isEdit(c.Reason):
			p.HIncrBy(ctx, k.campaign(c.Campaign), "ended_by_edit", 1)
		}
	case lifecycle.KindCompleted:
		if isEdit(c.Reason) {
			p.HIncrBy(ctx, k.campaign(c.Campaign), "ended_by_edit", 1)
		}
	}
}

// hasSlug reports whether step is "campaign/slug" with both parts.
func hasSlug(step string) bool {
	camp, slug, ok := strings.Cut(step, "/")
	return ok && camp != "" && slug != ""
}

// isEdit tells a change the engine made to follow an edit of the campaign.
func isEdit(reason string) bool {
	return strings.HasPrefix(reason, lifecycle.EditedCause)
}

// event counts the events the report follows: clicks, unsubscribes, NPS
// answers and orders, in the keys k of the customer's shard.
func (r *Recorder) event(ctx context.Context, p redis.Pipeliner, k keys, id string, after *lifecycle.Customer, ev *lifecycle.Event) {
	switch ev.Name {
	case eventLinkClicked:
		camp, step := str(ev.Data["campaign"]), str(ev.Data["step"])
		if camp != "" && step != "" {
			p.HIncrBy(ctx, k.campaign(camp), step+"|clicked", 1)
			if v := stepVariant(after.Enrollments[camp], camp, step); v != "" {
				p.HIncrBy(ctx, k.campaign(camp), variantField(step, v, "clicked"), 1)
			}
		}
	case eventBounced, eventSoftBounced, eventComplained:
		camp, step := str(ev.Data["campaign"]), str(ev.Data["step"])
		if camp != "" && hasSlug(step) {
			p.HIncrBy(ctx, k.campaign(camp), step+"|"+deliverabilityField[ev.Name], 1)
		}
	case eventUnsubscribed:
		if enr := lastSentEnrollment(after); enr != nil {
			camp, step := enr.Campaign, enr.Campaign+"/"+enr.Passed[len(enr.Passed)-1]
			p.HIncrBy(ctx, k.campaign(camp), step+"|unsubscribed", 1)
			if v := stepVariant(enr, camp, step); v != "" {
				p.HIncrBy(ctx, k.campaign(camp), variantField(step, v, "unsubscribed"), 1)
			}
		}
	case eventNPSSubmitted:
		if _, ok := ev.Data["comment"]; !ok { // a comment repeats an answer already counted
			r.npsAnswer(ctx, p, k, id, after, ev)
		}
	}
	if r.ordersEvent != "" && ev.Name == r.ordersEvent {
		if n := after.Counters[r.ordersCounter]; n > 0 {
			p.HIncrBy(ctx, k.orders(), strconv.Itoa(n), 1)
		}
	}
}

// deliverabilityField is the step counter of each bounce.Applier event.
var deliverabilityField = map[string]string{eventBounced: "bounced", eventSoftBounced: "soft_bounced", eventComplained: "complained"}

// NPSAnswerTTL is how long the report remembers a customer's answer to a
// survey email, so that a changed answer replaces it: longer than an NPS link
// in an email stays valid (90 days). A change after it counts as a new answer.
const NPSAnswerTTL = 400 * 24 * time.Hour

// npsAnswerScript counts one NPS answer of a person to one survey email. It
// runs inside the customer write's MULTI/EXEC, so it sees the answer stored by
// the writes before it and no other write comes between:
//
//	KEYS[1]  the answer key: "at|week|field" of the answer counted now, if any
//	KEYS[2]  the NPS hash of the customer's shard: "week|field" -> people
//	ARGV     at (unix ms), week, field, TTL (s)
//
// A first answer adds 1 to its week's field. A later one moves the person: -1
// from the stored answer's week and field, +1 to its own. An answer older than
// the stored one (an event applied late) changes nothing, nor does one equal
// to it. The stored answer's week may be any week, so the weeks are fields of
// one hash rather than a key each: the script touches only the two keys it
// declares, both in the customer's shard, as Redis Cluster requires.
const npsAnswerScript = `
local answer = ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3]
local prev = redis.call('GET', KEYS[1])
if prev then
  local at, week, field = string.match(prev, '^(%d+)|([^|]+)|(%a+)$')
  if at then
    if tonumber(at) > tonumber(ARGV[1]) then
      return 0
    end
    if week == ARGV[2] and field == ARGV[3] then
      redis.call('SET', KEYS[1], answer, 'EX', ARGV[4])
      return 0
    end
    redis.call('HINCRBY', KEYS[2], week .. '|' .. field, -1)
  end
end
redis.call('HINCRBY', KEYS[2], ARGV[2] .. '|' .. ARGV[3], 1)
redis.call('SET', KEYS[1], answer, 'EX', ARGV[4])
return 1
`

// npsAnswer counts an NPS answer once per person and survey email, in the
// keys k of the customer's shard: the customer, the campaign of the survey and
// the enrollment whose email asked (the event's "enrollment", else the
// customer's latest enrollment in the campaign). An answer without a campaign
// cannot be told apart from others and counts on its own.
func (r *Recorder) npsAnswer(ctx context.Context, p redis.Pipeliner, k keys, id string, after *lifecycle.Customer, ev *lifecycle.Event) {
	f := npsField(ev.Data)
	if f == "" {
		return
	}
	week := weekOf(ev.At)
	camp := str(ev.Data["campaign"])
	if camp == "" {
		p.HIncrBy(ctx, k.nps(), npsWeekField(week, f), 1)
		return
	}
	en, _ := number(ev.Data["enrollment"])
	n := int(en)
	if e := after.Enrollments[camp]; n <= 0 && e != nil {
		n = e.Number
	}
	p.Eval(ctx, npsAnswerScript, []string{k.npsAnswer(id, camp, n), k.nps()},
		ev.At.UnixMilli(), week, f, int64(NPSAnswerTTL/time.Second))
}

// lastSentEnrollment is where an unsubscribe is attributed: its last step
// passed, in the enrollment that sent the customer's latest email (the one
// whose last step is latest, not after LastSent). Nil when nothing was ever
// sent.
func lastSentEnrollment(c *lifecycle.Customer) *lifecycle.Enrollment {
	if c.LastSent.IsZero() {
		return nil
	}
	var best *lifecycle.Enrollment
	for _, id := range sortedKeys(c.Enrollments) {
		e := c.Enrollments[id]
		if len(e.Passed) == 0 || e.Last.After(c.LastSent) {
			continue
		}
		if best == nil || e.Last.After(best.Last) {
			best = e
		}
	}
	return best
}

// The campaign hash's fields of a holdout's control group: its enrollments
// and goals reached. The treatment group is the rest of "enrolled" and
// "goal_reached". They hold no "|", so no step is read from them.
const (
	controlEnrolled = "control:enrolled"
	controlGoal     = "control:goal_reached"
)

// variantField is the campaign hash's field counting what (given, sent,
// clicked, unsubscribed, goal_reached) for variant v of step:
// "onboarding/welcome|b|sent".
func variantField(step, v, what string) string { return step + "|" + v + "|" + what }

// givenVariant reports whether enr passed the step slug with an A/B variant
// recorded (sent it, or failed to for good) rather than skipping it for an
// edit: the customers "given" counts, those whose goal counts for the variant.
func givenVariant(enr *lifecycle.Enrollment, slug string) bool {
	if enr.AB[slug] == "" || !slices.Contains(enr.Passed, slug) {
		return false
	}
	return !slices.ContainsFunc(enr.Edits, func(e lifecycle.Edit) bool { return e.Step == slug })
}

// stepVariant is the A/B variant enr gave the customer of step
// ("campaign/slug") of campaign camp, "" when the step has no variants or
// enr did not pass it.
func stepVariant(enr *lifecycle.Enrollment, camp, step string) string {
	slug, ok := strings.CutPrefix(step, camp+"/")
	if enr == nil || !ok || !givenVariant(enr, slug) {
		return ""
	}
	return enr.AB[slug]
}

// npsField is the counter field of an NPS answer, from its category or else
// its score.
func npsField(data map[string]any) string {
	switch str(data["category"]) {
	case "promoter":
		return "promoters"
	case "passive":
		return "passives"
	case "detractor":
		return "detractors"
	}
	score, ok := number(data["score"])
	if !ok {
		return ""
	}
	switch {
	case score >= 9:
		return "promoters"
	case score >= 7:
		return "passives"
	default:
		return "detractors"
	}
}

// number is an event data number: an int as sent, a float64 once it has been
// through JSON.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// keys names the report's Redis keys in one shard; see the package
// documentation. Its prefix is the shard's: store.ShardPrefix of the store's
// prefix.
type keys struct{ prefix string }

// customerKeys are the keys the writes of customer id count in: those of its
// shard, whose hash tag its own keys carry.
func customerKeys(prefix, id string) keys { return keys{store.CustomerPrefix(prefix, id)} }

// shardKeys are the keys of shard i (0 to store.Shards-1).
func shardKeys(prefix string, i int) keys { return keys{store.ShardPrefix(prefix, i)} }

func (k keys) stages() string            { return k.prefix + "report:stages" }
func (k keys) flows(day string) string   { return k.prefix + "report:flows:" + day }
func (k keys) campaign(id string) string { return k.prefix + "report:campaign:" + id }
func (k keys) goal(id string) string     { return k.prefix + "report:goal:" + id }
func (k keys) nps() string               { return k.prefix + "report:nps" }
func (k keys) orders() string            { return k.prefix + "report:orders" }

// npsAnswer is the key of a customer's answer to the survey sent by enrollment
// n of a campaign. It is named by a hash: no customer ID outlives an erasure
// in the report's keys.
func (k keys) npsAnswer(customer, campaign string, n int) string {
	sum := sha256.Sum256([]byte(customer + "\x00" + campaign + "\x00" + strconv.Itoa(n)))
	return k.prefix + "report:nps-answer:" + hex.EncodeToString(sum[:16])
}
func (k keys) cohort(month string) string {
	return k.prefix + "report:cohort:" + month
}
func (k keys) months() string { return k.prefix + "report:months" }

// npsWeekField is the field of the NPS hash that counts the people whose
// answer in week ("2026-W09") is in field (promoters, passives, detractors).
func npsWeekField(week, field string) string { return week + "|" + field }

func cmpPrefix(p string) string {
	if p == "" {
		return store.DefaultPrefix
	}
	return p
}

// Days, weeks and months are UTC.
func dayOf(t time.Time) string   { return t.UTC().Format(time.DateOnly) }
func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }
func weekOf(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
