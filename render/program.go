package render

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template/parse"
	"time"
)

// A program is one template, escaped by html/template where it is HTML, turned into Go
// closures: static text is written as is, field chains on retain's own types are
// resolved when the program is built, and the functions and escapers are called
// directly instead of through reflect. It produces exactly what the template's
// Execute would, only faster.
//
// A program does not try to reproduce text/template everywhere. What it does not
// support when it is built (a node, a function, an escaper, a field it cannot
// resolve) makes newProgram return an error, and the template keeps running as a
// template. What it meets at run time and does not know (a value of another type, a
// nil, a missing map key, any error at all) makes run return an error, and the caller
// executes the template instead, which gives the authoritative output or error. So
// a program either writes the template's output byte for byte or gives up.
//
// Programs assume the templates were parsed with Option("missingkey=error"), as
// every template of this package is.
type program struct {
	root  op
	nvars int
}

// state is one run of a program.
type state struct {
	w    *bytes.Buffer
	vars []any
	args []any // scratch stack for function arguments
}

type (
	// op writes one node.
	op func(s *state, dot any) error
	// expr evaluates to a value.
	expr func(s *state, dot any) (any, error)
	// command is one command of a pipeline, given the previous command's value.
	command func(s *state, dot, final any) (any, error)
)

// errGiveUp says a program met a value it does not handle; the caller runs the
// template instead.
var errGiveUp = errors.New("compiled template: unsupported value")

// Sentinels of {{ break }} and {{ continue }}, caught by the enclosing range.
var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

// run executes p with data into w. On error the caller discards what was written.
func (p *program) run(w *bytes.Buffer, data any) error {
	s := states.Get().(*state)
	s.w = w
	s.vars = slices.Grow(s.vars[:0], p.nvars)[:p.nvars]
	s.vars[0] = data
	err := p.root(s, data)
	clear(s.vars)
	clear(s.args[:cap(s.args)])
	s.w, s.args = nil, s.args[:0]
	states.Put(s)
	return err
}

var states = sync.Pool{New: func() any { return new(state) }}

// unsupportedError says why a template is not compiled.
type unsupportedError struct{ what string }

func (e *unsupportedError) Error() string { return "not compiled: " + e.what }

// builder turns one parse tree into a program.
type builder struct {
	html  bool
	vars  []variable // in scope, innermost last
	nvars int
	err   error
	// calls returns the tree a {{ template }} calls (partials.go), nil when the
	// template set has none; depth counts the calls being built.
	calls func(name string) *parse.Tree
	depth int
}

// variable is a template variable in scope and the slot holding its value.
type variable struct {
	name string
	slot int
	typ  reflect.Type
}

// newProgram compiles tree, executed with data of type root (a pointer to one of
// retain's data structs). html says the tree is html/template's, already escaped.
func newProgram(tree *parse.Tree, root reflect.Type, html bool) (p *program, err error) {
	return newProgramWith(tree, root, html, nil)
}

func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = &unsupportedError{fmt.Sprintf(format, args...)}
	}
}

func (b *builder) list(l *parse.ListNode, dot reflect.Type) op {
	if l == nil {
		return func(*state, any) error { return nil }
	}
	var steps []op
	for _, n := range l.Nodes {
		if st := b.node(n, dot); st != nil {
			steps = append(steps, st)
		}
	}
	switch len(steps) {
	case 0:
		return func(*state, any) error { return nil }
	case 1:
		return steps[0]
	}
	return func(s *state, dot any) error {
		for _, st := range steps {
			if err := st(s, dot); err != nil {
				return err
			}
		}
		return nil
	}
}

