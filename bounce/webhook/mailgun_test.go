package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/bounce"
)

const mailgunKey = "0c2e6fc7b9a34d1e8f5a2b7c4d9e1f3a"

// mailgunPermanentFailure is the event-data of Mailgun's "failed" example
// for an address that does not exist.
const mailgunPermanentFailure = `{
  "id": "G9Bn5sl1TC6nu79C8C0bwg",
  "timestamp": 1521233195.375624,
  "log-level": "error",
  "event": "failed",
  "severity": "permanent",
  "reason": "bounce",
  "envelope": {"sender": "bounce@acme.example", "transport": "smtp", "targets": "alice@example.com"},
  "flags": {"is-routed": false, "is-authenticated": true, "is-system-test": false, "is-test-mode": false},
  "recipient": "alice@example.com",
  "recipient-domain": "example.com",
  "delivery-status": {
    "attempt-no": 1,
    "message": "5.1.1 The email account that you tried to reach does not exist. Please try 5.1.1 double-checking the recipient's email address for typos or 5.1.1 unnecessary spaces.",
    "code": 550,
    "enhanced-code": "5.1.1",
    "description": "User not found",
    "session-seconds": 0.4331989288330078
  },
  "message": {
    "headers": {
      "to": "Alice <alice@example.com>",
      "message-id": "20130503192659.13651.20287@acme.example",
      "from": "Acme <hello@acme.example>",
      "subject": "Welcome to Acme"
    },
    "attachments": [],
    "size": 111
  },
  "user-variables": {"campaign": "onboarding"}
}`

const mailgunTemporaryFailure = `{
  "id": "Fs7-5t81S2ebSJSLS6Jxsw",
  "timestamp": 1521233200.100000,
  "event": "failed",
  "severity": "temporary",
  "reason": "generic",
  "recipient": "bob@example.com",
  "delivery-status": {"attempt-no": 1, "message": "452 4.2.2 The email account that you tried to reach is over quota.", "code": 452, "enhanced-code": null, "description": "", "retry-seconds": 600},
  "message": {"headers": {"message-id": "20130503192659.13651.20288@acme.example"}}
}`

const mailgunComplaint = `{
  "id": "-Agny091SquKnsrW2NEKUA",
  "timestamp": 1521233123.501324,
  "log-level": "warn",
  "event": "complained",
  "recipient": "carol@example.com",
  "message": {"headers": {"to": "carol@example.com", "message-id": "20130503182626.18666.16540@acme.example", "from": "Acme <hello@acme.example>", "subject": "Your week with Acme"}, "attachments": [], "size": 111},
  "user-variables": {}
}`

const mailgunDelivered = `{
  "id": "CPgfbmQMTCKtHW6uIWtuVe",
  "timestamp": 1521472262.908181,
  "event": "delivered",
  "recipient": "alice@example.com",
  "delivery-status": {"message": "OK", "code": 250, "description": ""},
  "message": {"headers": {"message-id": "20130503182626.18666.16540@acme.example"}}
}`

var tokenCount int

// mailgunBody signs eventData as Mailgun would at time at, with a new token
// unless one is given.
func mailgunBody(t *testing.T, eventData string, at time.Time, token string) []byte {
	t.Helper()
	if token == "" {
		tokenCount++
		token = fmt.Sprintf("e0b5477167110d68991efc6b9f89f0a11066af27834600e%03d", tokenCount)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(mailgunKey))
	mac.Write([]byte(ts + token))
	sig := hex.EncodeToString(mac.Sum(nil))
	return fmt.Appendf(nil, `{"signature": {"token": %q, "timestamp": %q, "signature": %q}, "event-data": %s}`, token, ts, sig, eventData)
}

func mailgunOnly() Config {
	return Config{Mailgun: &MailgunConfig{SigningKey: mailgunKey}}
}

func TestMailgunFailuresAndComplaintsAreReports(t *testing.T) {
	b := setup(t, mailgunOnly())
	for _, ev := range []string{mailgunPermanentFailure, mailgunTemporaryFailure, mailgunComplaint} {
		code, msg := b.post(t, "mailgun", mailgunBody(t, ev, testNow, ""), nil)
		wantStatus(t, code, msg, http.StatusOK)
	}
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Permanent,
		Recipient:  "alice@example.com",
		MessageID:  "20130503192659.13651.20287@acme.example",
		Status:     "5.1.1",
		Diagnostic: "5.1.1 The email account that you tried to reach does not exist. Please try 5.1.1 double-checking the recipient's email address for typos or 5.1.1 unnecessary spaces.",
		Source:     "mailgun",
		ID:         "G9Bn5sl1TC6nu79C8C0bwg",
		At:         time.Date(2018, 3, 16, 20, 46, 35, 375624000, time.UTC),
	}, {
		Kind:       bounce.Temporary,
		Recipient:  "bob@example.com",
		MessageID:  "20130503192659.13651.20288@acme.example",
		Status:     "4.2.2",
		Diagnostic: "452 4.2.2 The email account that you tried to reach is over quota.",
		Source:     "mailgun",
		ID:         "Fs7-5t81S2ebSJSLS6Jxsw",
		At:         time.Date(2018, 3, 16, 20, 46, 40, 100000000, time.UTC),
	}, {
		Kind:      bounce.Complaint,
		Recipient: "carol@example.com",
		MessageID: "20130503182626.18666.16540@acme.example",
		Source:    "mailgun",
		ID:        "-Agny091SquKnsrW2NEKUA",
		At:        time.Date(2018, 3, 16, 20, 45, 23, 501324000, time.UTC),
	}})
}

