package render

import (
	"fmt"
	"strings"
)

// An action is one {{…}} of a template source.
type action struct {
	start, end int    // byte offsets of "{{" and just after "}}"
	word       string // "if", "else", "end", "range", ..., "" for an expression, "/*" for a comment
	// block is set when the action stands on a line of its own (possibly with other
	// block-level actions): it then wraps whole Markdown blocks.
	block bool
}

// structural reports whether the action is if/range/with/define/block/else/end or a
// comment or break/continue: something that prints nothing.
func (a action) structural() bool {
	switch a.word {
	case "if", "range", "with", "define", "block", "else", "end", "break", "continue", "/*":
		return true
	}
	return false
}

func (a action) opens() bool {
	switch a.word {
	case "if", "range", "with", "define", "block":
		return true
	}
	return false
}

// scanError is an action without its closing "}}".
type scanError struct{ off int }

// scanActions finds every action of src. It knows just enough of the template
// language to skip "}}" inside strings and comments.
func scanActions(src string) ([]action, *scanError) {
	var acts []action
	for i := 0; ; {
		j := strings.Index(src[i:], "{{")
		if j < 0 {
			break
		}
		start := i + j
		end, word := scanAction(src, start)
		if end < 0 {
			return acts, &scanError{off: start}
		}
		acts = append(acts, action{start: start, end: end, word: word})
		i = end
	}
	markBlocks(src, acts)
	return acts, nil
}

