package campaign

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"go.yaml.in/yaml/v3"
)

// CustomerFields are the fields every customer has in expressions, beside the
// attributes and counters declared in lifecycle.yaml.
var CustomerFields = []string{"id", "email", "first_name", "name", "locale", "timezone", "stage"}

// OptedOutField is the customer field that lists the subscription topics the
// customer opted out of, in expressions.
const OptedOutField = "opted_out"

// CompileCondition compiles src as a condition on a customer, as audience:,
// only_if: and skip_if: are compiled, for a filter that does not come from
// a campaign file (GET /api/customers?where=). The error says what is wrong
// and where in src.
func (l *Lifecycle) CompileCondition(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("the condition is empty")
	}
	env := newEnvs(l)[scopeCustomer]
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			msg := fe.Message
			if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
				msg += DidYouMean(m[1], fieldNames(env))
			}
			return nil, fmt.Errorf("column %d: %s", fe.Column+1, msg)
		}
		return nil, err
	}
	return &Expr{Source: src, Pos: Pos{1, 1}, Program: prog}, nil
}

// exprScope says which names an expression may use.
type exprScope int

const (
	// scopeCustomer: customer and now (audience, only_if, skip_if).
	scopeCustomer exprScope = iota
	// scopeEvent: customer, now and the event being handled (trigger and goal where).
	scopeEvent
)

// envs are the expr type environments of one lifecycle, compiled once per Load.
type envs [2]types.Map

func newEnvs(l *Lifecycle) envs {
	customer := types.Map{}
	for _, f := range CustomerFields {
		customer[f] = types.String
	}
	for name, t := range l.Attributes {
		customer[name] = t.exprType()
	}
	for name := range l.Counters {
		customer[name] = types.Int
	}
	// The topics the customer opted out of: '"newsletter" not in customer.opted_out'.
	customer[OptedOutField] = types.Array(types.String)
	now := types.TypeOf(time.Time{})
	base := types.Map{"customer": customer, "now": now}
	withEvent := types.Map{"customer": customer, "now": now, "event": types.Map{
		"name": types.String,
		"at":   now,
		"data": types.Map{types.Extra: types.Any},
	}}
	return envs{scopeCustomer: base, scopeEvent: withEvent}
}

func (t AttrType) exprType() types.Type {
	switch t {
	case AttrString:
		return types.String
	case AttrInt:
		return types.Int
	case AttrFloat:
		return types.Float64
	case AttrBool:
		return types.Bool
	case AttrTime:
		return types.TypeOf(time.Time{})
	}
	return types.Any
}

// expr compiles the condition in n, reporting syntax and type errors at their column.
func (d *doc) expr(n *yaml.Node, key string, env types.Map) *Expr {
	src, ok := d.str(n, key)
	if !ok {
		return nil
	}
	start := d.valuePos(n)
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		msg, pos := err.Error(), start
		var fe *file.Error
		if errors.As(err, &fe) {
			msg = fe.Message
			if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
				msg += DidYouMean(m[1], fieldNames(env))
			}
			if fe.Line > 1 {
				line, _ := d.valueStart(n)
				pos = d.at(line+fe.Line-1, fe.Column+1)
			} else {
				pos.Col += fe.Column
			}
		}
		d.probs.Add(d.path, pos, "%s: %s", key, msg)
		return nil
	}
	return &Expr{Source: src, Pos: start, Program: prog}
}

var unknownFieldRE = regexp.MustCompile(`^unknown field (\w+)$`)

// fieldNames lists the names an environment offers one level down (customer.*, event.*).
func fieldNames(env types.Map) []string {
	var out []string
	for _, v := range env {
		if m, ok := v.(types.Map); ok {
			for k := range m {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Eval runs the condition against env: a map with "customer" (map[string]any with the
// customer fields, attributes and counters), "now" (time.Time) and, for event
// conditions, "event" (name, at, data).
func (e *Expr) Eval(env map[string]any) (bool, error) {
	out, err := expr.Run(e.Program, env)
	if err != nil {
		return false, fmt.Errorf("evaluate %q: %w", e.Source, err)
	}
	b, _ := out.(bool)
	return b, nil
}
