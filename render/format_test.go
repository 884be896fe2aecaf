package render

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"text/template/parse"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/retainmail/retain/campaign"
)

// formatLocales are the locales the golden files cover: every shipped one.
var formatLocales = []string{"en", "nl", "de"}

// dstInstants are moments either side of the 2026 daylight saving changes of two
// zones: the wall clock jumps from 02:00 to 03:00 in spring and repeats an hour in
// autumn.
var dstInstants = map[string][]time.Time{
	"Europe/Amsterdam": {
		time.Date(2026, 3, 29, 0, 59, 0, 0, time.UTC),  // 01:59 CET
		time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC),   // 03:00 CEST
		time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), // 02:30 CEST
		time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), // 02:30 CET
	},
	"America/New_York": {
		time.Date(2026, 3, 8, 6, 59, 0, 0, time.UTC),    // 01:59 EST
		time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC),     // 03:00 EDT
		time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC),   // 01:30 EDT
		time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC),   // 01:30 EST
		time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), // still 2026 in New York, 2027 in UTC
	},
}

// formatStep compiles testdata/format/NAME.md as the only step of a set, and
// returns it with the sample customer.
func formatStep(t *testing.T, name string) (*Renderer, *campaign.Content, *Data) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format", name+".md"))
	if err != nil {
		t.Fatal(err)
	}
	set := newSet(t, testFile{path: "campaigns/onboarding/01-" + name + ".md", text: string(b)})
	return compile(t, set), set.Campaigns[0].Steps[0].Content, SampleData(set, "https://example.com")
}

// renderBoth renders ct for d through the programs and the templates, requires the
// same email from both and no program giving up, and returns the subject and the
// text body.
func renderBoth(t *testing.T, r *Renderer, ct *campaign.Content, d *Data) string {
	t.Helper()
	sameAsTemplates(t, r, ct, d, true)
	e, err := r.RenderContent(ct, d)
	if err != nil {
		t.Fatal(err)
	}
	return "Subject: " + e.Subject + "\n" + textBody(e.Text) + "\n"
}

// TestDatesInTheCustomersLocaleAndZone renders testdata/format/step.md for a
// customer in each shipped locale and in two zones, at moments either side of
// their daylight saving changes, and compares with testdata/format/dates.LOCALE.golden.
func TestDatesInTheCustomersLocaleAndZone(t *testing.T) {
	r, ct, d := formatStep(t, "step")
	defer func(l string) { ct.Locale = l }(ct.Locale)
	for _, loc := range formatLocales {
		t.Run(loc, func(t *testing.T) {
			// The helpers write in the email's language: the step is
			// taken as written in loc, as its loc variant would be.
			ct.Locale = loc
			var b strings.Builder
			for _, zone := range []string{"Europe/Amsterdam", "America/New_York"} {
				for _, at := range dstInstants[zone] {
					d.Customer.Locale, d.Customer.Timezone = loc, zone
					d.Customer.Attributes["renews_at"] = at
					fmt.Fprintf(&b, "## %s, %s in %s\n", loc, at.Format(time.RFC3339), zone)
					b.WriteString(renderBoth(t, r, ct, d) + "\n")
				}
			}
			compareGolden(t, filepath.Join("testdata", "format", "dates."+loc+".golden"), b.String())
		})
	}
}

