package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/bounce"
)

// testNow is the clock of every test: providers' signed timestamps are
// written relative to it.
var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type testBundle struct {
	srv *httptest.Server

	mu      sync.Mutex
	reports []bounce.Report
	calls   int
	fail    error // what the sink returns
	logs    bytes.Buffer
}

func setup(t *testing.T, cfg Config) *testBundle {
	t.Helper()
	b := &testBundle{}
	cfg.Log = slog.New(slog.NewTextHandler(lockedWriter{&b.mu, &b.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	sink := func(_ context.Context, reports []bounce.Report) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.calls++
		if b.fail != nil {
			return b.fail
		}
		b.reports = append(b.reports, reports...)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/", Handler(cfg, sink))
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// post sends body to /webhooks/{provider} and returns the status and the
// response's line.
func (b *testBundle) post(t *testing.T, provider string, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+"/webhooks/"+provider, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(msg))
}

// wantStatus fails t unless the response had the status code.
func wantStatus(t *testing.T, got int, msg string, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("status %d (%s), want %d", got, msg, want)
	}
}

// got returns the reports the sink applied.
func (b *testBundle) got() []bounce.Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.reports)
}

func (b *testBundle) sinkCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func (b *testBundle) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

func (b *testBundle) failSink(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = err
}

func wantReports(t *testing.T, got, want []bounce.Report) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

// postmarkOnly is a Config with one provider that is quick to call.
func postmarkOnly() Config {
	return Config{Postmark: &PostmarkConfig{User: "postmark", Password: "s3cret-pm-password"}}
}

func postmarkAuth(user, password string) http.Header {
	r, _ := http.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header
}

func TestSinkErrorAnswers503SoTheProviderDeliversAgain(t *testing.T) {
	b := setup(t, postmarkOnly())
	b.failSink(errors.New("redis: connection refused"))
	code, msg := b.post(t, "postmark", []byte(postmarkHardBounce), postmarkAuth("postmark", "s3cret-pm-password"))
	wantStatus(t, code, msg, http.StatusServiceUnavailable)
	if b.sinkCalls() != 1 {
		t.Errorf("sink called %d times, want 1", b.sinkCalls())
	}
	if !strings.Contains(b.log(), "redis: connection refused") {
		t.Errorf("the sink's error is not logged:\n%s", b.log())
	}
}

func TestUnknownAndDisabledProvidersAnswer404(t *testing.T) {
	b := setup(t, postmarkOnly())
	for _, p := range []string{"ses", "sendgrid", "mailgun", "sparkpost", ""} {
		code, msg := b.post(t, p, []byte(`{}`), nil)
		if code != http.StatusNotFound {
			t.Errorf("/webhooks/%s: status %d (%s), want 404", p, code, msg)
		}
	}
}

func TestNonPostAnswers405(t *testing.T) {
	b := setup(t, postmarkOnly())
	resp, err := http.Get(b.srv.URL + "/webhooks/postmark")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: status %d, Allow %q; want 405, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestBodyOver5MBAnswers413(t *testing.T) {
	b := setup(t, postmarkOnly())
	body := bytes.Repeat([]byte(" "), maxBody+1)
	code, msg := b.post(t, "postmark", body, postmarkAuth("postmark", "s3cret-pm-password"))
	wantStatus(t, code, msg, http.StatusRequestEntityTooLarge)
}

func TestMalformedBodyAnswers400(t *testing.T) {
	b := setup(t, postmarkOnly())
	code, msg := b.post(t, "postmark", []byte(`{"RecordType": "Bounce",`), postmarkAuth("postmark", "s3cret-pm-password"))
	wantStatus(t, code, msg, http.StatusBadRequest)
	if b.sinkCalls() != 0 {
		t.Errorf("sink called %d times, want 0", b.sinkCalls())
	}
}

func TestHandlerPanicsOnAProviderWithoutItsSecret(t *testing.T) {
	for name, cfg := range map[string]Config{
		"sendgrid": {SendGrid: &SendGridConfig{}},
		"postmark": {Postmark: &PostmarkConfig{User: "u"}},
		"mailgun":  {Mailgun: &MailgunConfig{}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Handler did not panic")
				}
			}()
			Handler(cfg, func(context.Context, []bounce.Report) error { return nil })
		})
	}
}

func TestEnabledListsTheProvidersThatAreOn(t *testing.T) {
	cfg := Config{SES: &SESConfig{}, Mailgun: &MailgunConfig{SigningKey: "k"}}
	if got, want := cfg.Enabled(), []string{"ses", "mailgun"}; !slices.Equal(got, want) {
		t.Errorf("Enabled() = %q, want %q", got, want)
	}
	if got := (Config{}).Enabled(); len(got) != 0 {
		t.Errorf("Enabled() of an empty Config = %q", got)
	}
}

func TestEnhancedStatusPrefersTheFieldThenTheDiagnostic(t *testing.T) {
	for _, c := range []struct{ field, diag, want string }{
		{"5.1.1", "smtp; 550 5.2.2 full", "5.1.1"},
		{"", "smtp; 550 5.1.1 <jane@example.com>... User", "5.1.1"},
		{"", "550-5.1.1 The email account that you tried to reach does not exist", "5.1.1"},
		{"bogus", "421 4.7.0 try again later", "4.7.0"},
		{"", "connection to 192.168.2.5 timed out", ""},
		{"", "Test bounce details", ""},
	} {
		if got := enhancedStatus(c.field, c.diag); got != c.want {
			t.Errorf("enhancedStatus(%q, %q) = %q, want %q", c.field, c.diag, got, c.want)
		}
	}
}
