package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/mailer"
)

// TestSendTestSendsOneStepAndChangesNothing: retain send-test sends the step
// rendered for a stored customer to the --to address over real SMTP, marked as
// a test, with the worker's headers; Redis is the same before and after.
func TestSendTestSendsOneStepAndChangesNothing(t *testing.T) {
	rdb, prefix := redistest.New(t)
	relay := smtptest.Start(t)
	vars := map[string]string{"REDIS_URL": redistest.URL(), "RETAIN_REDIS_PREFIX": prefix, "RETAIN_TEMPLATES": "../../templates",
		"SMTP_URL": relay.URL(), "RETAIN_FROM": "Acme <hello@acme.example>", "RETAIN_BASE_URL": "https://retain.acme.example",
		"RETAIN_SECRET": "0123456789abcdef0123456789abcdef"}
	retain := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := run(args, &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }})
		return stdout.String(), stderr.String(), code
	}
	file := filepath.Join(t.TempDir(), "customers.jsonl")
	os.WriteFile(file, []byte(`{"id": "c1", "email": "ada@example.org", "first_name": "Ada", "events": [{"name": "signed_up", "at": "2026-03-02T09:00:00Z"}]}`+"\n"), 0o644)
	if _, stderr, code := retain("import", "--apply", "--campaigns", "testdata/e2e/campaigns", file); code != exitOK {
		t.Fatalf("retain import: %d\n%s", code, stderr)
	}
	dump := func() map[string]string {
		t.Helper()
		keys, err := redistest.Keys(t.Context(), rdb, prefix)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, k := range keys {
			out[k] = rdb.Dump(t.Context(), k).Val()
		}
		return out
	}
	before := dump()

	stdout, stderr, code := retain("send-test", "--to", "marketer@acme.example", "--customer", "c1", "testdata/e2e/campaigns/welcome/01-hello.md")
	if code != exitOK {
		t.Fatalf("retain send-test: %d\n%s", code, stderr)
	}
	msgs := relay.Wait(1, 10e9)
	if len(msgs) != 1 {
		t.Fatalf("%d messages at the relay, want 1", len(msgs))
	}
	m := msgs[0]
	for name, c := range map[string][2]string{
		"envelope to": {strings.Join(m.To, ","), "marketer@acme.example"},
		"Subject":     {m.Header.Get("Subject"), "[test] Hello Ada"},
		"From":        {m.Header.Get("From"), `"Acme" <hello@acme.example>`},
		"Feedback-ID": {m.Header.Get("Feedback-ID"), "welcome/hello:welcome:-:acme.example"},
	} {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if !strings.Contains(m.Header.Get("List-Unsubscribe"), "https://retain.acme.example/u/") || !strings.Contains(stdout, "sent welcome/hello") {
		t.Errorf("List-Unsubscribe %q; stdout %q", m.Header.Get("List-Unsubscribe"), stdout)
	}
	if after := dump(); !maps.Equal(before, after) {
		t.Errorf("Redis changed: %d keys before, %d after", len(before), len(after))
	}

	// With RETAIN_DKIM_KEYS it signs as the worker does: the signature
	// verifies against the key's DNS record.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "dkim.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	vars["RETAIN_DKIM_KEYS"] = "acme.example:t1:" + keyFile
	if _, stderr, code := retain("send-test", "--to", "marketer@acme.example", "testdata/e2e/campaigns/welcome/01-hello.md"); code != exitOK {
		t.Fatalf("retain send-test with DKIM: %d\n%s", code, stderr)
	}
	signed := relay.Wait(2, 10e9)[1]
	record, _ := mailer.DKIMKey{Domain: "acme.example", Selector: "t1", Signer: priv}.Record()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed.Raw), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if name != "t1._domainkey.acme.example" {
			return nil, fmt.Errorf("no TXT at %s", name)
		}
		return []string{record}, nil
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "acme.example" {
		t.Errorf("DKIM of the test email: %+v, %v; want one valid signature of acme.example", vs, err)
	}
	delete(vars, "RETAIN_DKIM_KEYS")

	// What it refuses.
	for _, args := range [][]string{
		{"send-test", "testdata/e2e/campaigns/welcome/01-hello.md"},
		{"send-test", "--to", "not an address", "testdata/e2e/campaigns/welcome/01-hello.md"},
	} {
		if _, stderr, code := retain(args...); code != exitUsage || !strings.Contains(stderr, "--to") {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}
