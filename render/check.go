package render

import (
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"github.com/retainmail/retain/campaign"
)

// source is one template source and where it sits in its file.
type source struct {
	path      string
	text      string
	line, col int // file position of text[0]
	// markdown is set for step bodies, which get the Markdown-specific checks.
	markdown bool
}

// pos returns the file position of byte offset off of s.text.
func (s *source) pos(off int) campaign.Pos {
	off = min(max(off, 0), len(s.text))
	line := s.line + strings.Count(s.text[:off], "\n")
	if nl := strings.LastIndexByte(s.text[:off], '\n'); nl >= 0 {
		return campaign.Pos{Line: line, Col: off - nl}
	}
	return campaign.Pos{Line: line, Col: s.col + off}
}

// offset returns the byte offset of a 1-based line and column of s.text.
func (s *source) offset(line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		nl := strings.IndexByte(s.text[off:], '\n')
		if nl < 0 {
			return len(s.text)
		}
		off += nl + 1
	}
	return min(off+max(col-1, 0), len(s.text))
}

func (s *source) lineOf(off int) int { return 1 + strings.Count(s.text[:off], "\n") }

// typ is the static type of a template value, with the path that produced it for
// messages (".Customer"). A nil t is unknown: nothing below it is checked.
type typ struct {
	t    reflect.Type
	path string
}

var (
	attributesType = reflect.TypeFor[Attributes]()
	linksType      = reflect.TypeFor[Links]()
	eventDataType  = reflect.TypeFor[EventData]()
	dataType       = reflect.TypeFor[Data]()
	htmlLayoutType = reflect.TypeFor[htmlLayoutData]()
	textLayoutType = reflect.TypeFor[textLayoutData]()
)

// checker finds the problems of template sources: syntax, structure, unknown fields and
// the Markdown pitfalls.
type checker struct {
	probs *campaign.Problems
	attrs map[string]campaign.AttrType
	links map[string]reflect.Type
	// counters are lifecycle.yaml's counters (.Customer.Counters.orders).
	counters map[string]string
	// event are the event_data declarations of the campaign whose steps are
	// checked (.Event.Data.name), and stepLinks the links of the step
	// (.Links.name beside lifecycle.yaml's).
	event     map[string]campaign.AttrType
	stepLinks map[string]string
	// seen records the field paths a check resolved (".Links.Unsubscribe").
	seen map[string]bool
}

func newChecker(l *campaign.Lifecycle, probs *campaign.Problems) *checker {
	c := &checker{
		probs: probs,
		attrs: map[string]campaign.AttrType{},
		links: map[string]reflect.Type{
			LinkUnsubscribe: reflect.TypeFor[string](),
			LinkPreferences: reflect.TypeFor[string](),
			LinkNPS:         reflect.TypeFor[[]NPSLink](),
		},
		seen: map[string]bool{},
	}
	if l != nil {
		for k, v := range l.Attributes {
			c.attrs[k] = v
		}
		c.counters = l.Counters
		for k := range l.Links {
			if _, ok := c.links[k]; !ok {
				c.links[k] = reflect.TypeFor[string]()
			}
		}
	}
	return c
}

func (c *checker) add(s *source, off int, format string, args ...any) {
	c.probs.Add(s.path, s.pos(off), format, args...)
}

// check reports every problem of s, executed with data of type root, and returns its
// actions and whether it is free of problems.
func (c *checker) check(s *source, root reflect.Type) ([]action, bool) {
	before := len(*c.probs)
	acts, serr := scanActions(s.text)
	if serr != nil {
		c.add(s, serr.off, "unclosed action %s: add the closing }}", snippet(s.text[serr.off:]))
		return nil, false
	}
	blocks := c.structure(s, acts)
	if len(*c.probs) > before {
		return acts, false
	}
	if s.markdown {
		c.markdownRules(s, acts, blocks)
	}
	// text/template stops at the first unknown function: stand in for each one
	// found and parse again, so that every one is named at once.
	fm := texttemplate.FuncMap(funcs)
	var unknown []string
	t, err := texttemplate.New(s.path).Funcs(fm).Parse(s.text)
	for err != nil {
		name := c.parseError(s, acts, err, fm)
		if name == "" || slices.Contains(unknown, name) || len(unknown) >= maxUnknownFuncs {
			return acts, false
		}
		unknown = append(unknown, name)
		fm = maps.Clone(fm)
		fm[name] = func(...any) any { return nil }
		t, err = texttemplate.New(s.path).Funcs(fm).Parse(s.text)
	}
	if len(unknown) > 0 {
		return acts, false
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		sc := &scope{vars: map[string]typ{}}
		if tt.Name() == s.path {
			sc.dot = typ{t: root}
			sc.vars["$"] = typ{t: root, path: "$"}
		} else {
			sc.vars["$"] = typ{}
		}
		c.walk(s, tt.Tree.Root, sc)
	}
	return acts, len(*c.probs) == before
}

