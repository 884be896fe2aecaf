package campaign

import (
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// doc decodes one YAML document of a campaign file into the model, recording every
// problem with its position in the file. lineOffset is added to YAML line numbers
// (front matter starts on file line 2).
type doc struct {
	path       string
	lineOffset int
	probs      *Problems

	src    string // the document parsed, for mapping positions (see at)
	lines  int    // its lines, counting only \n
	starts []int  // offsets at which the parser starts a line, when it breaks lines at more than \n
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse parses src into its root mapping, or reports why it cannot and returns nil.
func (d *doc) parse(src string) *yaml.Node {
	d.src, d.lines, d.starts = src, strings.Count(src, "\n")+1, yamlLineStarts(src)
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(src), &root); err != nil {
		msg, line := err.Error(), 1
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		d.probs.Add(d.path, d.at(line, 1), "invalid YAML: %s", msg)
		return nil
	}
	if len(root.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: 1}
	}
	n := root.Content[0]
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "expected keys and values (key: value), found %s", kindName(n))
		return nil
	}
	return n
}

func (d *doc) pos(n *yaml.Node) Pos { return d.at(n.Line, n.Column) }

// at maps a line and column as the YAML parser counts them to the file's. The
// parser also ends a line at a lone CR, NEL, LS and PS, which file positions (like
// Go's, and grep's) do not count, and it reports an unexpected end of the stream on
// the line after the last; both would point past the file's end.
func (d *doc) at(line, col int) Pos {
	if d.starts == nil {
		if line > d.lines {
			line, col = d.lines, 1
		}
		return Pos{line + d.lineOffset, col}
	}
	if line > len(d.starts) {
		line, col = len(d.starts), 1
	}
	s := d.starts[max(line, 1)-1]
	head := d.src[:s]
	lineStart := strings.LastIndexByte(head, '\n') + 1
	return Pos{strings.Count(head, "\n") + 1 + d.lineOffset, col + utf8.RuneCountInString(head[lineStart:])}
}

// yamlLineStarts returns the offset of each line of src as the YAML parser breaks
// them (at CR LF, LF, CR, NEL, LS and PS), or nil when it breaks only at LF.
func yamlLineStarts(src string) []int {
	if !strings.ContainsAny(src, "\r\u0085\u2028\u2029") {
		return nil
	}
	starts := []int{0}
	for i := 0; i < len(src); {
		var n int
		switch {
		case strings.HasPrefix(src[i:], "\r\n"):
			n = 2
		case src[i] == '\r' || src[i] == '\n':
			n = 1
		case strings.HasPrefix(src[i:], "\u0085"):
			n = 2
		case strings.HasPrefix(src[i:], "\u2028"), strings.HasPrefix(src[i:], "\u2029"):
			n = 3
		default:
			i++
			continue
		}
		i += n
		starts = append(starts, i)
	}
	return starts
}

func (d *doc) errorf(n *yaml.Node, format string, args ...any) {
	d.probs.Add(d.path, d.pos(n), format, args...)
}

// fields returns the values of mapping n by key, reporting keys not in known (with a
// suggestion), duplicate keys, and a non-mapping n. what names n in messages.
func (d *doc) fields(n *yaml.Node, what string, known ...string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node)
	keys := make(map[string]*yaml.Node)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be keys and values, found %s", what, kindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if prev, dup := keys[k.Value]; dup {
			d.errorf(k, "duplicate key %q (first set on line %d)", k.Value, d.pos(prev).Line)
			continue
		}
		keys[k.Value] = k
		if known != nil && !slices.Contains(known, k.Value) {
			d.errorf(k, "unknown key %q in %s%s", k.Value, what, DidYouMean(k.Value, known))
			continue
		}
		out[k.Value] = v
	}
	return out
}

// keyNode returns the key node of mapping n for key, for positions of whole entries.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return n
}

// str returns a scalar's text, reporting any other kind.
func (d *doc) str(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" && n.Value == "" {
		if n.Kind == yaml.ScalarNode {
			d.errorf(n, "%s is empty", key)
		} else {
			d.errorf(n, "%s must be text, found %s", key, kindName(n))
		}
		return "", false
	}
	return n.Value, true
}

// strs accepts one string or a list of strings.
// address reads an email address with an optional name ("Sanne <sanne@acme.example>").
func (d *doc) address(n *yaml.Node, key string) *mail.Address {
	s, ok := d.str(n, key)
	if !ok {
		return nil
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		d.errorf(n, "%s: %q is not an email address such as \"Sanne from Acme <sanne@acme.example>\"", key, s)
		return nil
	}
	return a
}

func (d *doc) strs(n *yaml.Node, key string) []string {
	if n.Kind == yaml.ScalarNode {
		if s, ok := d.str(n, key); ok {
			return []string{s}
		}
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a name or a list of names, found %s", key, kindName(n))
		return nil
	}
	var out []string
	for _, item := range n.Content {
		if s, ok := d.str(item, key); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *doc) boolean(n *yaml.Node, key string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		d.errorf(n, "%s must be true or false, found %q", key, n.Value)
	}
	return b
}

func (d *doc) duration(n *yaml.Node, key string) time.Duration {
	s, ok := d.str(n, key)
	if !ok {
		return 0
	}
	v, err := ParseDuration(s)
	if err != nil {
		d.errorf(n, "%s: %v", key, err)
	}
	return v
}

func (d *doc) clock(n *yaml.Node, key string) *Clock {
	s, ok := d.str(n, key)
	if !ok {
		return nil
	}
	c, err := ParseClock(s)
	if err != nil {
		d.errorf(n, "%s: %v", key, err)
		return nil
	}
	return &c
}

// valuePos is where a scalar's text starts: one column after an opening quote.
func (d *doc) valuePos(n *yaml.Node) Pos {
	line, col := d.valueStart(n)
	return d.at(line, col)
}

// valueStart is where the scalar n's text starts, as the YAML parser counts lines.
func (d *doc) valueStart(n *yaml.Node) (line, col int) {
	switch n.Style {
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		return n.Line, n.Column + 1
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return n.Line + 1, 1
	}
	return n.Line, n.Column
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "keys and values"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Value == "" {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}