func (b *builder) node(n parse.Node, dot reflect.Type) op {
	switch n := n.(type) {
	case *parse.TextNode:
		text := n.Text
		return func(s *state, _ any) error {
			s.w.Write(text)
			return nil
		}
	case *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		return b.action(n, dot)
	case *parse.IfNode:
		return b.ifOrWith(n.Pipe, n.List, n.ElseList, dot, false)
	case *parse.WithNode:
		return b.ifOrWith(n.Pipe, n.List, n.ElseList, dot, true)
	case *parse.RangeNode:
		return b.rangeNode(n, dot)
	case *parse.TemplateNode:
		return b.templateCall(n, dot)
	case *parse.BreakNode:
		return func(*state, any) error { return errBreak }
	case *parse.ContinueNode:
		return func(*state, any) error { return errContinue }
	}
	b.fail("node %s", n)
	return nil
}

// action prints a pipeline, through the escapers html/template put at its end.
func (b *builder) action(n *parse.ActionNode, dot reflect.Type) op {
	p := n.Pipe
	if len(p.Decl) > 0 {
		e, _ := b.pipeline(p, dot)
		return func(s *state, dot any) error {
			_, err := e(s, dot)
			return err
		}
	}
	cmds := p.Cmds
	var escs []escaper
	if b.html {
		for len(cmds) > 1 {
			last := cmds[len(cmds)-1]
			id, ok := last.Args[0].(*parse.IdentifierNode)
			if !ok || !strings.HasPrefix(id.Ident, "_html_template_") {
				break
			}
			esc, ok := escapers[id.Ident]
			if !ok || len(last.Args) != 1 {
				b.fail("escaper %s", id.Ident)
				return nil
			}
			escs = append([]escaper{esc}, escs...)
			cmds = cmds[:len(cmds)-1]
		}
	}
	e, _ := b.commands(cmds, dot)
	if len(escs) == 0 {
		return func(s *state, dot any) error {
			v, err := e(s, dot)
			if err != nil {
				return err
			}
			return printValue(s.w, v)
		}
	}
	return func(s *state, dot any) error {
		v, err := e(s, dot)
		if err != nil {
			return err
		}
		str, t, ok := stringify(v)
		if !ok {
			return errGiveUp
		}
		for _, esc := range escs {
			if str, ok = esc(str, t); !ok {
				return errGiveUp
			}
			t = contentTypePlain
		}
		s.w.WriteString(str)
		return nil
	}
}

// printValue writes v as text/template's printValue does (fmt.Fprint), for the
// values programs know.
func printValue(w *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case string:
		w.WriteString(v)
	case htmltemplate.HTML:
		w.WriteString(string(v))
	case int:
		w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(v), 10))
	case float64, bool, time.Time:
		fmt.Fprint(w, v)
	default:
		return errGiveUp
	}
	return nil
}

// scope opens a variable scope; the returned func closes it, as text/template pops
// its variables at the end of an if, with or range.
func (b *builder) scope() func() {
	n := len(b.vars)
	return func() { b.vars = b.vars[:n] }
}

func (b *builder) ifOrWith(p *parse.PipeNode, list, elseList *parse.ListNode, dot reflect.Type, with bool) op {
	defer b.scope()()
	cond, t := b.pipeline(p, dot)
	inner := dot
	if with {
		inner = t
	}
	then := b.list(list, inner)
	var els op
	if elseList != nil {
		els = b.list(elseList, dot)
	}
	return func(s *state, dot any) error {
		v, err := cond(s, dot)
		if err != nil {
			return err
		}
		ok, err := truth(v)
		if err != nil {
			return err
		}
		if ok {
			if with {
				return then(s, v)
			}
			return then(s, dot)
		}
		if els != nil {
			return els(s, dot)
		}
		return nil
	}
}

