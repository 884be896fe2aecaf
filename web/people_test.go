package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// sendDue does what the scheduler and a worker do at the bundle's time, with
// the real worker, over SMTP to a test server: every email due is sent, and
// its ledger entry written as in production. It returns the test server.
func (b *uiBundle) sendDue(t *testing.T) *smtptest.Server {
	t.Helper()
	srv := smtptest.Start(t)
	cfg, err := mailer.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := mailer.NewPool(cfg)
	t.Cleanup(func() { pool.Close() })
	w, err := queue.NewWorker(queue.WorkerConfig{
		Store: b.store, Engine: b.srv.d.Engine, Renderer: b.srv.d.Renderer, Sender: pool,
		From: mail.Address{Name: "Acme", Address: "hello@acme.example"},
		Links: func(c *lifecycle.Customer, _ string) render.Links {
			return render.NewLinks(b.signer.UnsubscribeURL(c.ID, ""), b.signer.PreferencesURL(c.ID), nil, b.srv.d.Engine.Set().Lifecycle.Links)
		},
		Now: func() time.Time { return b.now },
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		l, err := b.store.ClaimDue(t.Context(), b.now, time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			return srv
		}
		if err := w.ProcessLease(t.Context(), l); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
}

// emailsOf returns GET /api/customers/{id}/emails.
func (b *uiBundle) emailsOf(t *testing.T, id string) []emailOut {
	t.Helper()
	resp, body := b.get(t, "/api/customers/"+id+"/emails", bearerAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emails of %s: %d %s", id, resp.StatusCode, body)
	}
	var out struct {
		Emails []emailOut `json:"emails"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	for i := range out.Emails {
		out.Emails[i].slug = out.Emails[i].Step[strings.IndexByte(out.Emails[i].Step, '/')+1:]
	}
	return out.Emails
}

// TestPersonPageAnswersWhyDidIGetThis: a customer whose welcome the real
// worker sent has a page with the email as sent (from the ledger), the next
// step and when it is due in the customer's zone, the stage history with its
// cause, and the events; GET /api/customers/{id}/emails says the same.
// Variants, the holdout, skipped steps and an earlier enrollment's email
// (ledger entries written with store.LedgerKey, as the worker writes them)
// show up too, and customer data is escaped.
func TestPersonPageAnswersWhyDidIGetThis(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "c1", Email: "grace@example.org", FirstName: "Grace", Name: "<b>Grace</b> Hopper", Timezone: "America/New_York"})
	srv := b.sendDue(t)
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("the worker sent %d emails, want the welcome", n)
	}

	emails := b.emailsOf(t, "c1")
	if len(emails) != 2 || emails[0].Step != "onboarding/welcome" || emails[0].State != "sent" || emails[0].Passed.IsZero() ||
		emails[1].Step != "onboarding/first-project" || emails[1].State != "scheduled" || !emails[1].Due.Equal(b.now.Add(48*time.Hour)) {
		t.Errorf("emails of c1: %+v", emails)
	}

	resp, body := b.get(t, "/people/c1", basicAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /people/c1: %d %s", resp.StatusCode, body)
	}
	wantContains(t, "the person page", body,
		`&lt;b&gt;Grace&lt;/b&gt; Hopper`, "grace@example.org", "America/New_York",
		`data-step="onboarding/welcome"`, `<td class="state ok">sent`,
		`href="/campaigns/onboarding/welcome?customer=c1"`,
		`data-step="onboarding/first-project"`, "scheduled",
		"due Wed 4 Mar 2026 04:00 EST", // 09:00 UTC two days later, in New York
		"event signed_up", `<span class="pill">onboarding</span>`, "signed_up")
	if strings.Contains(body, "<b>Grace</b>") {
		t.Error("the customer's name is not escaped")
	}

	// c2 is in its third enrollment, given variant b of the welcome, whose
	// send may have gone (unknown); its first enrollment's welcome was sent.
	// c3 is in the holdout.
	b.signUp(t, &ingest.Record{ID: "c2", Email: "ada@example.org"})
	b.signUp(t, &ingest.Record{ID: "c3", Email: "alan@example.org"})
	edit := func(id string, f func(e *lifecycle.Enrollment)) {
		t.Helper()
		err := b.store.Update(t.Context(), id, "", func(c *lifecycle.Customer) (*store.Change, error) {
			f(c.Enrollments["onboarding"])
			return &store.Change{Customer: c}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	edit("c2", func(e *lifecycle.Enrollment) {
		e.Number, e.Passed, e.Next, e.AB = 3, []string{"welcome"}, "first-project", map[string]string{"welcome": "b"}
	})
	edit("c3", func(e *lifecycle.Enrollment) {
		e.Group, e.Passed, e.Next = lifecycle.GroupControl, []string{"welcome"}, "first-project"
	})
	for key, v := range map[string]string{
		store.LedgerKey(b.prefix, "c2", "onboarding", 3, "welcome"): "unknown",
		store.LedgerKey(b.prefix, "c2", "onboarding", 1, "welcome"): "sent",
	} {
		if err := b.rdb.Set(t.Context(), key, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		step    string
		n       int
		state   string
		variant string
		current bool
	}
	rows := func(id string) []row {
		var out []row
		for _, e := range b.emailsOf(t, id) {
			out = append(out, row{e.Step, e.Enrollment, e.State, e.Variant, e.Current})
		}
		return out
	}
	want := []row{{"onboarding/welcome", 3, "unknown", "b", true}, {"onboarding/first-project", 3, "scheduled", "", true},
		{"onboarding/welcome", 1, "sent", "", false}}
	if got := rows("c2"); !equalRows(got, want) {
		t.Errorf("emails of c2: %+v, want %+v", got, want)
	}
	emails = b.emailsOf(t, "c3")
	if len(emails) != 2 || emails[0].State != "skipped" || emails[0].Reason != lifecycle.HoldoutReason || emails[0].Group != "control" {
		t.Errorf("emails of c3 (holdout): %+v", emails)
	}
	_, body = b.get(t, "/people/c2", basicAuth)
	wantContains(t, "c2's page", body, `<span class="pill">b</span>`, `(earlier)`, `<td class="state error">unknown`)

	resp, _ = b.get(t, "/people/nobody", basicAuth)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown customer's page: %d, want 404", resp.StatusCode)
	}
	resp, _ = b.get(t, "/api/customers/nobody/emails", bearerAuth)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown customer's emails: %d, want 404", resp.StatusCode)
	}
	for _, path := range []string{"/people", "/people/c1"} {
		if resp, _ := b.get(t, path, noAuth); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", path, resp.StatusCode)
		}
	}
}

func equalRows[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPeoplePageSearches: the people page lists customers, finds one by email,
// narrows by stage and by a where condition, and shows a bad condition's
// error beside the form, escaped.
func TestPeoplePageSearches(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "c1", Email: "grace@example.org", Attributes: map[string]any{"plan": "team"}})
	b.signUp(t, &ingest.Record{ID: "c2", Email: "ada@example.org", Attributes: map[string]any{"plan": "free"}})

	_, body := b.get(t, "/people", basicAuth)
	wantContains(t, "the people page", body, `href="/people/c1"`, `href="/people/c2"`, `<a href="/people">People</a>`)
	_, body = b.get(t, "/people?q=GRACE%40example.org", basicAuth)
	wantContains(t, "a search by email", body, `href="/people/c1"`, "Found by exact ID or email")
	if strings.Contains(body, `href="/people/c2"`) {
		t.Error("a search by email listed another customer")
	}
	_, body = b.get(t, "/people?where=customer.plan+%3D%3D+%22free%22&stage=onboarding", basicAuth)
	if !strings.Contains(body, `href="/people/c2"`) || strings.Contains(body, `href="/people/c1"`) {
		t.Errorf("where plan == free listed:\n%s", body)
	}
	resp, body := b.get(t, "/people?where=%3Cscript%3E", basicAuth)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="search-error"`) || strings.Contains(body, "<script>") {
		t.Errorf("a bad condition: %d\n%s", resp.StatusCode, body)
	}
}
