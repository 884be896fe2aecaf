package mailer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/publicsuffix"
)

// DKIM key algorithms, as a DKIM record's k= tag names them.
const (
	DKIMRSA     = "rsa"
	DKIMEd25519 = "ed25519"
)

// MinDKIMRSABits is the shortest RSA key Validate accepts (RFC 8301 §3.2: verifiers
// ignore shorter ones). RecommendedDKIMRSABits is what a new key should have.
const (
	MinDKIMRSABits         = 1024
	RecommendedDKIMRSABits = 2048
)

// DKIMKey is one private key the pool signs messages with (Config.DKIM).
//
// Printing or logging a DKIMKey shows its domain, selector and algorithm, never the
// key.
type DKIMKey struct {
	// Domain is the signing domain (d=), e.g. "acme.example". A message is signed
	// with the keys of its From domain or, when it has none, of the nearest parent
	// domain that has keys (see Config.DKIM). Required; not a public suffix.
	Domain string
	// Selector is s=: the key's record is the TXT record at
	// <selector>._domainkey.<domain>. Required.
	Selector string
	// Signer is the private key: an *rsa.PrivateKey of at least 1024 bits (2048
	// recommended) or an ed25519.PrivateKey, or any crypto.Signer with such a public
	// key. Required.
	Signer crypto.Signer
}

// Algorithm returns DKIMRSA or DKIMEd25519, or "" for a key of another kind.
func (k DKIMKey) Algorithm() string {
	if k.Signer == nil {
		return ""
	}
	switch k.Signer.Public().(type) {
	case *rsa.PublicKey:
		return DKIMRSA
	case ed25519.PublicKey:
		return DKIMEd25519
	}
	return ""
}

// Bits returns the size of an RSA key in bits, and 256 for Ed25519.
func (k DKIMKey) Bits() int {
	if k.Signer == nil {
		return 0
	}
	switch pub := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		return pub.N.BitLen()
	case ed25519.PublicKey:
		return 256
	}
	return 0
}

// RecordName is the DNS name of the key's TXT record: <selector>._domainkey.<domain>.
func (k DKIMKey) RecordName() string {
	return k.Selector + "._domainkey." + k.Domain
}

// Record returns the TXT record to publish at RecordName for the key, such as
// "v=DKIM1; k=ed25519; p=…". RSA keys are published as SubjectPublicKeyInfo, the
// form openssl prints.
func (k DKIMKey) Record() (string, error) {
	p, err := publicKeyData(k.Signer)
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=" + k.Algorithm() + "; p=" + base64.StdEncoding.EncodeToString(p), nil
}

// publicKeyData is the p= of s's public key, decoded.
func publicKeyData(s crypto.Signer) ([]byte, error) {
	if s == nil {
		return nil, errors.New("no key")
	}
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		return x509.MarshalPKIXPublicKey(pub)
	case ed25519.PublicKey:
		return []byte(pub), nil
	}
	return nil, fmt.Errorf("%T: want an RSA or Ed25519 key", s.Public())
}

// String shows the key's domain, selector and algorithm, not the key.
func (k DKIMKey) String() string {
	return fmt.Sprintf("%s (selector %s, %s)", k.Domain, k.Selector, k.algorithmText())
}

// GoString keeps %#v from printing the private key.
func (k DKIMKey) GoString() string { return "mailer.DKIMKey(" + k.String() + ")" }

// LogValue keeps slog from logging the private key.
func (k DKIMKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("domain", k.Domain), slog.String("selector", k.Selector), slog.String("algorithm", k.algorithmText()))
}

// algorithmText is "rsa-2048" or "ed25519".
func (k DKIMKey) algorithmText() string {
	switch k.Algorithm() {
	case DKIMRSA:
		return fmt.Sprintf("rsa-%d", k.Bits())
	case "":
		return "unknown"
	}
	return k.Algorithm()
}

