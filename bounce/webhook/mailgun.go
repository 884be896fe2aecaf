package webhook

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/bounce"
)

type mailgunProvider struct {
	key    []byte
	now    func() time.Time
	tokens *tokenSet
}

// mailgunPayload is the JSON Mailgun posts: a signature and one event.
type mailgunPayload struct {
	Signature *struct {
		Timestamp text `json:"timestamp"`
		Token     text `json:"token"`
		Signature text `json:"signature"`
		// ParentSignature is made with the primary account's key when the
		// event is a subaccount's.
		ParentSignature text `json:"parent-signature"`
	} `json:"signature"`
	EventData *mailgunEvent `json:"event-data"`
}

type mailgunEvent struct {
	ID             text `json:"id"`
	Timestamp      text `json:"timestamp"`
	Event          text `json:"event"`
	Severity       text `json:"severity"`
	Recipient      text `json:"recipient"`
	DeliveryStatus struct {
		Message      text `json:"message"`
		Description  text `json:"description"`
		EnhancedCode text `json:"enhanced-code"`
	} `json:"delivery-status"`
	Message struct {
		Headers struct {
			MessageID text `json:"message-id"`
		} `json:"headers"`
	} `json:"message"`
}

func (p *mailgunProvider) read(r *http.Request, body []byte) (delivery, error) {
	var pl mailgunPayload
	if err := json.Unmarshal(body, &pl); err != nil {
		return delivery{}, refuse(http.StatusBadRequest, "not a Mailgun webhook (JSON with signature and event-data): %v", err)
	}
	s := pl.Signature
	if s == nil || s.Timestamp == "" || s.Token == "" || s.Signature == "" {
		return delivery{}, refuse(http.StatusUnauthorized, "Mailgun webhook without a signature")
	}
	// The signature covers timestamp and token only, not the event: the
	// token is good for one request, and the timestamp for a few minutes.
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte(s.Timestamp + s.Token))
	want := mac.Sum(nil)
	if !hexEqual(string(s.Signature), want) && !hexEqual(string(s.ParentSignature), want) {
		return delivery{}, refuse(http.StatusForbidden, "Mailgun signature does not match (is RETAIN_WEBHOOK_MAILGUN_KEY the HTTP webhook signing key?)")
	}
	sec, err := strconv.ParseInt(string(s.Timestamp), 10, 64)
	if err != nil {
		return delivery{}, refuse(http.StatusForbidden, "Mailgun timestamp %q is not a Unix time", s.Timestamp)
	}
	signed := time.Unix(sec, 0)
	if stale(p.now(), signed) {
		return delivery{}, refuse(http.StatusForbidden, "Mailgun timestamp is more than %v from now: a replay, or a clock off", tolerance)
	}
	if pl.EventData == nil {
		return delivery{}, refuse(http.StatusBadRequest, "Mailgun webhook without event-data")
	}
	token := string(s.Token)
	// Remembered until the timestamp goes stale, after which it is refused
	// anyway.
	if !p.tokens.claim(token, signed.Add(tolerance), p.now()) {
		return delivery{}, refuse(http.StatusForbidden, "Mailgun token already used: a replay")
	}
	d := delivery{settle: func(applied bool) {
		if !applied {
			// Mailgun delivers again with the same signature.
			p.tokens.release(token)
		}
	}}
	ev := pl.EventData
	kind, ok := ev.kind()
	if !ok {
		d.ignored = 1
		return d, nil
	}
	diag := strings.TrimSpace(string(cmp.Or(ev.DeliveryStatus.Message, ev.DeliveryStatus.Description)))
	rep := bounce.Report{
		Kind:       kind,
		Recipient:  strings.TrimSpace(string(ev.Recipient)),
		MessageID:  bareMessageID(string(ev.Message.Headers.MessageID)),
		Diagnostic: diag,
		Source:     mailgun,
		ID:         string(ev.ID),
	}
	if kind != bounce.Complaint {
		rep.Status = enhancedStatus(string(ev.DeliveryStatus.EnhancedCode), diag)
	}
	if f, err := strconv.ParseFloat(string(ev.Timestamp), 64); err == nil {
		rep.At = time.UnixMicro(int64(math.Round(f * 1e6))).UTC()
	}
	d.reports = []bounce.Report{rep}
	return d, nil
}

// kind maps a Mailgun event to a report kind; false for the events that are
// neither a failure nor a complaint. A failure without a severity is taken
// for a temporary one.
func (ev *mailgunEvent) kind() (bounce.Kind, bool) {
	switch ev.Event {
	case "failed":
		if ev.Severity == "permanent" {
			return bounce.Permanent, true
		}
		return bounce.Temporary, true
	case "complained":
		return bounce.Complaint, true
	}
	return "", false
}

func hexEqual(h string, want []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(h))
	return err == nil && hmac.Equal(got, want)
}
