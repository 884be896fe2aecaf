package render

import (
	"bytes"
	"html"
	"strings"
)

// A tracker turns the http(s) links of one email into click-tracking links as
// the email is rendered: in the HTML part, the quoted href of every <a> (the
// attribute holds the URL HTML-escaped: the URL a mail client follows is what
// gets signed); in the text part, every "(url)" the text writer puts after a
// link's text. The email's own unsubscribe, preference and NPS links stay as
// they are, as do the links click refuses. Each distinct URL is signed once
// per email: the HTML and text parts share their targets.
//
// The parts are scanned once they are executed, as the regular expressions
// `(?i)<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')` and
// `\((https?://[^\s()]+)\)` would match them (FuzzTrackMatchesRegexps holds the
// scanners to those). Marking links when a step is compiled instead could not
// see the "(url)"s that prose or customer data put in the text part, and
// would save only the scan, a byte search for '<' and '(': BenchmarkGuide's
// "scanned" against "untracked".
type tracker struct {
	click                    func(customer, campaign, step, url string) (string, error)
	customer, campaign, step string
	// links are the email's links, whose own ones are never tracked.
	links Links
	done  []tracked
	// space for done and edits: an email has a handful of links.
	doneSpace [8]tracked
	editSpace [16]edit
}

// tracked is one URL of the email and what it became.
type tracked struct {
	url string
	// to is the tracked URL, and toHTML the same HTML-escaped; ok is false for
	// a URL left as it is.
	to, toHTML string
	ok         bool
}

// track returns what u becomes.
func (t *tracker) track(u string) *tracked {
	if d := t.find(u); d != nil {
		return d
	}
	if t.done == nil {
		t.done = t.doneSpace[:0]
	}
	d := tracked{url: u}
	if !t.own(u) {
		to, err := t.click(t.customer, t.campaign, t.step, u)
		if err == nil {
			d.to, d.toHTML, d.ok = to, html.EscapeString(to), true
		}
	}
	t.done = append(t.done, d)
	return &t.done[len(t.done)-1]
}

// find returns what u became, nil if it was not seen yet.
func (t *tracker) find(u string) *tracked {
	for i := range t.done {
		if t.done[i].url == u {
			return &t.done[i]
		}
	}
	return nil
}

// findBytes is find for the bytes of u, without copying them.
func (t *tracker) findBytes(u []byte) *tracked {
	for i := range t.done {
		if t.done[i].url == string(u) {
			return &t.done[i]
		}
	}
	return nil
}

// own reports whether u is one of the email's unsubscribe, preference or NPS
// links. A lazy one not made yet is not in the email.
func (t *tracker) own(u string) bool {
	if u == "" {
		return false
	}
	for _, k := range [...]string{LinkUnsubscribe, LinkPreferences, LinkNPS} {
		v := t.links[k]
		if l, ok := v.(*lazy); ok {
			v, _ = l.made()
		}
		switch v := v.(type) {
		case string:
			if v == u {
				return true
			}
		case []NPSLink:
			for _, l := range v {
				if l.URL == u {
					return true
				}
			}
		}
	}
	return false
}

// edit replaces b[start:end] with s.
type edit struct {
	start, end int
	s          string
}

// apply returns b with edits applied, as a string: one allocation, as converting b
// would be.
func apply(b []byte, edits []edit) string {
	n := len(b)
	for _, e := range edits {
		n += len(e.s) - (e.end - e.start)
	}
	var sb strings.Builder
	sb.Grow(n)
	last := 0
	for _, e := range edits {
		sb.Write(b[last:e.start])
		sb.WriteString(e.s)
		last = e.end
	}
	sb.Write(b[last:])
	return sb.String()
}

