package queue

import (
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/internal/tracktest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
)

func TestWorkerRewritesLinksIntoSignedClicksButNotUnsubscribe(t *testing.T) {
	b := setup(t)
	signer, err := link.NewSigner("0123456789abcdef0123456789abcdef", "https://retain.acme.example")
	if err != nil {
		t.Fatal(err)
	}
	b.signUp(t, "c1", "Ada")
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	st := b.applier.Engine.Set().Step("onboarding/welcome")

	plain, err := b.worker.message(c, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.HTML, `href="https://app.example.com/"`) || strings.Contains(plain.HTML, "/c/") {
		t.Errorf("without Click the links must stay as written:\n%s", plain.HTML)
	}

	b.worker.cfg.Click = signer.ClickURL
	m, err := b.worker.message(c, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	click := signer.Token(link.Claims{Kind: link.Click, Customer: "c1", Campaign: "onboarding", Step: "onboarding/welcome", URL: "https://app.example.com/"})
	clickURL := "https://retain.acme.example/c/" + click
	if !strings.Contains(m.HTML, `href="`+clickURL+`"`) || strings.Contains(m.HTML, `href="https://app.example.com/"`) {
		t.Errorf("HTML part: the dashboard link is not the signed click link:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, "("+clickURL+")") || strings.Contains(m.Text, "(https://app.example.com/)") {
		t.Errorf("text part: the dashboard link is not the signed click link:\n%s", m.Text)
	}
	for _, keep := range []string{"https://retain.acme.example/u/c1", "https://retain.acme.example/p/c1"} {
		if !strings.Contains(m.HTML, `href="`+keep+`"`) || !strings.Contains(m.Text, keep) {
			t.Errorf("%s was rewritten or lost", keep)
		}
	}
	if m.Unsubscribe != "https://retain.acme.example/u/c1" {
		t.Errorf("List-Unsubscribe = %q, want the one-click link itself", m.Unsubscribe)
	}
	claims, err := signer.Verify(click, time.Now())
	if err != nil || claims.URL != "https://app.example.com/" {
		t.Errorf("click token: %+v, %v", claims, err)
	}
}

// signedLinks are the links of cmd/retain's customerLinks: the signed
// unsubscribe link, the preference and NPS links signed when the email uses
// them, and the fixed links of lifecycle.yaml. nps counts the NPS links signed.
func signedLinks(s *link.Signer, fixed map[string]string, now func() time.Time, nps *atomic.Int64) func(c *lifecycle.Customer, campaignID string) render.Links {
	return func(c *lifecycle.Customer, campaignID string) render.Links {
		at := now()
		n := 0
		if enr := c.Enrollments[campaignID]; enr != nil {
			n = enr.Number
		}
		return render.NewLazyLinks(s.UnsubscribeURL(c.ID, ""), func() string { return s.PreferencesURL(c.ID) },
			func(score int) string {
				nps.Add(1)
				return s.NPSEnrollmentURL(c.ID, campaignID, n, score, at, 90*24*time.Hour)
			}, fixed)
	}
}

// referenceTrackClicks is how the worker tracked clicks before Render did.
var referenceTrackClicks = tracktest.Regexps

func referenceMessage(t *testing.T, s *link.Signer, eng *lifecycle.Engine, r *render.Renderer, c *lifecycle.Customer, st *campaign.Step, now time.Time) *mailer.Message {
	t.Helper()
	n := c.Enrollments[st.Campaign.ID].Number
	nps := make([]render.NPSLink, 11)
	skip := map[string]bool{}
	for i := range nps {
		nps[i] = render.NPSLink{Score: i, URL: s.NPSEnrollmentURL(c.ID, st.Campaign.ID, n, i, now, 90*24*time.Hour)}
		skip[nps[i].URL] = true
	}
	links := render.Links{render.LinkUnsubscribe: s.UnsubscribeURL(c.ID, ""), render.LinkPreferences: s.PreferencesURL(c.ID), render.LinkNPS: nps}
	skip[s.UnsubscribeURL(c.ID, "")], skip[s.PreferencesURL(c.ID)] = true, true
	for k, v := range eng.Set().Lifecycle.Links {
		links[k] = v
	}
	email, err := r.Render(st.ID, render.NewData(eng, c, links, "hello@acme.example"))
	if err != nil {
		t.Fatal(err)
	}
	email.HTML, email.Text = referenceTrackClicks(email.HTML, email.Text, skip,
		func(u string) (string, error) { return s.ClickURL(c.ID, st.Campaign.ID, st.ID, u) })
	// The campaign's from: and reply_to:, else RETAIN_FROM's address.
	from, domain := mail.Address{Name: "Acme", Address: "hello@acme.example"}, "acme.example"
	if st.Campaign.From != nil {
		from = *st.Campaign.From
		domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}
	return &mailer.Message{
		From: from, To: mail.Address{Name: cmpOr(c.Name, c.FirstName), Address: c.Email}, ReplyTo: st.Campaign.ReplyTo,
		Subject: email.Subject, Text: email.Text, HTML: email.HTML,
		MessageID: mailer.MessageID(st.ID, c.ID, n, domain), Date: now, Unsubscribe: s.UnsubscribeURL(c.ID, ""),
		UnsubscribeMailto: "mailto:unsubscribe@acme.example",
		Headers:           referenceHeaders(st, domain),
	}
}

// referenceHeaders are the Feedback-ID and topic header fields of st's emails
// from an address at domain.
func referenceHeaders(st *campaign.Step, domain string) []mailer.Header {
	topic := cmpOr(st.Campaign.Topic, "-")
	hs := []mailer.Header{{Name: "Feedback-ID", Value: st.ID + ":" + st.Campaign.ID + ":" + topic + ":" + domain}}
	if st.Campaign.Topic != "" {
		hs = append(hs, mailer.Header{Name: "X-Retain-Topic", Value: st.Campaign.Topic})
	}
	return hs
}

// messageCustomers are the customers the message tests build every step for.
func messageCustomers(set *campaign.Set, campaignID string) []*lifecycle.Customer {
	evil := `<a href="https://evil.example/">x</a> (https://evil.example/) & 'q' "quoted" ` + "\x00\u2028é"
	var cs []*lifecycle.Customer
	for i, c := range []*lifecycle.Customer{
		{ID: "c1", Email: "ada@example.com", FirstName: "Ada", Name: "Ada Lovelace", Stage: "onboarding"},
		{ID: "c2", Email: "x@example.com", Locale: "nl"},
		{ID: "c<3>&\"", Email: "evil@example.com", FirstName: evil, Name: evil, Locale: "de"},
	} {
		c.Attributes = map[string]any{}
		for name, typ := range set.Lifecycle.Attributes {
			c.Attributes[name] = typ.Zero()
			if _, ok := c.Attributes[name].(string); ok && i > 0 {
				c.Attributes[name] = []string{"https://app.example.com/?a=1&b=2", evil}[i-1]
			}
		}
		c.Enrollments = map[string]*lifecycle.Enrollment{campaignID: {Campaign: campaignID, Number: i + 1, Status: lifecycle.Active}}
		cs = append(cs, c)
	}
	return cs
}

func TestMessagesAreTheSameBytesAsWhenEveryLinkWasSignedFirst(t *testing.T) {
	signer, err := link.NewSigner("0123456789abcdef0123456789abcdef", "https://retain.acme.example")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, dir := range []string{"testdata/campaigns", "../campaigns", "../bench/testdata/campaigns"} {
		set, err := campaign.Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		r, err := render.Compile(set, filepath.Join("..", "templates"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		eng := lifecycle.New(set)
		var nps atomic.Int64
		cfg := &WorkerConfig{From: mail.Address{Address: "hello@acme.example"}, Links: signedLinks(signer, set.Lifecycle.Links, func() time.Time { return now }, &nps),
			Click: signer.ClickURL, UnsubscribeMailto: "mailto:unsubscribe@acme.example", Now: func() time.Time { return now }}
		n := 0
		for _, camp := range set.Campaigns {
			for _, st := range camp.Steps {
				for _, c := range messageCustomers(set, camp.ID) {
					want := referenceMessage(t, signer, eng, r, c, st, now)
					if st.Campaign.From == nil {
						want.From.Name = set.Lifecycle.Sender.Name
					}
					nps.Store(0)
					got, err := Message(cfg, eng, r, c, st, c.Enrollments[camp.ID].Number)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("%s for %s: the message differs from the reference (-reference +Message):\n%s", st.ID, c.ID, diff)
					}
					if survey := strings.Contains(got.HTML, "/nps/"); nps.Load() != 0 && !survey || survey && nps.Load() != 11 {
						t.Errorf("%s for %s: %d NPS links signed; the email has NPS links: %v", st.ID, c.ID, nps.Load(), survey)
					}
					n++
				}
			}
		}
		if n < 3 {
			t.Errorf("%s: %d messages compared", dir, n)
		}
	}
}

// BenchmarkWorkerMessage builds the message of the bench's ~500-word step
// (bench/testdata) as `retain worker` does: links, render, click tracking and
// headers, without Redis or SMTP.
func BenchmarkWorkerMessage(b *testing.B) {
	set, err := campaign.Load(filepath.Join("..", "bench", "testdata", "campaigns"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		b.Fatal(err)
	}
	signer, err := link.NewSigner("retain-bench-secret-0123456789abcdef", "https://retain.acme.example")
	if err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) }
	var nps atomic.Int64
	w := &Worker{
		cfg: WorkerConfig{From: mail.Address{Name: "Acme Projects", Address: "hello@acme.example"},
			Links: signedLinks(signer, set.Lifecycle.Links, now, &nps), Click: signer.ClickURL, Now: now},
		engine: lifecycle.New(set), renderer: r,
	}
	c := &lifecycle.Customer{ID: "c000042", Email: "c000042@bench.example", FirstName: "Ada", Name: "Ada Lovelace",
		Stage: "onboarding", Attributes: map[string]any{"plan": "free", "company": "Analytical Engines Ltd"},
		Enrollments: map[string]*lifecycle.Enrollment{"welcome": {Campaign: "welcome", Number: 1, Status: lifecycle.Active}}}
	st := set.Step("welcome/guide")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.message(c, st, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMessageUsesTheCampaignsSender: a campaign's from: and reply_to: are its
// emails' From and Reply-To, and the From domain names the Message-ID and the
// Feedback-ID's sender; other campaigns keep RETAIN_FROM.
func TestMessageUsesTheCampaignsSender(t *testing.T) {
	set, err := campaign.Load("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := link.NewSigner("0123456789abcdef0123456789abcdef", "https://retain.acme.example")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var nps atomic.Int64
	cfg := &WorkerConfig{From: mail.Address{Address: "hello@acme.example"}, Links: signedLinks(signer, set.Lifecycle.Links, func() time.Time { return now }, &nps),
		Now: func() time.Time { return now }}
	eng := lifecycle.New(set)
	onb := set.Campaigns[slices.IndexFunc(set.Campaigns, func(c *campaign.Campaign) bool { return c.ID == "onboarding" })]
	onb.From = &mail.Address{Name: "Sanne from Acme", Address: "sanne@team.acme.example"}
	onb.ReplyTo = &mail.Address{Address: "sanne@help.acme.example"}
	c := messageCustomers(set, onb.ID)[0]
	m, err := Message(cfg, eng, r, c, onb.Steps[0], 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != *onb.From || m.ReplyTo == nil || *m.ReplyTo != *onb.ReplyTo {
		t.Errorf("From %v, Reply-To %v; want the campaign's", m.From, m.ReplyTo)
	}
	if !strings.HasSuffix(m.MessageID, "@team.acme.example") || !strings.HasSuffix(m.Headers[0].Value, ":team.acme.example") {
		t.Errorf("Message-ID %s, %s: %s; want the campaign's From domain", m.MessageID, m.Headers[0].Name, m.Headers[0].Value)
	}
	for _, camp := range set.Campaigns {
		if camp == onb {
			continue
		}
		m, err := Message(cfg, eng, r, messageCustomers(set, camp.ID)[0], camp.Steps[0], 1)
		if err != nil {
			t.Fatal(err)
		}
		if m.From.Address != "hello@acme.example" || m.ReplyTo != nil {
			t.Errorf("%s: From %v, Reply-To %v; want RETAIN_FROM and none", camp.ID, m.From, m.ReplyTo)
		}
	}
}