func TestMailgunDeliveredAnswers200WithoutReports(t *testing.T) {
	b := setup(t, mailgunOnly())
	code, msg := b.post(t, "mailgun", mailgunBody(t, mailgunDelivered, testNow, ""), nil)
	wantStatus(t, code, msg, http.StatusOK)
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestMailgunForgedSignatureIsRefused(t *testing.T) {
	b := setup(t, mailgunOnly())
	ts := strconv.FormatInt(testNow.Unix(), 10)
	mac := hmac.New(sha256.New, []byte("not-the-signing-key"))
	mac.Write([]byte(ts + "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"))
	forged := fmt.Appendf(nil, `{"signature": {"token": "e0b5477167110d68991efc6b9f89f0a11066af27834600e123", "timestamp": %q, "signature": %q}, "event-data": %s}`,
		ts, hex.EncodeToString(mac.Sum(nil)), mailgunPermanentFailure)
	code, msg := b.post(t, "mailgun", forged, nil)
	wantStatus(t, code, msg, http.StatusForbidden)

	unsigned := fmt.Appendf(nil, `{"event-data": %s}`, mailgunPermanentFailure)
	code, msg = b.post(t, "mailgun", unsigned, nil)
	wantStatus(t, code, msg, http.StatusUnauthorized)

	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
	if log := b.log(); strings.Contains(log, mailgunKey) {
		t.Errorf("the log shows the signing key:\n%s", log)
	}
}

func TestMailgunStaleTimestampIsRefused(t *testing.T) {
	b := setup(t, mailgunOnly())
	for _, at := range []time.Time{testNow.Add(-11 * time.Minute), testNow.Add(11 * time.Minute)} {
		code, msg := b.post(t, "mailgun", mailgunBody(t, mailgunPermanentFailure, at, ""), nil)
		wantStatus(t, code, msg, http.StatusForbidden)
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestMailgunTokenUsedTwiceIsRefused(t *testing.T) {
	b := setup(t, mailgunOnly())
	token := "replayreplayreplayreplayreplayreplayreplayreplay00"
	code, msg := b.post(t, "mailgun", mailgunBody(t, mailgunPermanentFailure, testNow, token), nil)
	wantStatus(t, code, msg, http.StatusOK)
	// The signature does not cover event-data: a replay could carry any.
	code, msg = b.post(t, "mailgun", mailgunBody(t, mailgunComplaint, testNow, token), nil)
	wantStatus(t, code, msg, http.StatusForbidden)
	if got := b.got(); len(got) != 1 || got[0].Kind != bounce.Permanent {
		t.Errorf("reports %+v, want the first delivery's only", got)
	}
}

func TestMailgunDeliveryNotAppliedCanBeDeliveredAgainWithItsToken(t *testing.T) {
	b := setup(t, mailgunOnly())
	token := "retryretryretryretryretryretryretryretryretryretry"
	body := mailgunBody(t, mailgunPermanentFailure, testNow, token)
	b.failSink(errors.New("redis: i/o timeout"))
	code, msg := b.post(t, "mailgun", body, nil)
	wantStatus(t, code, msg, http.StatusServiceUnavailable)
	b.failSink(nil)
	code, msg = b.post(t, "mailgun", body, nil)
	wantStatus(t, code, msg, http.StatusOK)
	if got := b.got(); len(got) != 1 {
		t.Errorf("reports %+v, want 1", got)
	}
}

func TestTokenSetForgetsTokensOnceStale(t *testing.T) {
	s := newTokenSet()
	if !s.claim("a", testNow.Add(tolerance), testNow) {
		t.Fatal("a new token was taken for a replay")
	}
	if s.claim("a", testNow.Add(tolerance), testNow.Add(time.Minute)) {
		t.Error("a token was taken twice")
	}
	if !s.claim("b", testNow.Add(2*tolerance), testNow.Add(tolerance+time.Second)) {
		t.Error("b was refused")
	}
	if _, ok := s.until["a"]; ok || len(s.queue) != 1 {
		t.Errorf("a is still remembered: %v %v", s.until, s.queue)
	}
}
