package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/bounce/webhook"
)

// TestWebhookComplaintUnsubscribes: a provider's complaint, posted to retain
// web's webhook with a valid signature, reaches the customer its Message-ID
// names: unsubscribed from everything, the address suppressed, the complaint
// in their events. A forged one changes nothing.
func TestWebhookComplaintUnsubscribes(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "anna", `{"email": "anna@example.org", "first_name": "Anna"}`)
	const key = "0c2e6fc7b9a34d1e8f5a2b7c4d9e1f3a"
	tokens := bounce.NewTokens([]byte(strings.Repeat("s", 32)))
	ap := &bounce.Applier{Store: b.store, Engine: b.deps.Engine, Tokens: tokens, Now: func() time.Time { return b.now }}
	d := b.deps
	d.Webhooks = webhook.Handler(webhook.Config{Mailgun: &webhook.MailgunConfig{SigningKey: key}, Now: func() time.Time { return b.now }}, ap.Apply)
	url := b.start(t, b.cfg, d)

	msgID := tokens.MessageID(bounce.Send{Customer: "anna", Address: "anna@example.org", Step: "onboarding/welcome", Enrollment: 1}, "acme.example")
	body := func(key, token string) string {
		ts := strconv.FormatInt(b.now.Unix(), 10)
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(ts + token))
		return fmt.Sprintf(`{"signature": {"token": %q, "timestamp": %q, "signature": %q}, "event-data": {"id": "cmp-1", "timestamp": %d, "event": "complained", "recipient": "anna@example.org", "message": {"headers": {"message-id": %q}}}}`,
			token, ts, hex.EncodeToString(mac.Sum(nil)), b.now.Unix(), msgID)
	}
	resp, got := b.doAt(t, url, "POST", "/webhooks/mailgun", body("not-the-key-0000000000000000000000", "tok-forged-000000000000000000000000000000000000"), withContentType("application/json"))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged signature: %d %s, want 403", resp.StatusCode, got)
	}
	if c, _ := b.store.Customer(b.ctx, "anna"); c.Unsubscribed {
		t.Fatal("a forged complaint unsubscribed anna")
	}
	resp, got = b.doAt(t, url, "POST", "/webhooks/mailgun", body(key, "tok-valid-0000000000000000000000000000000000000"), withContentType("application/json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("complaint: %d %s", resp.StatusCode, got)
	}
	c, err := b.store.Customer(b.ctx, "anna")
	if err != nil || !c.Unsubscribed {
		t.Errorf("anna after the complaint: %+v, %v; want unsubscribed", c, err)
	}
	if sup, _ := b.store.Suppression(b.ctx, "anna@example.org"); sup == nil || !strings.Contains(sup.Reason, "mailgun") {
		t.Errorf("suppression %+v, want one naming mailgun", sup)
	}
	evs, _ := b.store.Events(b.ctx, "anna", 5)
	if len(evs) == 0 || evs[0].Name != bounce.EventComplained || evs[0].Data["step"] != "onboarding/welcome" || evs[0].Data["matched_by"] != "message-id" {
		t.Errorf("anna's latest event %+v, want the complaint about onboarding/welcome", evs)
	}
	if resp, _ := b.doAt(t, url, "POST", "/webhooks/ses", "{}"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a provider not configured: %d, want 404", resp.StatusCode)
	}
}
