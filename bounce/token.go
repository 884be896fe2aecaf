package bounce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash"
	"strings"
	"sync"
)

// Send names one email: the customer it went to, its step ("campaign/slug")
// and the customer's round of the campaign (lifecycle.Enrollment.Number).
type Send struct {
	Customer   string
	Step       string
	Enrollment int
}

// Ref is what a token says of its send. A token short enough for a Return-Path
// may carry a hash of the customer ID instead of the ID (Customer is then
// empty): the report's recipient or Message-ID names the customer, and
// MatchesCustomer checks it. The step is known by a hash too: StepOf finds it
// among the steps loaded.
type Ref struct {
	Customer     string
	customerHash [8]byte
	stepHash     uint32
	Enrollment   int
}

// MatchesCustomer reports whether the send went to the customer id.
func (r Ref) MatchesCustomer(id string) bool {
	if r.Customer != "" {
		return r.Customer == id
	}
	return customerHash(id) == r.customerHash
}

// StepOf returns the step among steps that the send was of, "" when none is
// (the step was removed since).
func (r Ref) StepOf(steps []string) string {
	for _, s := range steps {
		if stepHash(s) == r.stepHash {
			return s
		}
	}
	return ""
}

// Token forms.
const (
	formFull   = 1 // the customer ID as it is
	formHashed = 2 // 8 bytes of SHA-256 of the customer ID
)

// macLen is the length of a token's MAC in bytes: 64 bits, so a forged token
// takes 2^63 tries on average.
const macLen = 8

// maxLocalPart is RFC 5321's limit on the part of an address before the @
// (§4.5.3.1.1), which a Return-Path's token must keep.
const maxLocalPart = 64

// ReturnPathPrefix begins the local part of every Return-Path retain sends
// with: bounces+<token>@<bounce domain>.
const ReturnPathPrefix = "bounces+"

// b32 is base32 in lower case without padding: a token survives a receiver
// that changes the case of the local part.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrToken is returned for a token that is malformed or not signed by this
// secret.
var ErrToken = errors.New("not a token retain signed")

// Tokens signs and reads the tokens that tie a bounce or complaint to the
// email it is about: in the Return-Path (VERP) and in the Message-ID, with
// HMAC-SHA256 over a key derived from RETAIN_SECRET, so only retain's own
// tokens are accepted and a report cannot be forged for someone else's send.
type Tokens struct {
	macs sync.Pool // of HMAC-SHA256 hashes of the key, reset before use
}

// NewTokens returns the tokens of secret (RETAIN_SECRET). Its key is derived
// for this use only, so a token is never valid as a link signature.
func NewTokens(secret []byte) *Tokens {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("retain bounce tokens v1"))
	key := m.Sum(nil)
	t := &Tokens{}
	t.macs.New = func() any { return hmac.New(sha256.New, key) }
	return t
}

// Token returns the token of s with the customer ID in full.
func (t *Tokens) Token(s Send) string { return t.token(s, formFull) }

// MessageID returns the Message-ID (without angle brackets) of the email s,
// from domain: "retain.<token>@domain". The same send always has the same
// Message-ID, so a relay or mailbox that saw it can tell a retry, and a
// report that quotes it (a provider's webhook, the headers a DSN returns)
// names the send.
func (t *Tokens) MessageID(s Send, domain string) string {
	return "retain." + t.Token(s) + "@" + domain
}

// ReturnPath returns the envelope sender of the email s for the bounce domain:
// bounces+<token>@domain. The token carries the customer ID when that keeps
// the local part within 64 octets, else a hash of it.
func (t *Tokens) ReturnPath(s Send, domain string) string {
	tok := t.token(s, formFull)
	if len(ReturnPathPrefix)+len(tok) > maxLocalPart {
		tok = t.token(s, formHashed)
	}
	return ReturnPathPrefix + tok + "@" + domain
}

func (t *Tokens) token(s Send, form byte) string {
	var buf [128]byte
	b := buf[:0]
	b = append(b, form)
	b = binary.AppendUvarint(b, uint64(max(s.Enrollment, 0)))
	b = binary.BigEndian.AppendUint32(b, stepHash(s.Step))
	if form == formFull {
		b = append(b, s.Customer...)
	} else {
		h := customerHash(s.Customer)
		b = append(b, h[:]...)
	}
	b = append(b, t.mac(b)...)
	return b32.EncodeToString(b)
}

func (t *Tokens) mac(b []byte) []byte {
	m := t.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	var sum [sha256.Size]byte
	out := m.Sum(sum[:0])[:macLen]
	t.macs.Put(m)
	return out
}

// Parse reads a token Token or ReturnPath made with this secret.
func (t *Tokens) Parse(tok string) (Ref, error) {
	b, err := b32.DecodeString(strings.ToLower(tok))
	if err != nil || len(b) < 1+1+4+macLen {
		return Ref{}, ErrToken
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(sum, t.mac(body)) {
		return Ref{}, ErrToken
	}
	form := body[0]
	n, k := binary.Uvarint(body[1:])
	if k <= 0 || n > 1<<31 {
		return Ref{}, ErrToken
	}
	rest := body[1+k:]
	if len(rest) < 4 {
		return Ref{}, ErrToken
	}
	r := Ref{Enrollment: int(n), stepHash: binary.BigEndian.Uint32(rest)}
	rest = rest[4:]
	switch {
	case form == formFull && len(rest) > 0:
		r.Customer = string(rest)
	case form == formHashed && len(rest) == len(r.customerHash):
		copy(r.customerHash[:], rest)
	default:
		return Ref{}, ErrToken
	}
	return r, nil
}

// ParseReturnPath reads the token of a Return-Path address bounces+<token>@domain
// of the bounce domain (case does not matter).
func (t *Tokens) ParseReturnPath(addr, domain string) (Ref, error) {
	local, dom, ok := cutLast(addr, "@")
	if !ok || !strings.EqualFold(dom, domain) || !strings.HasPrefix(strings.ToLower(local), ReturnPathPrefix) {
		return Ref{}, ErrToken
	}
	return t.Parse(local[len(ReturnPathPrefix):])
}

// ParseMessageID reads the token of a Message-ID MessageID made (with or
// without angle brackets); any other Message-ID is ErrToken.
func (t *Tokens) ParseMessageID(id string) (Ref, error) {
	id = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">")
	local, _, ok := cutLast(id, "@")
	if !ok || !strings.HasPrefix(local, "retain.") {
		return Ref{}, ErrToken
	}
	return t.Parse(local[len("retain."):])
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// stepHash is FNV-1a (32 bits) of the step ID, inlined: no hasher per email.
func stepHash(step string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(step); i++ {
		h ^= uint32(step[i])
		h *= 16777619
	}
	return h
}

func customerHash(id string) (h [8]byte) {
	sum := sha256.Sum256([]byte(id))
	copy(h[:], sum[:])
	return h
}
