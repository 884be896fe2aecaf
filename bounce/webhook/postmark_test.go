package webhook

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/bounce"
)

// postmarkHardBounce is Postmark's bounce webhook example, with the
// Message-ID retain adds as metadata (X-PM-Metadata-message-id).
const postmarkHardBounce = `{
  "RecordType": "Bounce",
  "MessageStream": "outbound",
  "ID": 4323372036854775807,
  "Type": "HardBounce",
  "TypeCode": 1,
  "Name": "Hard bounce",
  "Tag": "onboarding",
  "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
  "Metadata": {"message-id": "<0a1b2c3d.tips@acme.example>", "campaign": "onboarding"},
  "ServerID": 23,
  "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
  "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
  "Email": "john@example.com",
  "From": "hello@acme.example",
  "BouncedAt": "2019-11-05T16:33:54.9070259Z",
  "DumpAvailable": true,
  "Inactive": true,
  "CanActivate": true,
  "Subject": "Three tips for your first week"
}`

// postmarkSpamComplaint is Postmark's spam complaint webhook example.
const postmarkSpamComplaint = `{
  "RecordType": "SpamComplaint",
  "MessageStream": "outbound",
  "ID": 42,
  "Type": "SpamComplaint",
  "TypeCode": 512,
  "Name": "Spam complaint",
  "Tag": "Test",
  "MessageID": "00000000-0000-0000-0000-000000000000",
  "Metadata" : {"a_key" : "a_value", "b_key": "b_value"},
  "ServerID": 1234,
  "Description": "",
  "Details": "Test spam complaint details",
  "Email": "john@example.com",
  "From": "sender@example.com",
  "BouncedAt": "2019-11-05T16:33:54.9070259Z",
  "DumpAvailable": true,
  "Inactive": true,
  "CanActivate": false,
  "Subject": "Test subject",
  "Content": "<Abuse report dump>"
}`

func TestPostmarkHardBounceWithMessageIDMetadataIsAPermanentReport(t *testing.T) {
	b := setup(t, postmarkOnly())
	code, msg := b.post(t, "postmark", []byte(postmarkHardBounce), postmarkAuth("postmark", "s3cret-pm-password"))
	wantStatus(t, code, msg, http.StatusOK)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Permanent,
		Recipient:  "john@example.com",
		MessageID:  "0a1b2c3d.tips@acme.example",
		Status:     "5.1.1",
		Diagnostic: "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
		Source:     "postmark",
		ID:         "4323372036854775807",
		At:         time.Date(2019, 11, 5, 16, 33, 54, 907025900, time.UTC),
	}})
}

func TestPostmarkSpamComplaintIsAComplaintWithoutPostmarksMessageID(t *testing.T) {
	b := setup(t, postmarkOnly())
	code, msg := b.post(t, "postmark", []byte(postmarkSpamComplaint), postmarkAuth("postmark", "s3cret-pm-password"))
	wantStatus(t, code, msg, http.StatusOK)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Complaint,
		Recipient:  "john@example.com",
		Diagnostic: "Test spam complaint details",
		Source:     "postmark",
		ID:         "42",
		At:         time.Date(2019, 11, 5, 16, 33, 54, 907025900, time.UTC),
	}})
}

func TestPostmarkSubscriptionChangeForAComplaintIsAComplaint(t *testing.T) {
	b := setup(t, postmarkOnly())
	body := `{
  "RecordType":"SubscriptionChange",
  "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
  "ServerID":123456,
  "MessageStream": "broadcast",
  "ChangedAt": "2020-02-01T10:53:34.416071Z",
  "Recipient": "bounced-address@wildbit.com",
  "Origin": "Recipient",
  "SuppressSending": true,
  "SuppressionReason": "SpamComplaint",
  "Tag": "my-tag",
  "Metadata": {"example": "value"}
}`
	code, msg := b.post(t, "postmark", []byte(body), postmarkAuth("postmark", "s3cret-pm-password"))
	wantStatus(t, code, msg, http.StatusOK)
	wantReports(t, b.got(), []bounce.Report{{
		Kind:       bounce.Complaint,
		Recipient:  "bounced-address@wildbit.com",
		Diagnostic: "Postmark suppressed the address: SpamComplaint",
		Source:     "postmark",
		At:         time.Date(2020, 2, 1, 10, 53, 34, 416071000, time.UTC),
	}})
}

