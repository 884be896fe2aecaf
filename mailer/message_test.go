package mailer

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func message() *Message {
	return &Message{
		From:        mail.Address{Name: "Acme", Address: "news@acme.example"},
		To:          mail.Address{Name: "Zoë Ünal", Address: "zoe@example.org"},
		Subject:     "Welcome, Zoë",
		Text:        "Hi Zoë,\n\nWelcome.\n",
		HTML:        "<p>Hi Zoë,</p><p>Welcome.</p>",
		MessageID:   MessageID("onboarding/welcome", "c42", 1, "acme.example"),
		Date:        time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC),
		Unsubscribe: "https://retain.acme.example/u/tok",
	}
}

// parse writes m and reads it back as a mail client would.
func parse(t *testing.T, m *Message) (*mail.Message, map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(&buf)
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, buf.String())
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative", msg.Header.Get("Content-Type"))
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var order []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p) // quoted-printable is decoded by NextPart
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = string(body)
		order = append(order, ct)
	}
	if strings.Join(order, ",") != "text/plain,text/html" {
		t.Errorf("parts = %v, want text/plain then text/html (the last is preferred)", order)
	}
	return msg, parts
}

func TestMessageHeadersAndParts(t *testing.T) {
	m := message()
	msg, parts := parse(t, m)
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	to, _ := msg.Header.AddressList("To")
	for name, got := range map[string]string{
		"Subject":               subject,
		"From":                  msg.Header.Get("From"),
		"To":                    to[0].String(),
		"Date":                  msg.Header.Get("Date"),
		"Message-ID":            msg.Header.Get("Message-ID"),
		"List-Unsubscribe":      msg.Header.Get("List-Unsubscribe"),
		"List-Unsubscribe-Post": msg.Header.Get("List-Unsubscribe-Post"),
	} {
		want := map[string]string{
			"Subject":               "Welcome, Zoë",
			"From":                  `"Acme" <news@acme.example>`,
			"To":                    `=?utf-8?q?Zo=C3=AB_=C3=9Cnal?= <zoe@example.org>`,
			"Date":                  "Sat, 14 Mar 2026 09:30:00 +0000",
			"Message-ID":            "<" + m.MessageID + ">",
			"List-Unsubscribe":      "<https://retain.acme.example/u/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		}[name]
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if strings.ReplaceAll(parts["text/plain"], "\r\n", "\n") != m.Text || parts["text/html"] != m.HTML {
		t.Errorf("parts = %q", parts)
	}
}

func TestMessageIDIsDeterministic(t *testing.T) {
	a := MessageID("onboarding/welcome", "c42", 1, "acme.example")
	if a != MessageID("onboarding/welcome", "c42", 1, "acme.example") {
		t.Error("the same send got two Message-IDs")
	}
	for _, other := range []string{
		MessageID("onboarding/welcome", "c42", 2, "acme.example"),
		MessageID("onboarding/tips", "c42", 1, "acme.example"),
		MessageID("onboarding/welcome", "c43", 1, "acme.example"),
	} {
		if other == a {
			t.Errorf("different sends share Message-ID %s", a)
		}
	}
	if _, err := mail.ParseAddress("<" + a + ">"); err != nil {
		t.Errorf("Message-ID %q is not a valid msg-id: %v", a, err)
	}
}

func TestHTTPUnsubscribeHasNoOneClickHeader(t *testing.T) {
	m := message()
	m.Unsubscribe = "http://localhost:8080/u/tok"
	m.UnsubscribeMailto = "mailto:unsubscribe@acme.example?subject=tok"
	msg, _ := parse(t, m)
	if got := msg.Header.Get("List-Unsubscribe"); got != "<http://localhost:8080/u/tok>, <mailto:unsubscribe@acme.example?subject=tok>" {
		t.Errorf("List-Unsubscribe = %q", got)
	}
	if got := msg.Header.Get("List-Unsubscribe-Post"); got != "" {
		t.Errorf("List-Unsubscribe-Post = %q on a non-https URL; RFC 8058 requires https", got)
	}
}

func TestBuildRefusesLineBreaksInHeaders(t *testing.T) {
	for name, mutate := range map[string]func(*Message){
		"subject":     func(m *Message) { m.Subject = "Hi\r\nBcc: victim@example.org" },
		"to name":     func(m *Message) { m.To.Name = "Eve\nBcc: x@example.org" },
		"unsubscribe": func(m *Message) { m.Unsubscribe = "https://x.example/u\r\nX: y" },
	} {
		m := message()
		mutate(m)
		if _, err := m.Build(); !errors.Is(err, ErrHeaderInjection) {
			t.Errorf("%s with a line break: err = %v, want ErrHeaderInjection", name, err)
		}
	}
}
