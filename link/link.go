// Package link signs the links retain puts in emails — one-click unsubscribe,
// email preferences, NPS scores — and verifies them when they come back, with
// HMAC-SHA256 over RETAIN_SECRET: the web process can trust what a link says
// without a lookup, and a link changed by hand is refused.
//
// A token is base64url(JSON claims) "." base64url(the first 16 bytes of the MAC).
// It carries IDs only: never an address.
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
)

// MinSecret is the shortest RETAIN_SECRET accepted, in bytes.
const MinSecret = 32

// Errors Verify returns.
var (
	ErrInvalid = errors.New("link is not valid")
	ErrExpired = errors.New("link has expired")
)

// Claims are what a link says.
type Claims struct {
	Kind     string `json:"k"`
	Customer string `json:"c"`
	// Topic narrows an unsubscribe to one campaign topic; empty is everything.
	Topic string `json:"t,omitempty"`
	// Campaign and Score of an NPS link.
	Campaign string `json:"m,omitempty"`
	Score    int    `json:"s,omitempty"`
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

// NPSURL is the link that records score for a customer's answer in a campaign;
// it expires after ttl (0: never).
func (s *Signer) NPSURL(customer, campaign string, score int, now time.Time, ttl time.Duration) string {
	c := Claims{Kind: NPS, Customer: customer, Campaign: campaign, Score: score}
	if ttl > 0 {
		c.Expires = now.Add(ttl).Unix()
	}
	return s.base + "/nps/" + s.Token(c) + "?score=" + strconv.Itoa(score)
}
