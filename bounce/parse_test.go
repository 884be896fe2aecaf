package bounce

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixture reads testdata/name with what it says of the
// email it reports on filled in: its Return-Path, recipient and Message-ID.
func fixture(t *testing.T, name, rcpt, to, msgID string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{RCPT}}", rcpt, "{{TO}}", to, "{{MSGID}}", msgID, "{{MSGID_BRACKETED}}", "<"+msgID+">").Replace(string(b))
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func TestParseMail(t *testing.T) {
	const rcpt, msgID = "bounces+abc@bounces.acme.example", "retain.abc@acme.example"
	edt := time.FixedZone("EDT", -4*3600)
	for _, tc := range []struct {
		file string
		want []Report
	}{
		{"postfix-hard.eml", []Report{{Kind: Permanent, Recipient: "anna@customer.example", MessageID: msgID, Status: "5.1.1", Source: "dsn",
			Diagnostic: "550 5.1.1 <anna@customer.example>: Recipient address rejected: User unknown in virtual mailbox table",
			At:         time.Date(2026, 12, 1, 9, 13, 58, 0, time.FixedZone("CET", 3600))}}},
		// RFC 3464's example, extended: a failure with a 4.x.x status is
		// temporary, a "delayed" notice no failure at all, and a 5.0.0 takes
		// the code of the receiver's reply.
		{"rfc3464-multi.eml", []Report{
			{Kind: Temporary, Recipient: "louisl@larry.slip.umd.edu", MessageID: msgID, Status: "4.0.0", Source: "dsn",
				Diagnostic: "426 connection timed out", At: time.Date(1994, 7, 7, 17, 15, 49, 0, edt)},
			{Kind: Permanent, Recipient: "bob@gone.example", MessageID: msgID, Status: "5.2.1", Source: "dsn",
				Diagnostic: "550 5.2.1 mailbox disabled"},
		}},
		// RFC 5965's example (Appendix B.2), sent to retain's Return-Path.
		{"arf-abuse.eml", []Report{{Kind: Complaint, Recipient: "anna@customer.example", MessageID: msgID, Source: "arf",
			// "EDT" is an obsolete zone name, which net/mail reads as +0000.
			Diagnostic: "feedback report SomeGenerator/1.0", At: time.Date(2005, 3, 8, 14, 0, 0, 0, time.UTC)}}},
		{"autoreply.eml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseMail(strings.NewReader(fixture(t, tc.file, rcpt, "anna@customer.example", msgID)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseMail: whatever a sender puts in a message to a Return-Path,
// ParseMail returns reports or an error, never panics, and reads at most one
// report per DSN recipient block.
func FuzzParseMail(f *testing.F) {
	for _, name := range []string{"postfix-hard.eml", "rfc3464-multi.eml", "arf-abuse.eml", "autoreply.eml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n\r\n\r\nAction: failed\r\n--x--")
	f.Fuzz(func(t *testing.T, msg string) {
		reports, err := ParseMail(strings.NewReader(msg))
		if err != nil {
			return
		}
		for _, r := range reports {
			if r.Kind != Permanent && r.Kind != Temporary && r.Kind != Complaint {
				t.Errorf("report of kind %q", r.Kind)
			}
		}
	})
}
