package webhook

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retainmail/retain/bounce"
)

const testTopic = "arn:aws:sns:us-east-1:123456789012:ses-feedback"

// snsFixture stands in for SNS: an HTTPS server with a signing certificate
// and a SubscribeURL, and the certificate's key to sign messages with.
type snsFixture struct {
	key      *rsa.PrivateKey
	srv      *httptest.Server
	certGets atomic.Int32
	confirms atomic.Int32
}

func newSNS(t *testing.T) *snsFixture {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sns.us-east-1.amazonaws.com"},
		NotBefore:    testNow.Add(-24 * time.Hour),
		NotAfter:     testNow.Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f := &snsFixture{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /SimpleNotificationService-test.pem", func(w http.ResponseWriter, r *http.Request) {
		f.certGets.Add(1)
		w.Write(certPEM)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("Action") != "ConfirmSubscription" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		f.confirms.Add(1)
		w.Write([]byte("<ConfirmSubscriptionResponse/>"))
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// config is an SESConfig that trusts the fixture's server as an SNS host.
func (f *snsFixture) config(topics ...string) *SESConfig {
	return &SESConfig{
		Topics:     topics,
		HTTPClient: f.srv.Client(),
		CertHost:   func(host string) bool { return host == "127.0.0.1" },
	}
}

func (f *snsFixture) certURL() string { return f.srv.URL + "/SimpleNotificationService-test.pem" }

// snsFields are the fields of an SNS message other than its signature.
type snsFields struct {
	Type, MessageID, Token, TopicArn, Subject, Message, Timestamp, SubscribeURL string
}

// sign returns the JSON body SNS would post for m, signed with version
// "1" (SHA1withRSA) or "2" (SHA256withRSA). The string to sign is written
// out here from AWS's documentation, independently of the package's.
func (f *snsFixture) sign(t *testing.T, m snsFields, version string, certURL string) []byte {
	t.Helper()
	var sb strings.Builder
	pair := func(k, v string) { sb.WriteString(k + "\n" + v + "\n") }
	if m.Type == "Notification" {
		pair("Message", m.Message)
		pair("MessageId", m.MessageID)
		if m.Subject != "" {
			pair("Subject", m.Subject)
		}
		pair("Timestamp", m.Timestamp)
		pair("TopicArn", m.TopicArn)
		pair("Type", m.Type)
	} else {
		pair("Message", m.Message)
		pair("MessageId", m.MessageID)
		pair("SubscribeURL", m.SubscribeURL)
		pair("Timestamp", m.Timestamp)
		pair("Token", m.Token)
		pair("TopicArn", m.TopicArn)
		pair("Type", m.Type)
	}
	var sig []byte
	var err error
	switch version {
	case "1":
		d := sha1.Sum([]byte(sb.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA1, d[:])
	case "2":
		d := sha256.Sum256([]byte(sb.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]string{
		"Type":             m.Type,
		"MessageId":        m.MessageID,
		"TopicArn":         m.TopicArn,
		"Message":          m.Message,
		"Timestamp":        m.Timestamp,
		"SignatureVersion": version,
		"Signature":        base64.StdEncoding.EncodeToString(sig),
		"SigningCertURL":   certURL,
	}
	if m.Type == "Notification" {
		body["UnsubscribeURL"] = "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + m.TopicArn + ":2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
		if m.Subject != "" {
			body["Subject"] = m.Subject
		}
	} else {
		body["Token"] = m.Token
		body["SubscribeURL"] = m.SubscribeURL
	}
	data, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func notification(message string) snsFields {
	return snsFields{
		Type:      "Notification",
		MessageID: "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
		TopicArn:  testTopic,
		Message:   message,
		Timestamp: "2016-01-27T14:59:38.306Z",
	}
}

// sesBounceTwoRecipients is SES's "bounce notification with a DSN" example
// with the original headers included, where two of the recipients bounced.
const sesBounceTwoRecipients = `{
  "notificationType":"Bounce",
  "bounce":{
    "bounceType":"Permanent",
    "reportingMTA":"dns; email.example.com",
    "bouncedRecipients":[
      {"emailAddress":"jane@example.com","status":"5.1.1","action":"failed","diagnosticCode":"smtp; 550 5.1.1 <jane@example.com>... User"},
      {"emailAddress":"richard@example.com","action":"failed","diagnosticCode":"smtp; 550 5.1.1 <richard@example.com>... User unknown"}
    ],
    "bounceSubType":"General",
    "timestamp":"2016-01-27T14:59:38.237Z",
    "feedbackId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
    "remoteMtaIp":"127.0.2.0"
  },
  "mail":{
    "timestamp":"2016-01-27T14:59:38.237Z",
    "source":"john@example.com",
    "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
    "sourceIp": "127.0.3.0",
    "sendingAccountId":"123456789012",
    "messageId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
    "destination":["jane@example.com", "mary@example.com", "richard@example.com"],
    "headersTruncated":false,
    "headers":[
      {"name":"From","value":"\"John Doe\" <john@example.com>"},
      {"name":"To","value":"\"Jane Doe\" <jane@example.com>, \"Mary Doe\" <mary@example.com>, \"Richard Doe\" <richard@example.com>"},
      {"name":"Message-ID","value":"<0a1b2c3d.welcome@acme.example>"},
      {"name":"Subject","value":"Hello"},
      {"name":"Content-Type","value":"text/plain; charset=UTF-8"}
    ],
    "commonHeaders":{
      "from":["John Doe <john@example.com>"],
      "date":"Wed, 27 Jan 2016 14:05:45 +0000",
      "to":["Jane Doe <jane@example.com>, Mary Doe <mary@example.com>, Richard Doe <richard@example.com>"],
      "messageId":"<0a1b2c3d.welcome@acme.example>",
      "subject":"Hello"
    }
  }
}`

// sesEventComplaint is SES's Complaint event record (event publishing) as
// published to SNS: the Message-ID is one SES made, equal to its own ID.
const sesEventComplaint = `{
  "eventType":"Complaint",
  "complaint": {
    "complainedRecipients":[{"emailAddress":"recipient@example.com"}],
    "timestamp":"2017-08-05T00:41:02.669Z",
    "feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
    "userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.90 Safari/537.36",
    "complaintFeedbackType":"abuse",
    "arrivalDate":"2017-08-05T00:41:02.669Z"
  },
  "mail":{
    "timestamp":"2017-08-05T00:40:01.123Z",
    "source":"Sender Name <sender@example.com>",
    "sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
    "sendingAccountId":"123456789012",
    "messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
    "destination":["recipient@example.com"],
    "headersTruncated":false,
    "headers":[
      {"name":"From","value":"Sender Name <sender@example.com>"},
      {"name":"To","value":"recipient@example.com"},
      {"name":"Subject","value":"Message sent from Amazon SES"},
      {"name":"MIME-Version","value":"1.0"}
    ],
    "commonHeaders":{
      "from":["Sender Name <sender@example.com>"],
      "to":["recipient@example.com"],
      "messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
      "subject":"Message sent from Amazon SES"
    },
    "tags":{"ses:configuration-set":["ConfigSet"]}
  }
}`

// sesEventTransientBounce is a Bounce event record for a full mailbox.
const sesEventTransientBounce = `{
  "eventType":"Bounce",
  "bounce":{
    "bounceType":"Transient",
    "bounceSubType":"MailboxFull",
    "bouncedRecipients":[{"emailAddress":"recipient@example.com","action":"failed","status":"4.2.2","diagnosticCode":"smtp; 452 4.2.2 mailbox full"}],
    "timestamp":"2017-08-05T00:41:02.669Z",
    "feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
    "reportingMTA":"dsn; mta.example.com"
  },
  "mail":{
    "timestamp":"2017-08-05T00:40:02.012Z",
    "source":"Sender Name <sender@example.com>",
    "messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
    "destination":["recipient@example.com"]
  }
}`

func TestSESBounceSignedWithSHA1IsOneReportPerBouncedRecipient(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	code, msg := b.post(t, "ses", sns.sign(t, notification(sesBounceTwoRecipients), "1", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusOK)
	at := time.Date(2016, 1, 27, 14, 59, 38, 237000000, time.UTC)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Permanent,
		Recipient:  "jane@example.com",
		MessageID:  "0a1b2c3d.welcome@acme.example",
		Status:     "5.1.1",
		Diagnostic: "smtp; 550 5.1.1 <jane@example.com>... User",
		Source:     "ses",
		ID:         "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000/jane@example.com",
		At:         at,
	}, {
		Kind:       bounce.Permanent,
		Recipient:  "richard@example.com",
		MessageID:  "0a1b2c3d.welcome@acme.example",
		Status:     "5.1.1",
		Diagnostic: "smtp; 550 5.1.1 <richard@example.com>... User unknown",
		Source:     "ses",
		ID:         "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000/richard@example.com",
		At:         at,
	}})
}

func TestSESComplaintEventSignedWithSHA256IsAComplaintWithoutSESsMessageID(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	m := notification(sesEventComplaint)
	m.Subject = "Amazon SES Email Event Notification"
	code, msg := b.post(t, "ses", sns.sign(t, m, "2", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusOK)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Complaint,
		Recipient:  "recipient@example.com",
		Diagnostic: "abuse",
		Source:     "ses",
		ID:         "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
		At:         time.Date(2017, 8, 5, 0, 41, 2, 669000000, time.UTC),
	}})
}

func TestSESTransientBounceIsTemporary(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	code, msg := b.post(t, "ses", sns.sign(t, notification(sesEventTransientBounce), "2", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusOK)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Temporary,
		Recipient:  "recipient@example.com",
		Status:     "4.2.2",
		Diagnostic: "smtp; 452 4.2.2 mailbox full",
		Source:     "ses",
		ID:         "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
		At:         time.Date(2017, 8, 5, 0, 41, 2, 669000000, time.UTC),
	}})
}

