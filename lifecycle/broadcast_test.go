package lifecycle

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A local send_at lands on each zone's wall clock, a time that a DST change
// skips moves forward by the gap (02:30 on 29 March 2026 in Amsterdam is
// 03:30 CEST), and a send window moves an instant into the next allowed hour.
func TestBroadcastAtFollowsEachZonesClock(t *testing.T) {
	e := engineOf(t, "testdata/broadcast.txtar")
	launch, notice := e.Set().Campaign("launch"), e.Set().Campaign("notice")
	for _, tc := range []struct {
		zone string
		want time.Time
	}{
		{"Asia/Tokyo", at(mustLoc("Asia/Tokyo"), "2026-03-29 02:30")},
		{"Europe/Amsterdam", at(ams, "2026-03-29 03:30")},
		{"America/New_York", at(mustLoc("America/New_York"), "2026-03-29 02:30")},
	} {
		if got := BroadcastAt(launch, mustLoc(tc.zone)); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.zone, got, tc.want)
		}
	}
	// Saturday 7 March 21:00 in Amsterdam: the window opens Monday 09:00.
	if got, want := BroadcastAt(notice, ams), at(ams, "2026-03-09 09:00"); !got.Equal(want) {
		t.Errorf("notice: %s, want %s", got, want)
	}
}

// Choose checks what the evaluation checks, in order, and enrols only the
// chosen; a second decision finds the customer enrolled.
func TestChooseDecidesTheAudience(t *testing.T) {
	e := engineOf(t, "testdata/broadcast.txtar")
	camp := e.Set().Campaign("launch")
	now := at(ams, "2026-03-28 12:00")
	active := func() *Customer { return &Customer{ID: "c1", Stage: "active"} }
	for _, tc := range []struct {
		name string
		c    *Customer
		want Choice
	}{
		{"active", active(), ChoiceSend},
		{"onboarding", &Customer{ID: "c1", Stage: "onboarding"}, ChoiceOutside},
		{"unsubscribed", &Customer{ID: "c1", Stage: "active", Unsubscribed: true}, ChoiceUnsubscribed},
		{"opted out", &Customer{ID: "c1", Stage: "active", OptedOut: []string{"news"}}, ChoiceOptedOut},
	} {
		if got := e.Choose(tc.c, camp, now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := e.Choose(active(), camp, at(ams, "2026-03-31 12:00")); got != ChoiceLate {
		t.Errorf("two days after its send time: %s, want %s", got, ChoiceLate)
	}
	c := active()
	if ch, chs := e.EnrollBroadcast(c, camp, now); ch != ChoiceSend || len(chs) != 1 || chs[0].Kind != KindEnrolled {
		t.Fatalf("enrol: %s %v", ch, chs)
	}
	if enr := c.Enrollments["launch"]; enr.Next != "launch" || !enr.Due.Equal(at(ams, "2026-03-29 03:30")) {
		t.Errorf("enrollment %+v, want launch due 03:30", enr)
	}
	if ch, chs := e.EnrollBroadcast(c, camp, now.Add(time.Hour)); ch != ChoiceHad || chs != nil {
		t.Errorf("second decision: %s %v, want already enrolled and no change", ch, chs)
	}
}

// retain plan's simulation decides a broadcast when it is first due, on the
// customer as they are then: a customer who becomes active (30 days after
// sign-up) before the broadcast is decided gets it at their local time, and
// a goal within 7 days of it counts although its one step is passed.
func TestPlanDecidesABroadcastWhenItIsDue(t *testing.T) {
	e := engineOf(t, "testdata/broadcast.txtar")
	signup := at(ams, "2026-02-20 10:00")
	c, _, err := e.NewCustomer("c1", "c1@example.org", "", signup)
	if err != nil {
		t.Fatal(err)
	}
	events := []Event{{Name: "signed_up", At: signup}, {Name: "project_created", At: at(ams, "2026-04-02 10:00")}}
	chs, err := e.SimulateFrom(c, events, at(ams, "2026-03-01 00:00"), at(ams, "2026-04-30 00:00"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range brief(ams, chs) {
		got = append(got, s)
	}
	want := []string{
		"Fri 2026-02-20 10:00 stage lead→onboarding (event signed_up)",
		"Sat 2026-03-07 21:00 enrolled notice#1",
		"Mon 2026-03-09 09:00 sent notice/notice",
		"Mon 2026-03-09 09:00 completed notice#1 (all steps passed)",
		"Sun 2026-03-22 10:00 stage onboarding→active (after 30d in onboarding)",
		"Sat 2026-03-28 13:30 enrolled launch#1", // 02:30 on the 29th at UTC+14
		"Sun 2026-03-29 03:30 sent launch/launch",
		"Sun 2026-03-29 03:30 completed launch#1 (all steps passed)",
		"Thu 2026-04-02 10:00 goal_reached launch#1 (goal project_created)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}
