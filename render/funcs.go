package render

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// funcs are the functions steps and layouts may call, besides text/template's builtins.
var funcs = map[string]any{
	"default": dfault,
	"date":    date,
	"upper":   strings.ToUpper,
	"lower":   strings.ToLower,
}

// dfault returns given when it is set and not the zero value of its type, def
// otherwise; with sprig's argument order, so {{ .Customer.FirstName | default "there" }}.
func dfault(def any, given ...any) any {
	if len(given) == 0 || isEmpty(given[0]) {
		return def
	}
	return given[0]
}

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return rv.IsZero()
}

// date formats t with a Go time layout: {{ date "2 January 2006" .Customer.Attributes.renews_at }}.
// The zero time formats as "".
func date(layout string, t any) (string, error) {
	switch t := t.(type) {
	case time.Time:
		if t.IsZero() {
			return "", nil
		}
		return t.Format(layout), nil
	case *time.Time:
		if t == nil || t.IsZero() {
			return "", nil
		}
		return t.Format(layout), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("date: want a time, got %T", t)
}
