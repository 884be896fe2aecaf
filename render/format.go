package render

import (
	"cmp"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"
	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/number"

	"github.com/retainmail/retain/campaign"
)

// Formatting in the customer's locale and time zone: date, time, datetime, number,
// money, percent and plural.
//
// Numbers, currency symbols and digits and plural rules come from golang.org/x/text
// (CLDR data). x/text has no date formatting and does not place the currency symbol
// per locale, so month and day names, date and time patterns and the currency
// pattern come from format_cldr.go: a table generated from CLDR, through the JDK's
// copy of it (testdata/format/CLDRTable.java), for exactly the locales retain ships.
// We chose that over a library such as github.com/goodsign/monday, whose names and
// patterns are hand-collected (from Wikipedia) rather than CLDR's and whose medium
// and short formats differ from what mail clients and operating systems show; a
// generated table is small, exact and adds no dependency. A customer whose locale is
// not shipped gets the closest shipped one (language.Matcher), English by default;
// to ship a locale, add it to the generator and run go generate.
//
// The helpers need the customer, which a template function is not given: after
// parsing, every call of one is rewritten to pass $, the data the template is
// executed with, first (bindLocale). The function reads Customer.Locale and
// Customer.Timezone from it. Programs and templates call the same Go function with
// the same arguments, so their output is the same.

//go:generate sh -c "java testdata/format/CLDRTable.java > format_cldr.go && gofmt -w format_cldr.go"

// cldrLocale is one shipped locale's CLDR data (format_cldr.go).
type cldrLocale struct {
	tag                string
	months, monthsAbbr [12]string
	days, daysAbbr     [7]string // Sunday first
	ampm               [2]string
	date, dateTime     [4]string // full, long, medium, short: CLDR patterns
	time               [2]string // medium, short
	money              string    // CLDR currency pattern, ¤ for the symbol
}

// locale is a shipped locale, ready to format with.
type locale struct {
	*cldrLocale
	tag     language.Tag
	printer *message.Printer // safe for concurrent use: it copies itself per call
	// moneyPos and moneyNeg are the prefix and suffix around the amount of the
	// currency pattern, ¤ standing for the symbol; moneyNeg's hold the minus.
	moneyPos, moneyNeg [2]string
	symbols            cache[string] // currency symbols by ISO code as written
}

var (
	locales      []*locale
	localeTags   []language.Tag
	localeMatch  language.Matcher
	currencyISOs []string // for did-you-mean
)

func init() {
	for i := range cldrLocales {
		cl := &cldrLocales[i]
		tag := language.MustParse(cl.tag)
		l := &locale{cldrLocale: cl, tag: tag, printer: message.NewPrinter(tag)}
		pos, neg, hasNeg := strings.Cut(cl.money, ";")
		l.moneyPos = affixes(pos)
		if hasNeg {
			l.moneyNeg = affixes(neg)
		} else {
			// CLDR: without a negative pattern, the minus goes before the positive one.
			l.moneyNeg = [2]string{"-" + l.moneyPos[0], l.moneyPos[1]}
		}
		locales = append(locales, l)
		localeTags = append(localeTags, tag)
	}
	localeMatch = language.NewMatcher(localeTags)
	for it := currency.Query(); it.Next(); {
		currencyISOs = append(currencyISOs, it.Unit().String())
	}
	slices.Sort(currencyISOs)
	currencyISOs = slices.Compact(currencyISOs)
}

// affixes splits a number pattern into what stands before and after its digits.
func affixes(pattern string) [2]string {
	first := strings.IndexAny(pattern, "#0")
	last := strings.LastIndexAny(pattern, "#0")
	if first < 0 {
		return [2]string{pattern, ""}
	}
	return [2]string{pattern[:first], pattern[last+1:]}
}

// cache holds the locales and time zones by the customer's spelling of them. It
// is bounded: past maxCached spellings, lookups are made each time.
type cache[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

const maxCached = 512

func (c *cache[V]) get(key string, load func(string) V) V {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = load(key)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]V{}
	}
	if len(c.m) < maxCached {
		c.m[key] = v
	}
	c.mu.Unlock()
	return v
}