// snippet is the start of an action, for messages.
func snippet(s string) string {
	if nl := strings.IndexByte(s, '\n'); nl >= 0 {
		s = s[:nl]
	}
	if len(s) > 30 {
		s = s[:30] + "…"
	}
	return strings.TrimSpace(s)
}

// A control is one {{ if }}/{{ range }}/{{ with }}/{{ define }}/{{ block }} with its
// {{ else }}s and {{ end }}, as indexes into the actions.
type control struct {
	open int
	mids []int
	end  int
}

// structure matches openers, else and end; an unclosed opener is reported where it
// opens, which text/template's "unexpected EOF" does not say.
func (c *checker) structure(s *source, acts []action) []control {
	var stack []*control
	var out []control
	for i, a := range acts {
		switch {
		case a.opens():
			stack = append(stack, &control{open: i, end: -1})
		case a.word == "else":
			if len(stack) == 0 || !slices.Contains([]string{"if", "range", "with"}, acts[stack[len(stack)-1].open].word) {
				c.add(s, a.start, "{{ else }} outside {{ if }}, {{ range }} or {{ with }}")
				continue
			}
			top := stack[len(stack)-1]
			top.mids = append(top.mids, i)
		case a.word == "end":
			if len(stack) == 0 {
				c.add(s, a.start, "{{ end }} without an {{ if }}, {{ range }} or {{ with }} to close")
				continue
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			top.end = i
			out = append(out, *top)
		}
	}
	for _, ctl := range stack {
		a := acts[ctl.open]
		c.add(s, a.start, "{{ %s }} is never closed: add {{ end }}", a.word)
	}
	return out
}

var listMarker = regexp.MustCompile(`^([-*+]|[0-9]{1,9}[.)])([ \t]|$)`)
var blankLine = regexp.MustCompile(`\n[ \t]*\n`)

// markdownRules reports the template uses that Markdown cannot render right.
func (c *checker) markdownRules(s *source, acts []action, ctls []control) {
	for _, a := range acts {
		if a.start > 0 && s.text[a.start-1] == '<' && !a.structural() {
			act := s.text[a.start:a.end]
			c.add(s, a.start-1, "<%s> is not a link: Markdown autolinks cannot hold template actions; write [text](%s)", act, act)
		}
	}
	for _, ctl := range ctls {
		open := acts[ctl.open]
		if open.word == "define" || open.word == "block" {
			continue
		}
		end := acts[ctl.end]
		mixed := end.block != open.block
		for _, m := range ctl.mids {
			mixed = mixed || acts[m].block != open.block
		}
		switch {
		case mixed:
			c.add(s, open.start, "{{ %s }} and its {{ end }} on line %d must both stand on lines of their own (to wrap whole paragraphs or list items) or both sit inside one paragraph",
				open.word, s.pos(end.start).Line)
		case !open.block && blankLine.MatchString(s.text[open.end:end.start]):
			c.add(s, open.start, "{{ %s }} inside a paragraph must end in that paragraph; to wrap whole paragraphs put {{ %s }} and {{ end }} on lines of their own",
				open.word, open.word)
		case !open.block && open.word == "range":
			rest := s.text[open.end:]
			if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
				rest = rest[:nl]
			}
			if listMarker.MatchString(strings.TrimLeft(rest, " \t")) {
				c.add(s, open.start, "{{ range }} builds list items on one line, which Markdown reads as one item; put {{ range }} and {{ end }} on lines of their own around the item line")
			}
		}
	}
}

var varName = regexp.MustCompile(`\$[A-Za-z_][A-Za-z0-9_]*`)
var funcNotDefined = regexp.MustCompile(`function "([^"]+)" not defined`)

// maxUnknownFuncs bounds the unknown functions named in one template.
const maxUnknownFuncs = 20

