// Package link signs the links retain puts in emails — one-click unsubscribe,
// email preferences, NPS scores, tracked clicks — and verifies them when they come back, with
// HMAC-SHA256 over RETAIN_SECRET: the web process can trust what a link says
// without a lookup, and a link changed by hand is refused.
//
// A token is base64url(JSON claims) "." base64url(the first 16 bytes of the MAC).
// It carries IDs only, never an address; a click link also carries the URL it
// leads to, which is what makes it safe to redirect to: retain web goes only
// where a signed email pointed, never to a URL taken from the request.
package link

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Kinds of link.
const (
	Unsubscribe = "u"
	Preferences = "p"
	NPS         = "n"
	Click       = "c"
)

// MinSecret is the shortest RETAIN_SECRET accepted, in bytes.
const MinSecret = 32

// Errors Verify returns.
var (
	ErrInvalid = errors.New("link is not valid")
	ErrExpired = errors.New("link has expired")
	// ErrNotTrackable means a URL cannot become a click link: only absolute
	// http and https URLs can.
	ErrNotTrackable = errors.New("only absolute http(s) URLs can be tracked")
)

// Claims are what a link says.
type Claims struct {
	Kind     string `json:"k"`
	Customer string `json:"c"`
	// Topic narrows an unsubscribe to one campaign topic; empty is everything.
	Topic string `json:"t,omitempty"`
	// Campaign and Score of an NPS link, and the Enrollment (the customer's
	// round of the campaign) whose email carries it: with the customer, they
	// name the survey email, which counts one answer. 0 when the link does not
	// say (links signed by NPSURL, and those from before it was signed):
	// retain web then takes the customer's latest enrollment in Campaign.
	Campaign   string `json:"m,omitempty"`
	Enrollment int    `json:"n,omitempty"`
	Score      int    `json:"s,omitempty"`
	// Step and URL of a click link: the step identity ("onboarding/welcome")
	// of the email and the URL the link leads to.
	Step string `json:"st,omitempty"`
	URL  string `json:"l,omitempty"`
	// Expires, in unix seconds; 0 never.
	Expires int64 `json:"e,omitempty"`
}

// Signer makes and checks links under one secret and base URL. It is safe
// for concurrent use.
type Signer struct {
	key  []byte
	base string
	// states are scratch buffers and keyed HMACs: a worker signs a few links
	// per email, and hmac.New costs more than the rest of a token. A reset
	// HMAC restores its keyed state instead of hashing the key again.
	states sync.Pool
}

// state is what signing one token needs.
type state struct {
	mac  hash.Hash
	json []byte
	buf  []byte
	sum  [sha256.Size]byte
}

func (s *Signer) state() *state {
	if st, ok := s.states.Get().(*state); ok {
		return st
	}
	return &state{mac: hmac.New(sha256.New, s.key)}
}

// NewSigner returns a signer for links under baseURL (where retain web answers).
func NewSigner(secret, baseURL string) (*Signer, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("RETAIN_SECRET must be at least %d bytes (it is %d): generate one with: openssl rand -hex 32", MinSecret, len(secret))
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("RETAIN_BASE_URL %q must be an http(s) URL such as https://mail.acme.example", baseURL)
	}
	return &Signer{key: []byte(secret), base: strings.TrimRight(baseURL, "/")}, nil
}

// Token signs c.
func (s *Signer) Token(c Claims) string {
	return s.url("", "", &c, "")
}

// url is base, path, the token of c and suffix, in one allocation.
func (s *Signer) url(base, path string, c *Claims, suffix string) string {
	st := s.state()
	b := append(append(st.buf[:0], base...), path...)
	b = st.appendToken(b, c)
	b = append(b, suffix...)
	u := string(b)
	st.buf = b
	s.states.Put(st)
	return u
}

// appendToken appends the token of c to b: base64url(JSON claims) "."
// base64url(the first 16 bytes of the MAC of the first part).
func (st *state) appendToken(b []byte, c *Claims) []byte {
	st.json = appendClaims(st.json[:0], c)
	start := len(b)
	b = base64.RawURLEncoding.AppendEncode(b, st.json)
	b = append(b, '.')
	return base64.RawURLEncoding.AppendEncode(b, st.mac16(b[start:len(b)-1]))
}

// mac16 is the first 16 bytes of the MAC of payload, valid until st is used
// again.
func (st *state) mac16(payload []byte) []byte {
	st.mac.Reset()
	st.mac.Write(payload)
	return st.mac.Sum(st.sum[:0])[:16]
}

