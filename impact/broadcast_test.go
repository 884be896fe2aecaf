package impact

import (
	"errors"
	"testing"
	"testing/fstest"
	"time"

	"github.com/retainmail/retain/campaign"
)

// withBroadcast is set(t) with a broadcast to customers in audience, sent at
// sendAt.
func withBroadcast(t *testing.T, audience, sendAt string) *campaign.Set {
	t.Helper()
	fsys := fstest.MapFS{
		"lifecycle.yaml":           {Data: []byte(testLifecycle)},
		"onboarding/campaign.md":   {Data: []byte("---\nname: Onboarding\ntrigger: {stage: onboarding}\n---\n")},
		"onboarding/01-welcome.md": {Data: []byte("---\nsubject: Welcome\ndelay: 0\n---\nBody.\n")},
		"tips/campaign.md":         {Data: []byte("---\nname: Tips\ntrigger: {stage: active}\n---\n")},
		"tips/01-tip.md":           {Data: []byte("---\nsubject: Tip\ndelay: 1d\n---\nTip.\n")},
		"launch/campaign.md":       {Data: []byte("---\nname: Launch\nkind: broadcast\naudience: '" + audience + "'\nsend_at: " + sendAt + "\n---\n")},
		"launch/01-launch.md":      {Data: []byte("---\nsubject: New\n---\nNews.\n")},
	}
	s, err := campaign.LoadFS(fsys, "campaigns")
	if err != nil {
		var probs campaign.Problems
		errors.As(err, &probs)
		t.Fatalf("test campaigns: %v", probs)
	}
	return s
}

// A new broadcast shows in retain impact as the customers it enrols and its
// email gained; narrowing its audience before it is due shows the customers
// it no longer reaches; a broadcast due before now was decided already, and
// editing its audience enrols nobody new.
func TestImpactCoversBroadcasts(t *testing.T) {
	now := start.Add(48 * time.Hour)
	old := set(t, "01-welcome:delay: 0")
	added := withBroadcast(t, `customer.stage == "onboarding"`, "2026-03-10 09:00 local")
	r := run(t, old, added, now, 4)
	if got := step(r, "launch", "launch/launch").Gained.N; got != 4 {
		t.Errorf("a new broadcast to onboarding customers: gained %d, want the 4", got)
	}

	narrowed := withBroadcast(t, `customer.stage == "onboarding" && customer.id != "ca"`, "2026-03-10 09:00 local")
	r = run(t, added, narrowed, now, 4)
	if got := step(r, "launch", "launch/launch").Lost; got.N != 1 || len(got.Examples) != 1 || got.Examples[0] != "ca" {
		t.Errorf("narrowed audience: lost %+v, want ca", got)
	}

	past := withBroadcast(t, `customer.stage == "onboarding"`, "2026-03-03 09:00 local")
	pastNarrowed := withBroadcast(t, `customer.stage == "onboarding" && customer.id != "ca"`, "2026-03-03 09:00 local")
	r = run(t, past, pastNarrowed, now, 4)
	if got := step(r, "launch", "launch/launch"); got.Gained.N+got.Lost.N != 0 {
		t.Errorf("a broadcast decided before now: %+v, want no change", got)
	}
}
