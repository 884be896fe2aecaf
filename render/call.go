package render

import (
	"fmt"
	htmltemplate "html/template"
	"reflect"
	"strings"
	"text/template/parse"
	"time"
)

// function is a template function as programs call it: on the evaluated arguments,
// the piped value last. An error, including errGiveUp for a value it does not
// handle, makes the program give up.
type function struct {
	min, max int // number of arguments; max < 0: any number from min
	// strs lists the arguments that must be strings (text/template checks a
	// constant's type before executing).
	strs []int
	fn   func(args []any) (any, error)
	out  reflect.Type // static result type, nil if known only at run time
}

var (
	stringType = reflect.TypeFor[string]()
	boolType   = reflect.TypeFor[bool]()
	intType    = reflect.TypeFor[int]()
)

// functions are retain's functions and the text/template builtins programs run.
// Each does what the real one does over the values programs know, and gives up
// on any other.
var functions = map[string]function{
	"default": {min: 1, max: -1, fn: callDefault},
	"upper":   {min: 1, max: 1, strs: []int{0}, fn: stringFunc(strings.ToUpper), out: stringType},
	"lower":   {min: 1, max: 1, strs: []int{0}, fn: stringFunc(strings.ToLower), out: stringType},
	"eq":      {min: 2, max: -1, fn: callEq, out: boolType},
	"ne":      {min: 2, max: 2, fn: compare(func(c int) bool { return c != 0 }, true), out: boolType},
	"lt":      {min: 2, max: 2, fn: compare(func(c int) bool { return c < 0 }, false), out: boolType},
	"le":      {min: 2, max: 2, fn: compare(func(c int) bool { return c <= 0 }, false), out: boolType},
	"gt":      {min: 2, max: 2, fn: compare(func(c int) bool { return c > 0 }, false), out: boolType},
	"ge":      {min: 2, max: 2, fn: compare(func(c int) bool { return c >= 0 }, false), out: boolType},
	"not":     {min: 1, max: 1, fn: callNot, out: boolType},
	"len":     {min: 1, max: 1, fn: callLen, out: intType},
	"index":   {min: 1, max: -1, fn: callIndex},
	"print":   {min: 0, max: -1, fn: printFunc(fmt.Sprint), out: stringType},
	"println": {min: 0, max: -1, fn: printFunc(fmt.Sprintln), out: stringType},
	"printf":  {min: 1, max: -1, strs: []int{0}, fn: callPrintf, out: stringType},

	// The formatting helpers take $ first (bindLocale).
	"date":     formatFunction("date"),
	"time":     formatFunction("time"),
	"datetime": formatFunction("datetime"),
	"number":   formatFunction("number"),
	"percent":  formatFunction("percent"),
	"money":    formatFunction("money"),
	"plural":   formatFunction("plural"),
}

// call compiles a call of function name with args, and the piped value if final.
func (b *builder) call(name string, args []parse.Node, dot reflect.Type, final bool) (command, reflect.Type) {
	n := len(args)
	if final {
		n++
	}
	if name == "and" || name == "or" {
		return b.andOr(name == "or", args, dot, final)
	}
	f, ok := functions[name]
	if esc, isEsc := escapers[name]; isEsc && b.html {
		f, ok = function{min: 1, max: 1, fn: escaperFunc(esc), out: stringType}, true
	}
	if !ok {
		b.fail("function %s", name)
		return nil, nil
	}
	if n < f.min || f.max >= 0 && n > f.max {
		b.fail("%s with %d arguments", name, n)
		return nil, nil
	}
	evs := make([]expr, len(args))
	for i, a := range args {
		switch a.(type) {
		case *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
			for _, j := range f.strs {
				if i == j {
					b.fail("%s given %s for a string", name, a)
					return nil, nil
				}
			}
		}
		evs[i], _ = b.arg(a, dot)
	}
	fn := f.fn
	return func(s *state, dot, fin any) (any, error) {
		base := len(s.args)
		defer func() { s.args = s.args[:base] }()
		for _, e := range evs {
			v, err := e(s, dot)
			if err != nil {
				return nil, err
			}
			s.args = append(s.args, v)
		}
		if final {
			s.args = append(s.args, fin)
		}
		return fn(s.args[base:])
	}, f.out
}

// andOr compiles and and or, which evaluate their arguments only until the result
// is known and return that argument.
func (b *builder) andOr(or bool, args []parse.Node, dot reflect.Type, final bool) (command, reflect.Type) {
	if len(args) == 0 && !final {
		b.fail("and/or without arguments")
		return nil, nil
	}
	evs := make([]expr, len(args))
	for i, a := range args {
		evs[i], _ = b.arg(a, dot)
	}
	return func(s *state, dot, fin any) (any, error) {
		var v any
		for _, e := range evs {
			var err error
			if v, err = e(s, dot); err != nil {
				return nil, err
			}
			t, err := truth(v)
			if err != nil {
				return nil, err
			}
			if t == or {
				return v, nil
			}
		}
		if final {
			v = fin
		}
		return v, nil
	}, nil
}

// truth is text/template's isTrue over the values programs know. Retain's structs,
// held as pointers, are true as the structs are.
func truth(v any) (bool, error) {
	switch v := v.(type) {
	case string:
		return v != "", nil
	case htmltemplate.HTML:
		return v != "", nil
	case int:
		return v != 0, nil
	case float64:
		return v != 0, nil
	case bool:
		return v, nil
	case time.Time:
		return true, nil
	case []NPSLink:
		return len(v) > 0, nil
	case Links:
		return len(v) > 0, nil
	case Attributes:
		return len(v) > 0, nil
	case *Data, *htmlLayoutData, *textLayoutData, *Customer, *Campaign, *Step, *Sender, *NPSLink:
		return !reflect.ValueOf(v).IsNil(), nil
	}
	return false, errGiveUp
}

