package render

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retainmail/retain/campaign"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testFile is one step file: path and full text (front matter and body).
type testFile struct {
	path string
	text string
}

// parseStepFile reads front matter the way campaign.Load reports it: subject,
// preheader and layout values with the position of their first character, and the body
// with the line it starts on. Just enough YAML for tests.
func parseStepFile(t testing.TB, f testFile) *campaign.Content {
	t.Helper()
	ct := &campaign.Content{Path: f.path, Layout: campaign.DefaultLayout, SubjectPos: campaign.Pos{Line: 1, Col: 1}}
	lines := strings.SplitAfter(f.text, "\n")
	if strings.TrimSpace(lines[0]) != "---" {
		t.Fatalf("%s: no front matter", f.path)
	}
	for i := 1; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\n")
		if line == "---" {
			ct.Body = strings.Join(lines[i+1:], "")
			ct.BodyLine = i + 2
			return ct
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		pos := campaign.Pos{Line: i + 1, Col: len(key) + 3}
		if len(val) >= 2 && (val[0] == '\'' || val[0] == '"') {
			val = val[1 : len(val)-1]
			pos.Col++
		}
		switch key {
		case "subject":
			ct.Subject, ct.SubjectPos = val, pos
		case "preheader":
			ct.Preheader, ct.PreheaderPos = val, pos
		case "layout":
			ct.Layout, ct.LayoutPos = val, pos
		}
	}
	t.Fatalf("%s: front matter not closed", f.path)
	return nil
}

// testLifecycle declares what the test steps may use.
func testLifecycle() *campaign.Lifecycle {
	return &campaign.Lifecycle{
		Attributes: map[string]campaign.AttrType{
			"plan":       campaign.AttrString,
			"company":    campaign.AttrString,
			"seats":      campaign.AttrInt,
			"renews_at":  campaign.AttrTime,
			"trial":      campaign.AttrBool,
			"avatar_url": campaign.AttrString,
			"balance":    campaign.AttrFloat,
		},
		Counters: map[string]string{"orders": "order_placed", "projects": "project_created"},
		Locale:   "en",
		Sender:   campaign.Sender{Name: "Acme Projects", Address: "Keizersgracht 123, 1015 CJ Amsterdam"},
		Links: map[string]string{
			"Dashboard": "https://app.example.com/",
			"Help":      "https://help.example.com/",
		},
	}
}

// newSet builds a campaign set with one campaign, "onboarding", holding the given step
// files; a file named NN-slug.LOCALE.md is a variant of NN-slug.md.
func newSet(t testing.TB, files ...testFile) *campaign.Set {
	t.Helper()
	camp := &campaign.Campaign{ID: "onboarding", Name: "Onboarding", Topic: "education", Path: "campaigns/onboarding/campaign.md"}
	steps := map[string]*campaign.Step{}
	for _, f := range files {
		ct := parseStepFile(t, f)
		base := strings.TrimSuffix(filepath.Base(f.path), ".md")
		name, locale, _ := strings.Cut(base, ".")
		slug := name
		if _, rest, ok := strings.Cut(name, "-"); ok {
			slug = rest
		}
		st := steps[slug]
		if st == nil {
			st = &campaign.Step{ID: camp.ID + "/" + slug, Slug: slug, Campaign: camp, Variants: map[string]*campaign.Content{}}
			steps[slug] = st
			camp.Steps = append(camp.Steps, st)
		}
		if locale == "" {
			st.Content = ct
		} else {
			ct.Locale = locale
			st.Variants[locale] = ct
		}
	}
	return &campaign.Set{Dir: "campaigns", Lifecycle: testLifecycle(), Campaigns: []*campaign.Campaign{camp}}
}

// step is a one-file test step at campaigns/onboarding/01-welcome.md.
func step(text string) testFile {
	return testFile{path: "campaigns/onboarding/01-welcome.md", text: text}
}

// compile compiles files with the real layouts in ../templates and fails on problems.
func compile(t testing.TB, set *campaign.Set) *Renderer {
	t.Helper()
	r, err := Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

// readOrUpdate compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path, got string) string {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	return string(want)
}
