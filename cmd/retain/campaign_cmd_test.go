package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/retainmail/retain/internal/redistest"
)

// TestCampaignPauseAndResume: retain campaign pauses a campaign by hand,
// lists it as paused with its reason (as retain report does), resumes it,
// and refuses a campaign that is not loaded.
func TestCampaignPauseAndResume(t *testing.T) {
	_, prefix := redistest.New(t)
	vars := map[string]string{"REDIS_URL": redistest.URL(), "RETAIN_REDIS_PREFIX": prefix, "RETAIN_TEMPLATES": "../../templates"}
	retain := func(want int, args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
		if code := run(append(args, "--campaigns", "../../report/testdata/campaigns"), e); code != want {
			t.Fatalf("retain %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out, _ := retain(exitOK, "campaign", "list")
	if !strings.Contains(out, "welcome") || !strings.Contains(out, "sending") {
		t.Errorf("list before any pause:\n%s", out)
	}
	out, _ = retain(exitOK, "campaign", "pause", "welcome", "--reason", "wrong coupon code")
	if !strings.Contains(out, "paused welcome") {
		t.Errorf("pause: %s", out)
	}
	out, _ = retain(exitOK, "campaign", "pause", "welcome")
	if !strings.Contains(out, "paused already") {
		t.Errorf("pause twice: %s", out)
	}
	out, _ = retain(exitOK, "campaign", "list")
	if !strings.Contains(out, "PAUSED since") || !strings.Contains(out, "wrong coupon code") {
		t.Errorf("list while paused:\n%s", out)
	}
	out, _ = retain(exitOK, "report")
	if !strings.Contains(out, "PAUSED: wrong coupon code (retain campaign resume welcome)") {
		t.Errorf("report while paused:\n%s", out)
	}
	if _, errOut := retain(exitProblems, "campaign", "resume", "welcom"); !strings.Contains(errOut, `no campaign "welcom" is loaded`) || !strings.Contains(errOut, "welcome") {
		t.Errorf("resume of a typo: %s", errOut)
	}
	out, _ = retain(exitOK, "campaign", "resume", "welcome")
	if !strings.Contains(out, "resumed welcome") {
		t.Errorf("resume: %s", out)
	}
	out, _ = retain(exitOK, "campaign", "list")
	if strings.Contains(out, "PAUSED") {
		t.Errorf("list after resume:\n%s", out)
	}
	retain(exitUsage, "campaign", "stop", "welcome")
}

// TestInboundRefusesAnIncompleteSetup: retain inbound says what is missing
// before it listens, all at once, without printing the secret.
func TestInboundRefusesAnIncompleteSetup(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want []string
	}{
		{map[string]string{}, []string{"RETAIN_BOUNCE_DOMAIN is not set", "RETAIN_SECRET is not set"}},
		{map[string]string{"RETAIN_BOUNCE_DOMAIN": "not a domain", "RETAIN_SECRET": "short-secret-value"}, []string{`RETAIN_BOUNCE_DOMAIN "not a domain" is not a domain name`, "shorter than 32 bytes"}},
	} {
		var stdout, stderr bytes.Buffer
		e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return tc.vars[k] }}
		if code := run([]string{"inbound", "--addr", "127.0.0.1:0", "--tls-cert", "x.pem"}, e); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.vars, code, exitUsage)
		}
		for _, w := range append(tc.want, "give --tls-cert and --tls-key together") {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.vars, w, stderr.String())
			}
		}
		if strings.Contains(stderr.String(), "short-secret-value") {
			t.Error("the secret was printed")
		}
	}
}
