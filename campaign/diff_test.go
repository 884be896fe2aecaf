package campaign

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
)

// diffBase is the campaigns directory the diff tests edit.
const diffBase = `
-- lifecycle.yaml --
timezone: Europe/Amsterdam
attributes: {plan: string, company: string, seats: int}
counters: {orders: order_placed}
links: {Dashboard: "https://app.example.com/", Help: "https://help.example.com/"}
activity: [logged_in, order_placed]
stages: [lead, onboarding, active, at_risk]
transitions:
  - {on: signed_up, from: [lead], to: onboarding}
  - {after: 30d, from: [onboarding], to: active}
  - {inactive: 21d, from: [active], to: at_risk}
  - {on: activity, from: [at_risk], to: active}
-- onboarding/campaign.md --
---
name: Onboarding
trigger: {stage: onboarding}
exit: {events: [account_closed], stage_left: true}
goal: {event: project_created}
---
-- onboarding/01-welcome.md --
---
subject: Welcome
delay: 0
---
Glad you are here.
-- onboarding/02-first-project.md --
---
subject: First project
delay: 2d
at: "09:30"
skip_if: customer.orders > 0
---
Create your first project.
-- onboarding/03-team.md --
---
subject: Team
delay: 1d
only_if: customer.plan == "team"
---
Invite your team.
-- onboarding/04-check-in.md --
---
subject: Check in
delay: 1w
---
How is it going?
-- tips/campaign.md --
---
name: Tips
trigger: {stage: active}
send_window: {days: mon-fri, hours: "09:00-17:00"}
reentry: {after: 90d}
---
-- tips/01-tip.md --
---
subject: Tip
delay: 1d
---
A tip.
`

// campaignFiles is a campaigns directory as file name → contents, to edit in tests.
type campaignFiles map[string]string

func baseFiles(t *testing.T) campaignFiles {
	t.Helper()
	f := campaignFiles{}
	for _, file := range txtar.Parse([]byte(diffBase)).Files {
		f[file.Name] = string(file.Data)
	}
	return f
}

