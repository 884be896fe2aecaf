package bounce

import (
	"bufio"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// ParseMail reads one email sent to a Return-Path: a delivery status
// notification (RFC 3464, multipart/report; report-type=delivery-status) or a
// feedback report (ARF, RFC 5965, report-type=feedback-report), with
// go-message. It returns the reports it holds, one per recipient that
// failed, or one complaint; none for other mail (an auto-reply, a "delayed"
// or "delivered" notice). An error means the mail is not MIME at all.
func ParseMail(r io.Reader) ([]Report, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("bounce: read the message: %w", err)
	}
	var p parsed
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil {
			if message.IsUnknownCharset(err) || message.IsUnknownEncoding(err) {
				return nil
			}
			return err
		}
		t, params, _ := part.Header.ContentType()
		switch strings.ToLower(t) {
		case "multipart/report":
			if p.kind == "" {
				p.kind = strings.ToLower(params["report-type"])
			}
		case "message/delivery-status", "message/global-delivery-status":
			return p.deliveryStatus(part.Body)
		case "message/feedback-report":
			return p.feedbackReport(part.Body)
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			if p.original == nil {
				h, err := textproto.ReadHeader(bufio.NewReader(part.Body))
				if err == nil || h.Len() > 0 {
					p.original = &h
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bounce: read the message: %w", err)
	}
	return p.reports(), nil
}

// parsed is what ParseMail found in the parts of one email.
type parsed struct {
	kind     string // the report-type of the multipart/report
	dsn      []recipientStatus
	arf      *textproto.Header
	original *textproto.Header // the returned message's header
}

// recipientStatus is one per-recipient block of a delivery-status part.
type recipientStatus struct {
	recipient, action, status, diagnostic string
	at                                    time.Time
}

// deliveryStatus reads a delivery-status part: the per-message fields, then a
// block of fields per recipient, blocks separated by blank lines (RFC 3464 §2).
func (p *parsed) deliveryStatus(body io.Reader) error {
	br := bufio.NewReader(body)
	var perMessage *textproto.Header
	for {
		if err := skipBlankLines(br); err != nil {
			break
		}
		h, err := textproto.ReadHeader(br)
		if err != nil && h.Len() == 0 {
			break
		}
		if perMessage == nil {
			perMessage = &h
			if !h.Has("Final-Recipient") { // the per-message block
				continue
			}
		}
		rs := recipientStatus{
			recipient:  addrOf(cmpOr(h.Get("Original-Recipient"), h.Get("Final-Recipient"))),
			action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
			status:     statusCode(h.Get("Status")),
			diagnostic: strings.TrimSpace(typed(h.Get("Diagnostic-Code"))),
			at:         dateOf(cmpOr(h.Get("Last-Attempt-Date"), perMessage.Get("Arrival-Date"))),
		}
		if d := statusCode(rs.diagnostic); rs.status == "" || strings.HasSuffix(rs.status, ".0.0") && d != "" && d[0] == rs.status[0] {
			// No status, or only its class (5.0.0): the receiver's reply
			// often says more (550 5.2.1 mailbox disabled).
			rs.status = cmpOr(d, rs.status)
		}
		if rs.recipient != "" || rs.action != "" {
			p.dsn = append(p.dsn, rs)
		}
		if err != nil {
			break
		}
	}
	return nil
}

// feedbackReport reads the machine-readable part of an ARF report (RFC 5965 §3.1).
func (p *parsed) feedbackReport(body io.Reader) error {
	h, err := textproto.ReadHeader(bufio.NewReader(body))
	if err != nil && h.Len() == 0 {
		return nil
	}
	p.arf = &h
	return nil
}

// reports turns what was found into Reports.
func (p *parsed) reports() []Report {
	var msgID string
	if p.original != nil {
		msgID = strings.Trim(strings.TrimSpace(p.original.Get("Message-Id")), "<>")
	}
	var out []Report
	if p.arf != nil {
		switch strings.ToLower(strings.TrimSpace(p.arf.Get("Feedback-Type"))) {
		case "abuse", "fraud":
			rcpt := addrOf(p.arf.Get("Original-Rcpt-To"))
			if rcpt == "" && p.original != nil {
				rcpt = addrOf(p.original.Get("To"))
			}
			out = append(out, Report{Kind: Complaint, Recipient: rcpt, MessageID: msgID, Source: "arf",
				Diagnostic: strings.TrimSpace("feedback report " + p.arf.Get("User-Agent")),
				At:         dateOf(p.arf.Get("Arrival-Date"))})
		}
		return out
	}
	for _, rs := range p.dsn {
		if rs.action != "failed" {
			// delayed: the receiver is still trying; delivered, relayed,
			// expanded: not a failure.
			continue
		}
		kind := Permanent
		if strings.HasPrefix(rs.status, "4.") {
			kind = Temporary
		}
		out = append(out, Report{Kind: kind, Recipient: rs.recipient, MessageID: msgID, Status: rs.status,
			Diagnostic: rs.diagnostic, Source: "dsn", At: rs.at})
	}
	return out
}

// skipBlankLines consumes the empty lines before a block; io.EOF when none
// follows.
func skipBlankLines(br *bufio.Reader) error {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != '\r' && b[0] != '\n' {
			return nil
		}
		if _, err := br.ReadByte(); err != nil {
			return err
		}
	}
}

// typed drops the address or diagnostic type of a DSN field: "rfc822;
// a@b.example" is "a@b.example", "smtp; 550 5.1.1 …" is "550 5.1.1 …".
func typed(v string) string {
	if _, after, ok := strings.Cut(v, ";"); ok {
		return strings.TrimSpace(after)
	}
	return strings.TrimSpace(v)
}

// addrOf is the address of a DSN or ARF field, lower-cased: "rfc822;
// <a@b.example>", "a@b.example", "Name <a@b.example>".
func addrOf(v string) string {
	v = typed(v)
	if v == "" {
		return ""
	}
	if a, err := mail.ParseAddress(v); err == nil {
		return strings.ToLower(a.Address)
	}
	v = strings.Trim(v, "<> \t")
	if strings.Count(v, "@") != 1 || strings.ContainsAny(v, " \t<>") {
		return ""
	}
	return strings.ToLower(v)
}

// statusRE is an enhanced status code (RFC 3463) at the start of a field.
var statusRE = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// statusCode is the enhanced status code in v ("5.1.1 (user unknown)",
// "550 5.1.1 <a@b> unknown"), "" when there is none.
func statusCode(v string) string {
	return statusRE.FindString(v)
}

func dateOf(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(strings.TrimSpace(v))
	if err != nil {
		return time.Time{}
	}
	return t
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
