package render

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
)

// abFiles is a campaign whose step welcome has a Dutch file and A/B variant b
// (split 50) in English and Dutch.
func abFiles() fstest.MapFS {
	return fstest.MapFS{
		"lifecycle.yaml":                {Data: []byte("stages: [lead, onboarding]\ntransitions:\n  - {on: signed_up, to: onboarding}\nlinks: {Dashboard: \"https://app.example.com/\"}\n")},
		"onboarding/campaign.md":        {Data: []byte("---\nname: Onboarding\ntrigger: {stage: onboarding}\n---\n")},
		"onboarding/01-welcome.md":      {Data: []byte("---\nsubject: Welcome, {{ .Customer.FirstName }}\nlinks: {Guide: \"https://example.com/guide\"}\n---\nRead [the guide]({{ .Links.Guide }}).\n\n{{ template \"signature\" . }}\n")},
		"onboarding/01-welcome.nl.md":   {Data: []byte("---\nsubject: Welkom, {{ .Customer.FirstName }}\n---\nLees [de gids]({{ .Links.Guide }}).\n")},
		"onboarding/01-welcome.b.md":    {Data: []byte("---\nsubject: Ten minutes to start, {{ .Customer.FirstName }}\nsplit: 50\n---\nOpen [your dashboard]({{ .Links.Dashboard }}) or [the guide]({{ .Links.Guide }}).\n\n{{ template \"signature\" . }}\n")},
		"onboarding/01-welcome.b.nl.md": {Data: []byte("---\nsubject: Tien minuten, {{ .Customer.FirstName }}\n---\nOpen [je dashboard]({{ .Links.Dashboard }}).\n\n{{ template \"signature\" . }}\n")},
	}
}

// TestABVariantsAreCheckedAsLocaleVariantsAre checks that the templates of A/B
// variant files and their locale files meet the same checks as a step's own:
// fields, links (the step's own among them) and partials.
func TestABVariantsAreCheckedAsLocaleVariantsAre(t *testing.T) {
	fsys := abFiles()
	fsys["onboarding/01-welcome.b.md"].Data = []byte("---\nsubject: Hi {{ .Customer.Frist }}\nsplit: 50\n---\nOpen [it]({{ .Links.Dashbord }}) or [the guide]({{ .Links.Guide }}).\n")
	fsys["onboarding/01-welcome.b.nl.md"].Data = []byte("---\nsubject: Hoi\n---\n{{ template \"signatuur\" . }}\n")
	want := []string{
		`campaigns/onboarding/01-welcome.b.md:2:25: unknown field "Frist" in .Customer (did you mean "FirstName"?)`,
		`campaigns/onboarding/01-welcome.b.md:5:20: unknown link "Dashbord" in .Links (did you mean "Dashboard"?)`,
		`campaigns/onboarding/01-welcome.b.nl.md:4:13: unknown partial "signatuur" (did you mean "signature"?)`,
	}
	if diff := cmp.Diff(want, lint(t, fsys)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestRenderVariantRendersTheVariantInTheCustomersLocale checks that
// RenderVariant picks the variant's file in the customer's locale, the step's
// own file for "a", "" and a variant it does not have, and that RenderFile
// previews a variant file by its path.
func TestRenderVariantRendersTheVariantInTheCustomersLocale(t *testing.T) {
	set, err := campaign.LoadFS(abFiles(), "campaigns")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ variant, locale, subject string }{
		{"", "en", "Welcome, Ada"},
		{campaign.VariantA, "nl", "Welkom, Ada"},
		{"b", "en", "Ten minutes to start, Ada"},
		{"b", "nl-BE", "Tien minuten, Ada"},
		{"x", "nl", "Welkom, Ada"},
	} {
		d := SampleData(set, "https://example.com")
		d.Customer.FirstName, d.Customer.Locale = "Ada", tc.locale
		e, err := r.RenderVariant("onboarding/welcome", tc.variant, d, nil)
		if err != nil {
			t.Fatalf("RenderVariant(%q, %q): %v", tc.variant, tc.locale, err)
		}
		if e.Subject != tc.subject {
			t.Errorf("RenderVariant(%q, %q) subject = %q, want %q", tc.variant, tc.locale, e.Subject, tc.subject)
		}
	}
	d := SampleData(set, "https://example.com")
	d.Customer.FirstName = "Ada"
	e, err := r.RenderFile("campaigns/onboarding/01-welcome.b.md", d)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("Ten minutes to start, Ada", e.Subject); diff != "" || !strings.Contains(e.HTML, "https://example.com/guide") {
		t.Errorf("RenderFile of the variant: subject %q, HTML without the step's link:\n%s", e.Subject, e.HTML)
	}
	if _, err := r.RenderVariant("onboarding/nope", "b", d, nil); !errors.Is(err, ErrUnknownStep) {
		t.Errorf("unknown step: %v", err)
	}
}