// load loads the files as the campaigns directory dir; they must have no problems.
func (f campaignFiles) load(t *testing.T, dir string) *Set {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range f {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	set, err := LoadFS(fsys, dir)
	if err != nil {
		var probs Problems
		errors.As(err, &probs)
		t.Fatalf("edited campaigns have problems:\n%v", probs)
	}
	return set
}

// rename moves a file.
func (f campaignFiles) rename(from, to string) {
	f[to] = f[from]
	delete(f, from)
}

// replace edits a file, which must contain old.
func (f campaignFiles) replace(t *testing.T, name, old, new string) {
	t.Helper()
	if !strings.Contains(f[name], old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	f[name] = strings.Replace(f[name], old, new, 1)
}

// diffEdits are the edits the diff and hash tests make to diffBase, with the
// lines Diff.Lines gives for each.
var diffEdits = []struct {
	name string
	edit func(t *testing.T, f campaignFiles)
	want []string
}{
	{
		name: "step added",
		edit: func(t *testing.T, f campaignFiles) {
			f["onboarding/05-upgrade.md"] = "---\nsubject: Upgrade\ndelay: 3d\n---\nGo pro.\n"
		},
		want: []string{"onboarding: step upgrade added"},
	},
	{
		name: "step removed",
		edit: func(t *testing.T, f campaignFiles) { delete(f, "onboarding/04-check-in.md") },
		want: []string{"onboarding: step check-in removed"},
	},
	{
		name: "step renamed in place",
		edit: func(t *testing.T, f campaignFiles) {
			f.rename("onboarding/03-team.md", "onboarding/03-invite-team.md")
			f.replace(t, "onboarding/03-invite-team.md", "Invite your team.", "Invite your whole team.")
		},
		want: []string{"onboarding: step invite-team added, step team removed (renamed to invite-team?)"},
	},
	{
		name: "step renamed and moved keeps its body",
		edit: func(t *testing.T, f campaignFiles) {
			f.rename("onboarding/01-welcome.md", "onboarding/05-hello.md")
		},
		want: []string{"onboarding: step hello added, step welcome removed (renamed to hello?)"},
	},
	{
		name: "rename pinned by id is no change",
		edit: func(t *testing.T, f campaignFiles) {
			f.rename("onboarding/03-team.md", "onboarding/03-invite-team.md")
			f.replace(t, "onboarding/03-invite-team.md", "subject:", "id: team\nsubject:")
		},
		want: nil,
	},
	{
		name: "step moved",
		edit: func(t *testing.T, f campaignFiles) {
			f.rename("onboarding/02-first-project.md", "onboarding/07-first-project.md")
		},
		want: []string{"onboarding: step first-project moved 2 → 7"},
	},
	{
		name: "step renumbered in place",
		edit: func(t *testing.T, f campaignFiles) {
			f.rename("onboarding/04-check-in.md", "onboarding/09-check-in.md")
		},
		want: []string{"onboarding: step check-in changed (renumbered 4 → 9)"},
	},
	{
		name: "delay changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "onboarding/03-team.md", "delay: 1d", "delay: 2d")
		},
		want: []string{"onboarding: step team changed (delay 1d → 2d)"},
	},
	{
		name: "at removed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "onboarding/02-first-project.md", "at: \"09:30\"\n", "")
		},
		want: []string{"onboarding: step first-project changed (at 09:30 → none)"},
	},
	{
		name: "condition changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "onboarding/03-team.md", `customer.plan == "team"`, `customer.seats > 1`)
			f.replace(t, "onboarding/04-check-in.md", "delay:", "skip_if: customer.orders > 0\ndelay:")
		},
		want: []string{"onboarding: step team changed (only_if), step check-in changed (skip_if added)"},
	},
	{
		name: "subject changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "onboarding/01-welcome.md", "subject: Welcome", "subject: Welcome aboard")
		},
		want: []string{"onboarding: step welcome changed (subject)"},
	},
	{
		name: "body and layout changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "tips/01-tip.md", "A tip.", "Another tip.")
			f.replace(t, "tips/01-tip.md", "delay:", "layout: plain\ndelay:")
		},
		want: []string{"tips: step tip changed (layout default → plain, body)"},
	},
	{
		name: "variant added",
		edit: func(t *testing.T, f campaignFiles) {
			f["onboarding/01-welcome.nl.md"] = "---\nsubject: Welkom\n---\nFijn dat je er bent.\n"
		},
		want: []string{"onboarding: step welcome changed (variant nl added)"},
	},
	{
		name: "A/B variant added",
		edit: func(t *testing.T, f campaignFiles) {
			f["onboarding/02-first-project.b.md"] = "---\nsubject: Ten minutes to your first project\nsplit: 50\n---\nCreate it now.\n"
		},
		want: []string{"onboarding: step first-project changed (A/B variant b added with split 50%)"},
	},
	{
		name: "campaign added",
		edit: func(t *testing.T, f campaignFiles) {
			f["winback/campaign.md"] = "---\nname: Win back\ntrigger: {stage: at_risk}\n---\n"
			f["winback/01-miss-you.md"] = "---\nsubject: We miss you\ndelay: 0\n---\nCome back.\n"
		},
		want: []string{"winback: campaign added (1 step)"},
	},
	{
		name: "campaign removed",
		edit: func(t *testing.T, f campaignFiles) {
			delete(f, "tips/campaign.md")
			delete(f, "tips/01-tip.md")
		},
		want: []string{"tips: campaign removed (1 step)"},
	},
	{
		name: "trigger changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "tips/campaign.md", "{stage: active}", "{event: order_placed, where: customer.orders == 1}")
		},
		want: []string{"tips: trigger stage active → event order_placed where customer.orders == 1"},
	},
	{
		name: "settings changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "tips/campaign.md", "days: mon-fri", `days: "mon-wed,sat"`)
			f.replace(t, "tips/campaign.md", "reentry: {after: 90d}", "reentry: always\naudience: customer.seats > 2\ntopic: tips")
			f.replace(t, "onboarding/campaign.md", "[account_closed], stage_left: true", "[account_closed, churned]")
			f.replace(t, "onboarding/campaign.md", "{event: project_created}", "{event: project_created, where: event.data.size > 1}")
		},
		want: []string{
			"onboarding: exit events [account_closed] → [account_closed churned], exit stage_left true → false, goal event project_created → event project_created where event.data.size > 1",
			"tips: audience added, reentry after 90d → always, send_window mon-fri 09:00-17:00 → mon-wed,sat 09:00-17:00, topic none → tips",
		},
	},
	{
		name: "experiment settings changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "onboarding/campaign.md", "{event: project_created}", "{event: project_created, within: 7d}\nholdout: 10%")
		},
		want: []string{"onboarding: goal event project_created → event project_created within 7d, holdout none → 10%"},
	},
	{
		name: "lifecycle changed",
		edit: func(t *testing.T, f campaignFiles) {
			f.replace(t, "lifecycle.yaml", "inactive: 21d", "inactive: 28d")
		},
		want: []string{"lifecycle.yaml changed"},
	},
}

