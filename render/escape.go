package render

// The escapers below are html/template's, ported from the Go source
// (src/html/template/{content,html,url}.go, Go 1.26: escapeCheckedWith) so that
// compiled programs escape byte for byte as html/template does. That code is
//
//	Copyright 2011 The Go Authors. All rights reserved.
//	Use of this source code is governed by a BSD-style license that can be found
//	at https://go.dev/LICENSE.
//
// Only the escapers of the HTML text, attribute, RCDATA and URL contexts are ported;
// a template that needs another one (CSS, JS, …) is not compiled and runs as
// html/template. Where html/template would strip the tags of template.HTML content
// (stripTags, which needs its whole context machine) the escaper reports !ok and the
// caller falls back to html/template too.

import (
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// escapeCheckedWith is the Go minor version whose html/template this file was
// last checked against. TestEscapeCheckedWithThisGoVersion fails under any other,
// so a new Go release cannot change html/template's escaping unnoticed: compiled
// programs would then differ from the templates they replace.
const escapeCheckedWith = "go1.26"

// contentType is html/template's: the kind of typed content a value is.
type contentType uint8

const (
	contentTypePlain contentType = iota
	contentTypeCSS
	contentTypeHTML
	contentTypeHTMLAttr
	contentTypeJS
	contentTypeJSStr
	contentTypeURL
	contentTypeSrcset
)

// filterFailsafe is what html/template writes for a value it refuses.
const filterFailsafe = "ZgotmplZ"

// escaper is one of html/template's _html_template_* functions, applied to the
// stringified value s of type t. ok is false for what the port does not handle.
type escaper func(s string, t contentType) (out string, ok bool)

// escapers are the html/template functions compiled programs implement, by the name
// html/template's escaper inserts into pipelines.
var escapers = map[string]escaper{
	"_html_template_htmlescaper":    htmlEscaper,
	"_html_template_attrescaper":    attrEscaper,
	"_html_template_rcdataescaper":  rcdataEscaper,
	"_html_template_nospaceescaper": htmlNospaceEscaper,
	"_html_template_commentescaper": commentEscaper,
	"_html_template_urlfilter":      urlFilter,
	"_html_template_urlnormalizer":  urlNormalizer,
	"_html_template_urlescaper":     urlEscaper,
	"_html_template_srcsetescaper":  srcsetFilterAndEscaper,
}

// stringify is html/template's stringify for the one argument an inserted escaper
// gets, over the values compiled programs know: strings, typed content, and the
// scalars and times that fmt.Sprint formats. ok is false for anything else.
func stringify(v any) (string, contentType, bool) {
	switch v := v.(type) {
	case string:
		return v, contentTypePlain, true
	case htmltemplate.CSS:
		return string(v), contentTypeCSS, true
	case htmltemplate.HTML:
		return string(v), contentTypeHTML, true
	case htmltemplate.HTMLAttr:
		return string(v), contentTypeHTMLAttr, true
	case htmltemplate.JS:
		return string(v), contentTypeJS, true
	case htmltemplate.JSStr:
		return string(v), contentTypeJSStr, true
	case htmltemplate.URL:
		return string(v), contentTypeURL, true
	case htmltemplate.Srcset:
		return string(v), contentTypeSrcset, true
	case int:
		return strconv.Itoa(v), contentTypePlain, true
	case float64, bool, time.Time:
		return fmt.Sprint(v), contentTypePlain, true
	}
	return "", contentTypePlain, false
}

func htmlEscaper(s string, t contentType) (string, bool) {
	if t == contentTypeHTML {
		return s, true
	}
	return htmlReplacer(s, htmlReplacementTable, true), true
}

func attrEscaper(s string, t contentType) (string, bool) {
	if t == contentTypeHTML {
		return "", false // html/template strips the tags first
	}
	return htmlReplacer(s, htmlReplacementTable, true), true
}

func rcdataEscaper(s string, t contentType) (string, bool) {
	if t == contentTypeHTML {
		return htmlReplacer(s, htmlNormReplacementTable, true), true
	}
	return htmlReplacer(s, htmlReplacementTable, true), true
}

func htmlNospaceEscaper(s string, t contentType) (string, bool) {
	if s == "" {
		return filterFailsafe, true
	}
	if t == contentTypeHTML {
		return "", false // html/template strips the tags first
	}
	return htmlReplacer(s, htmlNospaceReplacementTable, false), true
}

func commentEscaper(string, contentType) (string, bool) { return "", true }

var htmlReplacementTable = []string{
	// http://www.w3.org/TR/html5/syntax.html#attribute-value-(unquoted)-state
	// U+0000 NULL Parse error. Append a U+FFFD REPLACEMENT
	// CHARACTER character to the current attribute's value.
	// "
	// and similarly
	// https://www.w3.org/TR/html5/syntax.html#before-attribute-value-state
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// htmlNormReplacementTable is like htmlReplacementTable but without '&' to
// avoid over-encoding existing entities.
var htmlNormReplacementTable = []string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// htmlNospaceReplacementTable contains the runes that need to be escaped
// inside an unquoted attribute value.
var htmlNospaceReplacementTable = []string{
	0:    "&#xfffd;",
	'\t': "&#9;",
	'\n': "&#10;",
	'\v': "&#11;",
	'\f': "&#12;",
	'\r': "&#13;",
	' ':  "&#32;",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'=':  "&#61;",
	'>':  "&gt;",
	// A parse error in the attribute value (unquoted) and
	// before attribute value states.
	// Treated as a quoting character by IE.
	'`': "&#96;",
}

// htmlReplacer returns s with runes replaced according to replacementTable
// and when badRunes is true, certain bad runes are allowed through unescaped.
func htmlReplacer(s string, replacementTable []string, badRunes bool) string {
	// Not in html/template: with badRunes only ASCII runes are replaced, and those
	// are single bytes below utf8.RuneSelf that no other rune's encoding contains,
	// so a byte scan finds whether there is anything to do without allocating.
	if badRunes && !hasReplacement(s, replacementTable) {
		return s
	}
	written, b := 0, new(strings.Builder)
	r, w := rune(0), 0
	for i := 0; i < len(s); i += w {
		// Cannot use 'for range s' because we need to preserve the width
		// of the runes in the input. If we see a decoding error, the input
		// width will not be utf8.Runelen(r) and we will overrun the buffer.
		r, w = utf8.DecodeRuneInString(s[i:])
		if int(r) < len(replacementTable) {
			if repl := replacementTable[r]; len(repl) != 0 {
				if written == 0 {
					b.Grow(len(s))
				}
				b.WriteString(s[written:i])
				b.WriteString(repl)
				written = i + w
			}
		} else if badRunes {
			// No-op.
			// IE does not allow these ranges in unquoted attrs.
		} else if 0xfdd0 <= r && r <= 0xfdef || 0xfff0 <= r && r <= 0xffff {
			if written == 0 {
				b.Grow(len(s))
			}
			fmt.Fprintf(b, "%s&#x%x;", s[written:i], r)
			written = i + w
		}
	}
	if written == 0 {
		return s
	}
	b.WriteString(s[written:])
	return b.String()
}

// hasReplacement reports whether a byte of s has an entry in replacementTable.
func hasReplacement(s string, replacementTable []string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; int(c) < len(replacementTable) && replacementTable[c] != "" {
			return true
		}
	}
	return false
}

// urlFilter returns its input unless it contains an unsafe scheme in which
// case it defangs the entire URL.
func urlFilter(s string, t contentType) (string, bool) {
	if t == contentTypeURL {
		return s, true
	}
	if !isSafeURL(s) {
		return "#" + filterFailsafe, true
	}
	return s, true
}

// isSafeURL is true if s is a relative URL or if URL has a protocol in
// (http, https, mailto).
func isSafeURL(s string) bool {
	if protocol, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(protocol, "/") {
		if !strings.EqualFold(protocol, "http") && !strings.EqualFold(protocol, "https") && !strings.EqualFold(protocol, "mailto") {
			return false
		}
	}
	return true
}

// urlEscaper produces an output that can be embedded in a URL query.
func urlEscaper(s string, t contentType) (string, bool) {
	return urlProcessor(false, s, t), true
}

// urlNormalizer normalizes URL content so it can be embedded in a quote-delimited
// string or parenthesis delimited url(...).
func urlNormalizer(s string, t contentType) (string, bool) {
	return urlProcessor(true, s, t), true
}

// urlProcessor normalizes (when norm is true) or escapes its input to produce
// a valid hierarchical or opaque URL part.
func urlProcessor(norm bool, s string, t contentType) string {
	if t == contentTypeURL {
		norm = true
	}
	// html/template grows a builder before it knows whether anything needs
	// escaping; looking first gives the same output without the allocation.
	if !urlNeedsEscape(s, norm) {
		return s
	}
	var b strings.Builder
	if processURLOnto(s, norm, &b) {
		return b.String()
	}
	return s
}

// urlNeedsEscape reports whether processURLOnto would change s.
func urlNeedsEscape(s string, norm bool) bool {
	for i := 0; i < len(s); i++ {
		if urlByteNeedsEscape(s, i, norm) {
			return true
		}
	}
	return false
}

func urlByteNeedsEscape(s string, i int, norm bool) bool {
	c := s[i]
	switch c {
	// Single quote and parens are sub-delims in RFC 3986, but we
	// escape them so the output can be embedded in single
	// quoted attributes and unquoted CSS url(...) constructs.
	// Single quotes are reserved in URLs, but are only used in
	// the obsolete "mark" rule in an appendix in RFC 3986
	// so can be safely encoded.
	case '!', '#', '$', '&', '*', '+', ',', '/', ':', ';', '=', '?', '@', '[', ']':
		if norm {
			return false
		}
	// Unreserved according to RFC 3986 sec 2.3
	// "For consistency, percent-encoded octets in the ranges of
	// ALPHA (%41-%5A and %61-%7A), DIGIT (%30-%39), hyphen (%2D),
	// period (%2E), underscore (%5F), or tilde (%7E) should not be
	// created by URI producers
	case '-', '.', '_', '~':
		return false
	case '%':
		// When normalizing do not re-encode valid escapes.
		if norm && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			return false
		}
	default:
		// Unreserved according to RFC 3986 sec 2.3
		if 'a' <= c && c <= 'z' {
			return false
		}
		if 'A' <= c && c <= 'Z' {
			return false
		}
		if '0' <= c && c <= '9' {
			return false
		}
	}
	return true
}

