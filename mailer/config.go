package mailer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TLS modes of a Config.
const (
	// TLSImplicit speaks TLS from the first byte (smtps://, usually port 465).
	TLSImplicit = "implicit"
	// TLSMandatory upgrades with STARTTLS and refuses a server that does not offer it.
	TLSMandatory = "mandatory"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it, else sends in clear.
	TLSOpportunistic = "opportunistic"
	// TLSNone never upgrades. Only for local relays and development sinks.
	TLSNone = "none"
)

// Auth mechanisms of a Config.
const (
	// AuthAuto picks the strongest mechanism the server offers among SCRAM-SHA-256,
	// SCRAM-SHA-1, CRAM-MD5, PLAIN and LOGIN. PLAIN and LOGIN are only used over TLS
	// (or to localhost).
	AuthAuto = "auto"
	// AuthNone sends no AUTH command.
	AuthNone        = "none"
	AuthPlain       = "plain"
	AuthLogin       = "login"
	AuthCramMD5     = "cram-md5"
	AuthSCRAMSHA1   = "scram-sha-1"
	AuthSCRAMSHA256 = "scram-sha-256"
)

// Defaults applied by ParseURL and NewPool to zero fields.
const (
	DefaultPoolSize    = 4
	DefaultMaxPerConn  = 100
	DefaultTimeout     = 30 * time.Second
	DefaultIdleTimeout = 30 * time.Second
)

// Config says how to reach the SMTP relay. cmd/retain fills it from SMTP_URL with
// ParseURL; a zero field takes the default documented on it.
type Config struct {
	// Host is the relay's host name or IP address. Required.
	Host string
	// Port defaults to 465 when TLS is "implicit" and to 587 otherwise.
	Port int
	// Username and Password are the AUTH credentials; both empty means no AUTH.
	Username string
	Password string `json:"-"`
	// TLS is "implicit" (smtps://), "mandatory", "opportunistic" or "none" (STARTTLS
	// policies for smtp://). Default for smtp://: "mandatory" on port 587 or when a
	// password is set, so credentials never cross the network in clear, and
	// "opportunistic" otherwise (port 25, local relays and development sinks).
	TLS string
	// Insecure skips certificate verification: only for local relays with a
	// self-signed certificate. Default false.
	Insecure bool
	// Auth is one of the Auth* mechanisms. Default "auto" when a username is set,
	// "none" otherwise.
	Auth string
	// PoolSize is the most connections the pool keeps open at once; make it at least
	// the worker's concurrency or sends queue for a connection. Default 4.
	PoolSize int
	// MaxPerConn is how many messages one connection carries before the pool closes
	// it and dials a fresh one (relays cap messages per connection). Default 100.
	MaxPerConn int
	// Timeout bounds connecting (dial, greeting, STARTTLS, AUTH) and each message's
	// SMTP exchange. Default 30s.
	Timeout time.Duration
	// IdleTimeout is how long an unused connection is kept for reuse; older ones are
	// closed instead (relays drop idle clients). Default 30s.
	IdleTimeout time.Duration
	// HELO is the name sent in EHLO. Default: this machine's host name.
	HELO string
	// DKIM lists the keys the pool signs each message with (cmd/retain reads them
	// from RETAIN_DKIM_KEYS; ParseURL leaves it empty). A message is signed by every
	// key of its From address's domain, or, when that domain has none, of its
	// nearest parent domain that has some (a From at news.acme.example is signed by
	// acme.example: DMARC's relaxed alignment); two keys of one domain, RSA and
	// Ed25519, sign it twice. A message whose From matches no key goes unsigned.
	// Default: none, so nothing is signed and the relay signs, as most do.
	DKIM []DKIMKey
}

// ParseURL reads an SMTP_URL such as
//
//	smtp://user:pass@smtp.example.com:587
//	smtps://user:pass@smtp.example.com?pool=8&max_per_conn=50
//	smtp://localhost:1025?tls=none
//
// Query parameters: tls (implicit|mandatory|opportunistic|none), auth (auto|none|plain|
// login|cram-md5|scram-sha-1|scram-sha-256), insecure (1|0), pool, max_per_conn,
// timeout and idle_timeout (Go durations), helo. Reserved characters in the user name
// or password must be percent-encoded (@ as %40). The returned Config has its
// defaults applied and is validated; errors never contain the password.
func ParseURL(raw string) (Config, error) {
	var cfg Config
	u, err := url.Parse(raw)
	if err != nil {
		return cfg, fmt.Errorf("SMTP_URL: %s", parseErrorText(raw))
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch u.Scheme {
	case "smtp":
	case "smtps":
		cfg.TLS = TLSImplicit
	default:
		bad("scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" {
		bad("want smtp://host[:port], not %s:%s", u.Scheme, "…")
	}
	if u.Path != "" && u.Path != "/" {
		bad("path %q: SMTP_URL takes no path", u.Path)
	}
	cfg.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			bad("port %q: not a number", p)
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		bad("query: %v", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := q.Get(k)
		switch k {
		case "tls":
			if cfg.TLS == TLSImplicit && v != TLSImplicit {
				bad("tls=%s: smtps:// is always implicit TLS; use smtp:// for STARTTLS", v)
				continue
			}
			cfg.TLS = v
		case "auth":
			cfg.Auth = v
		case "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad("insecure=%s: want 1 or 0", v)
			}
			cfg.Insecure = b
		case "pool":
			cfg.PoolSize = atoiOr(v, -1)
			if cfg.PoolSize < 1 {
				bad("pool=%s: want a whole number of connections ≥ 1", v)
			}
		case "max_per_conn":
			cfg.MaxPerConn = atoiOr(v, -1)
			if cfg.MaxPerConn < 1 {
				bad("max_per_conn=%s: want a whole number of messages ≥ 1", v)
			}
		case "timeout", "idle_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad("%s=%s: want a positive duration such as 30s", k, v)
			}
			if k == "timeout" {
				cfg.Timeout = d
			} else {
				cfg.IdleTimeout = d
			}
		case "helo":
			cfg.HELO = v
		default:
			bad("unknown parameter %q (known: tls, auth, insecure, pool, max_per_conn, timeout, idle_timeout, helo)", k)
		}
	}
	if len(problems) > 0 {
		return cfg, fmt.Errorf("SMTP_URL %s: %s", redactURL(u), strings.Join(problems, "; "))
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("SMTP_URL %s: %w", redactURL(u), err)
	}
	return cfg, nil
}

func atoiOr(s string, fallback int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fallback
	}
	return n
}

