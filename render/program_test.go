package render

import (
	"bytes"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/retainmail/retain/campaign"
)

// modes returns r three ways: as it renders (programs, the template when one gives
// up), with templates only, and with programs only (a program that gives up fails).
func modes(r *Renderer) (normal, templates, programs *Renderer) {
	t, p := *r, *r
	t.templatesOnly = true
	p.programsOnly = true
	return r, &t, &p
}

// sameAsTemplates renders ct for d through the programs and through the templates
// and reports any difference. strict also requires that no program gives up.
func sameAsTemplates(t *testing.T, r *Renderer, ct *campaign.Content, d *Data, strict bool) {
	t.Helper()
	normal, templates, programs := modes(r)
	want, wantErr := templates.RenderContent(ct, d)
	got, err := normal.RenderContent(ct, d)
	if errString(err) != errString(wantErr) {
		t.Fatalf("%s: error %q, templates say %q", ct.Path, errString(err), errString(wantErr))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s: programs differ from templates (-templates +programs):\n%s", ct.Path, diff)
	}
	only, err := programs.RenderContent(ct, d)
	switch {
	case err == nil:
		if diff := cmp.Diff(want, only); diff != "" {
			t.Fatalf("%s: programs differ from templates (-templates +programs):\n%s", ct.Path, diff)
		}
	case wantErr == nil && strict:
		t.Fatalf("%s: a program gave up: %v", ct.Path, err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// customers are the data the differential tests render with: the sample, an empty
// customer and a hostile one.
func customers(set *campaign.Set) []*Data {
	sample := SampleData(set, "https://example.com")

	empty := SampleData(set, "https://example.com")
	empty.Customer = Customer{Email: "x@example.com"}
	empty.Sender.Address = ""
	empty.Links = NewLinks("https://example.com/u", "https://example.com/p", nil, set.Lifecycle.Links)

	hostile := SampleData(set, "https://example.com")
	evil := `<script>alert("x")</script> & 'q' +1 {{ .Customer.Email }} ` + "\x00\r\n\u2028é"
	hostile.Customer.FirstName = evil
	hostile.Customer.Name = evil
	hostile.Customer.Locale = `nl" onload="x`
	for k, v := range hostile.Customer.Attributes {
		if _, ok := v.(string); ok {
			hostile.Customer.Attributes[k] = evil
		}
	}
	hostile.Links = NewLazyLinks("javascript:alert(1)", func() string { return `data:text/html,<b>"x"</b>` },
		func(score int) string { return "https://x.test/n?s=" + strings.Repeat("<", score) }, nil)
	for k := range set.Lifecycle.Links {
		hostile.Links[k] = "https://x.test/?a=1&b=" + evil
	}
	hostile.Sender = Sender{Name: evil, Address: evil}
	return []*Data{sample, empty, hostile}
}

func TestProgramsMatchTemplatesOnExampleCampaigns(t *testing.T) {
	set, err := campaign.Load(filepath.Join("..", "campaigns"))
	if err != nil {
		t.Fatalf("example campaigns do not load (run retain lint ../campaigns): %v", err)
	}
	r := compile(t, set)
	n := 0
	for _, c := range set.Campaigns {
		for _, st := range c.Steps {
			for _, ct := range append([]*campaign.Content{st.Content}, values(st.Variants)...) {
				cc := r.byCont[ct]
				for p, prog := range cc.progs {
					if prog == nil && (p != int(partPreheader) || cc.preheader != nil) {
						t.Errorf("%s: %s is not compiled", ct.Path, partNames[p])
					}
				}
				for _, d := range customers(set) {
					sameAsTemplates(t, r, ct, d, true)
				}
				n++
			}
		}
	}
	if n < 20 {
		t.Errorf("compared %d step files, want all of ../campaigns", n)
	}
}

func TestProgramsMatchTemplatesOnTestdata(t *testing.T) {
	paths, err := filepath.Glob("testdata/steps/*.md")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no steps in testdata/steps: %v", err)
	}
	paths = append(paths, "testdata/fuzz-step.md")
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		set := newSet(t, step(string(b)))
		r := compile(t, set)
		ct := set.Campaigns[0].Steps[0].Content
		for p, prog := range r.byCont[ct].progs {
			if prog == nil {
				t.Errorf("%s: %s is not compiled", path, partNames[p])
			}
		}
		for _, d := range customers(set) {
			for _, trial := range []bool{true, false} {
				d.Customer.Attributes = withDeclared(d.Customer.Attributes, r.attrs)
				d.Customer.Attributes["trial"] = trial
				sameAsTemplates(t, r, ct, d, true)
			}
		}
	}
}

func TestUnsupportedStepFallsBackToTemplates(t *testing.T) {
	set := newSet(t, step(`---
subject: 'Hi {{ .Customer.FirstName }}'
---
Initial: {{ slice .Customer.FirstName 0 1 }}.
`))
	r := compile(t, set)
	ct := set.Campaigns[0].Steps[0].Content
	cc := r.byCont[ct]
	if cc.progs[partHTML] != nil || cc.progs[partText] != nil {
		t.Errorf("a body calling slice was compiled")
	}
	if cc.progs[partSubject] == nil {
		t.Errorf("the subject was not compiled")
	}
	e, err := r.Render("onboarding/welcome", SampleData(set, "https://example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.HTML, "<p>Initial: A.</p>") || textBody(e.Text) != "Initial: A." {
		t.Errorf("got HTML body %q, text %q", body(t, e.HTML), textBody(e.Text))
	}
	for _, d := range customers(set) {
		sameAsTemplates(t, r, ct, d, false)
	}
}

func TestLayoutWithScriptFallsBackToTemplates(t *testing.T) {
	dir := t.TempDir()
	html := "<html><head><script>var name = {{ .Customer.FirstName }};</script></head>\n<body>{{ .Content }}\n<a href=\"{{ .Links.Unsubscribe }}\">x</a></body></html>\n"
	for name, text := range map[string]string{
		"default.html": html,
		"default.txt":  "{{ .Content }}\n{{ .Links.Unsubscribe }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set := newSet(t, step("---\nsubject: Hi\n---\nHello {{ .Customer.FirstName }}.\n"))
	r, err := Compile(set, dir)
	if err != nil {
		t.Fatal(err)
	}
	ct := set.Campaigns[0].Steps[0].Content
	cc := r.byCont[ct]
	if cc.progs[partLayoutHTML] != nil {
		t.Errorf("a layout with a JS context was compiled")
	}
	if cc.progs[partHTML] == nil || cc.progs[partLayoutText] == nil {
		t.Errorf("the body or the text layout was not compiled")
	}
	d := SampleData(set, "https://example.com")
	d.Customer.FirstName = `</script>"`
	e, err := r.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	if want := `var name = "\u003c/script\u003e\"";`; !strings.Contains(e.HTML, want) {
		t.Errorf("HTML lacks %s:\n%s", want, e.HTML)
	}
	for _, d := range customers(set) {
		sameAsTemplates(t, r, ct, d, false)
	}
}

func TestProgramGivesUpWhereTemplatesFail(t *testing.T) {
	set := newSet(t, step(`---
subject: Hi
---
{{ if eq .Customer.Attributes.plan "free" }}Free{{ end }} [go]({{ .Links.Dashboard }}) {{ .Customer.Attributes.company }}
`))
	r := compile(t, set)
	ct := set.Campaigns[0].Steps[0].Content
	_, _, programs := modes(r)
	for _, tc := range []struct {
		name    string
		change  func(d *Data)
		wantErr string // "" if the templates render it
	}{
		{"plan of another type", func(d *Data) { d.Customer.Attributes["plan"] = 42 }, "incompatible types for comparison"},
		{"missing link", func(d *Data) { delete(d.Links, "Dashboard") }, `map has no entry for key "Dashboard"`},
		{"attribute of an unknown type", func(d *Data) { d.Customer.Attributes["company"] = []string{"a", "b"} }, ""},
		{"nil attribute", func(d *Data) { d.Customer.Attributes["company"] = nil }, ""},
		{"nil links", func(d *Data) { d.Links = nil }, `map has no entry for key "Dashboard"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := SampleData(set, "https://example.com")
			tc.change(d)
			sameAsTemplates(t, r, ct, d, false)
			_, err := r.RenderContent(ct, d)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if _, err := programs.RenderContent(ct, d); err == nil {
				t.Errorf("the program did not give up")
			}
		})
	}
}

// escapeContexts put a value in each context of HTML whose escaper programs
// implement.
var escapeContexts = []string{
	`<p>{{ .Customer.FirstName }}</p>`,
	`<a href="{{ .Customer.FirstName }}">x</a>`,
	`<a href='{{ .Customer.FirstName }}'>x</a>`,
	`<a href={{ .Customer.FirstName }}>x</a>`,
	`<a href="/search?q={{ .Customer.FirstName }}&amp;x={{ .Customer.Name }}">x</a>`,
	`<a href="https://x.test/{{ .Customer.FirstName }}#{{ .Customer.Name }}">x</a>`,
	`<a title="{{ .Customer.FirstName }}">x</a>`,
	`<a title={{ .Customer.FirstName }}>x</a>`,
	`<title>{{ .Customer.FirstName }}</title>`,
	`<textarea>{{ .Customer.FirstName }}</textarea>`,
	`<img srcset="{{ .Customer.FirstName }}">`,
	`<img srcset="{{ .Customer.FirstName }} 2x, /b.png 1x">`,
	`<p>{{ printf "%s|%q" .Customer.FirstName .Customer.Name }} {{ .Customer.FirstName | upper }}</p>`,
	`<!-- {{ .Customer.FirstName }} --><p>{{ len .Customer.FirstName }}</p>`,
	`<a href="{{ .Links.Help }}" title="{{ index .Links "Help" }}">{{ .Links.Help }}</a>`,
}

// layoutContexts put template.HTML content where html/template lets it through.
var layoutContexts = []string{
	`<div>{{ .Content }}</div>`,
	`<title>{{ .Content }}</title>`,
	`<a href="{{ .Content }}">x</a>`,
}

// sameAsHTMLTemplate executes src as html/template and as a program with data and
// reports any difference. The program must compile and not give up.
func sameAsHTMLTemplate(t *testing.T, src string, data any) {
	t.Helper()
	tmpl := htmltemplate.Must(htmltemplate.New("t").Funcs(funcs).Option("missingkey=error").Parse(src))
	var want bytes.Buffer
	wantErr := tmpl.Execute(&want, data)
	if wantErr != nil {
		t.Fatalf("%s: template: %v", src, wantErr)
	}
	p, err := newProgram(tmpl.Tree, reflect.TypeOf(data), true)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	var got bytes.Buffer
	if err := p.run(&got, data); err != nil {
		t.Fatalf("%s: program gave up: %v", src, err)
	}
	if got.String() != want.String() {
		t.Fatalf("%s:\nprogram  %q\ntemplate %q", src, got.String(), want.String())
	}
}

var hostileStrings = []string{
	"", "Ada", `<script>alert(1)</script>`, `"quoted" & 'single' +plus`, "javascript:alert(1)",
	"JavaScript:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", "mailto:a@b.test", "https://x.test/a b?c=d&e=f#g",
	"//evil.test/x", "/rel/path?x=%41%zz%", "{{ .Customer.Email }}", "\x00NUL\r\nCRLF\t", "ünïcødé \u2028 \ufdd0 \uffff", "\xff\xfe bad utf8",
	"a.png 1x, javascript:x 2x", " a.png  , b.png 100w", "`=<>", "&amp; &lt;",
}

func TestEscapersMatchHTMLTemplate(t *testing.T) {
	for _, s := range hostileStrings {
		for _, src := range escapeContexts {
			d := &Data{Customer: Customer{FirstName: s, Name: s + "2"}, Links: Links{"Help": s}}
			sameAsHTMLTemplate(t, src, d)
		}
		for _, src := range layoutContexts {
			sameAsHTMLTemplate(t, src, &htmlLayoutData{Content: htmltemplate.HTML(s)})
		}
	}
}

// fuzzRenderer is compiled once for the fuzz target: the fuzz step and the testdata
// steps, with the real layouts.
func fuzzRenderer(t testing.TB) (*Renderer, *campaign.Set) {
	files := []testFile{}
	paths, _ := filepath.Glob("testdata/steps/*.md")
	paths = append(paths, "testdata/fuzz-step.md", "testdata/fuzz-event-step.md")
	for i, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(path), ".md")
		files = append(files, testFile{path: filepath.Join("campaigns", "onboarding", string(rune('1'+i))+"-"+name+".md"), text: string(b)})
	}
	set := newSet(t, files...)
	// The trigger event's data (.Event.Data) and a step's own link, which
	// fuzz-event-step.md uses.
	set.Campaigns[0].EventData = map[string]campaign.AttrType{"product": campaign.AttrString, "total": campaign.AttrFloat}
	set.Campaigns[0].Steps[len(set.Campaigns[0].Steps)-1].Links = map[string]string{"guide": "https://help.example.com/guide?x=1"}
	return compile(t, set), set
}

// FuzzCompiledMatchesTemplate renders every test step for a customer built from the
// fuzz input through the programs and through the templates: the emails must be
// identical, or both fail with the same error. The escaper contexts must match too.
func FuzzCompiledMatchesTemplate(f *testing.F) {
	for _, s := range hostileStrings {
		f.Add(s, "Acme & Co", "https://app.example.com/?a=1&b=2", "team", 3, uint8(0))
	}
	f.Add("Ada", "<b>", "javascript:alert(1)", "free", 0, uint8(1))
	f.Add("", "", "", "", -1, uint8(0xff))
	f.Add(`"'`, "{{", "data:x", "business", 12, uint8(0x2a))
	r, set := fuzzRenderer(f)
	f.Fuzz(func(t *testing.T, first, company, link, plan string, seats int, variant uint8) {
		for _, src := range escapeContexts {
			sameAsHTMLTemplate(t, src, &Data{Customer: Customer{FirstName: first, Name: company}, Links: Links{"Help": link}})
		}
		for _, src := range layoutContexts[:2] {
			sameAsHTMLTemplate(t, src, &htmlLayoutData{Content: htmltemplate.HTML(first)})
		}

		d := SampleData(set, "https://example.com")
		d.Customer.FirstName = first
		d.Customer.Name = first + " " + company
		d.Customer.Email = company + "@example.com"
		d.Sender.Name = company
		a := d.Customer.Attributes
		a["company"], a["plan"], a["avatar_url"], a["seats"] = company, plan, link, seats
		a["trial"] = variant&1 != 0
		// The formatting helpers (testdata/steps/format.md): the customer's locale
		// and zone, spelled as customers spell them or not at all.
		d.Customer.Locale = []string{"en", "nl", "de", "de_AT", plan}[uint(seats)%5]
		d.Customer.Timezone = []string{"Europe/Amsterdam", "America/New_York", "", company}[uint(len(first))%4]
		a["balance"] = float64(seats) / 7
		d.Customer.Counters["orders"] = seats
		if variant&16 != 0 {
			delete(d.Customer.Counters, "projects") // a counter NewData would have filled in
		}
		d.Links["Dashboard"] = link
		d.Links["Help"] = link + "?help"
		if variant&2 != 0 {
			a["plan"] = seats // a type the templates compare with "free" as an error
		}
		if variant&4 != 0 {
			delete(d.Links, "Help") // a missing link
		}
		if variant&8 != 0 {
			d.Customer.Attributes = nil // declared attributes render as zero values
		}
		if variant&16 != 0 {
			a["seats"] = plan // a string where an int is declared
		}
		if seats%2 != 0 {
			// A lazy preference link, made when a template reads it.
			d.Links[LinkPreferences] = &lazy{make: func() any { return link + "?prefs" }}
		}
		if variant&32 != 0 {
			d.Links = NewLinks(link, link, nil, nil) // no NPS scores, no fixed links
		}
		if variant&64 != 0 {
			d.Sender.Address = ""
			a["renews_at"] = time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
		}
		if variant&128 != 0 {
			a["company"] = nil
		}
		// The event that started the enrollment: its data from the fuzz
		// input, a field missing, of another type, or no data at all.
		d.Event = Event{Name: plan, At: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(seats) * time.Hour),
			Data: EventData{"product": first + company, "total": float64(seats) * 12.5}}
		switch variant >> 5 {
		case 1:
			delete(d.Event.Data, "product")
		case 2:
			d.Event.Data["total"] = plan
		case 3:
			d.Event.Data = nil
		}
		for _, c := range set.Campaigns {
			for _, st := range c.Steps {
				sameAsTemplates(t, r, st.Content, d, false)
			}
		}
	})
}

// finishTextReference is finishText as first written, with strings.Lines and
// cutsets: the faster one must tidy exactly as it did.
func finishTextReference(s string) string {
	var b strings.Builder
	prev := ""
	blank := 0
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		if line != "-- " {
			line = strings.TrimRight(line, " \t")
		}
		if rest, ok := strings.CutPrefix(line, underline); ok {
			line = strings.Repeat(rest, max(3, len([]rune(prev))))
		}
		if line == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
			if blank > 0 {
				b.WriteString("\n")
			}
		}
		blank = 0
		b.WriteString(line)
		prev = line
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

func FuzzFinishText(f *testing.F) {
	for _, s := range []string{
		"", "\n", "a", "a\n\n\n b \t\r\n-- \n--  \r\r\n\tx", "Title é\n" + underline + "=\n\ntext \r \n",
		underline + "-", "\xff\xfe\n" + underline + "~\n", "a\r\n\r\n\r\nb\n \n\t\nc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := finishText([]byte(s)), finishTextReference(s); got != want {
			t.Errorf("finishText(%q) = %q, want %q", s, got, want)
		}
	})
}