func TestCompareNamesEachEdit(t *testing.T) {
	old := baseFiles(t).load(t, "campaigns")
	for _, tc := range diffEdits {
		t.Run(tc.name, func(t *testing.T) {
			f := baseFiles(t)
			tc.edit(t, f)
			d := Compare(old, f.load(t, "campaigns"))
			if diff := cmp.Diff(tc.want, d.Lines()); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if d.Empty() != (tc.want == nil) {
				t.Errorf("Empty() = %t with lines %q", d.Empty(), d.Lines())
			}
		})
	}
}

func TestCompareUnchangedIsEmpty(t *testing.T) {
	d := Compare(baseFiles(t).load(t, "campaigns"), baseFiles(t).load(t, "/srv/retain/campaigns"))
	if !d.Empty() || d.String() != "no changes" || d.Lines() != nil || d.Summary() != "" {
		t.Errorf("diff of the same files = %q, summary %q", d.String(), d.Summary())
	}
}

func TestCompareGivesTheStepsOfEachChange(t *testing.T) {
	old := baseFiles(t).load(t, "campaigns")
	f := baseFiles(t)
	f.rename("onboarding/03-team.md", "onboarding/03-invite-team.md")
	f.replace(t, "onboarding/03-invite-team.md", "Invite your team.", "Invite them.")
	f.rename("onboarding/01-welcome.md", "onboarding/06-hello.md")
	f["onboarding/05-upgrade.md"] = "---\nsubject: Upgrade\ndelay: 3d\n---\nGo pro.\n"
	d := Compare(old, f.load(t, "campaigns"))
	if len(d.Changed) != 1 || d.Changed[0].ID != "onboarding" {
		t.Fatalf("changed campaigns = %v", d.Changed)
	}
	cd := d.Changed[0]
	ids := func(sts []*Step) (out []string) {
		for _, st := range sts {
			out = append(out, st.ID+" "+st.Content.Path)
		}
		return out
	}
	if diff := cmp.Diff([]string{
		"onboarding/invite-team campaigns/onboarding/03-invite-team.md",
		"onboarding/upgrade campaigns/onboarding/05-upgrade.md",
		"onboarding/hello campaigns/onboarding/06-hello.md",
	}, ids(cd.Added)); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{
		"onboarding/welcome campaigns/onboarding/01-welcome.md",
		"onboarding/team campaigns/onboarding/03-team.md",
	}, ids(cd.Removed)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	var renames []string
	for _, r := range cd.Renamed {
		renames = append(renames, r.Old.Slug+" → "+r.New.Slug+" ("+r.Reason+")")
	}
	// welcome's body is hello's; team and invite-team share the number 3, and
	// upgrade is left over: each step is paired at most once.
	if diff := cmp.Diff([]string{"welcome → hello (same body)", "team → invite-team (same order)"}, renames); diff != "" {
		t.Errorf("renames (-want +got):\n%s", diff)
	}
	if len(cd.Steps) != 0 {
		t.Errorf("steps changed = %v, want none (the others kept their order)", cd.Steps)
	}
}

func TestCompareMarksOnlyTheStepThatMoved(t *testing.T) {
	old := baseFiles(t).load(t, "campaigns")
	f := baseFiles(t)
	// check-in goes first; the others keep their numbers and their order.
	f.rename("onboarding/04-check-in.md", "onboarding/00-check-in.md")
	d := Compare(old, f.load(t, "campaigns"))
	if diff := cmp.Diff([]string{"onboarding: step check-in moved 4 → 0"}, d.Lines()); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if sd := d.Changed[0].Steps[0]; !sd.Moved || sd.Old.Order != 4 || sd.New.Order != 0 {
		t.Errorf("step diff = %+v", sd)
	}
}

