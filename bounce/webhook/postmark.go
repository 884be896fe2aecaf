package webhook

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/retainmail/retain/bounce"
)

type postmarkProvider struct {
	// The credentials' hashes: comparing them takes the same time whatever
	// the lengths of what is compared.
	user, password [sha256.Size]byte
}

func newPostmarkProvider(cfg PostmarkConfig) *postmarkProvider {
	return &postmarkProvider{user: sha256.Sum256([]byte(cfg.User)), password: sha256.Sum256([]byte(cfg.Password))}
}

// postmarkRecord is the JSON object Postmark posts: a Bounce, SpamComplaint
// or SubscriptionChange record here, or another RecordType to ignore.
type postmarkRecord struct {
	RecordType  string          `json:"RecordType"`
	ID          text            `json:"ID"`
	Type        string          `json:"Type"`
	Email       string          `json:"Email"`
	Description string          `json:"Description"`
	Details     string          `json:"Details"`
	BouncedAt   string          `json:"BouncedAt"`
	Metadata    map[string]text `json:"Metadata"`
	// SubscriptionChange: the only report of a complaint on a broadcast
	// message stream.
	Recipient         string `json:"Recipient"`
	SuppressSending   bool   `json:"SuppressSending"`
	SuppressionReason text   `json:"SuppressionReason"`
	ChangedAt         string `json:"ChangedAt"`
}

// postmarkBounceKinds maps the Type of a Bounce record; a type not here is
// not about the address (auto-replies, challenges, subscribe requests,
// retain's own sending errors, DMARC refusals of retain's domain) and is
// ignored. docs/webhooks.md has the same table.
var postmarkBounceKinds = map[string]bounce.Kind{
	"HardBounce":       bounce.Permanent,
	"BadEmailAddress":  bounce.Permanent,
	"SoftBounce":       bounce.Temporary,
	"Transient":        bounce.Temporary,
	"DnsError":         bounce.Temporary,
	"Blocked":          bounce.Temporary,
	"SpamNotification": bounce.Temporary, // a filter refused the content; the person did not complain
	"Unknown":          bounce.Temporary,
	"SpamComplaint":    bounce.Complaint,
}

func (p *postmarkProvider) read(r *http.Request, body []byte) (delivery, error) {
	user, password, ok := r.BasicAuth()
	if !ok {
		return delivery{}, refuse(http.StatusUnauthorized, "no Basic auth credentials: put them in the webhook URL at Postmark")
	}
	u, pw := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(u[:], p.user[:])&subtle.ConstantTimeCompare(pw[:], p.password[:]) != 1 {
		return delivery{}, refuse(http.StatusForbidden, "wrong Basic auth credentials (compare the webhook URL at Postmark with RETAIN_WEBHOOK_POSTMARK_AUTH)")
	}
	var rec postmarkRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return delivery{}, refuse(http.StatusBadRequest, "not a Postmark webhook record: %v", err)
	}
	rep := bounce.Report{Source: postmark, MessageID: rec.originalMessageID()}
	switch rec.RecordType {
	case "Bounce":
		kind, ok := postmarkBounceKinds[rec.Type]
		if !ok {
			return delivery{ignored: 1}, nil
		}
		rep.Kind = kind
		rep.Recipient = strings.TrimSpace(rec.Email)
		rep.Diagnostic = firstNonBlank(rec.Details, rec.Description)
		if kind != bounce.Complaint {
			rep.Status = enhancedStatus("", rec.Details)
		}
		rep.ID = string(rec.ID)
		rep.At = parseTime(rec.BouncedAt)
	case "SpamComplaint":
		rep.Kind = bounce.Complaint
		rep.Recipient = strings.TrimSpace(rec.Email)
		rep.Diagnostic = firstNonBlank(rec.Details, rec.Description)
		rep.ID = string(rec.ID)
		rep.At = parseTime(rec.BouncedAt)
	case "SubscriptionChange":
		// A suppression added for a hard bounce or a complaint. Its hard
		// bounce also comes as a Bounce record; applying both is harmless.
		// ManualSuppression (an unsubscribe through Postmark, or a person at
		// Postmark) and reactivations are not reports.
		if !rec.SuppressSending {
			return delivery{ignored: 1}, nil
		}
		switch rec.SuppressionReason {
		case "HardBounce":
			rep.Kind = bounce.Permanent
		case "SpamComplaint":
			rep.Kind = bounce.Complaint
		default:
			return delivery{ignored: 1}, nil
		}
		rep.Recipient = strings.TrimSpace(rec.Recipient)
		rep.Diagnostic = "Postmark suppressed the address: " + string(rec.SuppressionReason)
		rep.At = parseTime(rec.ChangedAt)
	default:
		return delivery{ignored: 1}, nil
	}
	return delivery{reports: []bounce.Report{rep}}, nil
}

// originalMessageID returns the Message-ID retain put in the email's
// Postmark metadata (an X-PM-Metadata-message-id header), if it did.
// Postmark's own MessageID is not the email's Message-ID header.
func (rec *postmarkRecord) originalMessageID() string {
	for k, v := range rec.Metadata {
		norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(k))
		if norm == "messageid" {
			return bareMessageID(string(v))
		}
	}
	return ""
}

func firstNonBlank(a, b string) string {
	if a = strings.TrimSpace(a); a != "" {
		return a
	}
	return strings.TrimSpace(b)
}
