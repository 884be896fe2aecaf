package web

import (
	"context"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/mailer"
)

// TestStepPageSendsATest: the step preview's "Send me this" sends the step,
// rendered for the customer previewed, through a real SMTP relay, marked as a
// test, with links that change no one; Redis is left as it was. A post from
// another site, and a bad address, send nothing.
func TestStepPageSendsATest(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "anna", Email: "anna@example.org", FirstName: "Anna", Locale: "nl"})
	relay := smtptest.Start(t)
	cfg, err := mailer.ParseURL(relay.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := mailer.NewPool(cfg)
	t.Cleanup(func() { pool.Close() })
	d := b.srv.d
	d.TestSend = &TestSend{Sender: pool, From: mail.Address{Name: "Acme", Address: "hello@acme.example"}}
	srv, err := New(b.srv.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, srv)

	page, _ := b.getAt(t, ts.URL, "/campaigns/onboarding/welcome?customer=anna")
	wantContains(t, "step page", page, `action="/campaigns/onboarding/welcome/send-test"`, `name="customer" value="anna"`)

	keysBefore := keysUnder(t, b)
	post := func(to, origin string) *http.Response {
		form := url.Values{"to": {to}, "customer": {"anna"}}
		req, _ := http.NewRequestWithContext(t.Context(), "POST", ts.URL+"/campaigns/onboarding/welcome/send-test", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		basicAuth(req)
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := post("me@acme.example", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a post from another site: %d, want 403", resp.StatusCode)
	}
	if resp := post("not an address", ts.URL); resp.StatusCode != http.StatusOK {
		t.Errorf("a bad address: %d, want the page again (200)", resp.StatusCode)
	}
	resp := post("me@acme.example", ts.URL)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "sent=me%40acme.example") {
		t.Fatalf("send: %d to %q, want 303 back to the page", resp.StatusCode, resp.Header.Get("Location"))
	}
	msgs := relay.Wait(1, 5*time.Second)
	time.Sleep(50 * time.Millisecond)
	if msgs = relay.Messages(); len(msgs) != 1 {
		t.Fatalf("the relay got %d emails, want 1", len(msgs))
	}
	m := msgs[0]
	subject := m.Header.Get("Subject")
	if m.To[0] != "me@acme.example" || !strings.HasPrefix(subject, "[test] ") || m.Header.Get("Feedback-Id") == "" {
		t.Errorf("test email to %v, subject %q, Feedback-ID %q", m.To, subject, m.Header.Get("Feedback-Id"))
	}
	raw := string(m.Raw)
	if !strings.Contains(raw, "/preview/unsubscribe") || strings.Contains(raw, "/u/") {
		t.Errorf("the test email's unsubscribe link is not the preview's:\n%s", raw)
	}
	if !strings.Contains(raw, "Anna") {
		t.Errorf("the test email is not rendered for anna:\n%s", raw)
	}
	if after := keysUnder(t, b); after != keysBefore {
		t.Errorf("a test send changed Redis: before\n%q\nafter\n%q", keysBefore, after)
	}
	page, _ = b.getAt(t, ts.URL, "/campaigns/onboarding/welcome?customer=anna&sent=me%40acme.example")
	wantContains(t, "step page after the send", page, "Test email sent to me@acme.example.")
}

func (b *uiBundle) getAt(t *testing.T, base, path string) (string, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
	basicAuth(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}

// keysUnder is what Redis holds under the test's prefix: every key and its
// serialized value (DUMP), sorted.
func keysUnder(t *testing.T, b *uiBundle) string {
	t.Helper()
	ctx := context.Background()
	keys, err := redistest.Keys(ctx, b.rdb, b.prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for _, k := range keys {
		v, err := b.rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString(k + "=" + v + "\n")
	}
	return sb.String()
}