var (
	localeCache cache[*locale]
	zoneCache   cache[*time.Location]
)

// localeFor returns the shipped locale closest to s ("nl", "nl-BE", "de_AT"),
// English when none is close.
func localeFor(s string) *locale {
	return localeCache.get(s, func(s string) *locale {
		tag, err := language.Parse(strings.ReplaceAll(s, "_", "-"))
		if err != nil {
			return locales[0]
		}
		_, i, conf := localeMatch.Match(tag)
		if conf == language.No {
			return locales[0]
		}
		return locales[i]
	})
}

// zoneFor returns the time zone named s; UTC for "" or an unknown name (NewData
// never hands one over: it falls back to the lifecycle's zone).
func zoneFor(s string) *time.Location {
	return zoneCache.get(s, func(s string) *time.Location {
		loc, err := time.LoadLocation(s)
		if err != nil {
			return time.UTC
		}
		return loc
	})
}

// formatContext returns the locale and time zone of the customer in v, the data a
// template is executed with ($).
func formatContext(v any) (*locale, *time.Location, error) {
	var c *Customer
	switch d := v.(type) {
	case *Data:
		c = &d.Customer
	case *htmlLayoutData:
		c = &d.Customer
	case *textLayoutData:
		c = &d.Customer
	case *Customer:
		c = d
	case Customer:
		c = &d
	}
	if c == nil {
		return nil, nil, fmt.Errorf("$ is %T, not the email's data: formatting needs the customer's locale (execute a partial that formats with . or .Customer)", v)
	}
	// The language the email is written in (its step file's), so that the
	// dates and numbers read like the text around them; the customer's own
	// outside a render (lang empty).
	return localeFor(cmp.Or(c.lang, c.Locale)), zoneFor(c.Timezone), nil
}

// isCalendarDate reports whether t is a date without a time of day: midnight
// UTC, as a date-only attribute ("2026-03-14") is read. date shows it as
// that day in every zone, where converting it would show the day before
// west of Greenwich.
func isCalendarDate(t time.Time) bool {
	u := t.UTC()
	return t.Location() == time.UTC && u.Hour() == 0 && u.Minute() == 0 && u.Second() == 0 && u.Nanosecond() == 0
}

// formatter is one formatting helper.
type formatter struct {
	min, max int // arguments, without $
	fn       func(l *locale, zone *time.Location, args []any) (string, error)
	// lint checks a call at compile time, args being its arguments and the piped
	// value (Node nil) last.
	lint func(c *checker, s *source, id *parse.IdentifierNode, args []lintArg)
}

var formatters = map[string]*formatter{
	"date":     {min: 1, max: 2, fn: dateHelper.format, lint: dateHelper.lint},
	"time":     {min: 1, max: 2, fn: timeOfDay.format, lint: timeOfDay.lint},
	"datetime": {min: 1, max: 2, fn: dateTimeHelper.format, lint: dateTimeHelper.lint},
	"number":   {min: 1, max: 2, fn: formatNumber(false), lint: lintNumber("number")},
	"percent":  {min: 1, max: 2, fn: formatNumber(true), lint: lintNumber("percent")},
	"money":    {min: 2, max: 2, fn: formatMoney, lint: lintMoney},
	"plural":   {min: 3, max: 3, fn: formatPlural, lint: lintPlural},
}

// call formats args: $ first, then the arguments as written, the piped value last.
func (f *formatter) call(args []any) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no data")
	}
	l, zone, err := formatContext(args[0])
	if err != nil {
		return "", err
	}
	if n := len(args) - 1; n < f.min || n > f.max {
		return "", fmt.Errorf("want %d to %d arguments, got %d", f.min, f.max, n)
	}
	return f.fn(l, zone, args[1:])
}

// formatFunc is helper name as a template function: funcs.
func formatFunc(name string) func(data any, args ...any) (string, error) {
	f := formatters[name]
	return func(data any, args ...any) (string, error) {
		return f.call(append([]any{data}, args...))
	}
}