// html returns the HTML part b with the href of its anchors tracked.
func (t *tracker) html(b []byte) string {
	edits := t.editSpace[:0]
	for i := 0; ; {
		start, end, next := anchorHref(b, i)
		if next < 0 {
			break
		}
		i = next
		v := b[start:end]
		var d *tracked
		if bytes.IndexByte(v, '&') < 0 {
			d = t.findBytes(v) // as escaped, the URL is itself
		}
		if d == nil {
			d = t.track(html.UnescapeString(string(v)))
		}
		if d.ok {
			edits = append(edits, edit{start, end, d.toHTML})
		}
	}
	return apply(b, edits)
}

// text returns the text part b with its "(url)"s tracked.
func (t *tracker) text(b []byte) string {
	edits := t.editSpace[:0]
	for i := 0; ; {
		start, end, next := textLink(b, i)
		if next < 0 {
			break
		}
		i = next
		d := t.findBytes(b[start:end])
		if d == nil {
			d = t.track(string(b[start:end]))
		}
		if d.ok {
			edits = append(edits, edit{start, end, d.to})
		}
	}
	return apply(b, edits)
}

// anchorHref finds, from b[from:], the next match of
// `(?i)<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')`: b[start:end] is the
// quoted value and next where the match ends; next < 0 when there is none.
// Only anchors: a layout's <link href> stylesheet is left alone.
func anchorHref(b []byte, from int) (start, end, next int) {
	for p := from; ; p++ {
		i := bytes.IndexByte(b[p:], '<')
		if i < 0 {
			return 0, 0, -1
		}
		p += i
		if p+2 >= len(b) || b[p+1]|0x20 != 'a' || !isREspace(b[p+2]) {
			continue
		}
		// [^>]*? is lazy: the first href that makes a match wins, and none
		// starts past the first '>'. A later '<a' up to that '>' could only
		// try the same hrefs, so the search goes on past a failed one.
		for h := p + 3; h < len(b) && b[h] != '>'; h++ {
			if start, end, ok := hrefAt(b, h); ok {
				return start, end, end + 1
			}
		}
	}
}

// hrefAt matches `\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')` at b[h:], h > 0.
func hrefAt(b []byte, h int) (start, end int, ok bool) {
	if h+4 > len(b) || isREword(b[h-1]) ||
		b[h]|0x20 != 'h' || b[h+1]|0x20 != 'r' || b[h+2]|0x20 != 'e' || b[h+3]|0x20 != 'f' {
		return 0, 0, false
	}
	k := h + 4
	for k < len(b) && isREspace(b[k]) {
		k++
	}
	if k == len(b) || b[k] != '=' {
		return 0, 0, false
	}
	k++
	for k < len(b) && isREspace(b[k]) {
		k++
	}
	if k == len(b) || b[k] != '"' && b[k] != '\'' {
		return 0, 0, false
	}
	q := bytes.IndexByte(b[k+1:], b[k])
	if q < 0 {
		return 0, 0, false
	}
	return k + 1, k + 1 + q, true
}

// textLink finds, from s[from:], the next match of `\((https?://[^\s()]+)\)`:
// s[start:end] is the URL and next where the match ends; next < 0 when there
// is none.
func textLink(s []byte, from int) (start, end, next int) {
	for p := from; ; p++ {
		i := bytes.IndexByte(s[p:], '(')
		if i < 0 {
			return 0, 0, -1
		}
		p += i
		k := p + 1
		if !bytes.HasPrefix(s[k:], []byte("http")) {
			continue
		}
		k += 4
		if k < len(s) && s[k] == 's' {
			k++
		}
		if !bytes.HasPrefix(s[k:], []byte("://")) {
			continue
		}
		k += 3
		e := k
		for e < len(s) && !isREspace(s[e]) && s[e] != '(' && s[e] != ')' {
			e++
		}
		if e > k && e < len(s) && s[e] == ')' {
			return p + 1, e, e + 1
		}
	}
}

// isREspace is Go regexp's \s: [\t\n\f\r ].
func isREspace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// isREword is Go regexp's \w: [0-9A-Za-z_], what \b looks at.
func isREword(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
}
