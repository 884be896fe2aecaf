package campaign

import (
	"testing"

	"golang.org/x/tools/txtar"
)

// TestLoadABVariantsJoinTheirStep checks that NN-name.X.md files become the
// step's A/B variants, sorted by name, with their split and locale files, and
// that 01-welcome.nl.md stays a locale variant.
func TestLoadABVariantsJoinTheirStep(t *testing.T) {
	ar := txtar.Parse([]byte(`
-- lifecycle.yaml --
stages: [lead, onboarding]
transitions:
  - {on: signed_up, to: onboarding}
-- onboarding/campaign.md --
---
name: Onboarding
trigger: {stage: onboarding}
---
-- onboarding/01-welcome.md --
---
subject: Welcome
delay: 1d
---
-- onboarding/01-welcome.nl.md --
---
subject: Welkom
---
-- onboarding/01-welcome.c.md --
---
subject: Hello
split: 20
---
-- onboarding/01-welcome.c.nl.md --
---
subject: Hallo
---
-- onboarding/01-welcome.b.md --
---
subject: Welcome aboard
split: 30
layout: plain
---
Body b.
-- onboarding/01-welcome.b.nl.md --
---
subject: Welkom aan boord
---
`))
	set, probs := loadArchive(t, ar)
	if len(probs) > 0 {
		t.Fatalf("problems: %v", probs)
	}
	st := set.Step("onboarding/welcome")
	if st == nil || len(set.Campaign("onboarding").Steps) != 1 {
		t.Fatalf("want one step onboarding/welcome, got %v", set.Campaign("onboarding").Steps)
	}
	if len(st.Variants) != 1 || st.Variants["nl"] == nil {
		t.Errorf("locale variants = %v, want nl", st.Variants)
	}
	if len(st.AB) != 2 || st.AB[0].Name != "b" || st.AB[1].Name != "c" {
		t.Fatalf("AB = %v, want b and c", st.AB)
	}
	b, c := st.AB[0], st.AB[1]
	if b.Split != 30 || b.SplitPos != (Pos{3, 8}) || c.Split != 20 {
		t.Errorf("splits b %d at %v, c %d; want 30 at 3:8, 20", b.Split, b.SplitPos, c.Split)
	}
	if b.Content.Subject != "Welcome aboard" || b.Content.Layout != "plain" || b.Content.Body != "Body b.\n" {
		t.Errorf("variant b content = %+v", b.Content)
	}
	for _, tc := range []struct{ variant, locale, subject string }{
		{"", "", "Welcome"},
		{VariantA, "nl", "Welkom"},
		{"b", "", "Welcome aboard"},
		{"b", "nl-BE", "Welkom aan boord"},
		{"c", "nl", "Hallo"},
		{"c", "de", "Hello"},
		{"z", "nl", "Welkom"}, // a variant the step no longer has: its own content
	} {
		if got := st.ContentForVariant(tc.variant, tc.locale).Subject; got != tc.subject {
			t.Errorf("ContentForVariant(%q, %q) = %q, want %q", tc.variant, tc.locale, got, tc.subject)
		}
	}
}