// appendClaims appends c as encoding/json marshals it, which is what tokens
// signed before held and what Verify unmarshals: the fields in order, empty
// ones left out as their omitempty tags say, strings escaped as json.Marshal
// escapes them (HTML characters included). TestTokensAreJSONMarshalsBytes
// and FuzzTokenMatchesJSON hold it to json.Marshal.
func appendClaims(b []byte, c *Claims) []byte {
	b = append(b, `{"k":`...)
	b = appendJSONString(b, c.Kind)
	b = append(b, `,"c":`...)
	b = appendJSONString(b, c.Customer)
	if c.Topic != "" {
		b = append(b, `,"t":`...)
		b = appendJSONString(b, c.Topic)
	}
	if c.Campaign != "" {
		b = append(b, `,"m":`...)
		b = appendJSONString(b, c.Campaign)
	}
	if c.Enrollment != 0 {
		b = append(b, `,"n":`...)
		b = strconv.AppendInt(b, int64(c.Enrollment), 10)
	}
	if c.Score != 0 {
		b = append(b, `,"s":`...)
		b = strconv.AppendInt(b, int64(c.Score), 10)
	}
	if c.Step != "" {
		b = append(b, `,"st":`...)
		b = appendJSONString(b, c.Step)
	}
	if c.URL != "" {
		b = append(b, `,"l":`...)
		b = appendJSONString(b, c.URL)
	}
	if c.Expires != 0 {
		b = append(b, `,"e":`...)
		b = strconv.AppendInt(b, c.Expires, 10)
	}
	return append(b, '}')
}

// appendJSONString is encoding/json's appendString with HTML escaping, as
// json.Marshal calls it (Go 1.26, src/encoding/json/encode.go).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Verify checks token at now and returns its claims.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	p, sig, ok := strings.Cut(token, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil {
		return Claims{}, ErrInvalid
	}
	st := s.state()
	st.buf = append(st.buf[:0], p...)
	ok = hmac.Equal(mac, st.mac16(st.buf))
	s.states.Put(st)
	if !ok {
		return Claims{}, ErrInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	var c Claims
	if err != nil || json.Unmarshal(payload, &c) != nil || c.Customer == "" {
		return Claims{}, ErrInvalid
	}
	if c.Expires != 0 && now.Unix() > c.Expires {
		return c, ErrExpired
	}
	return c, nil
}

// UnsubscribeURL is the one-click unsubscribe link of a customer (RFC 8058:
// POST unsubscribes, GET shows a confirmation), for topic or, when empty, all.
func (s *Signer) UnsubscribeURL(customer, topic string) string {
	return s.url(s.base, "/u/", &Claims{Kind: Unsubscribe, Customer: customer, Topic: topic}, "")
}

// PreferencesURL is the link to a customer's email preference page.
func (s *Signer) PreferencesURL(customer string) string {
	return s.url(s.base, "/p/", &Claims{Kind: Preferences, Customer: customer}, "")
}

// NPSURL is NPSEnrollmentURL without the enrollment: retain web counts the
// answer against the customer's latest enrollment in campaign.
func (s *Signer) NPSURL(customer, campaign string, score int, now time.Time, ttl time.Duration) string {
	return s.NPSEnrollmentURL(customer, campaign, 0, score, now, ttl)
}

// NPSEnrollmentURL is the link to a customer's answer score in the NPS survey
// sent by enrollment n of campaign (0: not known). Following it shows a
// confirmation page; only posting that page records the answer (link
// scanners follow every link). It expires after ttl (0: never).
func (s *Signer) NPSEnrollmentURL(customer, campaign string, n, score int, now time.Time, ttl time.Duration) string {
	c := Claims{Kind: NPS, Customer: customer, Campaign: campaign, Enrollment: n, Score: score}
	if ttl > 0 {
		c.Expires = now.Add(ttl).Unix()
	}
	return s.url(s.base, "/nps/", &c, "?score="+strconv.Itoa(score))
}

// ClickURL is the tracked form of target, a link in step (a step identity) of
// campaign sent to customer: retain web records the click and redirects to
// target. It returns ErrNotTrackable for anything but an absolute http(s) URL
// (javascript:, mailto:, relative links), which must be left as it is.
func (s *Signer) ClickURL(customer, campaign, step, target string) (string, error) {
	if !Trackable(target) {
		return "", fmt.Errorf("click link for %q: %w", target, ErrNotTrackable)
	}
	return s.url(s.base, "/c/", &Claims{Kind: Click, Customer: customer, Campaign: campaign, Step: step, URL: target}, ""), nil
}

// Trackable reports whether target may be signed into a click link and
// redirected to: an absolute http or https URL with a host, and no control
// characters or spaces that could split a Location header.
func Trackable(target string) bool {
	if strings.ContainsFunc(target, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}
