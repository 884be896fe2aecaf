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

// Send names one email: the customer it went to and the address it went to,
// its step ("campaign/slug") and the customer's round of the campaign
// (lifecycle.Enrollment.Number).
type Send struct {
	Customer   string
	Address    string
	Step       string
	Enrollment int
}

// Ref is what a token says of its send. It carries hashes, never the
// customer's ID or address, which anyone who sees the headers could read:
// a report is matched by the address it names (a DSN's recipient, a
// provider's), and Matches checks that the token was sent to that address
// and customer. The step is known by a hash too: StepOf finds it among the
// steps loaded.
type Ref struct {
	customerHash [8]byte
	addressHash  [4]byte
	stepHash     uint32
	Enrollment   int
}

// MatchesAddress reports whether the send went to addr (case does not
// matter).
func (r Ref) MatchesAddress(addr string) bool {
	return addr != "" && addressHash(addr) == r.addressHash
}

// MatchesCustomer reports whether the send went to the customer id.
func (r Ref) MatchesCustomer(id string) bool {
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

// tokenVersion is the first byte of every token, for a later format.
const tokenVersion = 1

// macLen is the length of a token's MAC in bytes: 64 bits, so a forged token
// takes 2^63 tries on average.
const macLen = 8

// minTokenLen is a token's length in bytes before base32: version, round (a
// uvarint, 1 to 5 bytes), step, customer and address hashes, MAC. Encoded, a
// token of a first round is 42 characters: with ReturnPathPrefix, within
// the 64 octets RFC 5321 allows before the @ (§4.5.3.1.1) up to round
// 2^21.
const minTokenLen = 1 + 1 + 4 + 8 + 4 + macLen

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
// tokens are accepted and a report cannot be forged for another send.
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

// MessageID returns the Message-ID (without angle brackets) of the email s,
// from domain: "retain.<token>@domain". The same send always has the same
// Message-ID, so a relay or mailbox that saw it can tell a retry, and a
// report that quotes it (a provider's webhook, the headers a DSN returns)
// names the send.
func (t *Tokens) MessageID(s Send, domain string) string {
	return "retain." + t.Token(s) + "@" + domain
}

// ReturnPath returns the envelope sender of the email s for the bounce
// domain: bounces+<token>@domain.
func (t *Tokens) ReturnPath(s Send, domain string) string {
	return ReturnPathPrefix + t.Token(s) + "@" + domain
}

// Token returns the token of s.
func (t *Tokens) Token(s Send) string {
	var buf [minTokenLen + 4]byte
	b := append(buf[:0], tokenVersion)
	b = binary.AppendUvarint(b, uint64(max(s.Enrollment, 0)))
	b = binary.BigEndian.AppendUint32(b, stepHash(s.Step))
	ch, ah := customerHash(s.Customer), addressHash(s.Address)
	b = append(b, ch[:]...)
	b = append(b, ah[:]...)
	b = t.appendMAC(b)
	return b32.EncodeToString(b)
}

// appendMAC appends the first macLen bytes of b's MAC to b.
func (t *Tokens) appendMAC(b []byte) []byte {
	m := t.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	var sum [sha256.Size]byte
	b = append(b, m.Sum(sum[:0])[:macLen]...)
	t.macs.Put(m)
	return b
}

// Parse reads a token Token made with this secret.
func (t *Tokens) Parse(tok string) (Ref, error) {
	b, err := b32.DecodeString(strings.ToLower(tok))
	if err != nil || len(b) < minTokenLen || len(b) > minTokenLen+4 {
		return Ref{}, ErrToken
	}
	body := b[:len(b)-macLen]
	if want := t.appendMAC(append([]byte(nil), body...)); !hmac.Equal(want, b) || body[0] != tokenVersion {
		return Ref{}, ErrToken
	}
	n, k := binary.Uvarint(body[1:])
	rest := body[1+max(k, 0):]
	if k <= 0 || n > 1<<31 || len(rest) != 4+8+4 {
		return Ref{}, ErrToken
	}
	r := Ref{Enrollment: int(n), stepHash: binary.BigEndian.Uint32(rest)}
	copy(r.customerHash[:], rest[4:12])
	copy(r.addressHash[:], rest[12:16])
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
	sum := sha256.Sum256([]byte("c\x00" + id))
	copy(h[:], sum[:])
	return h
}

// addressHash hashes the lower-cased address: receivers report it in any
// case.
func addressHash(addr string) (h [4]byte) {
	sum := sha256.Sum256([]byte("a\x00" + strings.ToLower(strings.TrimSpace(addr))))
	copy(h[:], sum[:])
	return h
}
