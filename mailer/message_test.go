package mailer

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"
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

func TestFeedbackIDAndTopicHeaders(t *testing.T) {
	m := message()
	m.Headers = []Header{FeedbackID("shop/second-order", "shop", "", "acme.example"), FeedbackID("a:b", "c", "t", "s"), {Name: "X-Retain-Topic", Value: "product news"}}
	msg, _ := parse(t, m)
	if got := msg.Header["Feedback-Id"]; len(got) != 1 || got[0] != "a-b:c:t:s" {
		t.Errorf("Feedback-ID = %q, want the last one set, its colon replaced", got)
	}
	if got := FeedbackID("shop/second-order", "shop", "", "acme.example").Value; got != "shop/second-order:shop:-:acme.example" {
		t.Errorf("FeedbackID without a topic = %q", got)
	}
	if got := msg.Header.Get("X-Retain-Topic"); got != "product news" {
		t.Errorf("X-Retain-Topic = %q", got)
	}
}

func TestBuildRefusesLineBreaksInHeaders(t *testing.T) {
	for name, mutate := range map[string]func(*Message){
		"subject":      func(m *Message) { m.Subject = "Hi\r\nBcc: victim@example.org" },
		"to name":      func(m *Message) { m.To.Name = "Eve\nBcc: x@example.org" },
		"unsubscribe":  func(m *Message) { m.Unsubscribe = "https://x.example/u\r\nX: y" },
		"header value": func(m *Message) { m.Headers = []Header{{Name: "X-Retain-Topic", Value: "news\r\nBcc: x@example.org"}} },
		"header name":  func(m *Message) { m.Headers = []Header{{Name: "Bcc: x@example.org\r\nX", Value: "y"}} },
	} {
		m := message()
		mutate(m)
		if _, err := m.Build(); !errors.Is(err, ErrHeaderInjection) {
			t.Errorf("%s with a line break: err = %v, want ErrHeaderInjection", name, err)
		}
	}
}

// rawPart is a body part as it travels: its Content-Transfer-Encoding and its body,
// still encoded.
type rawPart struct {
	CTE  string
	Body string
}

// rawParts returns the body parts of a multipart message by content type.
func rawParts(t *testing.T, raw []byte) map[string]rawPart {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, raw)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]rawPart{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = rawPart{CTE: p.Header.Get("Content-Transfer-Encoding"), Body: string(body)}
	}
	return parts
}

// decoded returns the part's content with LF line ends.
func (p rawPart) decoded(t *testing.T) string {
	t.Helper()
	body := p.Body
	if p.CTE == "quoted-printable" {
		b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
		if err != nil {
			t.Fatalf("quoted-printable part: %v", err)
		}
		body = string(b)
	}
	return strings.ReplaceAll(body, "\r\n", "\n")
}

func TestBuildForEncodesEachPartOnItsOwn(t *testing.T) {
	const (
		eightBit = "8bit"
		qp       = "quoted-printable"
	)
	ascii, html := "Hi Ada,\n\nWelcome.\n", `<p class="lead">Hi Ada,</p>`
	for _, tc := range []struct {
		name         string
		text, html   string
		eightBitMIME bool
		want         [2]string // text, HTML
	}{
		{"ascii with 8BITMIME", ascii, html, true, [2]string{eightBit, eightBit}},
		{"ascii without 8BITMIME", ascii, html, false, [2]string{qp, qp}},
		{"utf-8 with 8BITMIME", "Hi Zoë,\n", "<p>Grüße</p>", true, [2]string{eightBit, eightBit}},
		{"utf-8 without 8BITMIME", "Hi Zoë,\n", "<p>Grüße</p>", false, [2]string{qp, qp}},
		{"998-octet lines", strings.Repeat("x", 998) + "\n" + strings.Repeat("y", 998), strings.Repeat("z", 998) + "\r\n", true, [2]string{eightBit, eightBit}},
		{"999-octet HTML line", ascii, "<p>" + strings.Repeat("a", 992) + "</p>\n", true, [2]string{eightBit, qp}},
		{"999-octet last line", ascii + strings.Repeat("x", 999), html, true, [2]string{qp, eightBit}},
		{"NUL", "a\x00b\n", html, true, [2]string{qp, eightBit}},
		{"bare CR", "a\rb\n", html, true, [2]string{qp, eightBit}},
		{"final bare CR", "a\r", html, true, [2]string{qp, eightBit}},
		{"CR CR LF", "a\r\r\nb\n", html, true, [2]string{qp, eightBit}},
		{"CRLF lines", "a\r\nb\r\n", "<p>\r\n</p>", true, [2]string{eightBit, eightBit}},
		{"dot lines", ".\n..\n.x\n", ".\r\n", true, [2]string{eightBit, eightBit}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := message()
			m.Text, m.HTML = tc.text, tc.html
			gm, err := m.BuildFor(tc.eightBitMIME)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := gm.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			parts := rawParts(t, buf.Bytes())
			text, html := parts["text/plain"], parts["text/html"]
			if got := [2]string{text.CTE, html.CTE}; got != tc.want {
				t.Errorf("Content-Transfer-Encoding (text, HTML) = %q, want %q", got, tc.want)
			}
			if text.CTE == eightBit && text.Body != tc.text || html.CTE == eightBit && html.Body != tc.html {
				t.Errorf("an 8bit part was changed: text %q, HTML %q", text.Body, html.Body)
			}
			// Quoted-printable (Go's, in text mode) takes a bare CR for a line break too.
			lf := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n") }
			if text.decoded(t) != lf(tc.text) || html.decoded(t) != lf(tc.html) {
				t.Errorf("parts decode to %q and %q, want %q and %q", text.decoded(t), html.decoded(t), lf(tc.text), lf(tc.html))
			}
		})
	}
}

func TestBuildIsForAnyRelay(t *testing.T) {
	for _, m := range []*Message{message(), guideMessage(t)} {
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		for ct, p := range rawParts(t, buf.Bytes()) {
			if p.CTE != "quoted-printable" {
				t.Errorf("%s part is %s; Build is for relays without 8BITMIME too", ct, p.CTE)
			}
		}
	}
}

// TestGoMailStillQuotesSevenBitParts pins a go-mail v0.8.1 bug that partEncoding
// works around: a part labelled 7bit is written quoted-printable. When this test
// fails, go-mail writes 7bit parts as they are: let partEncoding return
// gomail.EncodingUSASCII for plain ASCII parts, and delete this test.
func TestGoMailStillQuotesSevenBitParts(t *testing.T) {
	gm := gomail.NewMsg()
	if err := gm.From("a@acme.example"); err != nil {
		t.Fatal(err)
	}
	gm.SetBodyString(gomail.TypeTextPlain, "a=b\n", gomail.WithPartEncoding(gomail.EncodingUSASCII))
	var buf bytes.Buffer
	if _, err := gm.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Content-Transfer-Encoding: 7bit") || !strings.Contains(buf.String(), "a=3Db") {
		t.Errorf("go-mail now writes a 7bit part as:\n%s\nsee partEncoding", buf.String())
	}
}
