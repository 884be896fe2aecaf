package render

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/lifecycle"
)

// TestNewDataFillsWhatTheCustomerLacksFromTheLifecycle checks the one function
// that builds what a step is executed with for a customer: the customer's own
// locale and time zone when they have them, the lifecycle's otherwise (an
// unknown zone too, as the engine schedules them), the lifecycle's sender with
// the From address given.
func TestNewDataFillsWhatTheCustomerLacksFromTheLifecycle(t *testing.T) {
	set := newSet(t, step("---\nsubject: Hi\n---\nHello."))
	amsterdam, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	set.Lifecycle.Timezone = amsterdam
	eng := lifecycle.New(set)
	links := NewLinks("https://r.example/u/1", "https://r.example/p/1", nil, nil)
	sender := Sender{Name: "Acme Projects", Email: "news@acme.test", Address: "Keizersgracht 123, 1015 CJ Amsterdam"}
	for _, tc := range []struct {
		name string
		c    *lifecycle.Customer
		want Customer
	}{
		{"own locale and zone",
			&lifecycle.Customer{ID: "c1", Email: "ada@example.com", FirstName: "Ada", Name: "Ada Lovelace", Locale: "nl", Timezone: "America/New_York", Stage: "onboarding", Attributes: map[string]any{"plan": "team"}, Counters: map[string]int{"orders": 2, "invites": 1}},
			Customer{ID: "c1", Email: "ada@example.com", FirstName: "Ada", Name: "Ada Lovelace", Locale: "nl", Timezone: "America/New_York", Stage: "onboarding", Attributes: Attributes{"plan": "team"}, Counters: Counters{"orders": 2, "projects": 0}}},
		{"lifecycle defaults",
			&lifecycle.Customer{ID: "c2", Email: "bo@example.com", Stage: "lead"},
			Customer{ID: "c2", Email: "bo@example.com", Locale: "en", Timezone: "Europe/Amsterdam", Stage: "lead", Counters: Counters{"orders": 0, "projects": 0}}},
		{"unknown zone",
			&lifecycle.Customer{ID: "c3", Email: "cy@example.com", Timezone: "Mars/Olympus_Mons"},
			Customer{ID: "c3", Email: "cy@example.com", Locale: "en", Timezone: "Europe/Amsterdam", Counters: Counters{"orders": 0, "projects": 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewData(eng, tc.c, links, "news@acme.test")
			want := &Data{Customer: tc.want, Links: links, Sender: sender}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(Customer{})); diff != "" {
				t.Errorf("NewData (-want +got):\n%s", diff)
			}
		})
	}
}