// parseErrorText explains why url.Parse refused raw without quoting the password:
// url.Error prints the whole URL, and an EscapeError quotes part of the password.
func parseErrorText(raw string) string {
	redacted, hadPassword := redactRaw(raw)
	_, err := url.Parse(redacted)
	var uerr *url.Error
	switch {
	case err == nil && hadPassword:
		return "password: not valid in a URL; percent-encode reserved characters (@ as %40, / as %2F, : as %3A, % as %25)"
	case errors.As(err, &uerr):
		return uerr.Err.Error()
	case err != nil:
		return err.Error()
	}
	return "not a valid URL"
}

// redactRaw replaces the password in an unparsed URL with "xxxxx".
func redactRaw(raw string) (string, bool) {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, false
	}
	start := len(raw) - len(rest)
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw, false
	}
	colon := strings.Index(authority[:at], ":")
	if colon < 0 {
		return raw, false
	}
	return raw[:start+colon+1] + "xxxxx" + raw[start+at:], true
}

func redactURL(u *url.URL) string {
	return u.Redacted()
}

// withDefaults fills zero fields with their documented defaults.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSOpportunistic
		if c.Port == 587 || c.Password != "" {
			c.TLS = TLSMandatory
		}
	}
	if c.Port == 0 {
		c.Port = 587
		if c.TLS == TLSImplicit {
			c.Port = 465
		}
	}
	if c.Auth == "" {
		c.Auth = AuthNone
		if c.Username != "" {
			c.Auth = AuthAuto
		}
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.MaxPerConn == 0 {
		c.MaxPerConn = DefaultMaxPerConn
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return c
}

// Validate reports every problem with c (after defaults) in one error, each naming
// its field. The password is never part of the message.
func (c Config) Validate() error {
	c = c.withDefaults()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Host == "" {
		bad("host: required")
	} else if strings.ContainsAny(c.Host, " /\\@\r\n") {
		bad("host %q: not a host name", c.Host)
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port %d: want 1-65535", c.Port)
	}
	switch c.TLS {
	case TLSImplicit, TLSMandatory, TLSOpportunistic, TLSNone:
	default:
		bad("tls %q: want implicit, mandatory, opportunistic or none", c.TLS)
	}
	switch c.Auth {
	case AuthAuto, AuthPlain, AuthLogin, AuthCramMD5, AuthSCRAMSHA1, AuthSCRAMSHA256:
		if c.Username == "" {
			bad("auth %s: needs a username", c.Auth)
		}
	case AuthNone:
	default:
		bad("auth %q: want auto, none, plain, login, cram-md5, scram-sha-1 or scram-sha-256", c.Auth)
	}
	if c.Password != "" && c.TLS == TLSNone && !isLoopback(c.Host) {
		bad("tls none: would send the password in clear to %s; use tls=mandatory, or a relay on localhost", c.Host)
	}
	if strings.ContainsAny(c.Username, "\r\n") {
		bad("username: contains a line break")
	}
	if strings.ContainsAny(c.Password, "\r\n") {
		bad("password: contains a line break")
	}
	if strings.ContainsAny(c.HELO, " \r\n") {
		bad("helo %q: want a host name", c.HELO)
	}
	if c.PoolSize < 1 {
		bad("pool %d: want ≥ 1", c.PoolSize)
	}
	if c.MaxPerConn < 1 {
		bad("max_per_conn %d: want ≥ 1", c.MaxPerConn)
	}
	if c.Timeout < 0 {
		bad("timeout %s: want > 0", c.Timeout)
	}
	if c.IdleTimeout < 0 {
		bad("idle_timeout %s: want > 0", c.IdleTimeout)
	}
	problems = append(problems, validateDKIM(c.DKIM)...)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Redacted returns c as an SMTP URL with the password replaced by "xxxxx", for logs.
func (c Config) Redacted() string {
	c = c.withDefaults()
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	q := url.Values{}
	if c.TLS == TLSImplicit {
		u.Scheme = "smtps"
	} else {
		q.Set("tls", c.TLS)
	}
	if c.Password != "" {
		u.User = url.UserPassword(c.Username, "xxxxx")
	} else if c.Username != "" {
		u.User = url.User(c.Username)
	}
	q.Set("auth", c.Auth)
	if c.Insecure {
		q.Set("insecure", "1")
	}
	q.Set("pool", strconv.Itoa(c.PoolSize))
	q.Set("max_per_conn", strconv.Itoa(c.MaxPerConn))
	q.Set("timeout", c.Timeout.String())
	q.Set("idle_timeout", c.IdleTimeout.String())
	if c.HELO != "" {
		q.Set("helo", c.HELO)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// String returns c.Redacted(), so printing a Config never shows the password.
func (c Config) String() string { return c.Redacted() }

// GoString keeps %#v from printing the password too.
func (c Config) GoString() string { return "mailer.Config(" + c.Redacted() + ")" }

// LogValue keeps slog (text and JSON handlers) from logging the password.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.Redacted()) }
