package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/bounce"
)

// Provider names: the last element of the webhook's path and Report.Source.
const (
	ses      = "ses"
	sendgrid = "sendgrid"
	postmark = "postmark"
	mailgun  = "mailgun"
)

const (
	// maxBody bounds a webhook request's body; SendGrid batches events, and
	// its largest batches stay well under it.
	maxBody = 5 << 20
	// tolerance is how far a signed timestamp (SendGrid, Mailgun) may be from
	// now before the request is refused as a replay.
	tolerance = 10 * time.Minute
)

// Config says which providers' webhooks are on and how to check their
// requests. A nil provider is off: its path answers 404.
type Config struct {
	// SES turns POST /webhooks/ses on (Amazon SES notifications through an
	// SNS HTTPS subscription).
	SES *SESConfig
	// SendGrid turns POST /webhooks/sendgrid on (the Signed Event Webhook).
	SendGrid *SendGridConfig
	// Postmark turns POST /webhooks/postmark on (Basic auth in the webhook URL).
	Postmark *PostmarkConfig
	// Mailgun turns POST /webhooks/mailgun on (signed JSON webhooks).
	Mailgun *MailgunConfig
	// Log gets one line per refused request and per delivery applied;
	// nil discards them.
	Log *slog.Logger
	// Now is the clock for timestamp and certificate checks; nil is time.Now.
	Now func() time.Time
}

// SESConfig checks the SNS messages that carry Amazon SES notifications.
type SESConfig struct {
	// Topics lists the TopicArns accepted; a message from any other topic is
	// refused, before its subscription is confirmed. Empty accepts every
	// topic, and so anyone who subscribes retain's URL to an SNS topic of
	// their own.
	Topics []string
	// HTTPClient downloads signing certificates and confirms subscriptions;
	// nil is a client with a 10-second timeout. Redirects are never followed.
	HTTPClient *http.Client
	// CertHost reports whether a SigningCertURL or SubscribeURL may point at
	// host; nil allows sns.<region>.amazonaws.com and
	// sns.<region>.amazonaws.com.cn only. Tests point it at their own server.
	CertHost func(host string) bool
}

// SendGridConfig checks SendGrid's Signed Event Webhook.
type SendGridConfig struct {
	// PublicKey is the ECDSA P-256 verification key SendGrid shows for the
	// signed webhook.
	PublicKey *ecdsa.PublicKey
}

// PostmarkConfig checks the Basic auth credentials Postmark sends with each
// webhook (Postmark does not sign webhooks).
type PostmarkConfig struct {
	// User and Password are the credentials in the webhook URL configured at
	// Postmark: https://User:Password@retain.example.com/webhooks/postmark.
	User     string
	Password string
}

// MailgunConfig checks Mailgun's webhook signatures.
type MailgunConfig struct {
	// SigningKey is Mailgun's "HTTP webhook signing key".
	SigningKey string
}

// Enabled lists the providers that are on, for logs.
func (c Config) Enabled() []string {
	var names []string
	if c.SES != nil {
		names = append(names, ses)
	}
	if c.SendGrid != nil {
		names = append(names, sendgrid)
	}
	if c.Postmark != nil {
		names = append(names, postmark)
	}
	if c.Mailgun != nil {
		names = append(names, mailgun)
	}
	return names
}

// Validate reports every provider that is on without what it needs to check
// requests. The messages never contain a secret.
func (c Config) Validate() error {
	var errs []error
	if c.SendGrid != nil {
		switch k := c.SendGrid.PublicKey; {
		case k == nil:
			errs = append(errs, errors.New("webhook: SendGrid is on without a PublicKey"))
		case k.Curve != elliptic.P256():
			errs = append(errs, errors.New("webhook: SendGrid's PublicKey is not on the P-256 curve"))
		}
	}
	if c.Postmark != nil {
		if c.Postmark.User == "" || c.Postmark.Password == "" {
			errs = append(errs, errors.New("webhook: Postmark is on without a User and a Password"))
		}
		if strings.Contains(c.Postmark.User, ":") {
			errs = append(errs, errors.New(`webhook: Postmark's User contains ":", which Basic auth cannot carry`))
		}
	}
	if c.Mailgun != nil && c.Mailgun.SigningKey == "" {
		errs = append(errs, errors.New("webhook: Mailgun is on without a SigningKey"))
	}
	return errors.Join(errs...)
}

// Handler serves POST /webhooks/ses, /webhooks/sendgrid, /webhooks/postmark
// and /webhooks/mailgun: the last element of the request's path picks the
// provider, so mount it at "/webhooks/". It answers 2xx once the reports
// were applied (or the request carried none), 401 or 403 to a request
// without a valid signature or secret, 400 to a malformed body, 404 to an
// unknown or disabled provider, 405 to anything but POST, 413 to a body over
// 5 MB, 502 when SNS's signing certificate cannot be downloaded or a
// subscription cannot be confirmed, and 503 when sink failed: on a 5xx the
// provider delivers again.
//
// Handler panics if cfg does not Validate: a provider on without its secret
// would accept anything.
func Handler(cfg Config, sink bounce.Sink) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if sink == nil {
		panic("webhook: Handler needs a sink")
	}
	h := &handler{providers: map[string]provider{}, sink: sink, log: cfg.Log}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.SES != nil {
		h.providers[ses] = newSESProvider(*cfg.SES, now, h.log)
	}
	if cfg.SendGrid != nil {
		h.providers[sendgrid] = &sendgridProvider{key: cfg.SendGrid.PublicKey, now: now}
	}
	if cfg.Postmark != nil {
		h.providers[postmark] = newPostmarkProvider(*cfg.Postmark)
	}
	if cfg.Mailgun != nil {
		h.providers[mailgun] = &mailgunProvider{key: []byte(cfg.Mailgun.SigningKey), now: now, tokens: newTokenSet()}
	}
	return h
}

