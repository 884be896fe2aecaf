package lifecycle

import (
	"fmt"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
)

// env is the expression environment for c at now, with ev for event conditions.
// Declared attributes and counters the customer lacks take their zero value, so
// conditions never compare against nil.
func (e *Engine) env(c *Customer, now time.Time, ev *Event) map[string]any {
	cust := make(map[string]any, len(campaign.CustomerFields)+len(e.lc.Attributes)+len(e.lc.Counters))
	cust["id"], cust["email"], cust["first_name"], cust["name"] = c.ID, c.Email, c.FirstName, c.Name
	cust["locale"], cust["timezone"], cust["stage"] = c.Locale, c.Timezone, c.Stage
	if c.Locale == "" {
		cust["locale"] = e.lc.Locale
	}
	if c.Timezone == "" {
		cust["timezone"] = e.lc.Timezone.String()
	}
	for name, t := range e.lc.Attributes {
		v, ok := c.Attributes[name]
		if !ok {
			v = t.Zero()
		}
		cust[name] = v
	}
	for name := range e.lc.Counters {
		cust[name] = c.Counters[name]
	}
	optedOut := c.OptedOut
	if optedOut == nil {
		optedOut = []string{}
	}
	cust[campaign.OptedOutField] = optedOut
	env := map[string]any{"customer": cust, "now": now}
	if ev != nil {
		data := ev.Data
		if data == nil {
			data = map[string]any{}
		}
		env["event"] = map[string]any{"name": ev.Name, "at": ev.At, "data": data}
	}
	return env
}

// eval evaluates a condition; a missing condition holds. An evaluation error counts
// as false and is kept in ch for the caller.
func (e *Engine) eval(x *campaign.Expr, env map[string]any, ch *changes) bool {
	if x == nil {
		return true
	}
	ok, err := x.Eval(env)
	if err != nil {
		ch.fail(err)
		return false
	}
	return ok
}

// holds evaluates a condition of the rules that events and stage changes run: a
// trigger, goal or transition where, an audience at enrollment. A missing
// condition holds. An evaluation error (event.data.total > 100 on an event
// without a total) counts as false, as it does at send time, and is recorded as a
// KindConditionError change naming campaignID and the condition's place (path,
// what), so one bad condition never stops the rest of an event: its counters,
// goals, stage rules and the other campaigns' triggers still apply. The caller
// logs and counts these changes.
func (e *Engine) holds(x *campaign.Expr, env map[string]any, campaignID, path, what string, at time.Time, ch *changes) bool {
	if x == nil {
		return true
	}
	ok, err := x.Eval(env)
	if err != nil {
		// expr's message goes on to show the expression with a caret: keep
		// its first line, so the reason fits on one log line.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		reason := fmt.Sprintf("%s:%d:%d: %s: %s", path, x.Pos.Line, x.Pos.Col, what, msg)
		ch.add(Change{Kind: KindConditionError, At: at, Campaign: campaignID, Reason: reason})
		return false
	}
	return ok
}

// Matches evaluates condition x (an audience, or a filter compiled with
// campaign.Lifecycle.CompileCondition) for c at now; nil matches everyone.
func (e *Engine) Matches(c *Customer, x *campaign.Expr, now time.Time) (bool, error) {
	if x == nil {
		return true, nil
	}
	return x.Eval(e.env(c, now, nil))
}