// validate reports the problems of k, each naming it.
func (k DKIMKey) validate() []string {
	var problems []string
	name := fmt.Sprintf("dkim key %s/%s", k.Domain, k.Selector)
	bad := func(format string, args ...any) { problems = append(problems, name+": "+fmt.Sprintf(format, args...)) }
	switch {
	case !isDNSName(k.Domain) || !strings.Contains(k.Domain, "."):
		bad("domain %q: want a domain name such as acme.example", k.Domain)
	case isPublicSuffix(k.Domain):
		bad("domain %q is a public suffix: sign with your own domain", k.Domain)
	}
	if !isDNSName(k.Selector) {
		bad("selector %q: want letters, digits and hyphens, such as s2026", k.Selector)
	}
	switch k.Algorithm() {
	case DKIMRSA:
		if k.Bits() < MinDKIMRSABits {
			bad("RSA key of %d bits: receivers ignore signatures by keys under %d bits; generate a %d-bit key", k.Bits(), MinDKIMRSABits, RecommendedDKIMRSABits)
		}
	case DKIMEd25519:
	default:
		if k.Signer == nil {
			bad("no key")
		} else {
			bad("%T: want an RSA or Ed25519 key", k.Signer.Public())
		}
	}
	return problems
}

// isDNSName reports whether s is dot-separated labels of letters, digits and
// hyphens (underscores allowed, as in selectors some providers use).
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func isPublicSuffix(domain string) bool {
	suffix, _ := publicsuffix.PublicSuffix(strings.ToLower(domain))
	return suffix == strings.ToLower(domain)
}

// ValidateDKIMKeys reports every problem of keys in one error, each naming its key
// by domain and selector (never the key itself): a domain that is not a domain name
// or is a public suffix, a bad selector, an RSA key under MinDKIMRSABits, a key
// that is neither RSA nor Ed25519, and one domain and selector listed twice.
// Config.Validate includes these problems.
func ValidateDKIMKeys(keys []DKIMKey) error {
	if problems := validateDKIM(keys); len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// validateDKIM is ValidateDKIMKeys's list of problems.
func validateDKIM(keys []DKIMKey) []string {
	var problems []string
	seen := map[string]bool{}
	for _, k := range keys {
		problems = append(problems, k.validate()...)
		id := strings.ToLower(k.RecordName())
		if seen[id] {
			problems = append(problems, fmt.Sprintf("dkim key %s/%s: listed twice", k.Domain, k.Selector))
		}
		seen[id] = true
	}
	return problems
}

// dkimHeaderFields are the header fields a signature covers when the message has
// them (RFC 6376 §5.4.1, and those Gmail and Yahoo need signed for one-click
// unsubscribe). Each is signed once more than it occurs ("oversigned", §5.4.2), so a
// copy added on the way, such as a second From or List-Unsubscribe, fails the
// signature instead of being shown.
var dkimHeaderFields = []string{
	"From", "Reply-To", "To", "Subject", "Date", "Message-ID",
	"List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
	"MIME-Version", "Content-Type",
}

// dkimSigner signs for a pool: the keys of each domain.
type dkimSigner struct {
	byDomain map[string][]dkim.SignOptions // lower-case domain
}

// newDKIMSigner returns nil when keys is empty: messages then go unsigned.
func newDKIMSigner(keys []DKIMKey) *dkimSigner {
	if len(keys) == 0 {
		return nil
	}
	s := &dkimSigner{byDomain: map[string][]dkim.SignOptions{}}
	for _, k := range keys {
		d := strings.ToLower(k.Domain)
		s.byDomain[d] = append(s.byDomain[d], dkim.SignOptions{
			Domain:                 d,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		})
	}
	return s
}

// keysFor returns the keys that sign a message from the address from: those of its
// domain, else of its nearest parent domain with keys (a From of
// news.acme.example is signed by acme.example's keys, which DMARC's relaxed
// alignment accepts), else none.
func (s *dkimSigner) keysFor(from string) []dkim.SignOptions {
	if s == nil {
		return nil
	}
	return s.byDomain[signingDomain(from, func(d string) bool { return s.byDomain[d] != nil })]
}

// signingDomain returns the domain whose keys sign a message from the address
// from: its own domain when has it, else its nearest parent domain that has, else
// "". Domains are compared in lower case.
func signingDomain(from string, has func(domain string) bool) string {
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return ""
	}
	d := strings.ToLower(from[at+1:])
	for {
		if has(d) {
			return d
		}
		dot := strings.IndexByte(d, '.')
		if dot < 0 {
			return ""
		}
		d = d[dot+1:]
	}
}

