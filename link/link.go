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
	"net/url"
	"strconv"
	"strings"
	"time"
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

// Signer makes and checks links under one secret and base URL.
type Signer struct {
	key  []byte
	base string
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
	payload, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p))
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)[:16]
}

// Verify checks token at now and returns its claims.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	p, sig, ok := strings.Cut(token, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, s.mac(p)) {
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
	return s.base + "/u/" + s.Token(Claims{Kind: Unsubscribe, Customer: customer, Topic: topic})
}

// PreferencesURL is the link to a customer's email preference page.
func (s *Signer) PreferencesURL(customer string) string {
	return s.base + "/p/" + s.Token(Claims{Kind: Preferences, Customer: customer})
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
	return s.base + "/nps/" + s.Token(c) + "?score=" + strconv.Itoa(score)
}

// ClickURL is the tracked form of target, a link in step (a step identity) of
// campaign sent to customer: retain web records the click and redirects to
// target. It returns ErrNotTrackable for anything but an absolute http(s) URL
// (javascript:, mailto:, relative links), which must be left as it is.
func (s *Signer) ClickURL(customer, campaign, step, target string) (string, error) {
	if !Trackable(target) {
		return "", fmt.Errorf("click link for %q: %w", target, ErrNotTrackable)
	}
	return s.base + "/c/" + s.Token(Claims{Kind: Click, Customer: customer, Campaign: campaign, Step: step, URL: target}), nil
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
