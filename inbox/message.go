package inbox

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// Message is one received message, parsed.
type Message struct {
	ID       int       `json:"id"`
	Received time.Time `json:"received"`
	// From and To are the SMTP envelope.
	From string   `json:"from"`
	To   []string `json:"to"`
	// Subject is the decoded Subject header.
	Subject string `json:"subject"`
	// Header holds the message's headers, values as sent.
	Header mail.Header `json:"header"`
	// HTML and Text are the decoded text/html and text/plain parts (the first of
	// each), empty when the message has none.
	HTML string `json:"html"`
	Text string `json:"text"`
	// Raw is the message as received.
	Raw []byte `json:"-"`
	// Err says why the message could not be parsed, if it could not.
	Err string `json:"error,omitempty"`
}

// HeaderFrom is the decoded From header (the envelope sender when it has none).
func (m *Message) HeaderFrom() string { return m.decoded("From", m.From) }

// HeaderTo is the decoded To header (the envelope recipients when it has none).
func (m *Message) HeaderTo() string { return m.decoded("To", strings.Join(m.To, ", ")) }

func (m *Message) decoded(key, def string) string {
	v := m.Header.Get(key)
	if v == "" {
		return def
	}
	return decodeWords(v)
}

// headerLine is one header field, for display.
type headerLine struct{ Key, Value string }

// headers returns the header fields sorted by name, values decoded.
func (m *Message) headers() []headerLine {
	var out []headerLine
	for k, vs := range m.Header {
		for _, v := range vs {
			out = append(out, headerLine{k, decodeWords(v)})
		}
	}
	slices.SortStableFunc(out, func(a, b headerLine) int { return strings.Compare(a.Key, b.Key) })
	return out
}

var wordDecoder = &mime.WordDecoder{}

func decodeWords(s string) string {
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// parse reads raw into a Message; what cannot be parsed is noted in Err and the
// raw source is still kept.
func parse(raw []byte) *Message {
	m := &Message{Raw: raw, Header: mail.Header{}}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.Err = "parse message: " + err.Error()
		return m
	}
	m.Header = msg.Header
	m.Subject = decodeWords(msg.Header.Get("Subject"))
	if err := m.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0); err != nil {
		m.Err = err.Error()
	}
	return m
}

// walk finds the first text/plain and text/html parts of a body, descending into
// multipart bodies.
func (m *Message) walk(contentType, encoding string, body io.Reader, depth int) error {
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth > 10 {
			return nil
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := m.walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1); err != nil {
				return err
			}
		}
	}
	if mt != "text/plain" && mt != "text/html" {
		return nil
	}
	b, err := io.ReadAll(decodeBody(encoding, body))
	if err != nil {
		return err
	}
	switch {
	case mt == "text/plain" && m.Text == "":
		m.Text = string(b)
	case mt == "text/html" && m.HTML == "":
		m.HTML = string(b)
	}
	return nil
}

func decodeBody(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r) // it skips line breaks
	}
	return r
}
