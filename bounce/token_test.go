package bounce

import (
	"errors"
	"hash/fnv"
	"strings"
	"testing"
)

func TestTokensRoundTrip(t *testing.T) {
	tk := NewTokens([]byte(strings.Repeat("k", 32)))
	steps := []string{"onboarding/welcome", "onboarding/first-project", "nps/ask"}
	for _, s := range []Send{
		{Customer: "cus_42", Address: "ada@example.com", Step: "onboarding/first-project", Enrollment: 1},
		{Customer: "8d0d5b0e-5bb4-4b8a-9d2c-3f1c2a0e9b71", Address: "Jörg.Müller@Bücher.example", Step: "nps/ask", Enrollment: 300},
		{Customer: strings.Repeat("x", 200), Address: "a@b.example", Step: "onboarding/welcome", Enrollment: 1 << 20},
	} {
		rp := tk.ReturnPath(s, "bounces.acme.example")
		local, _, _ := strings.Cut(rp, "@")
		if len(local) > 64 {
			t.Errorf("%v: Return-Path local part is %d octets: %s", s, len(local), rp)
		}
		if strings.Contains(strings.ToLower(rp), strings.ToLower(s.Customer)) {
			t.Errorf("%v: the Return-Path shows the customer ID: %s", s, rp)
		}
		for name, addr := range map[string]string{"as sent": rp, "upper case": strings.ToUpper(rp)} {
			ref, err := tk.ParseReturnPath(addr, "Bounces.Acme.Example")
			if err != nil {
				t.Fatalf("%v %s: %v", s, name, err)
			}
			if !ref.MatchesCustomer(s.Customer) || ref.MatchesCustomer(s.Customer+"x") || ref.Enrollment != s.Enrollment || ref.StepOf(steps) != s.Step {
				t.Errorf("%v %s: read back %+v", s, name, ref)
			}
			if !ref.MatchesAddress(strings.ToUpper(s.Address)) || ref.MatchesAddress("other@example.com") || ref.MatchesAddress("") {
				t.Errorf("%v %s: the address check is wrong", s, name)
			}
		}
		id := tk.MessageID(s, "acme.example")
		ref, err := tk.ParseMessageID("<" + id + ">")
		if err != nil {
			t.Fatal(err)
		}
		if !ref.MatchesCustomer(s.Customer) || !ref.MatchesAddress(s.Address) || ref.Enrollment != s.Enrollment || ref.StepOf(steps) != s.Step {
			t.Errorf("Message-ID %s read back %+v", id, ref)
		}
		if tk.MessageID(s, "acme.example") != id {
			t.Error("the Message-ID of a send changes: a retry must carry the same one")
		}
	}
}

func TestTokensRefuseForgeries(t *testing.T) {
	tk := NewTokens([]byte(strings.Repeat("k", 32)))
	other := NewTokens([]byte(strings.Repeat("o", 32)))
	s := Send{Customer: "cus_42", Address: "ada@example.com", Step: "onboarding/welcome", Enrollment: 1}
	tok := tk.Token(s)
	flipped := []byte(tok)
	flipped[5] = map[bool]byte{true: 'b', false: 'a'}[flipped[5] == 'a']
	for name, bad := range map[string]string{
		"another secret": other.Token(s),
		"one character":  string(flipped),
		"truncated":      tok[:len(tok)-2],
		"not base32":     "bounce-me-1",
		"empty":          "",
	} {
		if _, err := tk.Parse(bad); !errors.Is(err, ErrToken) {
			t.Errorf("%s: Parse(%q) = %v, want ErrToken", name, bad, err)
		}
	}
	for _, addr := range []string{
		tk.ReturnPath(s, "other.example"),
		"postmaster@bounces.acme.example",
		strings.Replace(tk.ReturnPath(s, "bounces.acme.example"), "bounces+", "b+", 1),
	} {
		if _, err := tk.ParseReturnPath(addr, "bounces.acme.example"); !errors.Is(err, ErrToken) {
			t.Errorf("ParseReturnPath(%q) = %v, want ErrToken", addr, err)
		}
	}
	if _, err := tk.ParseMessageID("<CAF=abc@mail.gmail.com>"); !errors.Is(err, ErrToken) {
		t.Errorf("a Message-ID retain did not make: %v", err)
	}
}

// BenchmarkSendTokens is what signing costs the worker per email: the
// Message-ID's token and the Return-Path's.
func BenchmarkSendTokens(b *testing.B) {
	tk := NewTokens([]byte(strings.Repeat("k", 32)))
	s := Send{Customer: "cus_0123456789", Address: "ada.lovelace@example.com", Step: "onboarding/first-project", Enrollment: 1}
	b.ReportAllocs()
	for b.Loop() {
		_ = tk.MessageID(s, "acme.example")
		_ = tk.ReturnPath(s, "bounces.acme.example")
	}
}

// TestStepHashIsFNV1a: the inlined hash is hash/fnv's 32-bit FNV-1a, so
// tokens signed before and after a change of it still name their steps.
func TestStepHashIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "onboarding/welcome", "second-order/thank-you", "ü/ñ"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		if got, want := stepHash(s), h.Sum32(); got != want {
			t.Errorf("stepHash(%q) = %d, want %d", s, got, want)
		}
	}
}