// DKIMKeysFor returns the keys of keys that sign a message from the address from,
// as a Pool with Config.DKIM = keys picks them; none when from's domain and its
// parents have no key (the message then goes unsigned).
func DKIMKeysFor(keys []DKIMKey, from string) []DKIMKey {
	d := signingDomain(from, func(d string) bool {
		for _, k := range keys {
			if strings.EqualFold(k.Domain, d) {
				return true
			}
		}
		return false
	})
	var out []DKIMKey
	for _, k := range keys {
		if d != "" && strings.EqualFold(k.Domain, d) {
			out = append(out, k)
		}
	}
	return out
}

// appendDKIMSignatures appends to dst a DKIM-Signature field per key for msg, a
// complete RFC 5322 message (relaxed/relaxed canonicalization, rsa-sha256 or
// ed25519-sha256). The message may have bare LF line ends in its body: the body
// canonicalization reads them as CRLF, which is what the dot encoding sends.
func appendDKIMSignatures(dst, msg []byte, keys []dkim.SignOptions) ([]byte, error) {
	fields := signedFields(msg)
	for i := range keys {
		opts := keys[i]
		opts.HeaderKeys = fields
		s, err := dkim.NewSigner(&opts)
		if err != nil {
			return dst, fmt.Errorf("dkim %s/%s: %w", opts.Domain, opts.Selector, err)
		}
		if _, err := s.Write(msg); err != nil {
			s.Close()
			return dst, fmt.Errorf("dkim %s/%s: %w", opts.Domain, opts.Selector, err)
		}
		if err := s.Close(); err != nil {
			return dst, fmt.Errorf("dkim %s/%s: %w", opts.Domain, opts.Selector, err)
		}
		dst = append(dst, s.Signature()...)
	}
	return dst, nil
}

