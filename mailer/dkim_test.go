package mailer

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/retainmail/retain/internal/smtptest"
)

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
)

// testRSAKey is one RSA 2048 key for the package's tests (generating one takes
// a while).
func testRSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	rsaKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

func testEd25519Key(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// dkimKeys returns the keys of one test case: "rsa", "ed25519" or "dual" (both),
// all for acme.example.
func dkimKeys(tb testing.TB, kind string) []DKIMKey {
	rsaK := DKIMKey{Domain: "acme.example", Selector: "rsa2026", Signer: testRSAKey(tb)}
	edK := DKIMKey{Domain: "acme.example", Selector: "ed2026", Signer: testEd25519Key(tb)}
	switch kind {
	case "rsa":
		return []DKIMKey{rsaK}
	case "ed25519":
		return []DKIMKey{edK}
	}
	return []DKIMKey{rsaK, edK}
}

// dnsFor is a LookupTXT that publishes the records of keys, as DNS would.
func dnsFor(tb testing.TB, keys ...DKIMKey) func(string) ([]string, error) {
	records := map[string]string{}
	for _, k := range keys {
		r, err := k.Record()
		if err != nil {
			tb.Fatal(err)
		}
		records[k.RecordName()] = r
	}
	return func(name string) ([]string, error) {
		if r, ok := records[name]; ok {
			return []string{r}, nil
		}
		return nil, fmt.Errorf("lookup %s: no such host", name)
	}
}

// verifyDKIM verifies every signature of raw against keys' records and returns
// the verifications, failing the test for any that does not verify.
func verifyDKIM(t *testing.T, raw []byte, keys ...DKIMKey) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: dnsFor(t, keys...)})
	if err != nil {
		t.Fatalf("dkim.Verify: %v", err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature of %s does not verify: %v\n%s", v.Domain, v.Err, raw)
		}
	}
	return vs
}

// dottedMessage has body lines that start with ".", which the dot encoding doubles,
// a line that is only ".", and bare LF line ends.
func dottedMessage() *Message {
	m := message()
	m.Text = "Hi Zoë,\n.hidden line\n.\n..two dots\nend\n"
	m.HTML = "<p>Hi</p>\n.<p>dot</p>\n"
	return m
}

// sendSigned sends m through a Pool to smtpURL, signed with keys.
func sendSigned(t *testing.T, smtpURL string, keys []DKIMKey, m *Message) {
	t.Helper()
	cfg, err := ParseURL(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DKIM = keys
	p := NewPool(cfg)
	defer p.Close()
	if err := p.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestDKIMSignaturesVerifyAfterTheSMTPPath(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519", "dual"} {
		t.Run(kind, func(t *testing.T) {
			keys := dkimKeys(t, kind)
			srv := smtptest.Start(t) // announces 8BITMIME: the parts go unencoded
			sendSigned(t, srv.URL(), keys, dottedMessage())
			msgs := srv.Wait(1, 5*time.Second)
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages", len(msgs))
			}
			raw := msgs[0].Raw
			if !bytes.Contains(raw, []byte("\r\n.hidden line\r\n.\r\n..two dots\r\n")) {
				t.Fatalf("the dotted lines did not arrive as written:\n%s", raw)
			}
			vs := verifyDKIM(t, raw, keys...)
			if len(vs) != len(keys) {
				t.Fatalf("%d signatures, want %d", len(vs), len(keys))
			}
			for _, v := range vs {
				if v.Domain != "acme.example" {
					t.Errorf("d=%s, want acme.example", v.Domain)
				}
				// Each present field, in the header's order, then each again.
				want := "content-type date from list-unsubscribe list-unsubscribe-post message-id mime-version subject to"
				half := len(v.HeaderKeys) / 2
				first := strings.Fields(strings.ToLower(strings.Join(v.HeaderKeys[:half], " ")))
				again := strings.Fields(strings.ToLower(strings.Join(v.HeaderKeys[half:], " ")))
				slices.Sort(first)
				slices.Sort(again)
				if got := strings.Join(first, " "); got != want || !slices.Equal(first, again) {
					t.Errorf("h=%s\nwant each of %s, then each again", strings.Join(v.HeaderKeys, ":"), want)
				}
			}
		})
	}
}

func TestDKIMSignaturesVerifyWithQuotedPrintableParts(t *testing.T) {
	keys := dkimKeys(t, "dual")
	s := newSink(t, sinkOptions{hide: []string{"8BITMIME"}})
	sendSigned(t, fmt.Sprintf("smtp://127.0.0.1:%s?tls=none", s.port), keys, dottedMessage())
	raw := s.messages()[0].Data
	if !bytes.Contains(raw, []byte("quoted-printable")) {
		t.Fatalf("want quoted-printable parts without 8BITMIME:\n%s", raw)
	}
	if vs := verifyDKIM(t, raw, keys...); len(vs) != 2 {
		t.Fatalf("%d signatures, want 2", len(vs))
	}
}