func (b *builder) rangeNode(n *parse.RangeNode, dot reflect.Type) op {
	defer b.scope()()
	p := n.Pipe
	if len(p.Decl) > 2 {
		b.fail("range with %d variables", len(p.Decl))
		return nil
	}
	coll, collType := b.pipeline(p, dot)
	slots := make([]int, len(p.Decl))
	for i, v := range p.Decl {
		slots[i] = b.lookup(v.Ident[0])
	}
	elemType := reflect.Type(nil)
	if collType == reflect.TypeFor[[]NPSLink]() {
		elemType = reflect.TypeFor[*NPSLink]()
	}
	// The variables' static types are those of the collection so far; inside the
	// loop they hold index and element, so forget what is known about them.
	for i := range b.vars {
		for _, sl := range slots {
			if b.vars[i].slot == sl {
				b.vars[i].typ = nil
			}
		}
	}
	body := b.list(n.List, elemType)
	var els op
	if n.ElseList != nil {
		els = b.list(n.ElseList, dot)
	}
	twoVars := len(slots) == 2
	iter := func(s *state, index, elem any) error {
		switch len(slots) {
		case 1:
			s.vars[slots[0]] = elem
		case 2:
			s.vars[slots[0]] = index
			s.vars[slots[1]] = elem
		}
		err := body(s, elem)
		if err == errContinue {
			return nil
		}
		return err
	}
	return func(s *state, dot any) error {
		v, err := coll(s, dot)
		if err != nil {
			return err
		}
		ran := false
		switch v := v.(type) {
		case []NPSLink:
			for i := range v {
				ran = true
				if err := iter(s, i, &v[i]); err == errBreak {
					break
				} else if err != nil {
					return err
				}
			}
		case int:
			if twoVars {
				return errGiveUp
			}
			for i := range v {
				ran = true
				if err := iter(s, nil, i); err == errBreak {
					break
				} else if err != nil {
					return err
				}
			}
		case Links:
			if ran, err = rangeMap(s, v, iter); err != nil {
				return err
			}
		case Attributes:
			if ran, err = rangeMap(s, v, iter); err != nil {
				return err
			}
		default:
			return errGiveUp
		}
		if !ran && els != nil {
			return els(s, dot)
		}
		return nil
	}
}

