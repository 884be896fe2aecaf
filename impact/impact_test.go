package impact

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

const testLifecycle = `timezone: Europe/Amsterdam
stages: [lead, onboarding, active]
transitions:
  - {on: signed_up, from: [lead], to: onboarding}
  - {after: 30d, from: [onboarding], to: active}
`

// set builds a campaigns folder: onboarding with the given steps ("01-welcome"
// → a step file with delay 1d, or with the front matter after a colon), and a
// tips campaign for active customers that no test edits.
func set(t testing.TB, steps ...string) *campaign.Set {
	t.Helper()
	fsys := fstest.MapFS{
		"lifecycle.yaml":         {Data: []byte(testLifecycle)},
		"onboarding/campaign.md": {Data: []byte("---\nname: Onboarding\ntrigger: {stage: onboarding}\n---\n")},
		"tips/campaign.md":       {Data: []byte("---\nname: Tips\ntrigger: {stage: active}\n---\n")},
		"tips/01-tip.md":         {Data: []byte("---\nsubject: Tip\ndelay: 1d\n---\nTip.\n")},
	}
	for _, s := range steps {
		name, fm, _ := strings.Cut(s, ":")
		if fm == "" {
			fm = "delay: 1d"
		}
		fsys["onboarding/"+name+".md"] = &fstest.MapFile{Data: []byte("---\nsubject: " + name + "\n" + strings.ReplaceAll(fm, ";", "\n") + "\n---\nBody.\n")}
	}
	s, err := campaign.LoadFS(fsys, "campaigns")
	if err != nil {
		var probs campaign.Problems
		errors.As(err, &probs)
		t.Fatalf("test campaigns: %v", probs)
	}
	return s
}

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// customers makes n customers who signed up one hour apart from start, as the
// old campaigns would have kept them at now.
func customers(t testing.TB, a *Analyzer, n int) []*lifecycle.Customer {
	t.Helper()
	var out []*lifecycle.Customer
	for i := range n {
		c, err := a.Replay(&lifecycle.Customer{ID: "c" + string(rune('a'+i)), Email: "c@example.com", Stage: "lead"},
			[]lifecycle.Event{{Name: "signed_up", At: start.Add(time.Duration(i) * time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func run(t testing.TB, old, new *campaign.Set, now time.Time, n int) *Report {
	t.Helper()
	a := NewAnalyzer(old, new, now, 365*24*time.Hour)
	tally := a.NewTally()
	for _, c := range customers(t, a, n) {
		tally.Add(c)
	}
	if err := tally.Err(); err != nil {
		t.Fatal(err)
	}
	return a.Report(tally)
}

func step(r *Report, campaignID, id string) *Step {
	for _, c := range r.Campaigns {
		if c.ID == campaignID {
			for _, s := range c.Steps {
				if s.ID == id {
					return s
				}
			}
		}
	}
	return &Step{}
}

// A step renamed without id: and moved after the step customers wait for is
// sent to them again under its new name: impact counts them as "again".
func TestRenamedStepMovedAheadCountsAsAgain(t *testing.T) {
	old := set(t, "01-welcome:delay: 0", "02-first-project", "03-check-in")
	edited := set(t, "02-first-project", "03-welcome-email:delay: 0", "04-check-in")
	// One day and a half in, every customer had the welcome and waits for
	// the first project.
	r := run(t, old, edited, start.Add(20*time.Hour), 3)
	if got := step(r, "onboarding", "onboarding/welcome-email").Again; got.N != 3 || !cmp.Equal(got.Examples, []string{"ca", "cb", "cc"}) {
		t.Errorf("again = %+v, want the 3 customers", got)
	}
	if r.Again != 3 || !r.Surprising() {
		t.Errorf("report: again %d, surprising %v; want 3, true", r.Again, r.Surprising())
	}
}

// Removing a step customers have not reached loses it for them; a new later
// delay moves their next send.
func TestRemovedStepIsLostAndLongerDelayMovesTheNextSend(t *testing.T) {
	old := set(t, "01-welcome:delay: 0", "02-first-project", "03-check-in")
	edited := set(t, "01-welcome:delay: 0", "02-first-project:delay: 3d")
	r := run(t, old, edited, start.Add(20*time.Hour), 2)
	if got := step(r, "onboarding", "onboarding/check-in").Lost; got.N != 2 {
		t.Errorf("check-in lost by %d customers, want 2", got.N)
	}
	var onboarding *Campaign
	for _, c := range r.Campaigns {
		if c.ID == "onboarding" {
			onboarding = c
		}
	}
	if onboarding == nil {
		t.Fatal("no onboarding in the report")
	}
	if onboarding.InFlight != 2 || onboarding.Moves.Later.N != 2 || onboarding.Moves.Buckets != [4]int{0, 0, 2, 0} {
		t.Errorf("onboarding: in flight %d, moves %+v; want 2 in flight, both 2 days later", onboarding.InFlight, onboarding.Moves)
	}
	if r.Lost != 2 || r.Again != 0 {
		t.Errorf("report: lost %d, again %d; want 2, 0", r.Lost, r.Again)
	}
}

// No edit, nothing to report; customers in an unedited campaign are not run.
func TestSameCampaignsReportNothing(t *testing.T) {
	s := set(t, "01-welcome:delay: 0", "02-first-project")
	r := run(t, s, s, start.Add(40*24*time.Hour), 3)
	if r.Surprising() || len(r.Edits) != 0 {
		t.Errorf("report of no edit: %+v", r)
	}
	for _, c := range r.Campaigns {
		if len(c.Steps) > 0 || c.Completes.N+c.Exits.N+c.Moves.Later.N+c.Moves.Earlier.N > 0 {
			t.Errorf("campaign %s reports changes without an edit: %+v", c.ID, c)
		}
	}
}

// Tallies kept in parallel merge to what one tally counts.
func TestMergedTalliesEqualOne(t *testing.T) {
	old := set(t, "01-welcome:delay: 0", "02-first-project", "03-check-in")
	edited := set(t, "01-welcome:delay: 0", "03-check-in:delay: 2d")
	a := NewAnalyzer(old, edited, start.Add(20*time.Hour), 365*24*time.Hour)
	cs := customers(t, a, 6)
	one, parts := a.NewTally(), []*Tally{a.NewTally(), a.NewTally()}
	for i, c := range cs {
		one.Add(c)
		parts[i%2].Add(c)
	}
	parts[0].Merge(parts[1])
	if diff := cmp.Diff(a.Report(one), a.Report(parts[0])); diff != "" {
		t.Errorf("merged report differs (-one +merged):\n%s", diff)
	}
}
