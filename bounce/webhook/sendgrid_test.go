package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/bounce"
)

// sendgridBatch is a batch as SendGrid posts it, events taken from its Event
// Webhook reference: only the bounce, the block, the drop for a bounced
// address and the spam report are reports.
const sendgridBatch = `[
  {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"processed","category":"cat facts","sg_event_id":"rbtnWrG1DVDGGGFHFyun0A==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000"},
  {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"deferred","category":"cat facts","sg_event_id":"t7LEShmowp86DTdUW8M-GQ==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000","response":"400 try again later","attempt":"5"},
  {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"delivered","category":"cat facts","sg_event_id":"rWVYmVk90MjZJ9iohOBa3w==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000","response":"250 OK"},
  {"email":"anna@example.org","timestamp":1513299569,"smtp-id":"<0a1b2c3d.welcome@acme.example>","event":"bounce","category":"cat facts","sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000","reason":"500 unknown recipient","status":"5.0.0","type":"bounce","bounce_classification":"Invalid Address"},
  {"email":"ben@example.org","timestamp":1513299570,"smtp-id":"<0a1b2c3d.tips@acme.example>","event":"bounce","sg_event_id":"Ym91bmNlLTQtNTA0ODUxOTUtZXVvMmlLeGRTYXlQRjRZRTQtLUk3QS0w","sg_message_id":"euo2iKxdSayPF4YE4--I7A.recvd-5f54b5d587-pczjm-1-67BADEEA-6.0","reason":"550 5.7.1 Service unavailable; client host blocked using Spamhaus","tls":0,"type":"blocked","bounce_classification":"Reputation"},
  {"email":"carla@example.org","timestamp":1513299571,"smtp-id":"<0a1b2c3d.nps@acme.example>","event":"dropped","category":"cat facts","sg_event_id":"zmzJhfJgAfUSOW80yEbPyw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000","reason":"Bounced Address","status":"5.0.0"},
  {"email":"dave@example.org","timestamp":1513299571,"smtp-id":"<0a1b2c3d.nps@acme.example>","event":"dropped","sg_event_id":"Mtwvc1bgbJbg4nGDW7hxAA==","reason":"Unsubscribed Address","status":"5.0.0"},
  {"email":"erin@example.org","timestamp":1513299572,"smtp-id":"<0a1b2c3d.upgrade@acme.example>","event":"spamreport","category":["cat facts","upgrade"],"sg_event_id":"37nvH5QBz858KGVYCM4uOA==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000","campaign":{"id":7}},
  {"email":"example@test.com","timestamp":1513299569,"event":"open","sg_machine_open":false,"category":"cat facts","sg_event_id":"FOTFFO0ecsBE-zxFXfs6WA==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000","useragent":"Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322; .NET CLR 2.0.50727)","ip":"255.255.255.255"}
]`

type sendgridFixture struct {
	key *ecdsa.PrivateKey
}

func newSendGrid(t *testing.T) *sendgridFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &sendgridFixture{key: key}
}

func (f *sendgridFixture) config() *SendGridConfig {
	return &SendGridConfig{PublicKey: &f.key.PublicKey}
}

