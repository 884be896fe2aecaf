package mailer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gomail "github.com/wneessen/go-mail"
)

func TestParseURL(t *testing.T) {
	def := func(c Config) Config {
		if c.PoolSize == 0 {
			c.PoolSize = DefaultPoolSize
		}
		if c.MaxPerConn == 0 {
			c.MaxPerConn = DefaultMaxPerConn
		}
		c.Timeout, c.IdleTimeout = DefaultTimeout, DefaultIdleTimeout
		return c
	}
	for _, tc := range []struct {
		raw  string
		want Config
	}{
		{"smtp://user:p%40ss@smtp.example.com:587", def(Config{Host: "smtp.example.com", Port: 587, Username: "user", Password: "p@ss", TLS: TLSMandatory, Auth: AuthAuto})},
		{"smtp://user:pass@smtp.example.com", def(Config{Host: "smtp.example.com", Port: 587, Username: "user", Password: "pass", TLS: TLSMandatory, Auth: AuthAuto})},
		{"smtp://mx.example.com:25", def(Config{Host: "mx.example.com", Port: 25, TLS: TLSOpportunistic, Auth: AuthNone})},
		{"smtp://localhost:1025?tls=none", def(Config{Host: "localhost", Port: 1025, TLS: TLSNone, Auth: AuthNone})},
		{"smtps://user:pass@smtp.example.com", def(Config{Host: "smtp.example.com", Port: 465, Username: "user", Password: "pass", TLS: TLSImplicit, Auth: AuthAuto})},
		{"smtps://u:p@[::1]:2465?insecure=1&auth=login&pool=8&max_per_conn=50&timeout=10s&idle_timeout=5s&helo=worker1.example.com",
			Config{Host: "::1", Port: 2465, Username: "u", Password: "p", TLS: TLSImplicit, Insecure: true, Auth: AuthLogin,
				PoolSize: 8, MaxPerConn: 50, Timeout: 10 * time.Second, IdleTimeout: 5 * time.Second, HELO: "worker1.example.com"}},
		{"smtp://u:p@localhost:1025?tls=none&auth=plain", def(Config{Host: "localhost", Port: 1025, Username: "u", Password: "p", TLS: TLSNone, Auth: AuthPlain})},
	} {
		got, err := ParseURL(tc.raw)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.raw, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseURL(%q) (-want +got):\n%s", tc.raw, diff)
		}
	}
}

func TestParseURLErrorsNameTheFieldAndHideThePassword(t *testing.T) {
	const pw = "Hunter2secret"
	for _, tc := range []struct{ raw, want string }{
		{"http://u:" + pw + "@h", `SMTP_URL http://u:xxxxx@h: scheme "http": want smtp or smtps`},
		{"smtp://u:" + pw + "@h:0x1", `SMTP_URL: invalid port ":0x1" after host`},
		{"smtp://u:" + pw + "%zz@h", `SMTP_URL: password: not valid in a URL; percent-encode reserved characters (@ as %40, / as %2F, : as %3A, % as %25)`},
		{"smtp://u:" + pw + "@", `SMTP_URL smtp://u:xxxxx@: host: required`},
		{"smtp://u:" + pw + "@h?pool=0&max_per_conn=x", `SMTP_URL smtp://u:xxxxx@h?pool=0&max_per_conn=x: max_per_conn=x: want a whole number of messages ≥ 1; pool=0: want a whole number of connections ≥ 1`},
		{"smtp://u:" + pw + "@h?tls=starttls&auth=gssapi", `SMTP_URL smtp://u:xxxxx@h?tls=starttls&auth=gssapi: tls "starttls": want implicit, mandatory, opportunistic or none; auth "gssapi": want auto, none, plain, login, cram-md5, scram-sha-1 or scram-sha-256`},
		{"smtps://u:" + pw + "@h?tls=none", `SMTP_URL smtps://u:xxxxx@h?tls=none: tls=none: smtps:// is always implicit TLS; use smtp:// for STARTTLS`},
		{"smtp://u:" + pw + "@relay.example.com?tls=none", `SMTP_URL smtp://u:xxxxx@relay.example.com?tls=none: tls none: would send the password in clear to relay.example.com; use tls=mandatory, or a relay on localhost`},
		{"smtp://h?insecure=maybe&timout=5s", `SMTP_URL smtp://h?insecure=maybe&timout=5s: insecure=maybe: want 1 or 0; unknown parameter "timout" (known: tls, auth, insecure, pool, max_per_conn, timeout, idle_timeout, helo)`},
		{"smtp://h?auth=plain", `SMTP_URL smtp://h?auth=plain: auth plain: needs a username`},
		{"smtp://h/inbox", `SMTP_URL smtp://h/inbox: path "/inbox": SMTP_URL takes no path`},
	} {
		_, err := ParseURL(tc.raw)
		if err == nil {
			t.Errorf("ParseURL(%q) = nil error, want %q", tc.raw, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseURL(%q)\n got %s\nwant %s", tc.raw, err, tc.want)
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "Hunter") {
			t.Errorf("ParseURL(%q) error shows the password: %s", tc.raw, err)
		}
	}
}

func TestConfigNeverPrintsThePassword(t *testing.T) {
	cfg, err := ParseURL("smtps://user:Hunter2secret@smtp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("smtp", "config", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("smtp", "config", cfg)
	for _, s := range []string{cfg.String(), cfg.Redacted(), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), logged.String()} {
		if strings.Contains(s, "Hunter2secret") {
			t.Errorf("password printed: %s", s)
		}
	}
	want := "smtps://user:xxxxx@smtp.example.com:465?auth=auto&idle_timeout=30s&max_per_conn=100&pool=4&timeout=30s"
	if got := cfg.Redacted(); got != want {
		t.Errorf("Redacted() = %s, want %s", got, want)
	}
	back, err := ParseURL(strings.Replace(want, "xxxxx", "Hunter2secret", 1))
	if err != nil || !cmp.Equal(back, cfg) {
		t.Errorf("Redacted() does not round-trip: %v %v", back, err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		writeFailed bool
		want        Class
	}{
		{"reply lost after the final dot", &gomail.SendError{Reason: gomail.ErrSMTPDataClose}, false, Unknown},
		{"final dot never written", &gomail.SendError{Reason: gomail.ErrSMTPDataClose}, true, Temporary},
		{"body write failed", &gomail.SendError{Reason: gomail.ErrWriteContent}, true, Temporary},
		{"connection lost at MAIL", &gomail.SendError{Reason: gomail.ErrSMTPMailFrom}, false, Temporary},
		{"plain network error", errors.New("read: connection reset by peer"), false, Temporary},
		{"pool error passes through", &SendError{Class: BadAddress}, false, BadAddress},
	} {
		if got := classify(tc.err, tc.writeFailed).Class; got != tc.want {
			t.Errorf("%s: class %v, want %v", tc.name, got, tc.want)
		}
	}
	if Classify(nil) != 0 {
		t.Error("Classify(nil) != 0")
	}
}