// provider checks and reads one provider's webhook requests.
type provider interface {
	// read checks that r comes from the provider and returns what its body
	// says; a *refusal says how to answer a request it refuses.
	read(r *http.Request, body []byte) (delivery, error)
}

// delivery is what one webhook request carried.
type delivery struct {
	reports []bounce.Report
	// ignored counts the events that are neither bounces nor complaints.
	ignored int
	// note answers a request that carried no events (an SNS subscription
	// confirmation).
	note string
	// settle, when set, learns whether the reports were applied.
	settle func(applied bool)
}

// refusal is a request refused with an HTTP status. msg is shown to the
// caller and logged, so it never holds a secret.
type refusal struct {
	code int
	msg  string
}

func (e *refusal) Error() string { return e.msg }

func refuse(code int, format string, args ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

type handler struct {
	providers map[string]provider
	sink      bounce.Sink
	log       *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.URL.Path)
	p, ok := h.providers[name]
	if !ok {
		answer(w, http.StatusNotFound, "no webhook here: the provider is unknown or not configured")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(w, http.StatusMethodNotAllowed, "webhooks take POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = refuse(http.StatusRequestEntityTooLarge, "body over %d bytes", maxBody)
		} else {
			err = refuse(http.StatusBadRequest, "could not read the body: %v", err)
		}
		h.refused(w, r, name, err)
		return
	}
	d, err := p.read(r, body)
	if err != nil {
		h.refused(w, r, name, err)
		return
	}
	if len(d.reports) == 0 {
		if d.settle != nil {
			d.settle(true)
		}
		msg := d.note
		if msg == "" {
			msg = "no bounce or complaint events"
		}
		h.log.Debug("webhook delivery had no bounce or complaint", "provider", name, "ignored", d.ignored)
		answer(w, http.StatusOK, msg)
		return
	}
	err = h.sink(r.Context(), d.reports)
	if d.settle != nil {
		d.settle(err == nil)
	}
	if err != nil {
		h.log.Error("webhook reports not applied, the provider will deliver again", "provider", name, "reports", len(d.reports), "err", err)
		answer(w, http.StatusServiceUnavailable, "could not apply the reports; deliver them again")
		return
	}
	h.log.Info("webhook reports applied", "provider", name, "reports", len(d.reports), "ignored", d.ignored)
	answer(w, http.StatusOK, "applied "+strconv.Itoa(len(d.reports))+" reports")
}

// refused answers a refused request and logs it: a warning for a request
// that failed authentication (someone may be probing the endpoint), an error
// for retain's own failures.
func (h *handler) refused(w http.ResponseWriter, r *http.Request, name string, err error) {
	var ref *refusal
	if !errors.As(err, &ref) {
		ref = &refusal{code: http.StatusInternalServerError, msg: err.Error()}
	}
	attrs := []any{"provider", name, "status", ref.code, "reason", ref.msg, "remote", r.RemoteAddr}
	switch {
	case ref.code == http.StatusUnauthorized || ref.code == http.StatusForbidden:
		h.log.Warn("webhook refused", attrs...)
	case ref.code >= 500:
		h.log.Error("webhook failed", attrs...)
	default:
		h.log.Info("webhook refused", attrs...)
	}
	if ref.code == http.StatusUnauthorized && name == postmark {
		w.Header().Set("WWW-Authenticate", `Basic realm="retain webhooks"`)
	}
	answer(w, ref.code, ref.msg)
}

// answer writes a one-line plain-text response; providers only read the
// status, people debugging a webhook read the line.
func answer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

// stale reports whether a signed timestamp is too far from now to be a
// fresh delivery.
func stale(now, t time.Time) bool {
	d := now.Sub(t)
	return d > tolerance || d < -tolerance
}

// text is a JSON string that also takes a number (kept as written) and
// reads anything else as "", so that a provider's field changing type, or a
// custom argument merged into an event, does not make a whole batch
// unreadable.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
	case len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9'):
		*t = text(b)
	default:
		*t = ""
	}
	return nil
}

// bareMessageID returns a Message-ID header value without its angle
// brackets.
func bareMessageID(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	return strings.TrimSpace(s)
}

var (
	statusCode   = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)
	statusInText = regexp.MustCompile(`(?:^|[^\d.])([245]\.\d{1,3}\.\d{1,3})(?:$|[^\d.])`)
)

// enhancedStatus returns field when it is an RFC 3463 status code, else the
// first such code in diagnostic ("smtp; 550 5.1.1 user unknown"), else "".
func enhancedStatus(field, diagnostic string) string {
	if field = strings.TrimSpace(field); statusCode.MatchString(field) {
		return field
	}
	if m := statusInText.FindStringSubmatch(diagnostic); m != nil {
		return m[1]
	}
	return ""
}

// parseTime reads an RFC 3339 time as the providers write them; zero when
// it cannot (Report.At then means when retain received it).
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
