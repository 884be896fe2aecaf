package render

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// benchStep is a typical ~300-word step: headings, lists, links, a conditional block and
// a dozen placeholders.
const benchStep = `---
subject: 'Your first project, {{ .Customer.FirstName | default "there" }}'
preheader: Pick something real, due within a month
---
# Your first project, in ten minutes

Hi {{ .Customer.FirstName | default "there" }},

The quickest way to find out whether Acme fits {{ .Customer.Attributes.company | default "your team" }} is to
run one real project in it. Here's how to set one up in about ten minutes, without
reading a manual or watching a video first:

1. **Pick something due within a month.** A client deliverable, a launch, an office move.
   Small enough to finish, real enough to matter.
2. **Write down the five to ten steps** you'd otherwise keep in your head or in a
   spreadsheet. Each one becomes a task.
3. **Give every task an owner and a date.** A task without an owner is a wish, and a task
   without a date is a someday.

[Start your first project]({{ .Links.Dashboard }})

## Not sure where to begin?

Rather not start from a blank page? Our [project templates]({{ .Links.Help }}) come with
the tasks already in place for a product launch, a client onboarding, an event and a
dozen other common projects. Rename what you like, delete what you don't need, done.

{{ if eq .Customer.Attributes.plan "free" }}
On the free plan you can run three projects at once. That is plenty to find out whether
Acme works for you; when it does, the team plan lifts the limit.
{{ else }}
Your {{ .Customer.Attributes.plan }} plan has room for as many projects as you like, and
{{ .Customer.Attributes.seats }} seats for the people who do the work.
{{ end }}

A few things people tell us they wish they had known on day one:

- Press *?* anywhere to see every keyboard shortcut.
- Drag a task onto a date in the calendar view to reschedule it.
- Type *@* in a comment to bring a colleague in; they get one email, not ten.

Tomorrow you'll have a plan you can share with {{ .Customer.Attributes.company | default "your team" }}. That's where it gets
interesting: the moment other people see the same plan you do, the status meetings get
shorter and the "where are we on this?" emails stop.

If anything gets in the way, reply to this email. A person reads every answer, usually
within a working day.

The {{ .Sender.Name }} team
`

func benchSetup(b *testing.B) (*Renderer, *Data) {
	b.Helper()
	set := newSet(b, step(benchStep))
	r := compile(b, set)
	return r, SampleData(set, "https://example.com")
}

func BenchmarkRender(b *testing.B) {
	r, d := benchSetup(b)
	if words := len(strings.Fields(benchStep)); words < 280 {
		b.Fatalf("bench step has %d words, want about 300", words)
	}
	b.ReportAllocs()
	parses := markdownParses.Load()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Render("onboarding/welcome", d); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := markdownParses.Load() - parses; n != 0 {
		b.Fatalf("Render parsed Markdown %d times", n)
	}
}

func BenchmarkCompile(b *testing.B) {
	set := newSet(b, step(benchStep))
	dir := filepath.Join("..", "templates")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(set, dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderBodyHTML executes only the compiled HTML body of the step, without
// subject, layout and text part, the way Render does (its program, or its template
// if it has none): the per-customer cost of the Markdown part alone.
func BenchmarkRenderBodyHTML(b *testing.B) {
	r, d := benchSetup(b)
	cc := r.byCont[r.steps["onboarding/welcome"].Content]
	if cc.progs[partHTML] == nil {
		b.Log("the HTML body is not compiled: measuring its template")
	}
	data := *d
	data.Campaign, data.Step = cc.campaign, cc.step
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		if err := r.execute(&buf, cc, partHTML, &data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderTemplates is BenchmarkRender with every part executed as a
// template, never as its compiled program: what the programs save.
func BenchmarkRenderTemplates(b *testing.B) {
	r, d := benchSetup(b)
	r.templatesOnly = true
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Render("onboarding/welcome", d); err != nil {
			b.Fatal(err)
		}
	}
}
