package queue

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// TestPlanAgreesWithWhatIsSentAfterABackfill is the property behind retain
// plan: customers with event histories spread over the past year are imported
// at once (as `retain import --apply` does), then the worker and the time-rule
// sweep run on a test clock for 45 days against real Redis and SMTP. Every
// email that arrives is one the plan printed for that customer, at the time
// it said (within the clock's step), and every email the plan printed
// arrives: none from the past, none missing.
func TestPlanAgreesWithWhatIsSentAfterABackfill(t *testing.T) {
	b := setup(t)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("RETAIN_BACKFILL_DEBUG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	set := b.useExamples(t, log)
	applier, w, eng := b.applier, b.worker, b.applier.Engine

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RETAIN_BACKFILL_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (RETAIN_BACKFILL_SEED repeats it)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	imported := b.clock.Now()
	const step, days = time.Hour, 45
	until := imported.Add(days * 24 * time.Hour)

	type sent struct {
		id   string // Message-ID
		at   time.Time
		what string
	}
	var want []sent
	for i := range 30 {
		rec := randomHistory(rng, fmt.Sprintf("h%02d", i), imported)
		if err := ingest.Check(rec, set.Lifecycle); err != nil {
			t.Fatal(err)
		}
		if _, err := applier.Record(b.ctx, rec); err != nil {
			t.Fatal(err)
		}
		// The plan, as retain plan builds it from the same record.
		c, _, err := ingest.NewCustomer(eng, rec, imported)
		if err != nil {
			t.Fatal(err)
		}
		chs, err := eng.SimulateFrom(c, rec.Events, imported, until)
		if err != nil {
			t.Fatal(err)
		}
		if d := os.Getenv("RETAIN_BACKFILL_DEBUG"); d == rec.ID {
			t.Logf("%s events %+v", rec.ID, rec.Events)
			for _, ch := range chs {
				t.Logf("plan %s %s %s %s %s", ch.At.UTC().Format(time.RFC3339), ch.Kind, ch.Campaign, ch.Step, ch.Reason)
			}
		}
		for _, ch := range chs {
			if ch.Kind == lifecycle.KindSent && !ch.At.Before(imported) {
				domain := "acme.example" // RETAIN_FROM's, unless the campaign has a from: of its own
				if c := set.Campaign(ch.Campaign); c != nil && c.From != nil {
					domain = domainOf(c.From.Address)
				}
				want = append(want, sent{mailer.MessageID(ch.Step, rec.ID, ch.Enrollment, domain), ch.At, rec.ID + " " + ch.Step})
			}
		}
	}

	for now := imported; !now.After(until); now = now.Add(step) {
		b.clock.t = now
		if _, err := applier.Sweep(b.ctx, now, 0); err != nil {
			t.Fatal(err)
		}
		for {
			l, err := b.store.ClaimDue(b.ctx, now, time.Minute, 100)
			if err != nil {
				t.Fatal(err)
			}
			if l == nil {
				break
			}
			if err := w.ProcessLease(b.ctx, l); err != nil {
				t.Fatal(err)
			}
		}
	}

	if os.Getenv("RETAIN_BACKFILL_DEBUG") != "" {
		id := os.Getenv("RETAIN_BACKFILL_DEBUG")
		c, _ := b.store.Customer(b.ctx, id)
		for cid, e := range c.Enrollments {
			t.Logf("%s %s: %+v", id, cid, e)
		}
		h, _ := b.store.History(b.ctx, id)
		t.Logf("%s history %+v", id, h)
		due := store.CustomerPrefix(b.prefix, id) + "due"
		n, _ := b.rdb.ZCard(b.ctx, due).Result()
		zs, _ := b.rdb.ZRangeWithScores(b.ctx, due, 0, 5).Result()
		t.Logf("due index of %s's shard %d: %v", id, n, zs)
	}
	got := map[string]time.Time{}
	what := map[string]string{}
	for _, m := range b.smtp.Messages() {
		id := strings.Trim(m.Header.Get("Message-ID"), "<>")
		if _, dup := got[id]; dup {
			t.Errorf("%s arrived twice", id)
		}
		d, _ := m.Header.Date()
		got[id] = d
		what[id] = strings.Join(m.To, ",") + " " + subject(m)
	}
	var problems []string
	for _, s := range want {
		at, ok := got[s.id]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("planned, never sent: %s at %s", s.what, s.at.UTC().Format(time.RFC3339)))
		case at.Before(s.at.Add(-time.Second)) || at.After(s.at.Add(step)):
			problems = append(problems, fmt.Sprintf("%s: planned at %s, sent at %s", s.what, s.at.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339)))
		}
		delete(got, s.id)
	}
	for id, at := range got {
		problems = append(problems, fmt.Sprintf("sent, never planned: %s (%s) at %s", what[id], id, at.UTC().Format(time.RFC3339)))
	}
	slices.Sort(problems)
	if len(problems) > 0 {
		t.Errorf("the plan and the sends disagree (seed %d) on %d of %d planned emails:\n%s", seed, len(problems), len(want), strings.Join(problems, "\n"))
	}
	if len(want) == 0 {
		t.Error("the plan has no email: the histories are too old to test anything")
	}
}