func TestSESDeliveryAndNonSESMessagesAnswer200WithoutReports(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	for _, message := range []string{
		`{"notificationType":"Delivery","mail":{"messageId":"0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"},"delivery":{"timestamp":"2014-05-28T22:41:01.184Z","recipients":["success@simulator.amazonses.com"],"smtpResponse":"250 ok"}}`,
		`{"eventType":"Open","mail":{"messageId":"EXAMPLE7c191be45"},"open":{"ipAddress":"192.0.2.1","timestamp":"2017-08-09T22:00:19.652Z"}}`,
		`Hello from a topic shared with something else`,
	} {
		code, msg := b.post(t, "ses", sns.sign(t, notification(message), "1", sns.certURL()), nil)
		wantStatus(t, code, msg, http.StatusOK)
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func subscriptionConfirmation(subscribeURL string) snsFields {
	return snsFields{
		Type:         "SubscriptionConfirmation",
		MessageID:    "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
		Token:        "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
		TopicArn:     testTopic,
		Message:      "You have chosen to subscribe to the topic " + testTopic + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
		SubscribeURL: subscribeURL,
		Timestamp:    "2012-04-26T20:45:04.751Z",
	}
}

func TestSESSubscriptionConfirmationVisitsTheSubscribeURLOnce(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	m := subscriptionConfirmation(sns.srv.URL + "/?Action=ConfirmSubscription&TopicArn=" + testTopic + "&Token=2336412f37fb")
	code, msg := b.post(t, "ses", sns.sign(t, m, "1", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusOK)
	if n := sns.confirms.Load(); n != 1 {
		t.Errorf("SubscribeURL visited %d times, want 1", n)
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
	if !strings.Contains(b.log(), "SNS subscription confirmed") {
		t.Errorf("the confirmation is not logged:\n%s", b.log())
	}
}

func TestSESSubscribeURLOffAnSNSHostIsNotVisited(t *testing.T) {
	sns := newSNS(t)
	cfg := sns.config(testTopic)
	cfg.CertHost = func(host string) bool { return host == "127.0.0.1" || snsHost.MatchString(host) }
	b := setup(t, Config{SES: cfg})
	for _, u := range []string{
		"https://attacker.example/?Action=ConfirmSubscription",
		"http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
	} {
		code, msg := b.post(t, "ses", sns.sign(t, subscriptionConfirmation(u), "2", sns.certURL()), nil)
		wantStatus(t, code, msg, http.StatusForbidden)
	}
	if n := sns.confirms.Load(); n != 0 {
		t.Errorf("SubscribeURL visited %d times, want 0", n)
	}
}

func TestSESAlteredMessageIsRefused(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	body := sns.sign(t, notification(sesEventTransientBounce), "2", sns.certURL())
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["Message"] = strings.Replace(m["Message"], `"Transient"`, `"Permanent"`, 1)
	altered, _ := json.Marshal(m)
	code, msg := b.post(t, "ses", altered, nil)
	wantStatus(t, code, msg, http.StatusForbidden)

	// A v1 signature presented as v2 does not verify either.
	m = nil
	json.Unmarshal(sns.sign(t, notification(sesEventTransientBounce), "1", sns.certURL()), &m)
	m["SignatureVersion"] = "2"
	relabelled, _ := json.Marshal(m)
	code, msg = b.post(t, "ses", relabelled, nil)
	wantStatus(t, code, msg, http.StatusForbidden)

	delete(m, "Signature")
	unsigned, _ := json.Marshal(m)
	code, msg = b.post(t, "ses", unsigned, nil)
	wantStatus(t, code, msg, http.StatusUnauthorized)

	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestSESSigningCertOffAnSNSHostIsRefusedWithoutDownloading(t *testing.T) {
	sns := newSNS(t)
	cfg := sns.config(testTopic)
	cfg.CertHost = nil // the amazonaws.com rule
	b := setup(t, Config{SES: cfg})
	for _, u := range []string{
		sns.certURL(),
		"https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem",
		"http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
		"https://s3.amazonaws.com/attacker/cert.pem",
	} {
		code, msg := b.post(t, "ses", sns.sign(t, notification(sesEventTransientBounce), "1", u), nil)
		if code != http.StatusForbidden {
			t.Errorf("SigningCertURL %s: status %d (%s), want 403", u, code, msg)
		}
	}
	if n := sns.certGets.Load(); n != 0 {
		t.Errorf("certificate downloaded %d times, want 0", n)
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestSESTopicNotListedIsRefusedBeforeAnything(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	other := "arn:aws:sns:us-east-1:999999999999:not-ours"
	m := notification(sesEventTransientBounce)
	m.TopicArn = other
	code, msg := b.post(t, "ses", sns.sign(t, m, "2", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusForbidden)
	c := subscriptionConfirmation(sns.srv.URL + "/?Action=ConfirmSubscription&TopicArn=" + other)
	c.TopicArn = other
	code, msg = b.post(t, "ses", sns.sign(t, c, "2", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusForbidden)
	if sns.confirms.Load() != 0 || sns.certGets.Load() != 0 || b.sinkCalls() != 0 {
		t.Errorf("confirmed %d, downloaded %d, sink called %d times; want none", sns.confirms.Load(), sns.certGets.Load(), b.sinkCalls())
	}
}

func TestSESAnyTopicIsTakenWithoutTopics(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config()})
	m := notification(sesEventTransientBounce)
	m.TopicArn = "arn:aws:sns:eu-west-1:123456789012:another"
	code, msg := b.post(t, "ses", sns.sign(t, m, "2", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusOK)
}

func TestSESSigningCertIsDownloadedOncePerURL(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	for range 3 {
		code, msg := b.post(t, "ses", sns.sign(t, notification(sesEventTransientBounce), "2", sns.certURL()), nil)
		wantStatus(t, code, msg, http.StatusOK)
	}
	if n := sns.certGets.Load(); n != 1 {
		t.Errorf("certificate downloaded %d times, want 1", n)
	}
}

func TestSESExpiredSigningCertIsRefused(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic), Now: func() time.Time { return testNow.Add(2 * 365 * 24 * time.Hour) }})
	code, msg := b.post(t, "ses", sns.sign(t, notification(sesEventTransientBounce), "2", sns.certURL()), nil)
	wantStatus(t, code, msg, http.StatusForbidden)
}

func TestSESUnreachableSigningCertAnswers502SoSNSDeliversAgain(t *testing.T) {
	sns := newSNS(t)
	b := setup(t, Config{SES: sns.config(testTopic)})
	code, msg := b.post(t, "ses", sns.sign(t, notification(sesEventTransientBounce), "2", sns.srv.URL+"/missing.pem"), nil)
	wantStatus(t, code, msg, http.StatusBadGateway)
}

func TestSNSStringToSignMatchesAWSExample(t *testing.T) {
	subject := "My subject"
	m := snsMessage{
		Type:      "Notification",
		MessageID: "4d4dc071-ddbf-465d-bba8-08f81c89da64",
		Subject:   &subject,
		Message:   "My Test Message",
		Timestamp: "2019-01-31T04:37:04.321Z",
		TopicArn:  "arn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P",
	}
	want := "Message\nMy Test Message\nMessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\nSubject\nMy subject\n" +
		"Timestamp\n2019-01-31T04:37:04.321Z\nTopicArn\narn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P\nType\nNotification\n"
	if got := m.stringToSign(); got != want {
		t.Errorf("string to sign:\n%s\nwant:\n%s", got, want)
	}
}

func TestSNSHostRule(t *testing.T) {
	for host, want := range map[string]bool{
		"sns.us-east-1.amazonaws.com":                    true,
		"sns.eu-central-2.amazonaws.com":                 true,
		"sns.cn-north-1.amazonaws.com.cn":                true,
		"sns.us-gov-west-1.amazonaws.com":                true,
		"sns.us-east-1.amazonaws.com.attacker.example":   false,
		"attacker-sns.us-east-1.amazonaws.com":           false,
		"sns.amazonaws.com":                              false,
		"s3.us-east-1.amazonaws.com":                     false,
		"sns.us-east-1.amazonaws.co":                     false,
		"sns.us-east-1.amazonaws.com.":                   false,
		"sns.us_east_1.amazonaws.com":                    false,
		"sns.us-east-1.amazonaws.com\n.attacker.example": false,
	} {
		if got := snsHost.MatchString(host); got != want {
			t.Errorf("%q: %v, want %v", host, got, want)
		}
	}
}