func callNot(args []any) (any, error) {
	t, err := truth(args[0])
	return !t, err
}

// isEmptyValue is funcs.go's isEmpty over the values programs know.
func isEmptyValue(v any) (bool, error) {
	switch v := v.(type) {
	case string:
		return v == "", nil
	case htmltemplate.HTML:
		return v == "", nil
	case int:
		return v == 0, nil
	case float64:
		return v == 0, nil
	case bool:
		return !v, nil
	case time.Time:
		return v == time.Time{}, nil
	case []NPSLink:
		return len(v) == 0, nil
	case Links:
		return len(v) == 0, nil
	case Attributes:
		return len(v) == 0, nil
	}
	return false, errGiveUp
}

func callDefault(args []any) (any, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	empty, err := isEmptyValue(args[1])
	if err != nil {
		return nil, err
	}
	if empty {
		return args[0], nil
	}
	return args[1], nil
}

func stringFunc(f func(string) string) func([]any) (any, error) {
	return func(args []any) (any, error) {
		s, ok := args[0].(string)
		if !ok {
			return nil, errGiveUp
		}
		return f(s), nil
	}
}

func escaperFunc(esc escaper) func([]any) (any, error) {
	return func(args []any) (any, error) {
		s, t, ok := stringify(args[0])
		if !ok {
			return nil, errGiveUp
		}
		if s, ok = esc(s, t); !ok {
			return nil, errGiveUp
		}
		return s, nil
	}
}

// basic is text/template's basicKind for the values programs know.
type basic int

const (
	basicNone basic = iota
	basicBool
	basicInt
	basicFloat
	basicString
)

func basicOf(v any) basic {
	switch v.(type) {
	case bool:
		return basicBool
	case int:
		return basicInt
	case float64:
		return basicFloat
	case string, htmltemplate.HTML:
		return basicString
	}
	return basicNone
}

func stringOf(v any) string {
	if h, ok := v.(htmltemplate.HTML); ok {
		return string(h)
	}
	return v.(string)
}

// compareValues compares two values of the same basic kind, as text/template's eq and lt do.
// Values of different or unknown kinds make it give up: text/template either fails
// on them or compares in ways programs do not reproduce.
func compareValues(a, b any, eqOnly bool) (int, error) {
	k := basicOf(a)
	if k == basicNone || basicOf(b) != k {
		return 0, errGiveUp
	}
	switch k {
	case basicBool:
		if !eqOnly {
			return 0, errGiveUp // lt on bools is an error
		}
		if a.(bool) == b.(bool) {
			return 0, nil
		}
		return 1, nil
	case basicInt:
		return compareOrdered(a.(int), b.(int)), nil
	case basicFloat:
		x, y := a.(float64), b.(float64)
		if eqOnly {
			if x == y {
				return 0, nil
			}
			return 1, nil
		}
		// lt, then eq: NaN is neither less nor equal, so greater, as gt says.
		if x < y {
			return -1, nil
		}
		if x == y {
			return 0, nil
		}
		return 1, nil
	}
	return strings.Compare(stringOf(a), stringOf(b)), nil
}

func compareOrdered[T int | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func callEq(args []any) (any, error) {
	for _, b := range args[1:] {
		c, err := compareValues(args[0], b, true)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			return true, nil
		}
	}
	return false, nil
}

// compare makes ne, lt, le, gt and ge from the result of compareValues.
func compare(ok func(c int) bool, eqOnly bool) func([]any) (any, error) {
	return func(args []any) (any, error) {
		c, err := compareValues(args[0], args[1], eqOnly)
		if err != nil {
			return nil, err
		}
		return ok(c), nil
	}
}

func callLen(args []any) (any, error) {
	switch v := args[0].(type) {
	case string:
		return len(v), nil
	case htmltemplate.HTML:
		return len(v), nil
	case []NPSLink:
		return len(v), nil
	case Links:
		return len(v), nil
	case Attributes:
		return len(v), nil
	}
	return nil, errGiveUp
}

// callIndex is index over the maps and slices programs know, making lazy links. A
// missing map key is the entry type's zero value, a nil programs do not handle.
func callIndex(args []any) (any, error) {
	item := args[0]
	for _, ix := range args[1:] {
		switch v := item.(type) {
		case Links:
			k, ok := ix.(string)
			if !ok || v[k] == nil {
				return nil, errGiveUp
			}
			item = resolve(v[k])
		case Attributes:
			k, ok := ix.(string)
			if !ok || v[k] == nil {
				return nil, errGiveUp
			}
			item = v[k]
		case []NPSLink:
			i, ok := ix.(int)
			if !ok || i < 0 || i >= len(v) {
				return nil, errGiveUp
			}
			item = &v[i]
		default:
			return nil, errGiveUp
		}
	}
	return item, nil
}

// printable reports whether fmt prints v as text/template hands it to fmt.
func printable(v any) bool {
	switch v.(type) {
	case string, htmltemplate.HTML, int, float64, bool, time.Time:
		return true
	}
	return false
}

func printFunc(f func(...any) string) func([]any) (any, error) {
	return func(args []any) (any, error) {
		for _, a := range args {
			if !printable(a) {
				return nil, errGiveUp
			}
		}
		return f(args...), nil
	}
}

func callPrintf(args []any) (any, error) {
	format, ok := args[0].(string)
	if !ok {
		return nil, errGiveUp
	}
	for _, a := range args[1:] {
		if !printable(a) {
			return nil, errGiveUp
		}
	}
	return fmt.Sprintf(format, args[1:]...), nil
}