// formatFunction is helper name as programs call it: functions.
func formatFunction(name string) function {
	f := formatters[name]
	return function{min: f.min + 1, max: f.max + 1, out: stringType, fn: func(args []any) (any, error) {
		s, err := f.call(args)
		if err != nil {
			return nil, err
		}
		return s, nil
	}}
}

// bindLocale rewrites every call of a formatting helper in trees to pass $ first.
// It may run more than once over a tree (a partial shared by several steps): the $
// it inserts sits at the position of the function's name, where no $ can be
// written, and marks the call as bound.
func bindLocale(trees ...*parse.Tree) {
	for _, t := range trees {
		if t != nil && t.Root != nil {
			bindNode(t.Root)
		}
	}
}

// bindLocale binds the formatting helpers of every template of cc and its layout
// to the data they are executed with. It must run before they are first executed.
func (cc *compiled) bindLocale() {
	var trees []*parse.Tree
	for _, t := range []*texttemplate.Template{cc.subject, cc.preheader, cc.text, cc.layout.text} {
		if t != nil {
			for _, t := range t.Templates() {
				trees = append(trees, t.Tree)
			}
		}
	}
	for _, t := range []*htmltemplate.Template{cc.html, cc.layout.html} {
		if t != nil {
			for _, t := range t.Templates() {
				trees = append(trees, t.Tree)
			}
		}
	}
	bindLocale(trees...)
}

func bindNode(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			bindNode(c)
		}
	case *parse.ActionNode:
		bindNode(n.Pipe)
	case *parse.IfNode:
		bindBranch(&n.BranchNode)
	case *parse.RangeNode:
		bindBranch(&n.BranchNode)
	case *parse.WithNode:
		bindBranch(&n.BranchNode)
	case *parse.TemplateNode:
		bindNode(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			bindNode(c)
		}
	case *parse.ChainNode:
		bindNode(n.Node)
	case *parse.CommandNode:
		for _, a := range n.Args {
			bindNode(a)
		}
		id, ok := n.Args[0].(*parse.IdentifierNode)
		if !ok || formatters[id.Ident] == nil {
			return
		}
		if len(n.Args) > 1 {
			if v, ok := n.Args[1].(*parse.VariableNode); ok && v.Pos == id.Pos && len(v.Ident) == 1 && v.Ident[0] == "$" {
				return
			}
		}
		dollar := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: id.Pos, Ident: []string{"$"}}
		n.Args = slices.Insert(n.Args, 1, parse.Node(dollar))
	}
}

func bindBranch(b *parse.BranchNode) {
	bindNode(b.Pipe)
	bindNode(b.List)
	bindNode(b.ElseList)
}

// timeHelper is date, time or datetime: its styles, each naming one of the
// locale's CLDR patterns, and the style of a call without one.
type timeHelper struct {
	name     string
	styles   []string
	def      string
	patterns func(l *locale) []string
}

var (
	dateHelper     = &timeHelper{"date", []string{"full", "long", "medium", "short"}, "long", func(l *locale) []string { return l.date[:] }}
	timeOfDay      = &timeHelper{"time", []string{"medium", "short"}, "short", func(l *locale) []string { return l.time[:] }}
	dateTimeHelper = &timeHelper{"datetime", []string{"full", "long", "medium", "short"}, "long", func(l *locale) []string { return l.dateTime[:] }}
)

// format is date, time or datetime: [STYLE] T, STYLE a style name or a Go layout.
func (h *timeHelper) format(l *locale, zone *time.Location, args []any) (string, error) {
	style := h.def
	if len(args) == 2 {
		s, ok := args[0].(string)
		if !ok {
			return "", fmt.Errorf("want a style (%s) or a Go layout, got %T", strings.Join(h.styles, ", "), args[0])
		}
		style = s
	}
	t, ok, err := timeArg(args[len(args)-1])
	if err != nil || !ok {
		return "", err
	}
	if h != dateHelper || !isCalendarDate(t) {
		t = t.In(zone)
	}
	if i := slices.Index(h.styles, style); i >= 0 {
		return l.formatCLDR(h.patterns(l)[i], t), nil
	}
	return l.formatLayout(style, t), nil
}

