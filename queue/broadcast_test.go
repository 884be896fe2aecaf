package queue

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// TestBroadcastAtNineLocalReachesEachZoneAtItsNine: a broadcast sent at
// "2026-03-10 09:00 local" is evaluated once, when the first zone reaches
// 09:00 (Tokyo's is 00:00 UTC, but Kiribati's 19:00 UTC the day before), and
// each customer of its audience gets it at 09:00 on their own clock, over
// real SMTP: Tokyo first, Amsterdam, then New York (on summer time since 8
// March). The unsubscribed, the opted out, the suppressed and those outside
// the audience get nothing; the preview counted exactly the customers who get
// it; a second evaluation and later ticks send nothing again.
func TestBroadcastAtNineLocalReachesEachZoneAtItsNine(t *testing.T) {
	b := setupWith(t, "testdata/broadcast")
	eng := b.applier.Engine
	camp := eng.Set().Campaign("launch")
	type person struct{ id, zone, locale, plan string }
	people := []person{
		{"tokyo", "Asia/Tokyo", "", "business"},
		{"ams", "Europe/Amsterdam", "nl", "business"},
		{"nyc", "America/New_York", "", "business"},
		{"free", "Europe/Amsterdam", "", "free"},
		{"unsub", "Europe/Amsterdam", "", "business"},
		{"optout", "Europe/Amsterdam", "", "business"},
		{"supp", "Europe/Amsterdam", "", "business"},
	}
	for _, p := range people {
		rec := &ingest.Record{ID: p.id, Email: p.id + "@example.org", FirstName: strings.ToUpper(p.id[:1]) + p.id[1:],
			Timezone: p.zone, Locale: p.locale, Stage: "lead", Attributes: map[string]any{"plan": p.plan}}
		if err := ingest.Check(rec, eng.Set().Lifecycle); err != nil {
			t.Fatal(err)
		}
		if _, err := b.applier.Record(b.ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for id, fn := range map[string]func(c *lifecycle.Customer){
		"unsub":  func(c *lifecycle.Customer) { c.Unsubscribed = true },
		"optout": func(c *lifecycle.Customer) { c.OptedOut = []string{"news"} },
	} {
		err := b.store.Update(b.ctx, id, "", func(c *lifecycle.Customer) (*store.Change, error) {
			fn(c)
			return &store.Change{Customer: c}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.store.Suppress(b.ctx, "supp@example.org", "bounced", b.clock.Now()); err != nil {
		t.Fatal(err)
	}

	// The preview (what retain broadcast preview counts), before it is due.
	aud := &Audience{Store: b.store, Engine: eng, Batch: 3}
	preview := map[lifecycle.Choice][]string{}
	var mu sync.Mutex
	err := aud.Scan(b.ctx, camp, time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC), func(_ int, batch []Decided) error {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range batch {
			preview[d.Choice] = append(preview[d.Choice], d.Customer.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for ch := range preview {
		slices.Sort(preview[ch])
	}
	want := map[lifecycle.Choice][]string{
		lifecycle.ChoiceSend: {"ams", "nyc", "tokyo"}, lifecycle.ChoiceOutside: {"free"},
		lifecycle.ChoiceUnsubscribed: {"unsub"}, lifecycle.ChoiceOptedOut: {"optout"}, lifecycle.ChoiceSuppressed: {"supp"},
	}
	if !maps.EqualFunc(preview, want, slices.Equal) {
		t.Fatalf("preview %v, want %v", preview, want)
	}

	// Due at 19:00 UTC on the 9th (09:00 on the 10th at UTC+14): not before.
	b.clock.t = time.Date(2026, 3, 9, 18, 59, 0, 0, time.UTC)
	if _, _, err := b.scheduler.Tick(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.scheduler.WaitBroadcasts()
	if st, _ := b.store.BroadcastStates(b.ctx, []string{"launch"}); len(st) != 0 {
		t.Fatalf("evaluated before it was due: %+v", st["launch"])
	}
	b.clock.Advance(time.Minute)
	if _, _, err := b.scheduler.Tick(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.scheduler.WaitBroadcasts()
	states, err := b.store.BroadcastStates(b.ctx, []string{"launch"})
	if err != nil {
		t.Fatal(err)
	}
	st := states["launch"]
	if st == nil || st.State != store.BroadcastDone || st.Scanned != int64(len(people)) || st.Counts["sent"] != 3 || st.Counts["suppressed"] != 1 {
		t.Fatalf("evaluation state %+v, want done, 7 scanned, 3 to send, 1 suppressed", st)
	}

	// Hour by hour until every zone passed 09:00: who got it when.
	got := map[string]time.Time{}
	subjects := map[string]string{}
	for b.clock.Now().Before(time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)) {
		b.run(t)
		for _, m := range b.smtp.Messages() {
			id := strings.TrimSuffix(m.To[0], "@example.org")
			if _, ok := got[id]; !ok {
				got[id], subjects[id] = b.clock.Now(), m.Header.Get("Subject")
			}
		}
		b.clock.Advance(time.Hour)
	}
	wantAt := map[string]time.Time{
		"tokyo": time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC),  // 09:00 JST
		"ams":   time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC),  // 09:00 CET
		"nyc":   time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC), // 09:00 EDT
	}
	if !maps.EqualFunc(got, wantAt, time.Time.Equal) {
		t.Errorf("sent at %v, want %v", got, wantAt)
	}
	if subjects["ams"] != "Nieuwe planningssjablonen, Ams" || subjects["tokyo"] != "New planning templates, Tokyo" {
		t.Errorf("subjects %q", subjects)
	}

	// Evaluated once: a new scheduler (a restart) and a day of ticks send
	// nothing more.
	again, err := NewScheduler(SchedulerConfig{Store: b.store, Engine: eng, Now: b.clock.Now, Log: b.scheduler.cfg.Log, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for range 24 {
		if _, _, err := again.Tick(b.ctx); err != nil {
			t.Fatal(err)
		}
		again.WaitBroadcasts()
		b.advance(t, time.Hour)
	}
	if n := len(b.smtp.Messages()); n != 3 {
		t.Errorf("%d emails in all, want the 3 of the broadcast", n)
	}
	for _, id := range []string{"tokyo", "ams", "nyc"} {
		c, err := b.store.Customer(b.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if enr := c.Enrollments["launch"]; enr == nil || enr.Status != lifecycle.Completed || !slices.Equal(enr.Passed, []string{"launch"}) {
			t.Errorf("%s: enrollment %+v, want completed after the one step", id, enr)
		}
	}
}

// TestBroadcastEvaluatedTwiceEnrolsOnceAndItsHoldoutGetsNothing: an
// evaluation that runs again (a scheduler died mid-way, another took over)
// finds every chosen customer enrolled already and enrols nobody twice; the
// customers of the holdout are enrolled in the control group, get no email,
// and pass the step at the same time as the others.
func TestBroadcastEvaluatedTwiceEnrolsOnceAndItsHoldoutGetsNothing(t *testing.T) {
	b := setupWith(t, "testdata/broadcast")
	eng := b.applier.Engine
	camp := eng.Set().Campaign("launch")
	camp.Holdout = 3000 // 30%
	const n = 20
	var control []string
	for i := range n {
		id := fmt.Sprintf("c%02d", i)
		rec := &ingest.Record{ID: id, Email: id + "@example.org", Stage: "lead", Attributes: map[string]any{"plan": "business"}}
		if _, err := b.applier.Record(b.ctx, rec); err != nil {
			t.Fatal(err)
		}
		if lifecycle.InHoldout(id, camp) {
			control = append(control, id)
		}
	}
	if len(control) < 2 || len(control) == n {
		t.Fatalf("holdout of 30%% put %d of %d in control: pick other IDs", len(control), n)
	}
	aud := &Audience{Store: b.store, Engine: eng, Batch: 7}
	at := time.Date(2026, 3, 9, 19, 0, 0, 0, time.UTC)
	first, err := aud.Evaluate(b.ctx, camp, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first[lifecycle.ChoiceSend] != int64(n-len(control)) || first[lifecycle.ChoiceControl] != int64(len(control)) {
		t.Fatalf("first evaluation %v, want %d sent and %d control", first, n-len(control), len(control))
	}
	again, err := aud.Evaluate(b.ctx, camp, at.Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again[lifecycle.ChoiceHad] != n || again.Enrolled() != n || len(again) != 1 {
		t.Fatalf("second evaluation %v, want all %d already enrolled", again, n)
	}
	// An address suppressed after the evaluation leaves the control group as
	// it leaves the others: its enrollment ends, it does not walk on.
	suppressed := control[0]
	if err := b.store.Suppress(b.ctx, suppressed+"@example.org", "complained", at); err != nil {
		t.Fatal(err)
	}
	control = control[1:]
	b.clock.t = time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC) // 09:00 in Amsterdam
	b.run(t)
	msgs := b.smtp.Wait(n-len(control)-1, 5*time.Second)
	b.clock.Advance(24 * time.Hour)
	b.run(t)
	if got := len(b.smtp.Messages()); got != n-len(control)-1 || len(msgs) != got {
		t.Errorf("%d emails, want %d (the control group gets none)", got, n-len(control)-1)
	}
	if c, err := b.store.Customer(b.ctx, suppressed); err != nil {
		t.Fatal(err)
	} else if enr := c.Enrollments["launch"]; enr.Status != lifecycle.Exited || !strings.HasPrefix(enr.Reason, "address suppressed") {
		t.Errorf("%s (control, suppressed): enrollment %+v, want exited: address suppressed", suppressed, enr)
	}
	for _, m := range b.smtp.Messages() {
		if slices.Contains(control, strings.TrimSuffix(m.To[0], "@example.org")) {
			t.Errorf("%s is in the control group and got the email", m.To[0])
		}
	}
	for _, id := range control {
		c, err := b.store.Customer(b.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		enr := c.Enrollments["launch"]
		if enr == nil || enr.Group != lifecycle.GroupControl || enr.Status != lifecycle.Completed || !enr.Ended.Equal(b.clock.Now().Add(-24*time.Hour)) {
			t.Errorf("%s: enrollment %+v, want the control group, completed at 09:00 like the others", id, enr)
		}
	}
}