// scanAction returns the end of the action starting at src[start:] and its first word,
// or -1 when it is not closed.
func scanAction(src string, start int) (int, string) {
	i := start + 2
	if strings.HasPrefix(src[i:], "- ") || strings.HasPrefix(src[i:], "-\t") || strings.HasPrefix(src[i:], "-\n") {
		i++
	}
	k := i
	for k < len(src) && (src[k] == ' ' || src[k] == '\t' || src[k] == '\n' || src[k] == '\r') {
		k++
	}
	if strings.HasPrefix(src[k:], "/*") {
		e := strings.Index(src[k+2:], "*/")
		if e < 0 {
			return -1, ""
		}
		c := strings.Index(src[k+2+e:], "}}")
		if c < 0 {
			return -1, ""
		}
		return k + 2 + e + c + 2, "/*"
	}
	w := k
	for w < len(src) && (src[w] >= 'a' && src[w] <= 'z') {
		w++
	}
	word := src[k:w]
	switch word {
	case "if", "else", "end", "range", "with", "define", "block", "break", "continue", "template":
		if w < len(src) && isIdentByte(src[w]) {
			word = "" // a function such as "endswith"
		}
	default:
		word = ""
	}
	for i = k; i < len(src); i++ {
		switch c := src[i]; c {
		case '"', '\'':
			for i++; i < len(src) && src[i] != c && src[i] != '\n'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '`':
			e := strings.IndexByte(src[i+1:], '`')
			if e < 0 {
				return -1, ""
			}
			i += e + 1
		case '}':
			if strings.HasPrefix(src[i:], "}}") {
				return i + 2, word
			}
		}
	}
	return -1, ""
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// markBlocks sets block on the structural actions that are alone on their line.
func markBlocks(src string, acts []action) {
	for i := 0; i < len(acts); {
		// A run of actions separated by blanks only.
		j := i + 1
		for j < len(acts) && strings.TrimLeft(src[acts[j-1].end:acts[j].start], " \t") == "" {
			j++
		}
		lineStart := strings.LastIndexByte(src[:acts[i].start], '\n') + 1
		lineEnd := strings.IndexByte(src[acts[j-1].end:], '\n')
		if lineEnd < 0 {
			lineEnd = len(src)
		} else {
			lineEnd += acts[j-1].end
		}
		alone := strings.TrimSpace(src[lineStart:acts[i].start]) == "" && strings.TrimSpace(src[acts[j-1].end:lineEnd]) == ""
		for k := i; k < j; k++ {
			alone = alone && acts[k].structural()
		}
		if alone {
			for k := i; k < j; k++ {
				acts[k].block = true
			}
		}
		i = j
	}
}

// protected is a Markdown source whose actions are replaced by tokens.
type protected struct {
	text   string
	prefix string   // every token is prefix + 5 digits + "x"
	acts   []action // in source order; token n stands for acts[n]
	src    string   // the original source
	// blockLines are the token runs that stand for block-level lines.
	blockLines []string
}

const tokenDigits = 5

func (p *protected) token(n int) string {
	return fmt.Sprintf("%s%0*dx", p.prefix, tokenDigits, n)
}

// protect replaces every action of src with a plain alphanumeric token that Markdown
// leaves alone, and puts lines that hold only block-level actions in blocks of their own
// (blank lines around), so that an {{ if }} around paragraphs or list items does not
// land inside a <p> or <li>.
func protect(src string, acts []action) *protected {
	p := &protected{src: src, acts: acts, prefix: "Rtnk"}
	for strings.Contains(src, p.prefix) {
		p.prefix += "q"
	}
	var b strings.Builder
	b.Grow(len(src) + len(acts)*(len(p.prefix)+8))
	last := 0
	for i := 0; i < len(acts); {
		a := acts[i]
		if !a.block {
			b.WriteString(src[last:a.start])
			b.WriteString(p.token(i))
			last = a.end
			i++
			continue
		}
		// A block line: drop its indentation and surround it with blank lines.
		lineStart := strings.LastIndexByte(src[:a.start], '\n') + 1
		b.WriteString(src[last:lineStart])
		var run strings.Builder
		j := i
		for ; j < len(acts) && acts[j].block && (j == i || strings.TrimLeft(src[acts[j-1].end:acts[j].start], " \t") == ""); j++ {
			run.WriteString(p.token(j))
		}
		b.WriteString("\n")
		b.WriteString(run.String())
		b.WriteString("\n\n")
		p.blockLines = append(p.blockLines, run.String())
		last = acts[j-1].end
		if nl := strings.IndexByte(src[last:], '\n'); nl >= 0 {
			last += nl + 1
		} else {
			last = len(src)
		}
		i = j
	}
	b.WriteString(src[last:])
	p.text = b.String()
	return p
}

// restored is a template source made from Markdown output, with a map back to the
// Markdown source for error positions.
type restored struct {
	text string
	// at[n] is where acts[n] begins in text, -1 if the token was lost.
	at []int
}

// restore puts the actions back in place of their tokens in out (HTML or plain text
// made from p.text). A literal "{{" in out, which Markdown can make from an entity such
// as &#123;, is quoted so it prints as itself.
func (p *protected) restore(out string) restored {
	r := restored{at: make([]int, len(p.acts))}
	for i := range r.at {
		r.at[i] = -1
	}
	var b strings.Builder
	b.Grow(len(out) + len(p.src)/4)
	writeLiteral := func(s string) {
		for {
			k := strings.Index(s, "{{")
			if k < 0 {
				b.WriteString(s)
				return
			}
			b.WriteString(s[:k])
			b.WriteString(`{{"{{"}}`)
			s = s[k+2:]
		}
	}
	tl := len(p.prefix) + tokenDigits + 1
	for {
		k := strings.Index(out, p.prefix)
		if k < 0 || k+tl > len(out) || out[k+tl-1] != 'x' {
			writeLiteral(out)
			break
		}
		n := 0
		ok := true
		for _, c := range out[k+len(p.prefix) : k+tl-1] {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + int(c-'0')
		}
		if !ok || n >= len(p.acts) {
			writeLiteral(out[:k+1])
			out = out[k+1:]
			continue
		}
		writeLiteral(out[:k])
		a := p.acts[n]
		r.at[n] = b.Len()
		b.WriteString(p.src[a.start:a.end])
		out = out[k+tl:]
	}
	r.text = b.String()
	return r
}

// sourceOffset maps an offset in r.text back to the Markdown source: exactly inside an
// action, to the start of the closest preceding action otherwise.
func (r restored) sourceOffset(p *protected, off int) int {
	best := -1
	for n, at := range r.at {
		if at < 0 || at > off {
			continue
		}
		a := p.acts[n]
		if off < at+(a.end-a.start) {
			return a.start + off - at
		}
		if best < 0 || at > r.at[best] {
			best = n
		}
	}
	if best < 0 {
		return 0
	}
	return p.acts[best].start
}