// timeArg reads a time; ok is false for no time (nil, the zero time), which
// formats as "".
func timeArg(v any) (t time.Time, ok bool, err error) {
	switch v := v.(type) {
	case time.Time:
		return v, !v.IsZero(), nil
	case *time.Time:
		if v == nil {
			return time.Time{}, false, nil
		}
		return *v, !v.IsZero(), nil
	case nil:
		return time.Time{}, false, nil
	}
	return time.Time{}, false, fmt.Errorf("want a time, got %T", v)
}

// formatCLDR formats t with a CLDR date pattern ("d MMMM y", "h:mm a").
func (l *locale) formatCLDR(p string, t time.Time) string {
	b := make([]byte, 0, 2*len(p)+8)
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' { // quoted literal; '' is a quote
			j := i + 1
			for j < len(p) && p[j] != '\'' {
				j++
			}
			if j == i+1 && j < len(p) {
				b = append(b, '\'')
			}
			b = append(b, p[i+1:min(j, len(p))]...)
			i = j + 1
			continue
		}
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			b = append(b, c)
			i++
			continue
		}
		n := 1
		for i+n < len(p) && p[i+n] == c {
			n++
		}
		i += n
		switch c {
		case 'y':
			if n == 2 {
				b = appendPadded(b, t.Year()%100, 2)
			} else {
				b = appendPadded(b, t.Year(), n)
			}
		case 'M', 'L':
			switch {
			case n >= 4:
				b = append(b, l.months[t.Month()-1]...)
			case n == 3:
				b = append(b, l.monthsAbbr[t.Month()-1]...)
			default:
				b = appendPadded(b, int(t.Month()), n)
			}
		case 'd':
			b = appendPadded(b, t.Day(), n)
		case 'E', 'c':
			if n >= 4 {
				b = append(b, l.days[t.Weekday()]...)
			} else {
				b = append(b, l.daysAbbr[t.Weekday()]...)
			}
		case 'H':
			b = appendPadded(b, t.Hour(), n)
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			b = appendPadded(b, h, n)
		case 'm':
			b = appendPadded(b, t.Minute(), n)
		case 's':
			b = appendPadded(b, t.Second(), n)
		case 'a':
			b = append(b, l.ampm[t.Hour()/12]...)
		default: // not in the shipped patterns
			b = append(b, p[i-n:i]...)
		}
	}
	return string(b)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// formatLayout formats t with a Go layout, month and day names, and AM/PM, in the
// locale's words. The layout is cut at each name, as time.Format reads names.
func (l *locale) formatLayout(layout string, t time.Time) string {
	var b strings.Builder
	start := 0
	for i := 0; i < len(layout); i++ {
		word, n := l.layoutName(layout[i:], t)
		if n == 0 {
			continue
		}
		b.WriteString(t.Format(layout[start:i]))
		b.WriteString(word)
		i += n - 1
		start = i + 1
	}
	b.WriteString(t.Format(layout[start:]))
	return b.String()
}

// layoutName returns the localized word for the layout element s starts with, and
// its length in s; 0 when s does not start with a name.
func (l *locale) layoutName(s string, t time.Time) (string, int) {
	lowerNext := func(k int) bool { return len(s) > k && 'a' <= s[k] && s[k] <= 'z' }
	switch {
	case strings.HasPrefix(s, "January"):
		return l.months[t.Month()-1], 7
	case strings.HasPrefix(s, "Jan") && !lowerNext(3):
		return l.monthsAbbr[t.Month()-1], 3
	case strings.HasPrefix(s, "Monday"):
		return l.days[t.Weekday()], 6
	case strings.HasPrefix(s, "Mon") && !lowerNext(3):
		return l.daysAbbr[t.Weekday()], 3
	case strings.HasPrefix(s, "PM"):
		return l.ampm[t.Hour()/12], 2
	case strings.HasPrefix(s, "pm"):
		return strings.ToLower(l.ampm[t.Hour()/12]), 2
	}
	return "", 0
}

// isLayout reports whether s holds an element of a Go time layout.
func isLayout(s string) bool {
	t := time.Date(2001, 3, 4, 5, 6, 7, 0, time.FixedZone("Q", 3600))
	return t.Format(s) != s
}