// randomHistory is a customer who signed up some time in the past year, maybe
// created projects, ordered, logged in.
func randomHistory(rng *rand.Rand, id string, now time.Time) *ingest.Record {
	ago := func(max time.Duration) time.Time {
		return now.Add(-time.Duration(rng.Int64N(int64(max))))
	}
	// Half of them signed up in the last three weeks, so their onboarding is
	// under way; the rest up to a year ago.
	signup := ago(21 * 24 * time.Hour)
	if rng.IntN(2) == 0 {
		signup = ago(365 * 24 * time.Hour)
	}
	after := func() time.Time {
		return signup.Add(time.Duration(rng.Int64N(int64(now.Sub(signup)) + 1)))
	}
	evs := []lifecycle.Event{{Name: "signed_up", At: signup}}
	for _, name := range []string{"project_created", "order_placed", "logged_in", "logged_in"} {
		if rng.IntN(3) == 0 {
			evs = append(evs, lifecycle.Event{Name: name, At: after()})
		}
	}
	plans := []string{"free", "team", "business"}
	return &ingest.Record{ID: id, Email: id + "@example.org", FirstName: "Ada", Stage: "lead",
		Timezone:   []string{"Europe/Amsterdam", "America/New_York", "Asia/Tokyo"}[rng.IntN(3)],
		Attributes: map[string]any{"plan": plans[rng.IntN(3)]}, Events: evs}
}

// TestBackfillDoesNotMailThePast: sign-ups from 100 and 365 days ago,
// imported today (import --apply), used to get "Welcome" at once although the
// replayed time rules had long moved them on. Nothing from their past is sent:
// the welcome is recorded as stale, and the customer is where the rules put
// them.
func TestBackfillDoesNotMailThePast(t *testing.T) {
	b := setup(t)
	now := b.clock.Now()
	for _, days := range []int{100, 365} {
		rec := &ingest.Record{ID: fmt.Sprintf("old%d", days), Email: fmt.Sprintf("old%d@example.org", days),
			Events: []lifecycle.Event{{Name: "signed_up", At: now.AddDate(0, 0, -days)}}}
		if err := ingest.Check(rec, b.applier.Engine.Set().Lifecycle); err != nil {
			t.Fatal(err)
		}
		if _, err := b.applier.Record(b.ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.applier.Sweep(b.ctx, now, 0); err != nil {
		t.Fatal(err)
	}
	b.run(t)
	b.advance(t, 24*time.Hour)
	if msgs := b.smtp.Messages(); len(msgs) != 0 {
		t.Errorf("%d emails went out for a past that is over; first: %q to %v", len(msgs), subject(msgs[0]), msgs[0].To)
	}
	c, err := b.store.Customer(b.ctx, "old100")
	if err != nil {
		t.Fatal(err)
	}
	if c.Stage != "active" || c.Enrollments["onboarding"].Status != lifecycle.Exited && c.Enrollments["onboarding"].Status != lifecycle.Completed {
		t.Errorf("old100 is %s with onboarding %+v; want active, onboarding over", c.Stage, c.Enrollments["onboarding"])
	}
}

// useExamples makes b's worker and applier those of the example campaigns
// (../campaigns), sending from hello@acme.example with plain links, and
// returns the campaigns.
func (b *testBundle) useExamples(t *testing.T, log *slog.Logger) *campaign.Set {
	t.Helper()
	set, err := campaign.Load(filepath.Join("..", "campaigns"))
	if err != nil {
		t.Fatalf("example campaigns: %v", err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	eng := lifecycle.New(set)
	b.applier = &ingest.Applier{Store: b.store, Engine: eng, Now: b.clock.Now}
	links := func(c *lifecycle.Customer, _ string) render.Links {
		return render.NewLinks("https://retain.acme.example/u/"+c.ID, "https://retain.acme.example/p/"+c.ID, nil, set.Lifecycle.Links)
	}
	b.worker, err = NewWorker(WorkerConfig{Store: b.store, Engine: eng, Renderer: r, Sender: b.pool,
		From:  mail.Address{Name: "Acme", Address: "hello@acme.example"},
		Links: links, Now: b.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return set
}