// sign returns the headers SendGrid sends with body at time at.
func (f *sendgridFixture) sign(t *testing.T, body string, at time.Time) http.Header {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	digest := sha256.Sum256([]byte(ts + body))
	sig, err := ecdsa.SignASN1(rand.Reader, f.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{
		"Content-Type":                           {"application/json"},
		"X-Twilio-Email-Event-Webhook-Signature": {base64.StdEncoding.EncodeToString(sig)},
		"X-Twilio-Email-Event-Webhook-Timestamp": {ts},
	}
}

func TestSendGridSignedBatchReportsBouncesBlocksBouncedDropsAndSpamReports(t *testing.T) {
	sg := newSendGrid(t)
	b := setup(t, Config{SendGrid: sg.config()})
	code, msg := b.post(t, "sendgrid", []byte(sendgridBatch), sg.sign(t, sendgridBatch, testNow.Add(-time.Minute)))
	wantStatus(t, code, msg, http.StatusOK)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Permanent,
		Recipient:  "anna@example.org",
		MessageID:  "0a1b2c3d.welcome@acme.example",
		Status:     "5.0.0",
		Diagnostic: "500 unknown recipient",
		Source:     "sendgrid",
		ID:         "6g4ZI7SA-xmRDv57GoPIPw==",
		At:         time.Unix(1513299569, 0).UTC(),
	}, {
		Kind:       bounce.Temporary,
		Recipient:  "ben@example.org",
		MessageID:  "0a1b2c3d.tips@acme.example",
		Status:     "5.7.1",
		Diagnostic: "550 5.7.1 Service unavailable; client host blocked using Spamhaus",
		Source:     "sendgrid",
		ID:         "Ym91bmNlLTQtNTA0ODUxOTUtZXVvMmlLeGRTYXlQRjRZRTQtLUk3QS0w",
		At:         time.Unix(1513299570, 0).UTC(),
	}, {
		Kind:       bounce.Permanent,
		Recipient:  "carla@example.org",
		MessageID:  "0a1b2c3d.nps@acme.example",
		Status:     "5.0.0",
		Diagnostic: "Bounced Address",
		Source:     "sendgrid",
		ID:         "zmzJhfJgAfUSOW80yEbPyw==",
		At:         time.Unix(1513299571, 0).UTC(),
	}, {
		Kind:      bounce.Complaint,
		Recipient: "erin@example.org",
		MessageID: "0a1b2c3d.upgrade@acme.example",
		Source:    "sendgrid",
		ID:        "37nvH5QBz858KGVYCM4uOA==",
		At:        time.Unix(1513299572, 0).UTC(),
	}})
	if b.sinkCalls() != 1 {
		t.Errorf("sink called %d times, want once for the batch", b.sinkCalls())
	}
}

func TestSendGridBatchWithoutBouncesAnswers200WithoutReports(t *testing.T) {
	sg := newSendGrid(t)
	b := setup(t, Config{SendGrid: sg.config()})
	batch := `[{"email":"example@test.com","timestamp":1513299569,"event":"delivered","sg_event_id":"rWVYmVk90MjZJ9iohOBa3w==","response":"250 OK"},` +
		`{"email":"example@test.com","timestamp":1513299569,"event":"open","sg_event_id":"FOTFFO0ecsBE-zxFXfs6WA==","ip":"255.255.255.255"}]`
	code, msg := b.post(t, "sendgrid", []byte(batch), sg.sign(t, batch, testNow))
	wantStatus(t, code, msg, http.StatusOK)
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestSendGridForgedOrAlteredRequestIsRefused(t *testing.T) {
	sg := newSendGrid(t)
	b := setup(t, Config{SendGrid: sg.config()})
	signed := sg.sign(t, sendgridBatch, testNow)

	altered := strings.Replace(sendgridBatch, "anna@example.org", "someone-else@example.org", 1)
	code, msg := b.post(t, "sendgrid", []byte(altered), signed)
	wantStatus(t, code, msg, http.StatusForbidden)

	otherKey := newSendGrid(t).sign(t, sendgridBatch, testNow)
	code, msg = b.post(t, "sendgrid", []byte(sendgridBatch), otherKey)
	wantStatus(t, code, msg, http.StatusForbidden)

	// The timestamp is signed too: moving it breaks the signature.
	moved := signed.Clone()
	moved.Set("X-Twilio-Email-Event-Webhook-Timestamp", strconv.FormatInt(testNow.Unix()+1, 10))
	code, msg = b.post(t, "sendgrid", []byte(sendgridBatch), moved)
	wantStatus(t, code, msg, http.StatusForbidden)

	code, msg = b.post(t, "sendgrid", []byte(sendgridBatch), http.Header{"Content-Type": {"application/json"}})
	wantStatus(t, code, msg, http.StatusUnauthorized)

	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestSendGridStaleTimestampIsRefused(t *testing.T) {
	sg := newSendGrid(t)
	b := setup(t, Config{SendGrid: sg.config()})
	for _, at := range []time.Time{testNow.Add(-11 * time.Minute), testNow.Add(11 * time.Minute)} {
		code, msg := b.post(t, "sendgrid", []byte(sendgridBatch), sg.sign(t, sendgridBatch, at))
		wantStatus(t, code, msg, http.StatusForbidden)
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}
