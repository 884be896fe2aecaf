package main

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/retainmail/retain/mailer"
)

// dnsServer is a DNS server on 127.0.0.1 (UDP) that answers TXT queries from
// records, NXDOMAIN for any other name, and stops at the end of the test.
func dnsServer(t *testing.T, records map[string][]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			name := strings.TrimSuffix(q.Name.String(), ".")
			txts, ok := records[name]
			if !ok {
				b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError})
			}
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if q.Type == dnsmessage.TypeTXT {
				for _, txt := range txts {
					// A TXT string holds 255 bytes at most: longer records are
					// split, as DNS providers publish RSA 2048 keys.
					var parts []string
					for len(txt) > 255 {
						parts, txt = append(parts, txt[:255]), txt[255:]
					}
					parts = append(parts, txt)
					b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.TXTResource{TXT: parts})
				}
			}
			msg, err := b.Finish()
			if err != nil {
				t.Error(err)
				return
			}
			pc.WriteTo(msg, addr)
		}
	}()
	return pc.LocalAddr().String()
}

// writeKey writes k as a PKCS#8 PEM file in dir and returns its path.
func writeKey(t *testing.T, dir, name string, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func record(t *testing.T, domain, selector string, k crypto.Signer) (string, string) {
	t.Helper()
	key := mailer.DKIMKey{Domain: domain, Selector: selector, Signer: k}
	r, err := key.Record()
	if err != nil {
		t.Fatal(err)
	}
	return key.RecordName(), r
}

func runWith(vars map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }}
	code = run(args, e)
	return code, out.String(), errOut.String()
}

func TestDKIMCheckSaysWhichKeysArePublished(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	rsaPath := writeKey(t, dir, "rsa.pem", rsaKey)
	edPath := writeKey(t, dir, "ed.pem", edKey)

	rsaName, rsaRecord := record(t, "acme.example", "rsa2026", rsaKey)
	edName, edRecord := record(t, "acme.example", "ed2026", edKey)
	_, otherRecord := record(t, "acme.example", "ed2026", otherEd)
	// The RSA record is longer than one TXT string; the Ed25519 one shares its
	// name with another TXT record.
	good := map[string][]string{rsaName: {rsaRecord}, edName: {"v=spf1 -all", edRecord}}
	spec := "acme.example:rsa2026:" + rsaPath + ", acme.example:ed2026:" + edPath

	t.Run("published", func(t *testing.T) {
		code, stdout, stderr := runWith(map[string]string{dkimEnv: spec}, "dkim", "check", "--dns", dnsServer(t, good))
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		for _, want := range []string{
			"ok       acme.example selector rsa2026 (rsa-2048): rsa2026._domainkey.acme.example publishes this key\n",
			"ok       acme.example selector ed2026 (ed25519): ed2026._domainkey.acme.example publishes this key\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
	})

	t.Run("mismatched and missing", func(t *testing.T) {
		bad := map[string][]string{edName: {otherRecord}}
		code, stdout, _ := runWith(map[string]string{dkimEnv: spec}, "dkim", "check", "--dns", dnsServer(t, bad))
		if code != exitProblems {
			t.Fatalf("exit %d, want %d\n%s", code, exitProblems, stdout)
		}
		for _, want := range []string{
			"missing  acme.example selector rsa2026 (rsa-2048): no DKIM record published at rsa2026._domainkey.acme.example\n" +
				"         publish TXT at rsa2026._domainkey.acme.example:\n         " + rsaRecord + "\n",
			"mismatch acme.example selector ed2026 (ed25519): DKIM record does not match the key: p= is another Ed25519 key\n" +
				"         publish TXT at ed2026._domainkey.acme.example:\n         " + edRecord + "\n",
			"2 of 2 DKIM keys are not published as configured\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
	})
}

func TestDKIMKeysEnvProblemsNameTheVariableAndTheEntry(t *testing.T) {
	dir := t.TempDir()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edPath := writeKey(t, dir, "ed.pem", edKey)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPath := writeKey(t, dir, "small.pem", small)
	notPEM := filepath.Join(dir, "notpem")
	os.WriteFile(notPEM, []byte("secret-looking bytes"), 0o600)

	_, warnings, problems := dkimKeys("acme.example:s1:" + smallPath)
	if len(problems) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "RETAIN_DKIM_KEYS acme.example:s1: RSA key of 1024 bits; use 2048 bits") {
		t.Errorf("a 1024-bit key: warnings %q, problems %q", warnings, problems)
	}

	keys, _, problems := dkimKeys(strings.Join([]string{
		"acme.example:s1",
		"acme.example:s2:" + filepath.Join(dir, "absent.pem"),
		"acme.example:s3:" + notPEM,
		"co.uk:s4:" + edPath,
		"acme.example:ed:" + edPath,
	}, ","))
	got := strings.Join(problems, "\n")
	for _, want := range []string{
		`RETAIN_DKIM_KEYS entry 1 "acme.example:s1": want DOMAIN:SELECTOR:KEYFILE`,
		"RETAIN_DKIM_KEYS acme.example:s2: cannot read the key file: open " + filepath.Join(dir, "absent.pem"),
		"RETAIN_DKIM_KEYS acme.example:s3: " + notPEM + ": no PEM block",
		`RETAIN_DKIM_KEYS: dkim key co.uk/s4: domain "co.uk" is a public suffix`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret-looking") || len(keys) != 2 {
		t.Errorf("problems quote the file, or keys %v", keys)
	}

	code, _, stderr := runWith(map[string]string{dkimEnv: "acme.example:s1"}, "worker")
	if code != exitUsage || !strings.Contains(stderr, "retain worker: RETAIN_DKIM_KEYS entry 1") {
		t.Errorf("worker with a bad RETAIN_DKIM_KEYS: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runWith(nil, "dkim", "check")
	if code != exitUsage || !strings.Contains(stderr, "RETAIN_DKIM_KEYS is not set") {
		t.Errorf("dkim check without keys: exit %d\n%s", code, stderr)
	}
}
