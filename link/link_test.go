package link

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

const secret = "0123456789abcdef0123456789abcdef"

func TestSignedLinksVerify(t *testing.T) {
	s, err := NewSigner(secret, "https://mail.acme.example/")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	u := s.UnsubscribeURL("c42", "onboarding")
	tok, ok := strings.CutPrefix(u, "https://mail.acme.example/u/")
	if !ok {
		t.Fatalf("unsubscribe URL %s", u)
	}
	c, err := s.Verify(tok, now)
	if err != nil || c != (Claims{Kind: Unsubscribe, Customer: "c42", Topic: "onboarding"}) {
		t.Errorf("Verify = %+v, %v", c, err)
	}
	if strings.Contains(u, "@") {
		t.Errorf("a link carries an address: %s", u)
	}
}

func TestTamperedAndExpiredLinksAreRefused(t *testing.T) {
	s, _ := NewSigner(secret, "https://mail.acme.example")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tok := s.Token(Claims{Kind: Unsubscribe, Customer: "c42"})
	other := s.Token(Claims{Kind: Unsubscribe, Customer: "c43"})
	p, sig, _ := strings.Cut(tok, ".")
	p2, _, _ := strings.Cut(other, ".")
	otherSigner, _ := NewSigner(strings.Repeat("x", 32), "https://mail.acme.example")
	for name, bad := range map[string]string{
		"another customer's claims": p2 + "." + sig,
		"signature cut":             p + "." + sig[:10],
		"no signature":              p,
		"flipped byte":              p[:5] + string(p[5]^1) + p[6:] + "." + sig,
		"another secret":            otherSigner.Token(Claims{Kind: Unsubscribe, Customer: "c42"}),
		"empty":                     "",
	} {
		if _, err := s.Verify(bad, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	nps := s.Token(Claims{Kind: NPS, Customer: "c42", Score: 9, Expires: now.Add(time.Hour).Unix()})
	if _, err := s.Verify(nps, now.Add(59*time.Minute)); err != nil {
		t.Errorf("fresh NPS link: %v", err)
	}
	if _, err := s.Verify(nps, now.Add(61*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired NPS link: err = %v, want ErrExpired", err)
	}
}

func TestSignerNeedsALongSecretAndABaseURL(t *testing.T) {
	if _, err := NewSigner("short", "https://x.example"); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Errorf("short secret: %v", err)
	}
	if _, err := NewSigner(secret, "mail.acme.example"); err == nil {
		t.Error("a base URL without scheme was accepted")
	}
}

func TestClickLinksCarryTheirURLAndRefuseOtherSchemes(t *testing.T) {
	s, _ := NewSigner(secret, "https://mail.acme.example")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	u, err := s.ClickURL("c42", "onboarding", "onboarding/welcome", "https://app.example.com/projects?new=1")
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := strings.CutPrefix(u, "https://mail.acme.example/c/")
	if !ok {
		t.Fatalf("click URL %s", u)
	}
	c, err := s.Verify(tok, now)
	want := Claims{Kind: Click, Customer: "c42", Campaign: "onboarding", Step: "onboarding/welcome", URL: "https://app.example.com/projects?new=1"}
	if err != nil || c != want {
		t.Errorf("Verify = %+v, %v; want %+v", c, err, want)
	}
	for _, bad := range []string{
		"javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "mailto:a@example.com",
		"/relative", "//evil.example/", "data:text/html,hi", "https://", "https://a.example/\r\nSet-Cookie: x=1",
	} {
		if u, err := s.ClickURL("c42", "onboarding", "onboarding/welcome", bad); !errors.Is(err, ErrNotTrackable) {
			t.Errorf("ClickURL(%q) = %q, %v; want ErrNotTrackable", bad, u, err)
		}
	}
}

func TestNPSLinksCarryTheirEnrollmentAndOldOnesStillVerify(t *testing.T) {
	s, _ := NewSigner(secret, "https://mail.acme.example")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	token := func(u string) string {
		rest, _ := strings.CutPrefix(u, "https://mail.acme.example/nps/")
		tok, _, _ := strings.Cut(rest, "?")
		return tok
	}
	c, err := s.Verify(token(s.NPSEnrollmentURL("c42", "nps", 3, 7, now, time.Hour)), now)
	if err != nil || c != (Claims{Kind: NPS, Customer: "c42", Campaign: "nps", Enrollment: 3, Score: 7, Expires: now.Add(time.Hour).Unix()}) {
		t.Errorf("enrollment link: %+v, %v", c, err)
	}
	// A link signed before enrollments were: {"k":"n","c":"c42","m":"nps","s":7}.
	old := s.Token(Claims{Kind: NPS, Customer: "c42", Campaign: "nps", Score: 7})
	if c, err := s.Verify(old, now); err != nil || c.Enrollment != 0 || c.Score != 7 {
		t.Errorf("old link: %+v, %v", c, err)
	}
	if a, b := token(s.NPSURL("c42", "nps", 7, now, 0)), old; a != b {
		t.Errorf("NPSURL signs %s, want the old token %s", a, b)
	}
}

func BenchmarkClickURL(b *testing.B) {
	s, _ := NewSigner(secret, "https://retain.acme.example")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ClickURL("c000042", "welcome", "welcome/guide", "https://app.example.com/settings/members/invite"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnsubscribeURL(b *testing.B) {
	s, _ := NewSigner(secret, "https://retain.acme.example")
	b.ReportAllocs()
	for b.Loop() {
		s.UnsubscribeURL("c000042", "")
	}
}

// referenceToken is Token as first written, with json.Marshal and a fresh
// HMAC per token: the tokens of every email sent before Token was made
// faster. Token must sign byte for byte the same.
func referenceToken(key string, c Claims) string {
	payload, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// tokenStrings are the strings random claims are made of: what JSON escapes
// (quotes, backslashes, <>&, control characters, U+2028, invalid UTF-8) and
// what it does not.
var tokenStrings = []string{
	"", "c42", "onboarding/welcome", "https://app.example.com/projects?new=1&b=<2>", `"quoted" \back\slash`,
	"\x00\x01\b\f\n\r\t\x1f\x7f", "ünïcødé 日本語 🎉", "\u2028\u2029", "\xff\xfe bad \xc3", "<script>&amp;</script>",
	"'single'", "a\u00a0b", "\ufffd", "javascript:alert(1)",
}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return tokenStrings[r.IntN(len(tokenStrings))]
	}
	b := make([]byte, r.IntN(24))
	for i := range b {
		switch r.IntN(4) {
		case 0:
			b[i] = byte(r.IntN(0x80)) // any ASCII, controls included
		case 1:
			b[i] = byte(r.IntN(0x100)) // any byte: invalid UTF-8 too
		default:
			b[i] = "abc<>&\"'/\\ %"[r.IntN(12)]
		}
	}
	if r.IntN(4) == 0 {
		return string(b) + string(rune(r.IntN(0x110000)))
	}
	return string(b)
}

func randomInt(r *rand.Rand) int {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return r.IntN(11)
	case 2:
		return -r.IntN(1000)
	}
	return int(r.Int64())
}

func TestTokensAreJSONMarshalsBytes(t *testing.T) {
	s, _ := NewSigner(secret, "https://mail.acme.example")
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 20000 {
		c := Claims{Kind: []string{Unsubscribe, Preferences, NPS, Click, randomString(r)}[r.IntN(5)], Customer: randomString(r),
			Topic: randomString(r), Campaign: randomString(r), Enrollment: randomInt(r), Score: randomInt(r),
			Step: randomString(r), URL: randomString(r), Expires: int64(randomInt(r))}
		if i%2 == 0 { // mostly empty, as most links are
			c.Topic, c.Step, c.URL, c.Enrollment = "", "", "", 0
		}
		want := referenceToken(secret, c)
		if got := s.Token(c); got != want {
			t.Fatalf("Token(%#v)\n got %s\nwant %s", c, got, want)
		}
		if c.Customer == "" {
			continue
		}
		got, err := s.Verify(want, now)
		if err != nil && (!errors.Is(err, ErrExpired) || c.Expires == 0) {
			t.Fatalf("Verify of the reference token of %#v: %v", c, err)
		}
		// Invalid UTF-8 comes back as U+FFFD: the claims differ then, not the token.
		if utf8Same(c) && got != c {
			t.Fatalf("Verify = %#v, want %#v", got, c)
		}
	}
}

// utf8Same reports whether c's strings come back unchanged from JSON.
func utf8Same(c Claims) bool {
	for _, s := range []string{c.Kind, c.Customer, c.Topic, c.Campaign, c.Step, c.URL} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func TestLinksAreTheirTokensUnderTheBase(t *testing.T) {
	s, _ := NewSigner(secret, "https://mail.acme.example/")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	base := "https://mail.acme.example"
	click, _ := s.ClickURL("c42", "onboarding", "onboarding/welcome", "https://app.example.com/?a=1&b=2")
	for got, want := range map[string]string{
		s.UnsubscribeURL("c42", "billing"): base + "/u/" + referenceToken(secret, Claims{Kind: Unsubscribe, Customer: "c42", Topic: "billing"}),
		s.PreferencesURL("c42"):            base + "/p/" + referenceToken(secret, Claims{Kind: Preferences, Customer: "c42"}),
		s.NPSEnrollmentURL("c42", "nps", 2, 10, now, time.Hour): base + "/nps/" +
			referenceToken(secret, Claims{Kind: NPS, Customer: "c42", Campaign: "nps", Enrollment: 2, Score: 10, Expires: now.Add(time.Hour).Unix()}) + "?score=10",
		click: base + "/c/" + referenceToken(secret, Claims{Kind: Click, Customer: "c42", Campaign: "onboarding", Step: "onboarding/welcome", URL: "https://app.example.com/?a=1&b=2"}),
	} {
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

func TestSignerSignsConcurrently(t *testing.T) {
	s, _ := NewSigner(secret, "https://mail.acme.example")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c := Claims{Kind: Click, Customer: strings.Repeat("c", g+1), URL: "https://x.example/" + strings.Repeat("p", i)}
				if got, want := s.Token(c), referenceToken(secret, c); got != want {
					t.Errorf("Token(%+v) = %s, want %s", c, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzTokenMatchesJSON(f *testing.F) {
	for _, str := range tokenStrings {
		f.Add(Click, str, str, "onboarding", 1, 0, "onboarding/welcome", "https://x.example/?q="+str, int64(0))
	}
	f.Add(NPS, "c42", "", "nps", -3, 10, "", "", int64(1)<<62)
	s, _ := NewSigner(secret, "https://mail.acme.example")
	f.Fuzz(func(t *testing.T, kind, customer, topic, campaign string, n, score int, step, url string, expires int64) {
		c := Claims{Kind: kind, Customer: customer, Topic: topic, Campaign: campaign, Enrollment: n, Score: score, Step: step, URL: url, Expires: expires}
		if got, want := s.Token(c), referenceToken(secret, c); got != want {
			t.Errorf("Token(%#v)\n got %s\nwant %s", c, got, want)
		}
	})
}
