package mailer

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// ErrHeaderInjection is returned when a header value would carry a line break.
var ErrHeaderInjection = errors.New("header value contains a line break")

// Message is one email to one customer, ready to be written or sent.
type Message struct {
	From mail.Address
	To   mail.Address
	// ReplyTo is optional.
	ReplyTo   *mail.Address
	Subject   string
	Text      string
	HTML      string
	MessageID string
	Date      time.Time
	// Unsubscribe is the customer's one-click unsubscribe URL. An https URL gets the
	// RFC 8058 List-Unsubscribe-Post header; an http URL (local development) only
	// List-Unsubscribe.
	Unsubscribe string
	// UnsubscribeMailto is an optional mailto: alternative for List-Unsubscribe.
	UnsubscribeMailto string
	// Headers are more header fields, written as given (Feedback-ID, the
	// campaign's topic).
	Headers []Header
	// ReturnPath is the envelope sender (MAIL FROM), where receivers send
	// bounces: a VERP address of the bounce domain. Empty: the From address.
	ReturnPath string
}

// Header is one header field of a Message beyond those it has fields for.
type Header struct{ Name, Value string }

// FeedbackID returns the Feedback-ID header of one step's emails, the form
// Gmail's feedback loop reports complaint rates by (Postmaster Tools): up to
// four fields separated by colons, the last the sender's ID. Here: the step,
// its campaign, the campaign's topic ("-" without one) and sender. A colon in
// a field would split it, so it becomes '-'.
func FeedbackID(step, campaign, topic, sender string) Header {
	if topic == "" {
		topic = "-"
	}
	fields := []string{step, campaign, topic, sender}
	for i, f := range fields {
		fields[i] = strings.ReplaceAll(f, ":", "-")
	}
	return Header{Name: "Feedback-ID", Value: strings.Join(fields, ":")}
}

// MessageID returns the deterministic Message-ID (without angle brackets) of the
// email for one step, customer and enrollment: a retry of the same send carries the
// same ID, so a relay or mailbox that saw it can tell.
func MessageID(stepID, customerID string, enrollment int, domain string) string {
	h := sha256.Sum256([]byte(stepID + "\x00" + customerID + "\x00" + strconv.Itoa(enrollment)))
	id := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:16]))
	return "retain." + id + "@" + domain
}

// Build returns the go-mail message in the form every relay accepts: BuildFor(false).
// It is what WriteTo writes (retain preview --format eml). It refuses header values
// with line breaks.
func (m *Message) Build() (*gomail.Msg, error) {
	return m.BuildFor(false)
}

// BuildFor returns the go-mail message for a relay that announced 8BITMIME
// (eightBitMIME) or not, as Pool.Send builds it on each connection. Each body part
// gets its own Content-Transfer-Encoding: with 8BITMIME, a part whose lines are at
// most 998 octets, with no NUL and no CR outside a CRLF, goes unencoded as 8bit;
// other parts, and all parts for a relay without 8BITMIME, are quoted-printable.
// (Plain ASCII parts would be 7bit without 8BITMIME, but go-mail v0.8.1 cannot write
// 7bit parts; see partEncoding.)
func (m *Message) BuildFor(eightBitMIME bool) (*gomail.Msg, error) {
	msg, err := m.build()
	if err != nil {
		return nil, err
	}
	setEncodings(msg, [2]bool{isPlain(m.Text), isPlain(m.HTML)}, eightBitMIME)
	return msg, nil
}

// validFrom holds the From addresses that parsed: a worker sends every
// message from one or a few, and parsing one costs more than building the
// rest of the headers.
var validFrom sync.Map

// checkFrom reports whether addr is an email address as RFC 5322 has it.
func checkFrom(addr string) error {
	if _, ok := validFrom.Load(addr); ok {
		return nil
	}
	if _, err := mail.ParseAddress("<" + addr + ">"); err != nil {
		return err
	}
	validFrom.Store(addr, struct{}{})
	return nil
}

// build returns the message with quoted-printable parts (go-mail's default), text
// then HTML.
func (m *Message) build() (*gomail.Msg, error) {
	for name, v := range map[string]string{
		"From": m.From.Name + m.From.Address, "To": m.To.Name + m.To.Address, "Subject": m.Subject, "Message-ID": m.MessageID,
		"List-Unsubscribe": m.Unsubscribe + m.UnsubscribeMailto, "Return-Path": m.ReturnPath,
	} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("%s: %w", name, ErrHeaderInjection)
		}
	}
	for _, h := range m.Headers {
		if h.Name == "" || strings.ContainsFunc(h.Name, func(r rune) bool { return r <= ' ' || r == ':' || r > '~' }) || strings.ContainsAny(h.Value, "\r\n") {
			return nil, fmt.Errorf("header %q: %w", h.Name, ErrHeaderInjection)
		}
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := checkFrom(m.From.Address); err != nil {
		return nil, fmt.Errorf("from %q: %w", m.From.Address, err)
	}
	msg.FromMailAddress(&m.From)
	if err := msg.AddToFormat(m.To.Name, m.To.Address); err != nil {
		return nil, fmt.Errorf("to %q: %w", m.To.Address, err)
	}
	if m.ReplyTo != nil {
		if err := msg.ReplyToFormat(m.ReplyTo.Name, m.ReplyTo.Address); err != nil {
			return nil, fmt.Errorf("reply-to %q: %w", m.ReplyTo.Address, err)
		}
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(m.Date)
	if m.MessageID != "" {
		msg.SetMessageIDWithValue(m.MessageID)
	}
	if err := m.setUnsubscribe(msg); err != nil {
		return nil, err
	}
	for _, h := range m.Headers {
		msg.SetGenHeader(gomail.Header(h.Name), h.Value)
	}
	msg.SetBodyWriter(gomail.TypeTextPlain, writeString(m.Text))
	msg.AddAlternativeWriter(gomail.TypeTextHTML, writeString(m.HTML))
	return msg, nil
}

// writeString is a go-mail body part that writes s, without the copy of s that
// SetBodyString makes for every message.
func writeString(s string) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		n, err := io.WriteString(w, s)
		return int64(n), err
	}
}

func (m *Message) setUnsubscribe(msg *gomail.Msg) error {
	var extra []string
	if m.UnsubscribeMailto != "" {
		if !strings.HasPrefix(m.UnsubscribeMailto, "mailto:") {
			return fmt.Errorf("unsubscribe mailto %q must start with mailto:", m.UnsubscribeMailto)
		}
		extra = append(extra, m.UnsubscribeMailto)
	}
	switch {
	case strings.HasPrefix(m.Unsubscribe, "https://"):
		if err := msg.SetListUnsubscribeOneClick(m.Unsubscribe, extra...); err != nil {
			return fmt.Errorf("unsubscribe URL: %w", err)
		}
	case m.Unsubscribe != "":
		msg.SetListUnsubscribe(append([]string{m.Unsubscribe}, extra...)...)
	case len(extra) > 0:
		msg.SetListUnsubscribe(extra...)
	}
	return nil
}

// WriteTo writes the complete RFC 5322 message to w, as Build makes it.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	msg, err := m.Build()
	if err != nil {
		return 0, err
	}
	return msg.WriteTo(w)
}