// parseError reports a text/template parse error at the action it is about:
// text/template says only the line. fm is the functions the template was
// parsed with. It returns the name of the function when the error is an
// unknown one.
func (c *checker) parseError(s *source, acts []action, err error, fm texttemplate.FuncMap) (unknownFunc string) {
	msg := err.Error()
	line := 0
	if rest, ok := strings.CutPrefix(msg, "template: "+s.path+":"); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, rest[i+2:]
			}
		}
	}
	// Parse the actions of that line alone to find the one at fault; declaring every
	// variable of the source first keeps $x from failing on its own.
	var decls strings.Builder
	for _, v := range varName.FindAllString(s.text, -1) {
		if v != "$" {
			fmt.Fprintf(&decls, "{{%s := 0}}", v)
		}
	}
	off := -1
	for _, a := range acts {
		if line < s.lineOf(a.start) || line > s.lineOf(a.end-1) {
			continue
		}
		if off < 0 {
			off = a.start
		}
		alone := s.text[a.start:a.end]
		switch {
		case a.opens():
			alone += "{{end}}"
		case a.word == "else":
			alone = "{{if 1}}" + alone + "{{end}}"
		case a.word == "end":
			alone = "{{if 1}}" + alone
		case a.word == "break" || a.word == "continue":
			alone = "{{range 1}}" + alone + "{{end}}"
		}
		_, err := texttemplate.New("a").Funcs(fm).Parse(decls.String() + alone)
		if err == nil {
			continue
		}
		off = a.start
		m := err.Error()
		if i := strings.Index(m, ": "); i >= 0 {
			if j := strings.Index(m[i+2:], ": "); j >= 0 {
				m = m[i+2+j+2:]
			}
		}
		msg = m
		if f := funcNotDefined.FindStringSubmatch(m); f != nil {
			if k := strings.Index(s.text[a.start:a.end], f[1]); k >= 0 {
				off = a.start + k
			}
			msg = fmt.Sprintf("unknown function %q%s", f[1], campaign.DidYouMean(f[1], funcNames()))
			unknownFunc = f[1]
		}
		break
	}
	if off < 0 {
		off = s.offset(line, 1)
	}
	c.add(s, off, "%s", msg)
	return unknownFunc
}

func funcNames() []string {
	names := []string{"and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or", "print", "printf", "println", "slice", "urlquery"}
	for k := range funcs {
		names = append(names, k)
	}
	return names
}

// scope is what the checker knows at one point of a template: the type of dot and of
// each variable.
type scope struct {
	dot  typ
	vars map[string]typ
}

func (sc *scope) child() *scope {
	vars := make(map[string]typ, len(sc.vars))
	for k, v := range sc.vars {
		vars[k] = v
	}
	return &scope{dot: sc.dot, vars: vars}
}

func (c *checker) walk(s *source, n parse.Node, sc *scope) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, child := range n.Nodes {
			c.walk(s, child, sc)
		}
	case *parse.ActionNode:
		c.pipe(s, n.Pipe, sc)
	case *parse.IfNode:
		inner := sc.child()
		c.pipe(s, n.Pipe, inner)
		c.walk(s, n.List, inner)
		c.walk(s, n.ElseList, sc.child())
	case *parse.WithNode:
		inner := sc.child()
		inner.dot = c.pipe(s, n.Pipe, inner)
		c.walk(s, n.List, inner)
		c.walk(s, n.ElseList, sc.child())
	case *parse.RangeNode:
		inner := sc.child()
		t := c.pipe(s, n.Pipe, inner)
		key, elem := c.rangeTypes(s, n.Pipe, t)
		inner.dot = elem
		switch len(n.Pipe.Decl) {
		case 1:
			inner.vars[n.Pipe.Decl[0].Ident[0]] = elem
		case 2:
			inner.vars[n.Pipe.Decl[0].Ident[0]] = key
			inner.vars[n.Pipe.Decl[1].Ident[0]] = elem
		}
		c.walk(s, n.List, inner)
		c.walk(s, n.ElseList, sc.child())
	case *parse.TemplateNode:
		if n.Pipe != nil {
			c.pipe(s, n.Pipe, sc)
		}
	}
}

func (c *checker) rangeTypes(s *source, p *parse.PipeNode, t typ) (key, elem typ) {
	rt := t.t
	if rt == nil {
		return typ{}, typ{}
	}
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	elemPath := "an element of " + t.path
	switch rt.Kind() {
	case reflect.Slice, reflect.Array:
		return typ{t: reflect.TypeFor[int]()}, typ{t: rt.Elem(), path: elemPath}
	case reflect.Map:
		if rt == attributesType || rt == linksType || rt == eventDataType {
			return typ{t: reflect.TypeFor[string]()}, typ{}
		}
		return typ{t: rt.Key()}, typ{t: rt.Elem(), path: elemPath}
	case reflect.Chan:
		return typ{t: rt.Elem(), path: elemPath}, typ{}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return typ{t: rt}, typ{t: rt}
	case reflect.Interface:
		return typ{}, typ{}
	}
	c.add(s, int(p.Pos), "cannot range over %s: it has type %s", t.path, rt)
	return typ{}, typ{}
}