// signed returns m as Pool.Send writes it for a relay with 8BITMIME and keys,
// dot-encoding undone: what the relay receives.
func signed(t *testing.T, m *Message, keys []DKIMKey) []byte {
	t.Helper()
	o, err := m.prepare()
	if err != nil {
		t.Fatal(err)
	}
	o.dkim = newDKIMSigner(keys).keysFor(m.From.Address)
	b := new(dataBuf)
	if err := o.write(b, true); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(textproto.NewReader(bufio.NewReader(bytes.NewReader(b.data))).DotReader())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestDKIMSignatureFailsWhenTheMessageChanges(t *testing.T) {
	keys := dkimKeys(t, "ed25519")
	raw := signed(t, message(), keys)
	verifyDKIM(t, raw, keys...)
	for name, change := range map[string]func([]byte) []byte{
		"subject":          func(b []byte) []byte { return bytes.Replace(b, []byte("Subject: "), []byte("Subject: Re: "), 1) },
		"body":             func(b []byte) []byte { return bytes.Replace(b, []byte("Welcome."), []byte("Welcome!"), 1) },
		"second From":      func(b []byte) []byte { return append([]byte("From: evil@phish.example\r\n"), b...) },
		"List-Unsubscribe": func(b []byte) []byte { return append([]byte("List-Unsubscribe: <https://phish.example/>\r\n"), b...) },
	} {
		t.Run(name, func(t *testing.T) {
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(change(bytes.Clone(raw))), &dkim.VerifyOptions{LookupTXT: dnsFor(t, keys...)})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("the changed message still verifies")
			}
		})
	}
}

func TestDKIMSignsWithTheKeysOfTheFromDomainOrItsParent(t *testing.T) {
	acme := DKIMKey{Domain: "acme.example", Selector: "s1", Signer: testEd25519Key(t)}
	shop := DKIMKey{Domain: "shop.acme.example", Selector: "s1", Signer: testEd25519Key(t)}
	other := DKIMKey{Domain: "other.example", Selector: "s1", Signer: testEd25519Key(t)}
	keys := []DKIMKey{acme, shop, other}
	for _, tc := range []struct{ from, want string }{
		{"news@acme.example", "acme.example"},
		{"news@NEWS.Acme.Example", "acme.example"},
		{"orders@shop.acme.example", "shop.acme.example"},
		{"a@eu.shop.acme.example", "shop.acme.example"},
		{"a@notacme.example", ""},
		{"a@elsewhere.test", ""},
	} {
		m := message()
		m.From.Address = tc.from
		raw := signed(t, m, keys)
		vs := verifyDKIM(t, raw, keys...)
		got := ""
		if len(vs) > 0 {
			got = vs[0].Domain
		}
		if len(vs) > 1 || got != tc.want {
			t.Errorf("From %s: signed by %d keys of %q, want one of %q", tc.from, len(vs), got, tc.want)
		}
	}
}

func TestDKIMOffWritesTheMessageUnsigned(t *testing.T) {
	m := message()
	o, err := m.prepare()
	if err != nil {
		t.Fatal(err)
	}
	b := new(dataBuf)
	if err := o.write(b, true); err != nil {
		t.Fatal(err)
	}
	gm, err := m.BuildFor(true)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := gm.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	// The boundary is random and go-mail writes List-Unsubscribe and
	// List-Unsubscribe-Post in map order: the same message has the same length.
	if wantData := appendDotStuffed(nil, want.Bytes()); len(b.data) != len(wantData) || bytes.Contains(b.data, []byte("DKIM-Signature")) {
		t.Errorf("without DKIM the DATA differs from BuildFor's message:\n%s\nwant\n%s", b.data, wantData)
	}
}

func TestDKIMConfigProblemsNameTheKey(t *testing.T) {
	// Go refuses to generate a key under 1024 bits: a signer that only has the
	// public half is enough for Validate.
	small := publicOnly{&rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511), E: 65537}}
	ed := testEd25519Key(t)
	cfg := Config{Host: "relay.example", DKIM: []DKIMKey{
		{Domain: "acme.example", Selector: "s1", Signer: ed},
		{Domain: "acme.example", Selector: "s1", Signer: ed},
		{Domain: "co.uk", Selector: "s1", Signer: ed},
		{Domain: "localhost", Selector: "s1", Signer: ed},
		{Domain: "acme.example", Selector: "bad selector", Signer: ed},
		{Domain: "acme.example", Selector: "small", Signer: small},
		{Domain: "acme.example", Selector: "none"},
	}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted bad DKIM keys")
	}
	for _, want := range []string{
		"dkim key acme.example/s1: listed twice",
		`dkim key co.uk/s1: domain "co.uk" is a public suffix`,
		`dkim key localhost/s1: domain "localhost": want a domain name`,
		`selector "bad selector"`,
		"dkim key acme.example/small: RSA key of 512 bits",
		"dkim key acme.example/none: no key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to say %q", err, want)
		}
	}
	good := Config{Host: "relay.example", DKIM: dkimKeys(t, "dual")}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate() = %v for an RSA and an Ed25519 key", err)
	}
}

