package inbox_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/inbox"
)

// welcome is a message as retain's mailer builds it: multipart/alternative,
// quoted-printable parts, an encoded-word subject.
const welcome = "From: \"Acme Projects\" <hello@example.com>\r\n" +
	"To: <anna@example.org>\r\n" +
	"Subject: =?UTF-8?q?Welcome_to_Acme,_Anna_=E2=80=94_hi?=\r\n" +
	"Message-ID: <welcome.anna@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Hi Anna, caf=C3=A9 time. A long line that is wrapped by the encoder at seventy=\r\n" +
	"-six characters.\r\n" +
	"--b1\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p style=3D\"color:red\">Hi Anna</p><script>alert(1)</script>\r\n" +
	"--b1--\r\n"

type testBundle struct {
	box *inbox.Inbox
	web *httptest.Server
}

func setup(t *testing.T, cfg inbox.Config) *testBundle {
	t.Helper()
	box, err := inbox.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { box.Close() })
	web := httptest.NewServer(box)
	t.Cleanup(web.Close)
	return &testBundle{box: box, web: web}
}

func (b *testBundle) send(t *testing.T, to, raw string) {
	t.Helper()
	changed := b.box.Changed()
	if err := smtp.SendMail(b.box.Addr(), nil, "bounce@example.com", []string{to}, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the message did not arrive")
	}
}

func (b *testBundle) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(b.web.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestMessageSentOverSMTPAppearsDecodedInTheAPIAndPages(t *testing.T) {
	b := setup(t, inbox.Config{})
	b.send(t, "anna@example.org", welcome)

	_, body := b.get(t, "/inbox/api/messages")
	var got struct{ Messages []inbox.Message }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if len(got.Messages) != 1 {
		t.Fatalf("%d messages, want 1", len(got.Messages))
	}
	m := got.Messages[0]
	if m.Subject != "Welcome to Acme, Anna — hi" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.From != "bounce@example.com" || len(m.To) != 1 || m.To[0] != "anna@example.org" {
		t.Errorf("envelope from %q to %q", m.From, m.To)
	}
	if want := "Hi Anna, café time. A long line that is wrapped by the encoder at seventy-six characters."; !strings.HasPrefix(m.Text, want) {
		t.Errorf("text part %q, want it to start with %q", m.Text, want)
	}
	if !strings.Contains(m.HTML, `<p style="color:red">Hi Anna</p>`) {
		t.Errorf("html part %q", m.HTML)
	}
	if m.Header["Message-Id"] == nil {
		t.Errorf("headers %v lack Message-Id", m.Header)
	}

	_, list := b.get(t, "/inbox/")
	for _, want := range []string{"Welcome to Acme, Anna — hi", "anna@example.org", `href="/inbox/1"`, "Acme Projects"} {
		if !strings.Contains(list, want) {
			t.Errorf("the list page lacks %q:\n%s", want, list)
		}
	}
	_, page := b.get(t, "/inbox/1")
	for _, want := range []string{`<iframe sandbox src="/inbox/1/html"`, "café time", "Message-Id", "Content-Transfer-Encoding: quoted-printable", "&lt;script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the message page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("the message page carries the email's script unescaped")
	}
	resp, html := b.get(t, "/inbox/1/html")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox;") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("html part CSP %q, want a sandbox with nothing allowed to run", csp)
	}
	if !strings.Contains(html, "Hi Anna") {
		t.Errorf("html part %q", html)
	}
	if resp, _ := b.get(t, "/inbox/2"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown message answers %d, want 404", resp.StatusCode)
	}
}

func TestInboxKeepsTheLastMaxMessages(t *testing.T) {
	b := setup(t, inbox.Config{Max: 2})
	for _, s := range []string{"one", "two", "three"} {
		b.send(t, "anna@example.org", "Subject: "+s+"\r\n\r\nbody\r\n")
	}
	msgs := b.box.Messages()
	if len(msgs) != 2 || msgs[0].Subject != "two" || msgs[1].Subject != "three" || msgs[1].ID != 3 {
		t.Fatalf("kept %+v, want two and three", msgs)
	}
}

func TestNoticeShowsOnTheInboxPages(t *testing.T) {
	b := setup(t, inbox.Config{Notice: func() []string { return []string{"campaigns/onboarding/02.md:3:8: unknown key"} }})
	_, list := b.get(t, "/inbox/")
	if !strings.Contains(list, "campaigns/onboarding/02.md:3:8: unknown key") {
		t.Errorf("the list page lacks the notice:\n%s", list)
	}
}
