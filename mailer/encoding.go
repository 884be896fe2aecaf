package mailer

import (
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// maxLine is the longest line SMTP carries, in octets without its CRLF (RFC 5321
// §4.5.3.1.6, RFC 5322 §2.1.1). goldmark writes a paragraph as one line, so HTML parts
// can exceed it.
const maxLine = 998

// isPlain reports whether a body part may go unencoded (7bit or 8bit data, RFC 2045
// §2.7-2.8): lines of at most maxLine octets, no NUL, no CR outside a CRLF. A bare LF
// is fine: the dot encoding of DATA sends it as CRLF.
func isPlain(s string) bool {
	if strings.IndexByte(s, 0) >= 0 {
		return false
	}
	hasCR := strings.IndexByte(s, '\r') >= 0
	for s != "" {
		line := s
		i := strings.IndexByte(s, '\n')
		if i >= 0 {
			line, s = s[:i], s[i+1:]
			if hasCR {
				line = strings.TrimSuffix(line, "\r")
			}
		} else {
			s = ""
		}
		if len(line) > maxLine || hasCR && strings.IndexByte(line, '\r') >= 0 {
			return false
		}
	}
	return true
}

// partEncoding returns the Content-Transfer-Encoding of a body part for a relay that
// announced 8BITMIME or not. Quoted-printable costs CPU and bytes (every "=" of an
// HTML attribute becomes "=3D", long lines get soft breaks), so a part goes unencoded
// where it may. ASCII is labelled 8bit too: under BODY=8BITMIME either label is right.
func partEncoding(plain, eightBitMIME bool) gomail.Encoding {
	if plain && eightBitMIME {
		return gomail.NoEncoding
	}
	// A plain ASCII part could go as 7bit even without 8BITMIME, but go-mail v0.8.1
	// writes a part labelled gomail.EncodingUSASCII through its quoted-printable
	// encoder (msgWriter.writeBody has no case for it), which corrupts every "=".
	// TestGoMailStillQuotesSevenBitParts fails once go-mail writes it unencoded:
	// then return gomail.EncodingUSASCII here for plain ASCII parts.
	return gomail.EncodingQP
}

// setEncodings gives the text and the HTML part of msg their encodings.
func setEncodings(msg *gomail.Msg, plain [2]bool, eightBitMIME bool) {
	for i, p := range msg.GetParts() {
		if i < len(plain) {
			p.SetEncoding(partEncoding(plain[i], eightBitMIME))
		}
	}
}
