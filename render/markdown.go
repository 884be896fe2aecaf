package render

import (
	"bytes"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// md is CommonMark without extensions. Raw HTML stays off (no html.WithUnsafe): HTML
// belongs in layouts, which are reviewed like code.
var md = goldmark.New()

// markdownParses counts Markdown parses, so tests and benchmarks can prove that
// rendering for a customer parses none.
var markdownParses atomic.Int64

// underline marks a line of the plain-text part to be replaced, after execution, by a
// line of '=' or '-' as wide as the line above it (a heading whose width depends on
// customer data).
const underline = "\x00underline"

// markdown renders a protected Markdown source to the HTML and plain-text template
// sources of a step body, tokens still in place.
func markdown(p *protected) (htmlOut, textOut string, err error) {
	markdownParses.Add(1)
	src := []byte(p.text)
	doc := md.Parser().Parse(text.NewReader(src))
	var buf bytes.Buffer
	if err := md.Renderer().Render(&buf, src, doc); err != nil {
		return "", "", err
	}
	htmlOut = buf.String()
	// A line of block-level actions is a paragraph of its own: unwrap it, so that the
	// actions sit between blocks.
	for _, line := range p.blockLines {
		htmlOut = strings.ReplaceAll(htmlOut, "<p>"+line+"</p>\n", line)
	}
	w := &textWriter{src: src, blockLines: p.blockLines}
	textOut = w.blocks(doc)
	return htmlOut, textOut, nil
}

// textWriter turns a goldmark AST into the plain-text part: no Markdown markers,
// headings underlined, lists as "- " and "1. ", links as "text (url)".
type textWriter struct {
	src        []byte
	blockLines []string
}

// blocks renders the block children of n, each followed by a blank line. Runs of
// block-level actions are written bare so that the blank lines stay right whichever
// branch runs (extra blank lines are squeezed after execution).
func (w *textWriter) blocks(n ast.Node) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if s, ok := w.actionLine(c); ok {
			b.WriteString(s)
			continue
		}
		b.WriteString(w.block(c))
		b.WriteString("\n\n")
	}
	return b.String()
}

func (w *textWriter) actionLine(n ast.Node) (string, bool) {
	if n.Kind() != ast.KindParagraph {
		return "", false
	}
	s := w.inline(n)
	for _, l := range w.blockLines {
		if s == l {
			return s, true
		}
	}
	return "", false
}

func (w *textWriter) block(n ast.Node) string {
	switch n := n.(type) {
	case *ast.Heading:
		s := w.inline(n)
		switch n.Level {
		case 1:
			return s + "\n" + underline + "="
		case 2:
			return s + "\n" + underline + "-"
		}
		return s
	case *ast.Paragraph, *ast.TextBlock:
		return w.inline(n)
	case *ast.List:
		return w.list(n)
	case *ast.Blockquote:
		return indent(strings.TrimRight(w.blocks(n), "\n"), "> ", "> ")
	case *ast.FencedCodeBlock, *ast.CodeBlock:
		var b strings.Builder
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			b.Write(seg.Value(w.src))
		}
		return strings.TrimRight(b.String(), "\n")
	case *ast.ThematicBreak:
		return "----------"
	case *ast.HTMLBlock:
		return ""
	}
	return strings.TrimRight(w.blocks(n), "\n")
}

func (w *textWriter) list(l *ast.List) string {
	var b strings.Builder
	num := l.Start
	for item := l.FirstChild(); item != nil; item = item.NextSibling() {
		marker := "- "
		if l.IsOrdered() {
			marker = strconv.Itoa(num) + ". "
			num++
		}
		var body string
		if l.IsTight {
			var parts []string
			for c := item.FirstChild(); c != nil; c = c.NextSibling() {
				parts = append(parts, w.block(c))
			}
			body = strings.Join(parts, "\n")
		} else {
			body = strings.TrimRight(w.blocks(item), "\n")
		}
		b.WriteString(indent(body, marker, strings.Repeat(" ", len(marker))))
		b.WriteString("\n")
		if !l.IsTight && item.NextSibling() != nil {
			b.WriteString("\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// indent prefixes the first line of s with first and the others with rest.
func indent(s, first, rest string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		p := rest
		if i == 0 {
			p = first
		}
		if l == "" && i > 0 {
			lines[i] = strings.TrimRight(p, " ")
			continue
		}
		lines[i] = p + l
	}
	return strings.Join(lines, "\n")
}

// inline renders the inline children of n.
func (w *textWriter) inline(n ast.Node) string {
	var b strings.Builder
	w.inlineTo(&b, n)
	return b.String()
}

func (w *textWriter) inlineTo(b *strings.Builder, n ast.Node) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			v := c.Value(w.src)
			if !c.IsRaw() {
				v = util.UnescapePunctuations(util.ResolveNumericReferences(util.ResolveEntityNames(v)))
			}
			b.Write(v)
			if c.HardLineBreak() || c.SoftLineBreak() {
				b.WriteByte('\n')
			}
		case *ast.String:
			b.Write(c.Value)
		case *ast.CodeSpan:
			w.inlineTo(b, c)
		case *ast.Link:
			label := w.inline(c)
			dest := string(c.Destination)
			b.WriteString(label)
			if dest != "" && dest != label {
				b.WriteString(" (" + dest + ")")
			}
		case *ast.AutoLink:
			b.Write(c.Label(w.src))
		case *ast.Image:
			b.WriteString(w.inline(c))
		case *ast.RawHTML:
			// Raw HTML is off in the HTML part; leave it out of the text part too.
		default:
			w.inlineTo(b, c)
		}
	}
}

// finishText tidies an executed plain-text part: headings underlined to their width,
// trailing blanks removed, runs of blank lines squeezed to one. It runs twice per
// email, on the bytes just executed, so it splits and trims by hand.
func finishText(s []byte) string {
	var b strings.Builder
	b.Grow(len(s) + 1)
	finishTextTo(&b, s)
	return b.String()
}

// finishTextTo is finishText writing to b, which must be empty: a tracked email's text
// part goes to a buffer, to be copied once with its links tracked.
func finishTextTo[W interface {
	*strings.Builder | *bytes.Buffer
	Write([]byte) (int, error)
	WriteByte(byte) error
	Len() int
}](b W, s []byte) {
	var prev []byte
	blank := 0
	for len(s) > 0 {
		line := s
		if nl := bytes.IndexByte(s, '\n'); nl >= 0 {
			line, s = s[:nl+1], s[nl+1:]
		} else {
			s = nil
		}
		line = trimRight(line, '\r', '\n')
		if string(line) != "-- " { // the signature delimiter keeps its space
			line = trimRight(line, ' ', '\t')
		}
		if rest, ok := bytes.CutPrefix(line, []byte(underline)); ok {
			line = bytes.Repeat(rest, max(3, utf8.RuneCount(prev)))
		}
		if len(line) == 0 {
			blank++
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
			if blank > 0 {
				b.WriteByte('\n')
			}
		}
		blank = 0
		b.Write(line)
		prev = line
	}
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
}

// trimRight is bytes.TrimRight with a cutset of the two bytes c1 and c2.
func trimRight(s []byte, c1, c2 byte) []byte {
	for len(s) > 0 && (s[len(s)-1] == c1 || s[len(s)-1] == c2) {
		s = s[:len(s)-1]
	}
	return s
}