// TestNumbersInTheCustomersLocale renders testdata/format/numbers.md in each
// shipped locale and compares with testdata/format/numbers.LOCALE.golden.
func TestNumbersInTheCustomersLocale(t *testing.T) {
	r, ct, d := formatStep(t, "numbers")
	defer func(l string) { ct.Locale = l }(ct.Locale)
	for _, loc := range formatLocales {
		t.Run(loc, func(t *testing.T) {
			ct.Locale = loc // as for dates: the email's language
			d.Customer.Locale = loc
			d.Customer.Attributes["balance"] = 1234.5
			d.Customer.Attributes["seats"] = 1
			d.Customer.Counters = Counters{"orders": 1, "projects": 0}
			got := renderBoth(t, r, ct, d)
			compareGolden(t, filepath.Join("testdata", "format", "numbers."+loc+".golden"), got)
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	want := golden(t, path, got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestFormatExamples pins the examples of docs/templates.md.
func TestFormatExamples(t *testing.T) {
	at := time.Date(2026, 3, 2, 13, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		locale, zone, helper string
		args                 []any
		want                 string
	}{
		{"en", "UTC", "date", []any{at}, "March 2, 2026"},
		{"nl", "UTC", "date", []any{at}, "2 maart 2026"},
		{"de", "UTC", "date", []any{at}, "2. März 2026"},
		{"en", "Europe/Amsterdam", "time", []any{at}, "2:05\u00a0PM"},
		{"nl", "Europe/Amsterdam", "time", []any{at}, "14:05"},
		{"nl", "Asia/Tokyo", "date", []any{"Monday 2 January", at}, "maandag 2 maart"},
		{"de", "America/New_York", "datetime", []any{"short", at}, "02.03.26, 08:05"},
		{"en", "UTC", "number", []any{1234.5}, "1,234.5"},
		{"nl", "UTC", "number", []any{1234.5}, "1.234,5"},
		{"en", "UTC", "money", []any{1234.5, "EUR"}, "€1,234.50"},
		{"nl", "UTC", "money", []any{1234.5, "EUR"}, "€\u00a01.234,50"},
		{"de", "UTC", "money", []any{1234.5, "EUR"}, "1.234,50\u00a0€"},
		{"de", "UTC", "money", []any{"EUR", 1234.5}, "1.234,50\u00a0€"},
		{"en", "UTC", "money", []any{1234.5, "JPY"}, "¥1,234"},
		{"nl", "UTC", "money", []any{-1234.5, "USD"}, "US$\u00a0-1.234,50"},
		{"en", "UTC", "percent", []any{0.25}, "25%"},
		{"de", "UTC", "percent", []any{0.25}, "25\u00a0%"},
		{"en", "UTC", "plural", []any{1, "%d order", "%d orders"}, "1 order"},
		{"nl", "UTC", "plural", []any{1234, "%d bestelling", "%d bestellingen"}, "1.234 bestellingen"},
		{"de", "UTC", "plural", []any{"Bestellung", "Bestellungen", 0}, "Bestellungen"},
		{"nl-BE", "UTC", "date", []any{"short", at}, "02-03-2026"},
		{"de_AT", "UTC", "date", []any{"medium", at}, "02.03.2026"},
		{"fr", "UTC", "date", []any{at}, "March 2, 2026"},
		{"", "", "time", []any{at}, "1:05\u00a0PM"},
		{"en", "Nowhere/Else", "time", []any{at}, "1:05\u00a0PM"},
		{"en", "UTC", "date", []any{time.Time{}}, ""},
		{"en", "UTC", "date", []any{nil}, ""},
	} {
		d := &Data{Customer: Customer{Locale: tc.locale, Timezone: tc.zone}}
		tmpl, err := formatFunc(tc.helper)(d, tc.args...)
		prog, perr := formatFunction(tc.helper).fn(append([]any{d}, tc.args...))
		if err != nil || perr != nil {
			t.Errorf("%s %s %v: %v, %v", tc.locale, tc.helper, tc.args, err, perr)
			continue
		}
		if tmpl != tc.want || prog != tc.want {
			t.Errorf("%s %s %v = %q (program %q), want %q", tc.locale, tc.helper, tc.args, tmpl, prog, tc.want)
		}
	}
}

// TestFormatErrors: a value of the wrong kind is an error at send time (lint
// reports the ones it can see first).
func TestFormatErrors(t *testing.T) {
	d := &Data{Customer: Customer{Locale: "en"}}
	for _, tc := range []struct {
		helper string
		args   []any
		want   string
	}{
		{"date", []any{"long", "tomorrow"}, "want a time, got string"},
		{"date", []any{3, time.Now()}, "want a style (full, long, medium, short) or a Go layout, got int"},
		{"money", []any{12, "EURO"}, `unknown currency "EURO"`},
		{"money", []any{12, 13}, "want a currency code"},
		{"money", []any{"12", "EUR"}, "want an amount, got string"},
		{"number", []any{"12"}, "want a number, got string"},
		{"number", []any{12, 3.5}, "want a number of decimals from 0 to 9, got 12"},
		{"plural", []any{"x", "y", "z"}, "want a count, got string"},
		{"plural", []any{1, 2, 3}, "want a count and two forms"},
		{"plural", []any{1, "x"}, "want 3 to 3 arguments, got 2"},
	} {
		_, err := formatFunc(tc.helper)(d, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want %q", tc.helper, tc.args, err, tc.want)
		}
	}
	if _, err := formatFunc("date")(NPSLink{}, time.Now()); err == nil || !strings.Contains(err.Error(), "not the email's data") {
		t.Errorf("date with $ an NPSLink: %v", err)
	}
}

// TestBindLocaleOnceOnly: binding a tree twice, as a partial shared by two steps
// is, passes $ once.
func TestBindLocaleOnceOnly(t *testing.T) {
	trees, err := parse.Parse("t", `{{ date "long" .X }}{{ .X | money "EUR" }}{{ if (plural 1 "a" "b") }}{{ number $ }}{{ end }}{{ upper "x" }}`, "", "", funcs)
	if err != nil {
		t.Fatal(err)
	}
	bindLocale(trees["t"])
	bindLocale(trees["t"])
	want := `{{date $ "long" .X}}{{.X | money $ "EUR"}}{{if (plural $ 1 "a" "b")}}{{number $ $}}{{end}}{{upper "x"}}`
	if got := trees["t"].Root.String(); got != want {
		t.Errorf("bound tree\n got %s\nwant %s", got, want)
	}
}

// TestFormatLintProblems compiles testdata/format/lint.txtar as retain lint does and
// compares the problems with its "want" file (go test -update rewrites it).
func TestFormatLintProblems(t *testing.T) {
	path := filepath.Join("testdata", "format", "lint.txtar")
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	var want *txtar.File
	for i, f := range ar.Files {
		if f.Name == "want" {
			want = &ar.Files[i]
			continue
		}
		fsys[f.Name] = &fstest.MapFile{Data: f.Data}
	}
	got := strings.Join(lint(t, fsys), "\n") + "\n"
	if *update {
		want.Data = []byte(got)
		if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(string(want.Data), got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// benchFormatted is the paragraph the format benchmark adds to benchStep, with the
// helpers and without.
var benchFormatted = map[string]string{
	"plain":   `Your plan renews {{ .Customer.Attributes.plan }}; your balance is {{ .Customer.Attributes.balance }} after {{ .Customer.Counters.orders }} orders.`,
	"helpers": `Your plan renews {{ date "long" .Customer.Attributes.renews_at }}; your balance is {{ money .Customer.Attributes.balance "EUR" }} after {{ plural .Customer.Counters.orders "%d order" "%d orders" }}.`,
}

// BenchmarkRenderFormat renders benchStep with a paragraph that uses date, money and
// plural, and with the same paragraph printing plain fields, for a Dutch customer in
// Amsterdam: the cost of the helpers per customer.
func BenchmarkRenderFormat(b *testing.B) {
	for _, name := range []string{"plain", "helpers"} {
		b.Run(name, func(b *testing.B) {
			src := strings.Replace(benchStep, "\n## Not sure", "\n"+benchFormatted[name]+"\n\n## Not sure", 1)
			set := newSet(b, step(src))
			r := compile(b, set)
			cc := r.byCont[set.Campaigns[0].Steps[0].Content]
			for p, prog := range cc.progs {
				if prog == nil && p != int(partPreheader) {
					b.Fatalf("%s is not compiled", partNames[p])
				}
			}
			d := SampleData(set, "https://example.com")
			d.Customer.Locale, d.Customer.Timezone = "nl", "Europe/Amsterdam"
			d.Customer.Attributes["balance"] = 1234.5
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Render("onboarding/welcome", d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDateKeepsCalendarDatesAndTheEmailsLanguage: a date-only attribute
// (midnight UTC) is that day in every zone, not the day before in New York;
// an instant is converted to the customer's zone; and an English step sent to
// a German customer, which has no German variant, writes its dates in English
// like the text around them.
func TestDateKeepsCalendarDatesAndTheEmailsLanguage(t *testing.T) {
	set := newSet(t, step("---\nsubject: Renewal\n---\nRenews {{ date \"long\" .Customer.Attributes.renews_at }}.\n"))
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	d.Customer.Locale, d.Customer.Timezone = "de", "America/New_York"
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), "Renews March 14, 2026."},
		{time.Date(2026, 3, 14, 2, 0, 0, 0, time.UTC), "Renews March 13, 2026."}, // 22:00 the evening before in New York
	} {
		d.Customer.Attributes["renews_at"] = tc.at
		e, err := r.Render("onboarding/welcome", d)
		if err != nil {
			t.Fatal(err)
		}
		if got := textBody(e.Text); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.at, got, tc.want)
		}
	}
}
