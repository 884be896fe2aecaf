package campaign

import (
	"os"
	"strings"
	"testing"
)

// lifecycleDocKeys mirrors the keys parseLifecycle (lifecycle.go) passes to d.fields:
// the top level of lifecycle.yaml, sender, a stage and a transition. The loader keeps
// them inline in those calls rather than in variables, so this list must be kept in
// step with it by hand: a key added there and not here escapes this check.
var lifecycleDocKeys = []string{
	"backfill_grace",
	// utm
	"utm", "source", "medium",
	// deliverability
	"deliverability", "soft_bounces", "soft_bounce_window", "pause_window", "pause_complaint_rate", "pause_bounce_rate",
	// lifecycle.yaml
	"timezone", "locale", "sender", "links", "attributes", "counters", "activity", "stages", "transitions",
	// sender
	"name", "address", "domains",
	// a stage
	"description",
	// a transition
	"on", "where", "after", "inactive", "from", "to",
}

// campaignNestedDocKeys mirrors the keys of the mappings inside campaign.md front
// matter (trigger, exit, goal, reentry, send_window) that the campaign method of
// load.go passes to d.fields; kept in step by hand, like lifecycleDocKeys.
var campaignNestedDocKeys = []string{
	"stage", "event", "where", // trigger
	"events", "stage_left", // exit
	"after",         // reentry
	"days", "hours", // send_window
}

// TestReferenceNamesEveryKey checks that docs/campaigns.md mentions every key the
// loader accepts, written as code (`key`), so the reference cannot fall behind the
// loader.
func TestReferenceNamesEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/campaigns.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	groups := []struct {
		what string
		keys []string
	}{
		{"campaign.md", campaignKeys},
		{"campaign.md (nested)", campaignNestedDocKeys},
		{"step", stepKeys},
		{"locale variant", variantKeys},
		{"A/B variant", abKeys},
		{LifecycleFile, lifecycleDocKeys},
	}
	for _, g := range groups {
		for _, k := range g.keys {
			if !strings.Contains(doc, "`"+k+"`") {
				t.Errorf("docs/campaigns.md does not mention %s key `%s`", g.what, k)
			}
		}
	}
}