// pipe checks a pipeline, declares its variables in sc and returns its type.
func (c *checker) pipe(s *source, p *parse.PipeNode, sc *scope) typ {
	if p == nil {
		return typ{}
	}
	var last typ
	for i, cmd := range p.Cmds {
		var piped *typ
		if i > 0 {
			piped = &last
		}
		last = c.command(s, cmd, sc, piped)
	}
	for _, v := range p.Decl {
		t := last
		if t.t != nil {
			t.path = v.Ident[0]
		}
		sc.vars[v.Ident[0]] = t
	}
	return last
}

// command checks one command of a pipeline; piped is the type of the value the
// previous command passes it, nil for the first.
func (c *checker) command(s *source, cmd *parse.CommandNode, sc *scope, piped *typ) typ {
	var args []lintArg
	for _, a := range cmd.Args[1:] {
		args = append(args, lintArg{node: a, t: c.arg(s, a, sc)})
	}
	if len(cmd.Args) == 0 {
		return typ{}
	}
	if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok && formatters[id.Ident] != nil {
		if piped != nil {
			args = append(args, lintArg{t: *piped})
		}
		formatters[id.Ident].lint(c, s, id, args)
	}
	return c.arg(s, cmd.Args[0], sc)
}

func (c *checker) arg(s *source, n parse.Node, sc *scope) typ {
	switch n := n.(type) {
	case *parse.DotNode:
		return sc.dot
	case *parse.FieldNode:
		start := chainStart(s, n.String(), int(n.Pos))
		return c.chain(s, sc.dot, n.Ident, start)
	case *parse.VariableNode:
		base, ok := sc.vars[n.Ident[0]]
		if !ok {
			return typ{}
		}
		if base.t != nil {
			base.path = n.Ident[0]
		}
		start := chainStart(s, n.String(), int(n.Pos)) + len(n.Ident[0])
		return c.chain(s, base, n.Ident[1:], start)
	case *parse.ChainNode:
		base := c.arg(s, n.Node, sc)
		if base.t != nil {
			base.path = n.Node.String()
		}
		return c.chain(s, base, n.Field, int(n.Pos))
	case *parse.PipeNode:
		return c.pipe(s, n, sc)
	case *parse.IdentifierNode:
		if f, ok := funcs[n.Ident]; ok {
			if out := reflect.TypeOf(f).Out(0); out.Kind() != reflect.Interface {
				return typ{t: out}
			}
		}
	}
	return typ{}
}

// chainStart finds where the field chain str, which text/template placed at pos (its
// last segments), starts in the source.
func chainStart(s *source, str string, pos int) int {
	end := min(pos+len(str), len(s.text))
	if i := strings.LastIndex(s.text[:end], str); i >= 0 {
		return i
	}
	return pos
}

// chain resolves .a.b.c from t; the segment names start at off in the source (each
// preceded by its dot).
func (c *checker) chain(s *source, t typ, names []string, off int) typ {
	for _, name := range names {
		if t.t == nil {
			return typ{}
		}
		next, msg := c.field(t, name)
		if msg != "" {
			c.add(s, off, "%s", msg)
			return typ{}
		}
		c.seen[next.path] = true
		t = next
		off += 1 + len(name)
	}
	return t
}