// processURLOnto appends a normalized URL corresponding to its input to b
// and reports whether the appended content differs from s.
func processURLOnto(s string, norm bool, b *strings.Builder) bool {
	b.Grow(len(s) + 16)
	written := 0
	// The byte loop below assumes that all URLs use UTF-8 as the
	// content-encoding. This is similar to the URI to IRI encoding scheme
	// defined in section 3.1 of  RFC 3987, and behaves the same as the
	// EcmaScript builtin encodeURIComponent.
	// It should not cause any misencoding of URLs in pages with
	// Content-type: text/html;charset=UTF-8.
	for i, n := 0, len(s); i < n; i++ {
		if !urlByteNeedsEscape(s, i, norm) {
			continue
		}
		b.WriteString(s[written:i])
		c := s[i]
		b.WriteByte('%')
		b.WriteByte(lowerHex[c>>4])
		b.WriteByte(lowerHex[c&0xf])
		written = i + 1
	}
	b.WriteString(s[written:])
	return written != 0
}

const lowerHex = "0123456789abcdef"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// srcsetFilterAndEscaper filters and normalizes srcset values which are
// comma separated URLs followed by metadata.
func srcsetFilterAndEscaper(s string, t contentType) (string, bool) {
	switch t {
	case contentTypeSrcset:
		return s, true
	case contentTypeURL:
		// Normalizing gets rid of all HTML whitespace
		// which separate the image URL from its metadata.
		var b strings.Builder
		if processURLOnto(s, true, &b) {
			s = b.String()
		}
		// Additionally, commas separate one source from another.
		return strings.ReplaceAll(s, ",", "%2c"), true
	}

	var b strings.Builder
	written := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			filterSrcsetElement(s, written, i, &b)
			b.WriteString(",")
			written = i + 1
		}
	}
	filterSrcsetElement(s, written, len(s), &b)
	return b.String(), true
}

