package queue

import (
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// redeploy replaces the bundle's worker and applier with ones running the
// campaigns in dir, on the same Redis, SMTP server and clock: a deploy of
// edited campaign files.
func (b *testBundle) redeploy(t *testing.T, dir string) {
	t.Helper()
	set, err := campaign.Load(dir)
	if err != nil {
		t.Fatalf("edited campaigns: %v", err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	eng := lifecycle.New(set)
	b.store.Also = report.NewRecorder(b.prefix, set.Lifecycle).Record
	w, err := NewWorker(WorkerConfig{
		Store: b.store, Engine: eng, Renderer: r, Sender: b.pool,
		From:  mail.Address{Name: "Acme", Address: "hello@acme.example"},
		Links: testLinks, Now: b.clock.Now, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	b.worker = w
	b.applier = &ingest.Applier{Store: b.store, Engine: eng, Now: b.clock.Now}
}

// copyCampaigns copies testdata/campaigns to a folder the test may edit.
func copyCampaigns(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/campaigns")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func subjects(b *testBundle, to string) []string {
	var out []string
	for _, m := range b.smtp.Messages() {
		if strings.Join(m.To, ",") == to {
			out = append(out, subject(m))
		}
	}
	return out
}

// TestEditedCampaignNeverResendsAndRecordsWhatItSkips deploys two edits
// while customers are in the onboarding campaign: a step file renamed without
// id: (which used to send the welcome again), then a step a customer had moved
// to the end (which used to complete customers without their check-in).
func TestEditedCampaignNeverResendsAndRecordsWhatItSkips(t *testing.T) {
	b := setup(t)
	dir := copyCampaigns(t)
	b.redeploy(t, dir)
	b.signUp(t, "c1", "Ada")
	b.run(t) // welcome

	// Edit 1: 01-welcome.md becomes 01-welcome-email.md, without id:.
	ob := filepath.Join(dir, "onboarding")
	if err := os.Rename(filepath.Join(ob, "01-welcome.md"), filepath.Join(ob, "01-welcome-email.md")); err != nil {
		t.Fatal(err)
	}
	b.redeploy(t, dir)
	b.advance(t, 2*24*time.Hour) // first project, on time
	b.signUp(t, "c2", "Bob")     // signs up after the deploy: gets the renamed welcome
	b.run(t)

	// Edit 2: the first project step, which c1 had, moves after the check-in.
	if err := os.Rename(filepath.Join(ob, "02-first-project.md"), filepath.Join(ob, "04-first-project.md")); err != nil {
		t.Fatal(err)
	}
	b.redeploy(t, dir)
	b.advance(t, 5*24*time.Hour)
	b.advance(t, 30*24*time.Hour)

	if got, want := strings.Join(subjects(b, "c1@example.org"), "|"), "Welcome, Ada|Your first project|How is it going?"; got != want {
		t.Errorf("c1 got %q, want %q: no second welcome, and the check-in despite the reorder", got, want)
	}
	if got, want := strings.Join(subjects(b, "c2@example.org"), "|"), "Welcome, Bob|How is it going?|Your first project"; got != want {
		t.Errorf("c2 got %q, want %q", got, want)
	}
	c1, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	enr := c1.Enrollments["onboarding"]
	if enr.Status != lifecycle.Completed || enr.Reason != "all steps passed" {
		t.Errorf("c1's enrollment is %s (%s), want completed (all steps passed)", enr.Status, enr.Reason)
	}
	if len(enr.Edits) != 1 || enr.Edits[0].Step != "welcome-email" || !strings.HasPrefix(enr.Edits[0].Reason, lifecycle.EditedCause) {
		t.Errorf("c1's enrollment records edits %+v, want welcome-email skipped because the campaign was edited", enr.Edits)
	}
	// The counters are per shard (each customer's in its own): sum them.
	counts := map[string]int{}
	for i := range store.Shards {
		shard, err := b.rdb.HGetAll(b.ctx, store.ShardPrefix(b.prefix, i)+"report:campaign:onboarding").Result()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range shard {
			n, _ := strconv.Atoi(v)
			counts[k] += n
		}
	}
	if counts["onboarding/welcome-email|edited"] != 1 || counts["onboarding/welcome-email|sent"] != 1 || counts["onboarding/welcome|sent"] != 1 {
		t.Errorf("report counters %v: want welcome-email skipped by the edit once (c1) and sent once (c2), welcome sent once", counts)
	}
}