// field resolves one field, key or method name on t as text/template would.
func (c *checker) field(t typ, name string) (typ, string) {
	path := t.path + "." + name
	if t.path == "$" {
		path = "." + name
	}
	in := ""
	if t.path != "" && t.path != "$" {
		in = " in " + t.path
	}
	rt := t.t
	switch rt {
	case attributesType:
		at, ok := c.attrs[name]
		if !ok {
			hint := campaign.DidYouMean(name, slices.Sorted(maps.Keys(c.attrs)))
			if hint == "" {
				hint = " (declare it under attributes in lifecycle.yaml)"
			}
			return typ{}, fmt.Sprintf("unknown attribute %q%s%s", name, in, hint)
		}
		return typ{t: attrType(at), path: path}, ""
	case eventDataType:
		et, ok := c.event[name]
		if !ok {
			hint := campaign.DidYouMean(name, slices.Sorted(maps.Keys(c.event)))
			if hint == "" {
				hint = " (declare it under event_data in campaign.md, as in event_data: {" + name + ": string})"
			}
			return typ{}, fmt.Sprintf("unknown event data field %q%s%s", name, in, hint)
		}
		return typ{t: attrType(et), path: path}, ""
	case reflect.TypeFor[Counters]():
		if _, ok := c.counters[name]; !ok {
			hint := campaign.DidYouMean(name, slices.Sorted(maps.Keys(c.counters)))
			if hint == "" {
				hint = " (declare it under counters in lifecycle.yaml)"
			}
			return typ{}, fmt.Sprintf("unknown counter %q%s%s", name, in, hint)
		}
		return typ{t: reflect.TypeFor[int](), path: path}, ""
	case linksType:
		lt, ok := c.links[name]
		if _, mine := c.stepLinks[name]; mine {
			lt, ok = reflect.TypeFor[string](), true
		}
		if !ok {
			names := slices.Sorted(maps.Keys(c.links))
			for n := range c.stepLinks {
				names = append(names, n)
			}
			hint := campaign.DidYouMean(name, names)
			if hint == "" {
				hint = " (declare it under links in lifecycle.yaml, or in the step's front matter)"
			}
			return typ{}, fmt.Sprintf("unknown link %q%s%s", name, in, hint)
		}
		return typ{t: lt, path: path}, ""
	}
	if m, ok := rt.MethodByName(name); ok {
		return methodResult(m, path), ""
	}
	if rt.Kind() != reflect.Pointer && rt.Kind() != reflect.Interface {
		if m, ok := reflect.PointerTo(rt).MethodByName(name); ok {
			return methodResult(m, path), ""
		}
	}
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	switch rt.Kind() {
	case reflect.Struct:
		if f, ok := rt.FieldByName(name); ok && f.IsExported() {
			return typ{t: f.Type, path: path}, ""
		}
		var names []string
		for f := range rt.Fields() {
			if f.IsExported() {
				if f.Anonymous {
					ft := f.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					for g := range ft.Fields() {
						names = append(names, g.Name)
					}
					continue
				}
				names = append(names, f.Name)
			}
		}
		return typ{}, fmt.Sprintf("unknown field %q%s%s", name, in, campaign.DidYouMean(name, names))
	case reflect.Map:
		if rt.Key().Kind() == reflect.String && rt.Elem().Kind() != reflect.Interface {
			return typ{t: rt.Elem(), path: path}, ""
		}
		return typ{}, ""
	case reflect.Interface:
		return typ{}, ""
	}
	what := t.path
	if what == "" || what == "$" {
		what = "."
	}
	return typ{}, fmt.Sprintf("%s has type %s, which has no field %q", what, rt, name)
}

func methodResult(m reflect.Method, path string) typ {
	if m.Type.NumOut() == 0 || m.Type.Out(0).Kind() == reflect.Interface {
		return typ{}
	}
	return typ{t: m.Type.Out(0), path: path}
}

func attrType(t campaign.AttrType) reflect.Type {
	switch t {
	case campaign.AttrInt:
		return reflect.TypeFor[int]()
	case campaign.AttrFloat:
		return reflect.TypeFor[float64]()
	case campaign.AttrBool:
		return reflect.TypeFor[bool]()
	case campaign.AttrTime:
		return reflect.TypeFor[time.Time]()
	}
	return reflect.TypeFor[string]()
}

// maxSubject is the most octets a subject may take: RFC 5322 §2.1.1 limits a
// header line to 998 octets, "Subject: " included.
const maxSubject = 998 - len("Subject: ")

// fieldBound is what one action is counted for in a subject's length: the most
// a customer's name may hold (ingest.MaxNameLen), which every way in enforces.
// Attributes are not bounded; a subject that prints a long one is the
// campaign's to keep short.
const fieldBound = 256

// subjectLength reports a subject whose static text plus fieldBound octets per
// action can exceed maxSubject: once rendered, it could not be sent.
func (c *checker) subjectLength(s *source) {
	acts, err := scanActions(s.text)
	if err != nil {
		return // check reports it
	}
	text, fields := len(s.text), 0
	for _, a := range acts {
		text -= a.end - a.start
		if a.word == "" { // an action that prints
			fields++
		}
	}
	if n := text + fields*fieldBound; n > maxSubject {
		c.add(s, 0, "subject can be %d octets long once rendered (%d of text, %d for each of its %d fields); the most a subject line holds is %d: shorten it",
			n, text, fieldBound, fields, maxSubject)
	}
}
