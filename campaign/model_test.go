package campaign

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
)

func loadValid(t *testing.T) *Set {
	t.Helper()
	ar, err := txtar.ParseFile("testdata/valid.txtar")
	if err != nil {
		t.Fatal(err)
	}
	set, probs := loadArchive(t, ar)
	if len(probs) > 0 {
		t.Fatalf("valid campaigns have problems:\n%v", probs)
	}
	return set
}

func TestLoadBuildsTheModel(t *testing.T) {
	set := loadValid(t)
	l := set.Lifecycle
	if l.Timezone.String() != "Europe/Amsterdam" || l.Locale != "en" {
		t.Errorf("timezone, locale = %v, %q", l.Timezone, l.Locale)
	}
	if diff := cmp.Diff([]string{"lead", "onboarding", "active", "at_risk"}, l.StageNames()); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if len(l.Transitions) != 4 || l.Transitions[1].After != 30*24*time.Hour || l.Transitions[2].Inactive != 21*24*time.Hour || l.Transitions[3].On != ActivityEvent {
		t.Errorf("transitions = %+v", l.Transitions)
	}
	if l.Attributes["seats"] != AttrInt || l.Counters["orders"] != "order_placed" || l.Links["Dashboard"] != "https://app.example.com/" || l.Sender.Name != "Acme" {
		t.Errorf("declarations = %v %v %v %+v", l.Attributes, l.Counters, l.Links, l.Sender)
	}

	if got := len(set.Campaigns); got != 2 {
		t.Fatalf("campaigns = %d, want 2", got)
	}
	c := set.Campaign("onboarding")
	if c.Name != "Onboarding" || c.Trigger.Stage != "onboarding" || c.Topic != "onboarding" || c.Description != "The first weeks." {
		t.Errorf("campaign = %+v", c)
	}
	if c.Goal.Event != "project_created" || !c.Exit.StageLeft || c.Exit.Events[0] != "onboarding_completed" {
		t.Errorf("goal, exit = %+v, %+v", c.Goal, c.Exit)
	}
	if c.Reentry != (Reentry{Mode: ReentryAfter, After: 90 * 24 * time.Hour}) {
		t.Errorf("reentry = %+v", c.Reentry)
	}
	wantWindow := Window{Days: [7]bool{false, true, true, true, true, true, false}, Start: 9 * 60, End: 17 * 60}
	if *c.SendWindow != wantWindow {
		t.Errorf("send window = %+v, want %+v", *c.SendWindow, wantWindow)
	}

	// Steps come in file-name order, whatever order the directory lists them in.
	if len(c.Steps) != 2 || c.Steps[0].ID != "onboarding/welcome" || c.Steps[1].ID != "onboarding/first-project" {
		t.Fatalf("steps = %v", c.Steps)
	}
	welcome, first := c.Steps[0], c.Steps[1]
	if welcome.Delay != 0 || welcome.At != nil || welcome.Content.Layout != "plain" || welcome.Content.Preheader != "Start here" {
		t.Errorf("welcome = %+v %+v", welcome, welcome.Content)
	}
	if welcome.Content.Subject != "Welcome, {{ .Customer.FirstName }}" || welcome.Content.BodyLine != 7 || welcome.Content.Body != "\nHello.\n" {
		t.Errorf("welcome content = %+v", welcome.Content)
	}
	if first.Delay != 36*time.Hour || first.At == nil || first.At.String() != "09:30" || first.SkipIf == nil || first.Content.Layout != DefaultLayout {
		t.Errorf("first project = %+v", first)
	}
	if set.Step("orders/thanks") == nil || set.Step("orders/nope") != nil {
		t.Error("Set.Step does not find steps by identity")
	}
}

func TestContentForPicksTheCustomerLocale(t *testing.T) {
	st := loadValid(t).Step("onboarding/welcome")
	for locale, want := range map[string]string{
		"nl": "Welkom", "nl-BE": "Welkom", "nl_NL": "Welkom", "pt-BR": "Bem-vindo",
		"pt": "Welcome, {{ .Customer.FirstName }}", "en": "Welcome, {{ .Customer.FirstName }}", "": "Welcome, {{ .Customer.FirstName }}",
	} {
		if got := st.ContentFor(locale).Subject; got != want {
			t.Errorf("ContentFor(%q).Subject = %q, want %q", locale, got, want)
		}
	}
}

func TestExprEvalUsesCustomerAndEvent(t *testing.T) {
	set := loadValid(t)
	c := set.Campaign("orders")
	customer := map[string]any{"id": "c1", "stage": "active", "plan": "team", "seats": 3, "orders": 1}
	for _, tc := range []struct {
		total any
		want  bool
	}{{25, true}, {19.5, false}} {
		env := map[string]any{"customer": customer, "now": time.Now(), "event": map[string]any{"name": "order_placed", "data": map[string]any{"total": tc.total}}}
		got, err := c.Trigger.Where.Eval(env)
		if err != nil || got != tc.want {
			t.Errorf("trigger where with total %v = %v, %v; want %v", tc.total, got, err, tc.want)
		}
	}
	skip := set.Step("onboarding/first-project").SkipIf
	if got, err := skip.Eval(map[string]any{"customer": map[string]any{"seats": 12}}); err != nil || !got {
		t.Errorf("skip_if seats 12 = %v, %v; want true", got, err)
	}
	audience := set.Campaign("onboarding").Audience
	if got, err := audience.Eval(map[string]any{"customer": map[string]any{"plan": "free"}}); err != nil || got {
		t.Errorf("audience plan free = %v, %v; want false", got, err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "30m": 30 * time.Minute, "36h": 36 * time.Hour, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParseDuration(FormatDuration(got)); err != nil || back != got {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", got, back, err)
		}
	}
	for _, in := range []string{"", "2", "d", "2 days", "1.5d", "-1d", "3y"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded, want an error", in)
		}
	}
}

func TestCoerceAttribute(t *testing.T) {
	l := loadValid(t).Lifecycle
	l.Attributes["trial_ends"] = AttrTime
	l.Attributes["vip"] = AttrBool
	for _, tc := range []struct {
		name string
		in   any
		want any
		err  string
	}{
		{"seats", 3.0, 3, ""},
		{"seats", "12", 12, ""},
		{"seats", 2.5, nil, `attribute "seats" must be a whole number, got 2.5 (float64)`},
		{"plan", "team", "team", ""},
		{"vip", "true", true, ""},
		{"trial_ends", "2026-03-14", time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), ""},
		{"trial_ends", "soon", nil, `attribute "trial_ends" must be a time such as 2026-03-14T09:30:00Z or 2026-03-14, got "soon"`},
		{"plna", "x", nil, `attribute "plna" is not declared in lifecycle.yaml (did you mean "plan"?)`},
	} {
		got, err := l.CoerceAttribute(tc.name, tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("CoerceAttribute(%q, %v) error = %v, want %q", tc.name, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CoerceAttribute(%q, %v) = %v, %v; want %v", tc.name, tc.in, got, err, tc.want)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	known := []string{"ID", "Email", "FirstName", "Name", "Locale", "Timezone", "Stage", "Attributes"}
	for word, want := range map[string]string{
		"Frist": ` (did you mean "FirstName"?)`, "Emial": ` (did you mean "Email"?)`, "Nmae": ` (did you mean "Name"?)`,
		"Attr": ` (did you mean "Attributes"?)`, "Locale": "", "Zebra": "", "Stages": ` (did you mean "Stage"?)`,
	} {
		if got := DidYouMean(word, known); got != want {
			t.Errorf("DidYouMean(%q) = %q, want %q", word, got, want)
		}
	}
}
