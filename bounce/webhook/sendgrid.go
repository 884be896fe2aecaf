package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/bounce"
)

// The headers of SendGrid's Signed Event Webhook.
const (
	sendgridSignature = "X-Twilio-Email-Event-Webhook-Signature"
	sendgridTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
)

type sendgridProvider struct {
	key *ecdsa.PublicKey
	now func() time.Time
}

// sendgridEvent is one event of the JSON array SendGrid posts. SendGrid
// merges custom arguments into each event, so every field takes any JSON.
type sendgridEvent struct {
	Email     text `json:"email"`
	Timestamp text `json:"timestamp"`
	SMTPID    text `json:"smtp-id"`
	Event     text `json:"event"`
	EventID   text `json:"sg_event_id"`
	Reason    text `json:"reason"`
	Status    text `json:"status"`
	Type      text `json:"type"`
}

func (p *sendgridProvider) read(r *http.Request, body []byte) (delivery, error) {
	sig, ts := r.Header.Get(sendgridSignature), r.Header.Get(sendgridTimestamp)
	if sig == "" || ts == "" {
		return delivery{}, refuse(http.StatusUnauthorized, "no %s or %s header: turn on the Signed Event Webhook at SendGrid", sendgridSignature, sendgridTimestamp)
	}
	der, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return delivery{}, refuse(http.StatusForbidden, "%s is not base64", sendgridSignature)
	}
	// The signed payload is the timestamp header followed by the raw body.
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	if !ecdsa.VerifyASN1(p.key, h.Sum(nil), der) {
		return delivery{}, refuse(http.StatusForbidden, "SendGrid signature does not match (is RETAIN_WEBHOOK_SENDGRID_KEY this webhook's verification key?)")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return delivery{}, refuse(http.StatusForbidden, "%s is not a Unix time", sendgridTimestamp)
	}
	if stale(p.now(), time.Unix(sec, 0)) {
		return delivery{}, refuse(http.StatusForbidden, "SendGrid timestamp is more than %v from now: a replay, or a clock off", tolerance)
	}
	var events []sendgridEvent
	if err := json.Unmarshal(body, &events); err != nil {
		return delivery{}, refuse(http.StatusBadRequest, "not a SendGrid event batch: %v", err)
	}
	var d delivery
	for _, ev := range events {
		kind, ok := ev.kind()
		if !ok {
			d.ignored++
			continue
		}
		rep := bounce.Report{
			Kind:       kind,
			Recipient:  strings.TrimSpace(string(ev.Email)),
			MessageID:  bareMessageID(string(ev.SMTPID)),
			Diagnostic: string(ev.Reason),
			Source:     sendgrid,
			ID:         string(ev.EventID),
		}
		if kind != bounce.Complaint {
			rep.Status = enhancedStatus(string(ev.Status), string(ev.Reason))
		}
		if sec, err := strconv.ParseInt(string(ev.Timestamp), 10, 64); err == nil {
			rep.At = time.Unix(sec, 0).UTC()
		}
		d.reports = append(d.reports, rep)
	}
	return d, nil
}

// kind maps a SendGrid event to a report kind; false for events that are
// not about a bounce or a complaint. A "deferred" event is a delivery
// attempt SendGrid will retry, not a bounce; if the retries run out,
// SendGrid reports a bounce.
func (ev *sendgridEvent) kind() (bounce.Kind, bool) {
	switch ev.Event {
	case "bounce":
		if ev.Type == "bounce" || ev.Type == "" {
			return bounce.Permanent, true
		}
		// "blocked": refused for now (reputation, content, a full mailbox);
		// "expired": SendGrid gave up retrying.
		return bounce.Temporary, true
	case "dropped":
		// SendGrid did not try: only its reasons that are about the address
		// are reports; unsubscribes, quota and content are SendGrid's own
		// business.
		switch strings.ToLower(strings.TrimSpace(string(ev.Reason))) {
		case "bounced address", "invalid":
			return bounce.Permanent, true
		case "spam reporting address":
			return bounce.Complaint, true
		}
	case "spamreport":
		return bounce.Complaint, true
	}
	return "", false
}

// parseSendGridKey reads the verification key as SendGrid shows it: base64
// of a DER public key; a PEM block also does.
func parseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("not base64")
		}
		der = b
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a DER public key")
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return key, nil
}
