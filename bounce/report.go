// Package bounce turns what receivers say about retain's emails after the
// relay took them — delivery status notifications (RFC 3464), feedback
// reports (ARF, RFC 5965) and the event webhooks of relay providers — into
// Reports, maps each back to the customer, campaign and step it is about,
// and applies retain's policy: a permanent failure suppresses the address,
// repeated temporary failures do too, and a complaint unsubscribes the
// person from everything.
package bounce

import (
	"context"
	"time"
)

// Kind says what a Report is.
type Kind string

// Report kinds.
const (
	// Permanent: the receiver refused the address for good (a hard bounce,
	// DSN action "failed" with a 5.x.x status).
	Permanent Kind = "bounce"
	// Temporary: delivery failed for now (DSN action "delayed", or "failed"
	// with a 4.x.x status; a provider's soft bounce).
	Temporary Kind = "soft_bounce"
	// Complaint: the person marked the email as spam (an ARF abuse report, a
	// provider's complaint or spam report event).
	Complaint Kind = "complaint"
)

// Report is one bounce or complaint about one email to one recipient, from
// whichever source it came.
type Report struct {
	Kind Kind
	// Recipient is the address the report is about (a DSN's Final-Recipient
	// or Original-Recipient, an ARF report's Original-Rcpt-To, a provider's
	// recipient field); empty when the source does not say.
	Recipient string
	// Token is the VERP token of the Return-Path the report was sent to
	// (retain inbound), empty when it came another way.
	Token string
	// MessageID is the Message-ID of the email reported on, without angle
	// brackets, when the source gives it.
	MessageID string
	// Status is the enhanced status code (RFC 3463, "5.1.1") when known.
	Status string
	// Diagnostic is the receiver's own words (a DSN's Diagnostic-Code, a
	// provider's reason), for people to read.
	Diagnostic string
	// Source names where the report came from: "dsn", "arf", "ses",
	// "sendgrid", "postmark" or "mailgun".
	Source string
	// ID identifies the report at its source (a provider's event ID), so a
	// report delivered twice counts once; empty when the source has none.
	ID string
	// At is when the receiver reported it; zero is when retain received it.
	At time.Time
}

// Sink takes the reports of one delivery (one webhook request, one DSN) and
// applies them. An error means none or only some were applied and the sender
// should deliver them again: the webhook answers 5xx, retain inbound 451.
// Applying a report twice is harmless.
type Sink func(ctx context.Context, reports []Report) error