func TestPostmarkBounceTypesMapToKinds(t *testing.T) {
	b := setup(t, postmarkOnly())
	for typ, want := range map[string]bounce.Kind{
		"HardBounce":            bounce.Permanent,
		"BadEmailAddress":       bounce.Permanent,
		"SoftBounce":            bounce.Temporary,
		"Transient":             bounce.Temporary,
		"DnsError":              bounce.Temporary,
		"Blocked":               bounce.Temporary,
		"SpamNotification":      bounce.Temporary,
		"Unknown":               bounce.Temporary,
		"SpamComplaint":         bounce.Complaint,
		"AutoResponder":         "",
		"ChallengeVerification": "",
		"Unsubscribe":           "",
		"AddressChange":         "",
		"ManuallyDeactivated":   "",
		"DMARCPolicy":           "",
		"SMTPApiError":          "",
		"SomethingNew":          "",
	} {
		before := len(b.got())
		body := strings.Replace(postmarkHardBounce, `"Type": "HardBounce"`, `"Type": "`+typ+`"`, 1)
		code, msg := b.post(t, "postmark", []byte(body), postmarkAuth("postmark", "s3cret-pm-password"))
		if code != http.StatusOK {
			t.Errorf("%s: status %d (%s), want 200", typ, code, msg)
			continue
		}
		reports := b.got()[before:]
		switch {
		case want == "" && len(reports) != 0:
			t.Errorf("%s: reported %+v, want it ignored", typ, reports)
		case want != "" && (len(reports) != 1 || reports[0].Kind != want):
			t.Errorf("%s: reported %+v, want one %s", typ, reports, want)
		}
	}
}

func TestPostmarkDeliveryAndOpenAnswer200WithoutReports(t *testing.T) {
	b := setup(t, postmarkOnly())
	for _, body := range []string{
		`{"RecordType":"Delivery","ServerID":23,"MessageStream":"outbound","MessageID":"00000000-0000-0000-0000-000000000000","Recipient":"john@example.com","Tag":"welcome-email","DeliveredAt":"2019-11-05T16:33:54.9070259Z","Details":"Test delivery webhook details","Metadata":{}}`,
		`{"RecordType":"Open","MessageStream":"outbound","FirstOpen":true,"Client":{"Name":"Chrome 35.0.1916.153"},"Platform":"WebMail","ReadSeconds":5,"Tag":"welcome-email","MessageID":"00000000-0000-0000-0000-000000000000","Metadata":{},"Recipient":"john@example.com","ReceivedAt":"2019-11-05T16:33:54.9070259Z"}`,
	} {
		code, msg := b.post(t, "postmark", []byte(body), postmarkAuth("postmark", "s3cret-pm-password"))
		wantStatus(t, code, msg, http.StatusOK)
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestPostmarkWithoutOrWithWrongCredentialsIsRefusedAndLogsNoSecret(t *testing.T) {
	b := setup(t, postmarkOnly())
	for name, c := range map[string]struct {
		header http.Header
		code   int
	}{
		"no credentials":  {nil, http.StatusUnauthorized},
		"wrong password":  {postmarkAuth("postmark", "guess-pm-password"), http.StatusForbidden},
		"wrong user":      {postmarkAuth("admin", "s3cret-pm-password"), http.StatusForbidden},
		"password prefix": {postmarkAuth("postmark", "s3cret"), http.StatusForbidden},
	} {
		code, msg := b.post(t, "postmark", []byte(postmarkHardBounce), c.header)
		if code != c.code {
			t.Errorf("%s: status %d (%s), want %d", name, code, msg, c.code)
		}
	}
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
	logs := b.log()
	if strings.Count(logs, "level=WARN msg=\"webhook refused\"") != 4 {
		t.Errorf("want a warning per refused request:\n%s", logs)
	}
	for _, secret := range []string{"s3cret", "guess-pm-password"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %q:\n%s", secret, logs)
		}
	}
}
