package link

import (
	"errors"
	"strings"
	"testing"
	"time"
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