func TestDKIMKeyNeverPrintsTheKey(t *testing.T) {
	k := dkimKeys(t, "rsa")[0]
	secret := k.Signer.(*rsa.PrivateKey).D.String()[:20]
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("dkim", "key", k)
	cfg := Config{Host: "relay.example", DKIM: []DKIMKey{k}}
	slog.New(slog.NewTextHandler(&logged, nil)).Info("smtp", "config", cfg, "key", k)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", k, k, k, k), fmt.Sprintf("%v %#v", cfg, cfg), logged.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("private key printed: %s", s)
		}
	}
	if got, want := k.String(), "acme.example (selector rsa2026, rsa-2048)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// publicOnly is a crypto.Signer that cannot sign.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("cannot sign")
}

func pemOf(t *testing.T, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseDKIMKeyReadsPKCS1AndPKCS8(t *testing.T) {
	rsaK := testRSAKey(t)
	edK := testEd25519Key(t)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	for name, tc := range map[string]struct {
		pem  []byte
		want crypto.PublicKey
	}{
		"rsa pkcs1":     {pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaK)), rsaK.Public()},
		"rsa pkcs8":     {pemOf(t, "PRIVATE KEY", pkcs8(rsaK)), rsaK.Public()},
		"ed25519 pkcs8": {pemOf(t, "PRIVATE KEY", pkcs8(edK)), edK.Public()},
	} {
		s, err := ParseDKIMKey(tc.pem)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.want) {
			t.Errorf("%s: another key", name)
		}
	}
	for name, tc := range map[string]struct {
		pem  []byte
		want string
	}{
		"not pem":   {[]byte("hello"), "no PEM block"},
		"public":    {pemOf(t, "PUBLIC KEY", []byte{1}), `PEM block "PUBLIC KEY"`},
		"encrypted": {pemOf(t, "ENCRYPTED PRIVATE KEY", []byte{1}), "encrypted"},
		"garbage":   {pemOf(t, "PRIVATE KEY", []byte("secretbytes")), "not a valid PKCS#8"},
		"two keys":  {append(pemOf(t, "PRIVATE KEY", pkcs8(edK)), pemOf(t, "PRIVATE KEY", pkcs8(edK))...), "more than one"},
	} {
		_, err := ParseDKIMKey(tc.pem)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secretbytes") {
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.want)
		}
	}
}

func TestCheckRecordComparesTheKeyAndAlgorithm(t *testing.T) {
	rsaK := dkimKeys(t, "rsa")[0]
	edK := dkimKeys(t, "ed25519")[0]
	rsaRecord, _ := rsaK.Record()
	edRecord, _ := edK.Record()
	otherEd, _ := DKIMKey{Signer: testEd25519Key(t)}.Record()
	pkcs1 := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&testRSAKey(t).PublicKey))
	for _, tc := range []struct {
		name string
		key  DKIMKey
		txts []string
		want error
	}{
		{"rsa", rsaK, []string{rsaRecord}, nil},
		{"rsa as pkcs1, no k=", rsaK, []string{strings.Replace(pkcs1, "k=rsa; ", "", 1)}, nil},
		{"ed25519 beside an SPF record", edK, []string{"v=spf1 -all", edRecord}, nil},
		{"ed25519 with spaces in p=", edK, []string{edRecord[:30] + " " + edRecord[30:]}, nil},
		{"another ed25519 key", edK, []string{otherEd}, ErrDKIMMismatch},
		{"rsa record for an ed25519 key", edK, []string{rsaRecord}, ErrDKIMMismatch},
		{"revoked", rsaK, []string{"v=DKIM1; k=rsa; p="}, ErrDKIMMismatch},
		{"missing", rsaK, nil, ErrDKIMNoRecord},
		{"two records", rsaK, []string{rsaRecord, rsaRecord}, ErrDKIMBadRecord},
		{"bad base64", edK, []string{"v=DKIM1; k=ed25519; p=!!!"}, ErrDKIMBadRecord},
	} {
		err := tc.key.CheckRecord(tc.txts)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: CheckRecord = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzDKIMSurvivesDotStuffing signs a message with any text part, dot-encodes it as
// DATA does, undoes the encoding as a relay does and verifies the signature.
func FuzzDKIMSurvivesDotStuffing(f *testing.F) {
	for _, tc := range dotStuffCases {
		f.Add(tc.in)
	}
	f.Add(".\n..\r\n. \n")
	keys := []DKIMKey{{Domain: "acme.example", Selector: "s1", Signer: testEd25519Key(f)}}
	f.Fuzz(func(t *testing.T, text string) {
		m := message()
		m.Text = text
		raw := signed(t, m, keys)
		vs := verifyDKIM(t, raw, keys...)
		if len(vs) != 1 {
			t.Fatalf("%d signatures, want 1", len(vs))
		}
	})
}