// numberArg reads a number: an int or a float64, as attributes, counters and
// constants are, or any other Go number.
func numberArg(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case float64:
		return v, true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

func isNumber(v any) bool {
	_, ok := numberArg(v)
	return ok
}

// digitsArg reads the number of decimals of number and percent.
func digitsArg(v any) (int, error) {
	d, ok := v.(int)
	if !ok || d < 0 || d > maxDigits {
		return 0, fmt.Errorf("want a number of decimals from 0 to %d, got %v", maxDigits, v)
	}
	return d, nil
}

const maxDigits = 9

// formatNumber is number and percent: [DECIMALS] X.
func formatNumber(percent bool) func(l *locale, _ *time.Location, args []any) (string, error) {
	return func(l *locale, _ *time.Location, args []any) (string, error) {
		x, ok := numberArg(args[len(args)-1])
		if !ok {
			return "", fmt.Errorf("want a number, got %T", args[len(args)-1])
		}
		var opts []number.Option
		if len(args) == 2 {
			d, err := digitsArg(args[0])
			if err != nil {
				return "", err
			}
			opts = append(opts, number.Scale(d))
		}
		if percent {
			return l.printer.Sprint(number.Percent(x, opts...)), nil
		}
		return l.printer.Sprint(number.Decimal(x, opts...)), nil
	}
}

// formatMoney is money AMOUNT "EUR", in either order (so that .X | money "EUR" works
// too): the amount in the currency's standard decimals, the symbol placed as the
// locale places it.
func formatMoney(l *locale, _ *time.Location, args []any) (string, error) {
	code, ok := args[1].(string)
	amount := args[0]
	if !ok {
		code, ok = args[0].(string)
		amount = args[1]
	}
	if !ok {
		return "", errors.New("want a currency code, as in money .Customer.Attributes.balance \"EUR\"")
	}
	x, ok := numberArg(amount)
	if !ok {
		return "", fmt.Errorf("want an amount, got %T", amount)
	}
	cur, err := currency.ParseISO(code)
	if err != nil {
		return "", fmt.Errorf("unknown currency %q", code)
	}
	scale, _ := currency.Standard.Rounding(cur)
	aff := l.moneyPos
	if x < 0 || x == 0 && math.Signbit(x) {
		aff, x = l.moneyNeg, -x
	}
	if x < 0.5*math.Pow10(-scale) {
		aff = l.moneyPos // -0.001 rounds to 0.00, which has no sign
	}
	digits := l.printer.Sprint(number.Decimal(x, number.Scale(scale)))
	symbol := l.symbols.get(code, func(string) string { return l.printer.Sprint(currency.Symbol(cur)) })
	return currencyAffix(aff[0], symbol, true) + digits + currencyAffix(aff[1], symbol, false), nil
}

// currencyAffix puts symbol in a prefix or suffix of a currency pattern, with CLDR's
// currency spacing: a symbol that meets the digits with a letter ("CHF", not "€" or
// "US$") is kept apart from them by a no-break space.
func currencyAffix(affix, symbol string, prefix bool) string {
	if !strings.Contains(affix, "¤") {
		return affix
	}
	spaced := symbol
	if prefix && strings.HasSuffix(affix, "¤") {
		if r, _ := utf8.DecodeLastRuneInString(symbol); !unicode.In(r, unicode.S, unicode.Z) {
			spaced = symbol + "\u00a0"
		}
	}
	if !prefix && strings.HasPrefix(affix, "¤") {
		if r, _ := utf8.DecodeRuneInString(symbol); !unicode.In(r, unicode.S, unicode.Z) {
			spaced = "\u00a0" + symbol
		}
	}
	return strings.Replace(affix, "¤", spaced, 1)
}

// formatPlural is plural N "one" "other": the form CLDR's cardinal rules choose
// for N in the locale, %d replaced by N formatted as number does. N may come last
// (.Customer.Counters.orders | plural "%d order" "%d orders").
func formatPlural(l *locale, _ *time.Location, args []any) (string, error) {
	n, forms := args[0], args[1:]
	if !isNumber(n) {
		n, forms = args[2], args[:2]
	}
	x, ok := numberArg(n)
	if !ok {
		return "", fmt.Errorf("want a count, got %T", n)
	}
	one, ok1 := forms[0].(string)
	other, ok2 := forms[1].(string)
	if !ok1 || !ok2 {
		return "", errors.New("want a count and two forms, as in plural .Customer.Counters.orders \"%d order\" \"%d orders\"")
	}
	form := other
	if pluralForm(l.tag, x) == plural.One {
		form = one
	}
	if strings.Contains(form, "%d") {
		form = strings.ReplaceAll(form, "%d", l.printer.Sprint(number.Decimal(x)))
	}
	return form, nil
}

// pluralForm is the CLDR cardinal plural category of x, written as number
// writes it (at most 3 decimals).
func pluralForm(tag language.Tag, x float64) plural.Form {
	s := strconv.FormatFloat(math.Abs(x), 'f', -1, 64)
	ip, fp, _ := strings.Cut(s, ".")
	if len(fp) > 3 {
		s = strconv.FormatFloat(math.Abs(x), 'f', 3, 64)
		ip, fp, _ = strings.Cut(s, ".")
		fp = strings.TrimRight(fp, "0")
	}
	i, err := strconv.Atoi(ip)
	if err != nil || len(ip) > 9 {
		i = 1_000_000 // a large number: in every shipped locale, "other"
	}
	f, _ := strconv.Atoi(cmp.Or(fp, "0"))
	return plural.Cardinal.MatchPlural(tag, i, len(fp), len(fp), f, f)
}

// lintArg is one argument of a helper call as the checker sees it: its node (nil
// for the piped value) and static type.
type lintArg struct {
	node parse.Node
	t    typ
}

// at is where to report a problem with a: the argument, or the function's name
// for the piped value.
func (a lintArg) at(s *source, id *parse.IdentifierNode) int {
	switch n := a.node.(type) {
	case nil:
		return int(id.Pos)
	case *parse.FieldNode:
		return chainStart(s, n.String(), int(n.Pos))
	case *parse.VariableNode:
		return chainStart(s, n.String(), int(n.Pos))
	}
	return int(a.node.Position())
}

// what names a for messages.
func (a lintArg) what() string {
	switch {
	case a.t.path != "" && a.t.t != nil:
		return fmt.Sprintf("%s (%s)", a.t.path, a.t.t)
	case a.node != nil && a.t.t != nil:
		return fmt.Sprintf("%s (%s)", a.node, a.t.t)
	case a.node != nil:
		return a.node.String()
	}
	return "the piped value"
}

// constString is the value of a string constant argument.
func (a lintArg) constString() (string, bool) {
	s, ok := a.node.(*parse.StringNode)
	if !ok {
		return "", false
	}
	return s.Text, true
}

// kind is the static kind of a: string, number, time, other or "" when unknown.
func (a lintArg) kind() string {
	switch n := a.node.(type) {
	case *parse.StringNode:
		return "string"
	case *parse.NumberNode:
		if n.IsInt || n.IsFloat {
			return "number"
		}
		return "other"
	case *parse.BoolNode, *parse.NilNode:
		return "other"
	}
	rt := a.t.t
	if rt == nil {
		return ""
	}
	if rt == reflect.TypeFor[time.Time]() || rt == reflect.TypeFor[*time.Time]() {
		return "time"
	}
	switch rt.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Interface:
		return ""
	}
	return "other"
}

