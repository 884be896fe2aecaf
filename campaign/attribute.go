package campaign

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// CoerceAttribute converts v, as decoded from JSON or CSV, to the Go type of the
// declared attribute name: string, int, float64, bool or time.Time. It reports an
// undeclared attribute or a value of the wrong type, naming the attribute.
func (l *Lifecycle) CoerceAttribute(name string, v any) (any, error) {
	t, ok := l.Attributes[name]
	if !ok {
		return nil, fmt.Errorf("attribute %q is not declared in %s%s", name, LifecycleFile, DidYouMean(name, l.AttributeNames()))
	}
	return t.Coerce("attribute "+strconv.Quote(name), v)
}

// Coerce converts v, as decoded from JSON or CSV, to the Go type of t: string,
// int, float64, bool or time.Time; what names the value in errors
// ("attribute \"plan\"", "data.total").
func (t AttrType) Coerce(what string, v any) (any, error) {
	if n, ok := v.(json.Number); ok {
		v = n.String()
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("%s must be %s, got %v (%T)", what, t.article(), v, v)
	}
	switch t {
	case AttrString:
		switch x := v.(type) {
		case string:
			return x, nil
		case float64, int, bool:
			return fmt.Sprint(x), nil
		}
	case AttrInt:
		switch x := v.(type) {
		case int:
			return x, nil
		case float64:
			if x == math.Trunc(x) {
				return int(x), nil
			}
		case string:
			if i, err := strconv.Atoi(x); err == nil {
				return i, nil
			}
		}
	case AttrFloat:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case string:
			if f, err := strconv.ParseFloat(x, 64); err == nil {
				return f, nil
			}
		}
	case AttrBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		}
	case AttrTime:
		switch x := v.(type) {
		case time.Time:
			return x, nil
		case string:
			for _, layout := range []string{time.RFC3339, time.DateTime, time.DateOnly} {
				if tm, err := time.Parse(layout, x); err == nil {
					return tm, nil
				}
			}
			return nil, fmt.Errorf("%s must be a time such as 2026-03-14T09:30:00Z or 2026-03-14, got %q", what, x)
		}
	}
	return bad()
}

// Zero is the value a declared attribute a customer lacks takes in conditions and
// templates: "", 0, 0.0, false or the zero time.
func (t AttrType) Zero() any {
	switch t {
	case AttrInt:
		return 0
	case AttrFloat:
		return 0.0
	case AttrBool:
		return false
	case AttrTime:
		return time.Time{}
	}
	return ""
}

func (t AttrType) article() string {
	switch t {
	case AttrInt:
		return "a whole number"
	case AttrFloat:
		return "a number"
	case AttrBool:
		return "true or false"
	case AttrTime:
		return "a time"
	}
	return "text"
}