// signedFields returns the h= of a signature of msg: each of dkimHeaderFields in
// the order the header has them, once per occurrence, then once more each.
func signedFields(msg []byte) []string {
	var fields []string
	var present [16]bool // index into dkimHeaderFields
	for len(msg) > 0 {
		line := msg
		if nl := bytes.IndexByte(msg, '\n'); nl >= 0 {
			line, msg = msg[:nl], msg[nl+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		for i, f := range dkimHeaderFields {
			if len(name) == len(f) && strings.EqualFold(string(name), f) {
				fields = append(fields, f)
				present[i] = true
			}
		}
	}
	for i, f := range dkimHeaderFields {
		if present[i] {
			fields = append(fields, f)
		}
	}
	return fields
}

// ParseDKIMKey reads a private key from PEM: PKCS#1 ("RSA PRIVATE KEY") or PKCS#8
// ("PRIVATE KEY") RSA, or PKCS#8 Ed25519, as openssl genpkey writes them. Its
// errors never quote the key.
func ParseDKIMKey(pemData []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block: want a file that starts with -----BEGIN PRIVATE KEY-----")
	}
	if p, _ := pem.Decode(rest); p != nil {
		return nil, errors.New("more than one PEM block: want one private key per file")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a valid PKCS#1 RSA private key")
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a valid PKCS#8 private key")
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("a %T: want an RSA or Ed25519 key", k)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted: write the key without a passphrase (openssl pkey -in KEY -out KEY.pem)")
	}
	return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY or RSA PRIVATE KEY", block.Type)
}

// Errors of DKIMKey.CheckRecord.
var (
	// ErrDKIMNoRecord: no TXT record at the key's RecordName.
	ErrDKIMNoRecord = errors.New("no DKIM record published")
	// ErrDKIMMismatch: the record publishes another key, another algorithm, or no
	// key (p= empty: revoked).
	ErrDKIMMismatch = errors.New("DKIM record does not match the key")
	// ErrDKIMBadRecord: the record cannot be read as a DKIM key record.
	ErrDKIMBadRecord = errors.New("DKIM record is not valid")
)

// CheckRecord says whether txts, the TXT records at k.RecordName() (as
// net.Resolver.LookupTXT returns them: one string per record), publish k's public
// key with its algorithm. It returns nil when they do, and otherwise an error that
// matches ErrDKIMNoRecord, ErrDKIMMismatch or ErrDKIMBadRecord and says what is
// wrong.
func (k DKIMKey) CheckRecord(txts []string) error {
	var records []string
	for _, t := range txts {
		// A name can hold other TXT records (SPF, site verification): only the
		// DKIM ones count.
		if strings.Contains(t, "p=") || strings.HasPrefix(strings.TrimSpace(t), "v=DKIM1") {
			records = append(records, t)
		}
	}
	switch len(records) {
	case 0:
		return ErrDKIMNoRecord
	case 1:
	default:
		return fmt.Errorf("%w: %d DKIM records; receivers refuse a name with more than one (RFC 6376 §3.6.2.2)", ErrDKIMBadRecord, len(records))
	}
	tags, err := parseTags(records[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDKIMBadRecord, err)
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return fmt.Errorf("%w: v=%s, want v=DKIM1", ErrDKIMBadRecord, v)
	}
	alg := tags["k"]
	if alg == "" {
		alg = DKIMRSA // the default (RFC 6376 §3.6.1)
	}
	p, ok := tags["p"]
	switch {
	case !ok:
		return fmt.Errorf("%w: no p= tag", ErrDKIMBadRecord)
	case p == "":
		return fmt.Errorf("%w: p= is empty (the key is revoked)", ErrDKIMMismatch)
	}
	if alg != k.Algorithm() {
		return fmt.Errorf("%w: the record has k=%s, the key is %s", ErrDKIMMismatch, alg, k.Algorithm())
	}
	published, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p), ""))
	if err != nil {
		return fmt.Errorf("%w: p= is not base64", ErrDKIMBadRecord)
	}
	want, err := publicKeyData(k.Signer)
	if err != nil {
		return err
	}
	if alg == DKIMRSA {
		// Some publish the PKCS#1 RSAPublicKey rather than SubjectPublicKeyInfo
		// (RFC 6376 erratum 3017); verifiers accept both.
		pub, err := x509.ParsePKIXPublicKey(published)
		if err != nil {
			pub, err = x509.ParsePKCS1PublicKey(published)
		}
		if err != nil {
			return fmt.Errorf("%w: p= is not an RSA public key", ErrDKIMBadRecord)
		}
		rsaPub, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: p= is a %T, not an RSA public key", ErrDKIMBadRecord, pub)
		}
		if !rsaPub.Equal(k.Signer.Public()) {
			return fmt.Errorf("%w: p= is another RSA key (%d bits)", ErrDKIMMismatch, rsaPub.N.BitLen())
		}
		return nil
	}
	if !bytes.Equal(published, want) {
		return fmt.Errorf("%w: p= is another Ed25519 key", ErrDKIMMismatch)
	}
	return nil
}

// parseTags reads a DKIM tag list ("v=DKIM1; k=rsa; p=…", RFC 6376 §3.2).
func parseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("tag %q has no =", part)
		}
		name = strings.TrimSpace(name)
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("tag %s twice", name)
		}
		tags[name] = strings.TrimSpace(value)
	}
	return tags, nil
}