// lintArity reports a call with too few or too many arguments.
func lintArity(c *checker, s *source, id *parse.IdentifierNode, args []lintArg, min, max int, usage string) bool {
	if len(args) < min || len(args) > max {
		c.add(s, int(id.Pos), "%s given %d arguments: write %s", id.Ident, len(args), usage)
		return false
	}
	return true
}

func (h *timeHelper) lint(c *checker, s *source, id *parse.IdentifierNode, args []lintArg) {
	usage := fmt.Sprintf(`{{ %s "%s" .Customer.Attributes.renews_at }}`, h.name, h.def)
	if !lintArity(c, s, id, args, 1, 2, usage) {
		return
	}
	t := args[len(args)-1]
	if k := t.kind(); k != "" && k != "time" {
		c.add(s, t.at(s, id), "%s needs a time, got %s", h.name, t.what())
	}
	if len(args) < 2 {
		return
	}
	st := args[0]
	if style, ok := st.constString(); ok {
		if !slices.Contains(h.styles, style) && !isLayout(style) {
			c.add(s, st.at(s, id), "%s style %q is neither a style (%s) nor a Go layout such as \"2 January 2006\"%s",
				h.name, style, strings.Join(h.styles, ", "), campaign.DidYouMean(style, h.styles))
		}
	} else if k := st.kind(); k != "" && k != "string" {
		c.add(s, st.at(s, id), "%s needs a style or a Go layout first, got %s", h.name, st.what())
	}
}

