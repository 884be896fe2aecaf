package campaign

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// identities describes the identity part of a diff: what CompareManifests and
// Compare must agree on.
func identities(d *Diff) []string {
	var out []string
	for _, c := range d.Added {
		out = append(out, fmt.Sprintf("+campaign %s %d", c.ID, len(c.Steps)))
	}
	for _, c := range d.Removed {
		out = append(out, fmt.Sprintf("-campaign %s %d", c.ID, len(c.Steps)))
	}
	for _, cd := range d.Changed {
		for _, st := range cd.Added {
			out = append(out, fmt.Sprintf("+%s %d", st.ID, st.Order))
		}
		for _, st := range cd.Removed {
			out = append(out, fmt.Sprintf("-%s %d", st.ID, st.Order))
		}
		for _, r := range cd.Renamed {
			out = append(out, fmt.Sprintf("%s → %s (%s)", r.Old.ID, r.New.ID, r.Reason))
		}
		for _, sd := range cd.Steps {
			if sd.Moved {
				out = append(out, "~"+sd.New.ID)
			}
		}
	}
	return out
}

// roundTrip stores and reads back a manifest as a deploy does.
func roundTrip(t *testing.T, m *Manifest) *Manifest {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return &back
}

func TestCompareManifestsAgreesWithCompareOnIdentities(t *testing.T) {
	old := baseFiles(t).load(t, "campaigns")
	oldM := roundTrip(t, old.Manifest())
	for _, tc := range diffEdits {
		t.Run(tc.name, func(t *testing.T) {
			f := baseFiles(t)
			tc.edit(t, f)
			set := f.load(t, "campaigns")
			full := Compare(old, set)
			small := CompareManifests(oldM, roundTrip(t, set.Manifest()))
			if diff := cmp.Diff(identities(full), identities(small)); diff != "" {
				t.Errorf("identities (-Compare +CompareManifests):\n%s", diff)
			}
			if small.Empty() != full.Empty() || small.Lifecycle != full.Lifecycle || len(small.Changed) != len(full.Changed) {
				t.Errorf("CompareManifests %q, Compare %q", small, full)
			}
		})
	}
}

func TestManifestSummaryNamesWhatADeployDid(t *testing.T) {
	old := baseFiles(t).load(t, "campaigns")
	f := baseFiles(t)
	f.rename("onboarding/01-welcome.md", "onboarding/01-welcome-email.md")
	f.rename("onboarding/02-first-project.md", "onboarding/07-first-project.md")
	f["onboarding/05-upgrade.md"] = "---\nsubject: Upgrade\ndelay: 3d\n---\nGo pro.\n"
	f.replace(t, "onboarding/03-team.md", "delay: 1d", "delay: 2d")
	f.replace(t, "onboarding/04-check-in.md", "subject: Check in", "subject: Checking in")
	f.replace(t, "onboarding/campaign.md", "stage_left: true", "stage_left: false")
	delete(f, "tips/campaign.md")
	delete(f, "tips/01-tip.md")
	f["winback/campaign.md"] = "---\nname: Win back\ntrigger: {stage: at_risk}\n---\n"
	f["winback/01-miss-you.md"] = "---\nsubject: We miss you\ndelay: 0\n---\nCome back.\n"
	f["winback/02-offer.md"] = "---\nsubject: An offer\ndelay: 7d\n---\n10% off.\n"
	d := CompareManifests(roundTrip(t, old.Manifest()), roundTrip(t, f.load(t, "campaigns").Manifest()))
	want := "onboarding: +welcome-email +upgrade -welcome (renamed to welcome-email?) ~first-project (moved 2 → 7), settings changed, 2 steps edited; " +
		"-tips (campaign, 1 step); +winback (campaign, 2 steps)"
	if got := d.Summary(); got != want {
		t.Errorf("summary\n got %s\nwant %s", got, want)
	}
	// What the manifest knows of a step is there for messages.
	added := d.Changed[0].Added[0]
	if added.ID != "onboarding/welcome-email" || added.Slug != "welcome-email" || added.Order != 1 || added.Content.Path != "01-welcome-email.md" || added.Campaign.ID != "onboarding" {
		t.Errorf("added step = %+v, content %+v", added, added.Content)
	}
}

func TestManifestHoldsTheSetHash(t *testing.T) {
	set := baseFiles(t).load(t, "campaigns")
	m := set.Manifest()
	if m.Hash != set.Hash() || m.Steps() != 5 || len(m.Campaigns) != 2 {
		t.Errorf("manifest hash %s (set %s), %d steps, %d campaigns", m.Hash, set.Hash(), m.Steps(), len(m.Campaigns))
	}
	if d := CompareManifests(m, roundTrip(t, m)); !d.Empty() {
		t.Errorf("a manifest differs from itself read back: %s", d)
	}
	// The first deploy has nothing to compare with: everything is added.
	if got := CompareManifests(nil, m).Summary(); got != "+onboarding (campaign, 4 steps); +tips (campaign, 1 step)" {
		t.Errorf("summary from nothing = %s", got)
	}
}
