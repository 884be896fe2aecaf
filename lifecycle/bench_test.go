package lifecycle

import (
	"testing"
	"time"
)

// BenchmarkApplyEvent measures one event decision: time rules up to the event,
// counters, goals, exits, the transition and event-triggered enrollments. Each
// iteration applies an order to a customer with three live enrollments.
func BenchmarkApplyEvent(b *testing.B) {
	e := engine(b)
	start := at(ams, "2026-03-02 14:10")
	c, _, _ := e.NewCustomer("c1", "ada@example.com", "active", start)
	e.Apply(c, Event{Name: "order_placed", At: start})
	c.Attributes = map[string]any{"plan": "team"}
	ev := Event{Name: "logged_in", At: start.Add(time.Hour), Data: map[string]any{"path": "/"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Apply(c, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkDecideSend measures the send-time decision the worker takes per email:
// campaign and step lookup, subscription, audience, window and conditions.
func BenchmarkDecideSend(b *testing.B) {
	e := engine(b)
	start := at(ams, "2026-03-02 14:10")
	c, _, _ := e.NewCustomer("c1", "ada@example.com", "", start)
	c.Attributes = map[string]any{"plan": "team"}
	e.Apply(c, Event{Name: "signed_up", At: start})
	e.Pass(c, "onboarding", start, true, "")
	now := at(ams, "2026-03-05 09:30")
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(c, "onboarding", now); d.Action != Send {
			b.Fatal(d.Action)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkNextWake measures the index key computed after every change.
func BenchmarkNextWake(b *testing.B) {
	e := engine(b)
	c, _, _ := e.NewCustomer("c1", "ada@example.com", "active", at(ams, "2026-03-02 14:10"))
	b.ReportAllocs()
	for b.Loop() {
		if e.NextWake(c).IsZero() {
			b.Fatal("no wake")
		}
	}
}