func lintNumber(name string) func(c *checker, s *source, id *parse.IdentifierNode, args []lintArg) {
	usage := fmt.Sprintf("{{ %s .Customer.Attributes.score }} or {{ %s 2 .Customer.Attributes.score }}", name, name)
	return func(c *checker, s *source, id *parse.IdentifierNode, args []lintArg) {
		if !lintArity(c, s, id, args, 1, 2, usage) {
			return
		}
		x := args[len(args)-1]
		if k := x.kind(); k != "" && k != "number" {
			c.add(s, x.at(s, id), "%s needs a number, got %s", name, x.what())
		}
		if len(args) == 2 {
			d := args[0]
			if n, ok := d.node.(*parse.NumberNode); ok {
				if !n.IsInt || n.Int64 < 0 || n.Int64 > maxDigits {
					c.add(s, d.at(s, id), "%s: the number of decimals must be a whole number from 0 to %d, got %s", name, maxDigits, n)
				}
			} else if k := d.kind(); k != "" && k != "number" {
				c.add(s, d.at(s, id), "%s: the number of decimals must be a number, got %s", name, d.what())
			}
		}
	}
}

func lintMoney(c *checker, s *source, id *parse.IdentifierNode, args []lintArg) {
	const usage = `{{ money .Customer.Attributes.balance "EUR" }}`
	if len(args) == 1 {
		if args[0].kind() == "string" {
			c.add(s, int(id.Pos), "money needs an amount besides the currency code: write %s", usage)
		} else {
			c.add(s, int(id.Pos), "money needs a currency code: write %s", usage)
		}
		return
	}
	if !lintArity(c, s, id, args, 2, 2, usage) {
		return
	}
	code, amount := args[1], args[0]
	if code.kind() != "string" && amount.kind() == "string" {
		code, amount = amount, code
	}
	switch k := code.kind(); {
	case k == "string":
	case k == "" && amount.kind() != "string":
		// unknown types: checked when the email is rendered
	default:
		c.add(s, int(id.Pos), "money needs a currency code, as in %s; got %s and %s", usage, args[0].what(), args[1].what())
		return
	}
	if k := amount.kind(); k != "" && k != "number" {
		c.add(s, amount.at(s, id), "money needs an amount, got %s", amount.what())
	}
	if iso, ok := code.constString(); ok {
		if _, err := currency.ParseISO(iso); err != nil {
			c.add(s, code.at(s, id), "unknown currency %q%s", iso, campaign.DidYouMean(strings.ToUpper(iso), currencyISOs))
		}
	}
}

func lintPlural(c *checker, s *source, id *parse.IdentifierNode, args []lintArg) {
	const usage = `{{ plural .Customer.Counters.orders "%d order" "%d orders" }}`
	if !lintArity(c, s, id, args, 3, 3, usage) {
		return
	}
	n, forms := args[0], args[1:]
	if args[2].node == nil { // piped: the count comes last
		n, forms = args[2], args[:2]
	}
	if k := n.kind(); k != "" && k != "number" {
		c.add(s, n.at(s, id), "plural needs a count first, got %s: write %s", n.what(), usage)
		return
	}
	for _, f := range forms {
		if k := f.kind(); k != "" && k != "string" {
			c.add(s, f.at(s, id), "plural needs two forms of text (one, other), got %s", f.what())
		}
	}
}