func TestHashIsStable(t *testing.T) {
	base := baseFiles(t)
	want := base.load(t, "campaigns").Hash()
	if len(want) != 16 {
		t.Errorf("hash %q, want 16 hex digits", want)
	}
	// Loaded again, from elsewhere, and hashed many times: maps (attributes,
	// counters, links, variants) iterate in a new order each time.
	base["onboarding/01-welcome.nl.md"] = "---\nsubject: Welkom\n---\nHoi.\n"
	base["onboarding/01-welcome.de.md"] = "---\nsubject: Willkommen\n---\nHallo.\n"
	base["onboarding/01-welcome.fr.md"] = "---\nsubject: Bienvenue\n---\nSalut.\n"
	withVariants := base.load(t, "campaigns").Hash()
	for range 20 {
		if got := base.load(t, "/srv/retain/campaigns").Hash(); got != withVariants {
			t.Fatalf("hash %s, then %s for the same files", withVariants, got)
		}
	}
	// The order of keys in lifecycle.yaml does not matter either.
	reordered := maps.Clone(base)
	reordered.replace(t, "lifecycle.yaml", "{plan: string, company: string, seats: int}", "{seats: int, plan: string, company: string}")
	reordered.replace(t, "lifecycle.yaml", `{Dashboard: "https://app.example.com/", Help: "https://help.example.com/"}`, `{Help: "https://help.example.com/", Dashboard: "https://app.example.com/"}`)
	if got := reordered.load(t, "campaigns").Hash(); got != withVariants {
		t.Errorf("hash with lifecycle keys reordered %s, want %s", got, withVariants)
	}
}

func TestHashChangesWithEveryEdit(t *testing.T) {
	base := baseFiles(t).load(t, "campaigns").Hash()
	seen := map[string]string{base: "base"}
	for _, tc := range diffEdits {
		f := baseFiles(t)
		tc.edit(t, f)
		h := f.load(t, "campaigns").Hash()
		if tc.want == nil {
			if h != base {
				t.Errorf("%s: hash %s, want the base hash %s", tc.name, h, base)
			}
			continue
		}
		if other, ok := seen[h]; ok {
			t.Errorf("%s: hash %s, the same as after %q", tc.name, h, other)
		}
		seen[h] = tc.name
	}
	// What the diff does not report still decides what is sent.
	for name, edit := range map[string]func(f campaignFiles){
		"campaign name": func(f campaignFiles) { f.replace(t, "tips/campaign.md", "name: Tips", "name: Tips and tricks") },
		"variant body": func(f campaignFiles) {
			f["onboarding/01-welcome.nl.md"] = "---\nsubject: Welkom\n---\nHoi.\n"
		},
		"sender": func(f campaignFiles) {
			f["lifecycle.yaml"] += "sender: {name: Acme, address: \"Main St 1\"}\n"
		},
	} {
		f := baseFiles(t)
		edit(f)
		if h := f.load(t, "campaigns").Hash(); h == base {
			t.Errorf("%s: hash unchanged", name)
		}
	}
}

// TestCompareNamesABVariantEdits checks that a split changed, a variant's
// file edited (in any locale) and a variant removed each show as a change of
// the step, in Compare and in CompareManifests.
func TestCompareNamesABVariantEdits(t *testing.T) {
	f := baseFiles(t)
	f["onboarding/01-welcome.nl.md"] = "---\nsubject: Welkom\n---\nFijn dat je er bent.\n"
	f["onboarding/01-welcome.b.md"] = "---\nsubject: Welcome aboard\nsplit: 50\n---\nHi.\n"
	f["onboarding/01-welcome.b.nl.md"] = "---\nsubject: Welkom aan boord\n---\nHoi.\n"
	f["onboarding/01-welcome.c.md"] = "---\nsubject: Hello\nsplit: 20\n---\nHello.\n"
	f["onboarding/01-welcome.c.nl.md"] = "---\nsubject: Hallo\n---\nHallo.\n"
	old := f.load(t, "campaigns")
	for _, tc := range []struct {
		name string
		edit func(f campaignFiles)
		want []string
	}{
		{"split changed", func(f campaignFiles) { f.replace(t, "onboarding/01-welcome.b.md", "split: 50", "split: 30") },
			[]string{"onboarding: step welcome changed (A/B variant b split 50% → 30%)"}},
		{"locale of a variant edited", func(f campaignFiles) { f.replace(t, "onboarding/01-welcome.c.nl.md", "Hallo.", "Hallo daar.") },
			[]string{"onboarding: step welcome changed (A/B variant c changed)"}},
		{"variant removed", func(f campaignFiles) {
			delete(f, "onboarding/01-welcome.c.md")
			delete(f, "onboarding/01-welcome.c.nl.md")
		}, []string{"onboarding: step welcome changed (A/B variant c removed)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := campaignFiles(maps.Clone(f))
			tc.edit(nf)
			set := nf.load(t, "campaigns")
			if diff := cmp.Diff(tc.want, Compare(old, set).Lines()); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if got := CompareManifests(roundTrip(t, old.Manifest()), roundTrip(t, set.Manifest())).Summary(); got != "onboarding: 1 step edited" {
				t.Errorf("manifest summary = %q, want the step edited", got)
			}
		})
	}
}