// rangeMap ranges over m in key order, as text/template does, making lazy links.
func rangeMap[M ~map[string]any](s *state, m M, iter func(s *state, index, elem any) error) (bool, error) {
	for _, v := range m {
		if v == nil {
			return false, errGiveUp
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		err := iter(s, k, resolve(m[k]))
		if err == errBreak {
			break
		}
		if err != nil {
			return false, err
		}
	}
	return len(m) > 0, nil
}

// lookup returns the slot of variable name in scope.
func (b *builder) lookup(name string) int {
	for i := len(b.vars) - 1; i >= 0; i-- {
		if b.vars[i].name == name {
			return b.vars[i].slot
		}
	}
	b.fail("undefined variable %s", name)
	return 0
}

func (b *builder) varType(name string) reflect.Type {
	for i := len(b.vars) - 1; i >= 0; i-- {
		if b.vars[i].name == name {
			return b.vars[i].typ
		}
	}
	return nil
}

// pipeline compiles p, declaring or assigning its variables, and returns its value's
// static type (nil when only known at run time).
func (b *builder) pipeline(p *parse.PipeNode, dot reflect.Type) (expr, reflect.Type) {
	if p == nil {
		b.fail("empty pipeline")
		return nil, nil
	}
	e, t := b.commands(p.Cmds, dot)
	if len(p.Decl) == 0 {
		return e, t
	}
	slots := make([]int, len(p.Decl))
	for i, v := range p.Decl {
		if len(v.Ident) != 1 {
			b.fail("variable %s", v)
			return nil, nil
		}
		if p.IsAssign {
			slots[i] = b.lookup(v.Ident[0])
			for j := range b.vars {
				if b.vars[j].slot == slots[i] {
					b.vars[j].typ = nil // assigned: no longer known
				}
			}
			continue
		}
		slots[i] = b.nvars
		b.nvars++
		b.vars = append(b.vars, variable{name: v.Ident[0], slot: slots[i], typ: t})
	}
	return func(s *state, dot any) (any, error) {
		v, err := e(s, dot)
		if err != nil {
			return nil, err
		}
		for _, sl := range slots {
			s.vars[sl] = v
		}
		return v, nil
	}, t
}

func (b *builder) commands(cmds []*parse.CommandNode, dot reflect.Type) (expr, reflect.Type) {
	if len(cmds) == 0 {
		b.fail("empty pipeline")
		return nil, nil
	}
	var t reflect.Type
	compiled := make([]command, len(cmds))
	for i, c := range cmds {
		compiled[i], t = b.command(c, dot, i > 0)
	}
	if len(compiled) == 1 {
		c := compiled[0]
		return func(s *state, dot any) (any, error) { return c(s, dot, nil) }, t
	}
	return func(s *state, dot any) (any, error) {
		var v any
		for _, c := range compiled {
			var err error
			if v, err = c(s, dot, v); err != nil {
				return nil, err
			}
		}
		return v, nil
	}, t
}

// command compiles one command; final says it gets the previous command's value as
// its last argument.
func (b *builder) command(c *parse.CommandNode, dot reflect.Type, final bool) (command, reflect.Type) {
	first := c.Args[0]
	if id, ok := first.(*parse.IdentifierNode); ok {
		return b.call(id.Ident, c.Args[1:], dot, final)
	}
	if len(c.Args) > 1 || final {
		b.fail("arguments to non-function %s", first)
		return nil, nil
	}
	e, t := b.arg(first, dot)
	return func(s *state, dot, _ any) (any, error) { return e(s, dot) }, t
}

// arg compiles an operand: a constant, dot, a variable, a field chain or a
// parenthesized pipeline.
func (b *builder) arg(n parse.Node, dot reflect.Type) (expr, reflect.Type) {
	switch n := n.(type) {
	case *parse.DotNode:
		return func(_ *state, dot any) (any, error) { return dot, nil }, dot
	case *parse.StringNode:
		v := n.Text
		return constant(v), reflect.TypeFor[string]()
	case *parse.BoolNode:
		return constant(n.True), reflect.TypeFor[bool]()
	case *parse.NumberNode:
		v, ok := idealConstant(n)
		if !ok {
			b.fail("number %s", n)
			return nil, nil
		}
		return constant(v), reflect.TypeOf(v)
	case *parse.FieldNode:
		get, t := b.chain(dot, n.Ident)
		return func(_ *state, dot any) (any, error) { return get(dot) }, t
	case *parse.VariableNode:
		slot := b.lookup(n.Ident[0])
		if len(n.Ident) == 1 {
			return func(s *state, _ any) (any, error) { return s.vars[slot], nil }, b.varType(n.Ident[0])
		}
		get, t := b.chain(b.varType(n.Ident[0]), n.Ident[1:])
		return func(s *state, _ any) (any, error) { return get(s.vars[slot]) }, t
	case *parse.ChainNode:
		if _, ok := n.Node.(*parse.NilNode); ok {
			b.fail("nil chain")
			return nil, nil
		}
		base, bt := b.arg(n.Node, dot)
		get, t := b.chain(bt, n.Field)
		return func(s *state, dot any) (any, error) {
			v, err := base(s, dot)
			if err != nil {
				return nil, err
			}
			return get(v)
		}, t
	case *parse.PipeNode:
		if len(n.Decl) > 0 {
			b.fail("declaration in parentheses")
			return nil, nil
		}
		return b.pipeline(n, dot)
	case *parse.IdentifierNode:
		c, t := b.call(n.Ident, nil, dot, false)
		if c == nil {
			return nil, nil
		}
		return func(s *state, dot any) (any, error) { return c(s, dot, nil) }, t
	}
	b.fail("operand %s", n)
	return nil, nil
}

func constant(v any) expr {
	return func(*state, any) (any, error) { return v, nil }
}

// idealConstant is text/template's: the value a number constant has as an operand.
func idealConstant(n *parse.NumberNode) (any, bool) {
	switch {
	case n.IsComplex:
		return nil, false
	case n.IsFloat && !isHexInt(n.Text) && !isRuneInt(n.Text) && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, true
	case n.IsInt:
		v := int(n.Int64)
		if int64(v) != n.Int64 {
			return nil, false
		}
		return v, true
	}
	return nil, false
}

func isRuneInt(s string) bool { return len(s) > 0 && s[0] == '\'' }

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

// getter reads one field, key or element.
type getter func(v any) (any, error)

// chain resolves .a.b.c from a value of static type t (nil: known at run time).
func (b *builder) chain(t reflect.Type, names []string) (getter, reflect.Type) {
	gets := make([]getter, len(names))
	for i, name := range names {
		gets[i], t = b.field(t, name)
	}
	if b.err != nil {
		return nil, nil
	}
	if len(gets) == 1 {
		return gets[0], t
	}
	return func(v any) (any, error) {
		var err error
		for _, g := range gets {
			if v, err = g(v); err != nil {
				return nil, err
			}
		}
		return v, nil
	}, t
}

// field resolves one name on a value of static type t.
func (b *builder) field(t reflect.Type, name string) (getter, reflect.Type) {
	switch t {
	case nil:
		return dynamicField(name), nil
	case reflect.TypeFor[Links]():
		return mapKey[Links](name), nil
	case reflect.TypeFor[Attributes]():
		return mapKey[Attributes](name), nil
	case reflect.TypeFor[Counters]():
		return counterKey(name), intType
	case reflect.TypeFor[EventData]():
		return mapKey[EventData](name), nil
	}
	if f, ok := fields[t][name]; ok {
		return f.get, f.typ
	}
	b.fail("field %s of %s", name, t)
	return nil, nil
}

// dynamicField reads name from a value whose type is known only at run time.
func dynamicField(name string) getter {
	byType := map[reflect.Type]getter{}
	for t, fs := range fields {
		if f, ok := fs[name]; ok {
			byType[t] = f.get
		}
	}
	links, attrs, evData := mapKey[Links](name), mapKey[Attributes](name), mapKey[EventData](name)
	return func(v any) (any, error) {
		switch v.(type) {
		case Links:
			return links(v)
		case Attributes:
			return attrs(v)
		case Counters:
			return counterKey(name)(v)
		case EventData:
			return evData(v)
		}
		if g, ok := byType[reflect.TypeOf(v)]; ok {
			return g(v)
		}
		return nil, errGiveUp
	}
}

// fieldOf is one field of one of retain's types as programs see it.
type fieldOf struct {
	get getter
	typ reflect.Type // nil: known only at run time
}

// Programs hold retain's structs as pointers to them, so that reaching through
// .Customer.Attributes copies nothing; anything other than reading a field, a truth
// test or being dot makes a program give up on them.
var fields = map[reflect.Type]map[string]fieldOf{
	reflect.TypeFor[*Data](): {
		"Customer": ptr(func(d *Data) *Customer { return &d.Customer }),
		"Campaign": ptr(func(d *Data) *Campaign { return &d.Campaign }),
		"Step":     ptr(func(d *Data) *Step { return &d.Step }),
		"Event":    ptr(func(d *Data) *Event { return &d.Event }),
		"Links":    val(func(d *Data) Links { return d.Links }),
		"Sender":   ptr(func(d *Data) *Sender { return &d.Sender }),
	},
	reflect.TypeFor[*Event](): {
		"Name": val(func(e *Event) string { return e.Name }),
		"At":   val(func(e *Event) time.Time { return e.At }),
		"Data": val(func(e *Event) EventData { return e.Data }),
	},
	reflect.TypeFor[*htmlLayoutData](): {
		"Customer":  ptr(func(d *htmlLayoutData) *Customer { return &d.Customer }),
		"Campaign":  ptr(func(d *htmlLayoutData) *Campaign { return &d.Campaign }),
		"Step":      ptr(func(d *htmlLayoutData) *Step { return &d.Step }),
		"Links":     val(func(d *htmlLayoutData) Links { return d.Links }),
		"Sender":    ptr(func(d *htmlLayoutData) *Sender { return &d.Sender }),
		"Content":   val(func(d *htmlLayoutData) htmltemplate.HTML { return d.Content }),
		"Subject":   val(func(d *htmlLayoutData) string { return d.Subject }),
		"Preheader": val(func(d *htmlLayoutData) string { return d.Preheader }),
	},
	reflect.TypeFor[*textLayoutData](): {
		"Customer":  ptr(func(d *textLayoutData) *Customer { return &d.Customer }),
		"Campaign":  ptr(func(d *textLayoutData) *Campaign { return &d.Campaign }),
		"Step":      ptr(func(d *textLayoutData) *Step { return &d.Step }),
		"Links":     val(func(d *textLayoutData) Links { return d.Links }),
		"Sender":    ptr(func(d *textLayoutData) *Sender { return &d.Sender }),
		"Content":   val(func(d *textLayoutData) string { return d.Content }),
		"Subject":   val(func(d *textLayoutData) string { return d.Subject }),
		"Preheader": val(func(d *textLayoutData) string { return d.Preheader }),
	},
	reflect.TypeFor[*Customer](): {
		"ID":         val(func(c *Customer) string { return c.ID }),
		"Email":      val(func(c *Customer) string { return c.Email }),
		"FirstName":  val(func(c *Customer) string { return c.FirstName }),
		"Name":       val(func(c *Customer) string { return c.Name }),
		"Locale":     val(func(c *Customer) string { return c.Locale }),
		"Timezone":   val(func(c *Customer) string { return c.Timezone }),
		"Stage":      val(func(c *Customer) string { return c.Stage }),
		"Attributes": val(func(c *Customer) Attributes { return c.Attributes }),
		"Counters":   val(func(c *Customer) Counters { return c.Counters }),
	},
	reflect.TypeFor[*Campaign](): {
		"ID":    val(func(c *Campaign) string { return c.ID }),
		"Name":  val(func(c *Campaign) string { return c.Name }),
		"Topic": val(func(c *Campaign) string { return c.Topic }),
	},
	reflect.TypeFor[*Step](): {
		"ID":   val(func(s *Step) string { return s.ID }),
		"Slug": val(func(s *Step) string { return s.Slug }),
	},
	reflect.TypeFor[*Sender](): {
		"Name":    val(func(s *Sender) string { return s.Name }),
		"Email":   val(func(s *Sender) string { return s.Email }),
		"Address": val(func(s *Sender) string { return s.Address }),
	},
	reflect.TypeFor[*NPSLink](): {
		"Score": val(func(l *NPSLink) int { return l.Score }),
		"URL":   val(func(l *NPSLink) string { return l.URL }),
	},
}

func ptr[S, F any](f func(*S) *F) fieldOf {
	return fieldOf{
		get: func(v any) (any, error) {
			s, ok := v.(*S)
			if !ok || s == nil {
				return nil, errGiveUp
			}
			return f(s), nil
		},
		typ: reflect.TypeFor[*F](),
	}
}

func val[S, F any](f func(*S) F) fieldOf {
	return fieldOf{
		get: func(v any) (any, error) {
			s, ok := v.(*S)
			if !ok || s == nil {
				return nil, errGiveUp
			}
			return f(s), nil
		},
		typ: reflect.TypeFor[F](),
	}
}

// mapKey reads .Links.Name or .Customer.Attributes.name, making a lazy link. A
// missing key is an error under missingkey=error; a nil entry is one programs do not
// handle.
func mapKey[M ~map[string]any](name string) getter {
	return func(v any) (any, error) {
		m, ok := v.(M)
		if !ok {
			return nil, errGiveUp
		}
		x, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("map has no entry for key %q", name)
		}
		if x = resolve(x); x == nil {
			return nil, errGiveUp
		}
		return x, nil
	}
}

// counterKey reads .Customer.Counters.name; a missing counter is an error under
// missingkey=error.
func counterKey(name string) getter {
	return func(v any) (any, error) {
		m, ok := v.(Counters)
		if !ok {
			return nil, errGiveUp
		}
		n, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("map has no entry for key %q", name)
		}
		return n, nil
	}
}
