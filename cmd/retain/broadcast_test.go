package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// TestBroadcastPreviewCountsTheAudience: retain broadcast preview decides
// the example broadcast's audience over the stored customers without
// writing: who gets it (by stage and locale, with a sample and their local
// send times), who is in the holdout, and who is left out and why; retain
// broadcast status says it is not evaluated yet. A sequence is refused.
func TestBroadcastPreviewCountsTheAudience(t *testing.T) {
	b := setupSuppress(t)
	b.vars["RETAIN_CAMPAIGNS"] = "../.."
	people := []struct{ id, stage, plan, locale, zone string }{
		{"anna", "active", "business", "nl", "Europe/Amsterdam"},
		{"bram", "active", "business", "en", "America/New_York"},
		{"cleo", "active", "business", "en", "Asia/Tokyo"},
		{"dirk", "active", "business", "en", "Europe/London"},
		{"eva", "active", "team", "en", "Europe/Amsterdam"},
		{"fien", "onboarding", "business", "nl", "Europe/Amsterdam"},
	}
	var lines []string
	for _, p := range people {
		line, _ := json.Marshal(map[string]any{"id": p.id, "email": p.id + "@example.org", "stage": p.stage, "locale": p.locale,
			"timezone": p.zone, "attributes": map[string]any{"plan": p.plan}})
		lines = append(lines, string(line))
	}
	b.retain(exitOK, "import", b.file("people.jsonl", strings.Join(lines, "\n")+"\n"))
	b.retain(exitOK, "suppress", "add", "dirk@example.org", "--reason", "bounced")

	set, err := campaign.Load("../../campaigns")
	if err != nil {
		t.Fatal(err)
	}
	camp := set.Campaign("planning-templates")
	get, control := map[string]bool{}, map[string]bool{}
	for _, id := range []string{"anna", "bram", "cleo"} {
		if lifecycle.InHoldout(id, camp) {
			control[id] = true
		} else {
			get[id] = true
		}
	}

	out, _ := b.retain(exitOK, "broadcast", "preview", "planning-templates", "--json")
	var p broadcastPreview
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	left := map[string]int64{"suppressed": 1, "not in the audience": 2}
	if p.Scanned != 6 || p.Get != int64(len(get)) || p.Control != int64(len(control)) || len(p.Left) != 2 ||
		p.Left["suppressed"] != left["suppressed"] || p.Left["not in the audience"] != left["not in the audience"] {
		t.Errorf("preview: scanned %d, get %d, control %d, left out %v; want 6, %d, %d, %v", p.Scanned, p.Get, p.Control, p.Left, len(get), len(control), left)
	}
	if len(p.Sample) != len(get) {
		t.Fatalf("sample %+v, want the %d who get it", p.Sample, len(get))
	}
	for _, s := range p.Sample {
		if !get[s.ID] || !strings.HasPrefix(s.Local, "2027-01-12 09:00 ") {
			t.Errorf("sample %+v: want a customer who gets it, at 09:00 on 12 January on their clock", s)
		}
	}
	var byGroup int64
	for _, g := range p.Groups {
		byGroup += g.Customers
	}
	if byGroup != p.Get {
		t.Errorf("by stage and locale %+v adds up to %d, want %d", p.Groups, byGroup, p.Get)
	}

	text, _ := b.retain(exitOK, "broadcast", "preview", "planning-templates")
	for _, want := range []string{"send_at 2027-01-12 09:00 local", "sent from 2027-01-11 19:00 UTC (the first zone) to 2027-01-12 21:00 UTC (the last)",
		"get it", "control group (holdout 10%)", "suppressed", "not in the audience", "evaluation: not yet"} {
		if !strings.Contains(text, want) {
			t.Errorf("preview text lacks %q:\n%s", want, text)
		}
	}
	status, _ := b.retain(exitOK, "broadcast", "status")
	if !strings.Contains(status, "planning-templates") || !strings.Contains(status, "due 2027-01-11 19:00 UTC") {
		t.Errorf("status:\n%s", status)
	}
	list, _ := b.retain(exitOK, "campaign", "list")
	if !strings.Contains(list, "broadcast at 2027-01-12 09:00 local: audience decided 2027-01-11 19:00 UTC") {
		t.Errorf("campaign list:\n%s", list)
	}
	if _, errOut := b.retain(exitProblems, "broadcast", "preview", "onboarding"); !strings.Contains(errOut, "is a sequence, not a broadcast") {
		t.Errorf("preview of a sequence: %s", errOut)
	}
	b.retain(exitUsage, "broadcast", "send", "planning-templates")
}
