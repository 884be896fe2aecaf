package render

import (
	"reflect"
	"strings"
)

// funcs are the functions steps and layouts may call, besides text/template's builtins.
var funcs = map[string]any{
	"default": dfault,
	"upper":   strings.ToUpper,
	"lower":   strings.ToLower,

	// The formatting helpers, in the customer's locale and time zone (format.go).
	"date":     formatFunc("date"),
	"time":     formatFunc("time"),
	"datetime": formatFunc("datetime"),
	"number":   formatFunc("number"),
	"percent":  formatFunc("percent"),
	"money":    formatFunc("money"),
	"plural":   formatFunc("plural"),
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
