// Package tracktest holds, for tests, how retain tracked clicks before
// render.Renderer.RenderTracked did: regular expressions over the rendered
// parts, every link signed where it was found. Tests check that rendering
// tracks byte for byte the same.
package tracktest

import (
	"html"
	"regexp"
	"strings"
)

var (
	anchorHref = regexp.MustCompile(`(?i)<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	textLink   = regexp.MustCompile(`\((https?://[^\s()]+)\)`)
)

// Regexps rewrites the http(s) links of an email's HTML part (every <a href>)
// and text part (every "(url)") through click, except those in skip and those
// click refuses, which stay as they are.
func Regexps(htmlPart, textPart string, skip map[string]bool, click func(string) (string, error)) (string, string) {
	track := func(u string) (string, bool) {
		if skip[u] {
			return "", false
		}
		t, err := click(u)
		return t, err == nil
	}
	var b strings.Builder
	last := 0
	for _, m := range anchorHref.FindAllStringSubmatchIndex(htmlPart, -1) {
		start, end := m[2], m[3]
		if start < 0 {
			start, end = m[4], m[5]
		}
		t, ok := track(html.UnescapeString(htmlPart[start:end]))
		if !ok {
			continue
		}
		b.WriteString(htmlPart[last:start])
		b.WriteString(html.EscapeString(t))
		last = end
	}
	b.WriteString(htmlPart[last:])
	htmlPart = b.String()
	textPart = textLink.ReplaceAllStringFunc(textPart, func(m string) string {
		if t, ok := track(m[1 : len(m)-1]); ok {
			return "(" + t + ")"
		}
		return m
	})
	return htmlPart, textPart
}