// Derived from https://play.golang.org/p/Dhmj7FORT5
const htmlSpaceAndASCIIAlnumBytes = "\x00\x36\x00\x00\x01\x00\xff\x03\xfe\xff\xff\x07\xfe\xff\xff\x07"

// isHTMLSpace is true iff c is a whitespace character per
// https://infra.spec.whatwg.org/#ascii-whitespace
func isHTMLSpace(c byte) bool {
	return (c <= 0x20) && 0 != (htmlSpaceAndASCIIAlnumBytes[c>>3]&(1<<uint(c&0x7)))
}

func isHTMLSpaceOrASCIIAlnum(c byte) bool {
	return (c < 0x80) && 0 != (htmlSpaceAndASCIIAlnumBytes[c>>3]&(1<<uint(c&0x7)))
}

func filterSrcsetElement(s string, left int, right int, b *strings.Builder) {
	start := left
	for start < right && isHTMLSpace(s[start]) {
		start++
	}
	end := right
	for i := start; i < right; i++ {
		if isHTMLSpace(s[i]) {
			end = i
			break
		}
	}
	if url := s[start:end]; isSafeURL(url) {
		// If image metadata is only spaces or alnums then
		// we don't need to URL normalize it.
		metadataOk := true
		for i := end; i < right; i++ {
			if !isHTMLSpaceOrASCIIAlnum(s[i]) {
				metadataOk = false
				break
			}
		}
		if metadataOk {
			b.WriteString(s[left:start])
			processURLOnto(url, true, b)
			b.WriteString(s[end:right])
			return
		}
	}
	b.WriteString("#")
	b.WriteString(filterFailsafe)
}
