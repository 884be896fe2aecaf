package lifecycle

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// conditionEngine is the engine of testdata/conditions.txtar.
func conditionEngine(t *testing.T) *Engine {
	t.Helper()
	return engineOf(t, "testdata/conditions.txtar")
}

// TestFailingConditionsCountAsFalseAndTheRestOfTheEventApplies applies an
// order_placed whose total is missing, or a string, to a customer: the goal
// where, the first transition's where, one campaign's trigger where and another
// one's audience all fail while running. Each counts as false and is reported
// as a condition_error change; the counter, the second transition and the
// campaign without a condition still apply, and Apply returns no error.
func TestFailingConditionsCountAsFalseAndTheRestOfTheEventApplies(t *testing.T) {
	for name, data := range map[string]map[string]any{
		"missing total": {"sku": "T-100"},
		"string total":  {"total": "lots"},
	} {
		t.Run(name, func(t *testing.T) {
			e := conditionEngine(t)
			start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			c, _, err := e.NewCustomer("c1", "ada@example.com", "", start)
			if err != nil {
				t.Fatal(err)
			}
			c.Attributes = map[string]any{"code": "not a number"}
			chs, err := e.Apply(c, Event{Name: "order_placed", At: start.Add(time.Hour), Data: data})
			if err != nil {
				t.Fatalf("Apply = %v, want no error: a failing condition counts as false", err)
			}
			if c.Counters["orders"] != 1 {
				t.Errorf("orders = %d, want 1", c.Counters["orders"])
			}
			if c.Stage != "active" {
				t.Errorf("stage = %s, want active (the vip rule's where failed; the next rule applies)", c.Stage)
			}
			if enr := c.Enrollments["welcome"]; enr == nil || enr.Status != Active {
				t.Errorf("welcome = %+v, want still active (its goal's where failed)", enr)
			}
			if enr := c.Enrollments["any-order"]; enr == nil || enr.Status != Active {
				t.Errorf("any-order = %+v, want enrolled", enr)
			}
			for _, id := range []string{"big-order", "coded"} {
				if enr := c.Enrollments[id]; enr != nil {
					t.Errorf("%s = %+v, want no enrollment (its condition failed)", id, enr)
				}
			}
			var got []string
			for _, ch := range chs {
				if ch.Kind != KindConditionError {
					continue
				}
				got = append(got, ch.Campaign)
				if !strings.Contains(ch.Reason, "campaign.md:") && !strings.Contains(ch.Reason, "lifecycle.yaml:") {
					t.Errorf("reason %q does not name the file", ch.Reason)
				}
				if !ch.At.Equal(start.Add(time.Hour)) {
					t.Errorf("condition error at %v, want the event's time", ch.At)
				}
			}
			slices.Sort(got)
			if want := []string{"", "big-order", "coded", "welcome"}; !slices.Equal(got, want) {
				t.Errorf("condition errors for %q, want %q (\"\" is lifecycle.yaml)\nchanges: %+v", got, want, chs)
			}
			for _, ch := range chs {
				if ch.Kind == KindConditionError && ch.Campaign == "big-order" && !strings.Contains(ch.Reason, "big-order/campaign.md:3:") {
					t.Errorf("big-order's condition error = %q, want its file and line", ch.Reason)
				}
			}
		})
	}
}
