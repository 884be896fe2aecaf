package render

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRenderGolden renders each step of testdata/steps with the sample customer and the
// real layouts and compares subject, preheader, text and HTML with testdata/golden.
func TestRenderGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/steps/*.md")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no steps in testdata/steps: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".md")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			set := newSet(t, testFile{path: "campaigns/onboarding/01-" + name + ".md", text: string(b)})
			r := compile(t, set)
			e, err := r.Render("onboarding/"+name, SampleData(set, "https://example.com"))
			if err != nil {
				t.Fatal(err)
			}
			got := "Subject: " + e.Subject + "\nPreheader: " + e.Preheader +
				"\n\n===== text =====\n" + e.Text + "\n===== html =====\n" + e.HTML
			want := golden(t, filepath.Join("testdata", "golden", name+".golden"), got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
			}
			if err := checkNesting(e.HTML); err != nil {
				t.Errorf("invalid HTML: %v", err)
			}
		})
	}
}

// body returns the HTML between the layout's content cell tags.
func body(t *testing.T, html string) string {
	t.Helper()
	start := strings.Index(html, `<td class="content"`)
	if start < 0 {
		t.Fatalf("no content cell in:\n%s", html)
	}
	start += strings.Index(html[start:], ">") + 1
	end := start + strings.Index(html[start:], "</td>")
	return strings.TrimSpace(html[start:end])
}

// textBody returns the text part above the footer.
func textBody(text string) string {
	head, _, _ := strings.Cut(text, "\n-- \n")
	return strings.TrimSpace(head)
}

var tagRE = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>`)

var voidTags = map[string]bool{"br": true, "hr": true, "img": true, "meta": true, "link": true, "input": true}

// checkNesting reports a close tag that does not match the open one, or an element
// left open: enough to see a branch that leaves a <p> or <li> dangling.
func checkNesting(html string) error {
	var stack []string
	for _, m := range tagRE.FindAllStringSubmatch(html, -1) {
		name := strings.ToLower(m[2])
		if voidTags[name] || m[3] == "/" {
			continue
		}
		if m[1] == "" {
			stack = append(stack, name)
			continue
		}
		if len(stack) == 0 || stack[len(stack)-1] != name {
			return errors.New("unexpected </" + name + "> after " + strings.Join(stack, ">"))
		}
		stack = stack[:len(stack)-1]
	}
	if len(stack) > 0 {
		return errors.New("unclosed " + strings.Join(stack, ">"))
	}
	return nil
}

func TestPlaceholders(t *testing.T) {
	set := newSet(t, step(`---
subject: Hi
---
# Hello {{ .Customer.FirstName }}

## {{ .Campaign.Name }} tips

[Open]({{ .Links.Dashboard }}) or [help]({{.Links.Help}}) or [yours]({{ .Customer.Attributes.avatar_url }} "Photo of {{ .Customer.FirstName }}").

Say "{{ .Customer.Attributes.plan | default "free" }}" _{{ .Customer.Name }}_ **{{ .Customer.Email }}**.
`))
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	d.Customer.Attributes["avatar_url"] = "https://cdn.example.com/a.png?x=1&y=2"
	e, err := r.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	want := `<h1>Hello Ada</h1>
<h2>Onboarding tips</h2>
<p><a href="https://app.example.com/">Open</a> or <a href="https://help.example.com/">help</a> or <a href="https://cdn.example.com/a.png?x=1&amp;y=2" title="Photo of Ada">yours</a>.</p>
<p>Say &quot;team&quot; <em>Ada Lovelace</em> <strong>ada@example.com</strong>.</p>`
	if diff := cmp.Diff(want, body(t, e.HTML)); diff != "" {
		t.Errorf("HTML (-want +got):\n%s", diff)
	}
	wantText := `Hello Ada
=========

Onboarding tips
---------------

Open (https://app.example.com/) or help (https://help.example.com/) or yours (https://cdn.example.com/a.png?x=1&y=2).

Say "team" Ada Lovelace ada@example.com.`
	if diff := cmp.Diff(wantText, textBody(e.Text)); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

func TestIfAroundBlocksGivesValidHTMLInBothBranches(t *testing.T) {
	set := newSet(t, step(`---
subject: Hi
---
First paragraph.

{{ if .Customer.Attributes.trial }}
Trial paragraph with [a link]({{ .Links.Help }}).

- trial item one
- trial item two
{{ else }}
Paid paragraph.
{{ end }}

- always one
  {{ if .Customer.Attributes.trial }}
- sometimes
  {{ end }}
- always two

Last paragraph.
`))
	r := compile(t, set)
	for _, tc := range []struct {
		trial    bool
		wantHTML string
		wantText string
	}{
		{
			trial: true,
			wantHTML: `<p>First paragraph.</p>
<p>Trial paragraph with <a href="https://help.example.com/">a link</a>.</p>
<ul>
<li>trial item one</li>
<li>trial item two</li>
</ul>
<ul>
<li>always one</li>
</ul>
<ul>
<li>sometimes</li>
</ul>
<ul>
<li>always two</li>
</ul>
<p>Last paragraph.</p>`,
			wantText: `First paragraph.

Trial paragraph with a link (https://help.example.com/).

- trial item one
- trial item two

- always one

- sometimes

- always two

Last paragraph.`,
		},
		{
			trial: false,
			wantHTML: `<p>First paragraph.</p>
<p>Paid paragraph.</p>
<ul>
<li>always one</li>
</ul>
<ul>
<li>always two</li>
</ul>
<p>Last paragraph.</p>`,
			wantText: `First paragraph.

Paid paragraph.

- always one

- always two

Last paragraph.`,
		},
	} {
		d := SampleData(set, "https://example.com")
		d.Customer.Attributes["trial"] = tc.trial
		e, err := r.Render("onboarding/welcome", d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.wantHTML, body(t, e.HTML)); diff != "" {
			t.Errorf("trial=%v HTML (-want +got):\n%s", tc.trial, diff)
		}
		if err := checkNesting(e.HTML); err != nil {
			t.Errorf("trial=%v: %v", tc.trial, err)
		}
		if diff := cmp.Diff(tc.wantText, textBody(e.Text)); diff != "" {
			t.Errorf("trial=%v text (-want +got):\n%s", tc.trial, diff)
		}
	}
}

func TestRangeOverListItemsOnLinesOfTheirOwn(t *testing.T) {
	set := newSet(t, step(`---
subject: Rate us
---
{{ range .Links.NPS }}
- [{{ .Score }}]({{ .URL }})
{{ end }}
`))
	r := compile(t, set)
	e, err := r.Render("onboarding/welcome", SampleData(set, "https://x.test"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(e.HTML, `<li><a href="https://x.test/nps/sample/`); got != 11 {
		t.Errorf("got %d NPS list items, want 11:\n%s", got, body(t, e.HTML))
	}
	if !strings.Contains(e.Text, "- 10 (https://x.test/nps/sample/10)") {
		t.Errorf("text part lacks the score 10 link:\n%s", e.Text)
	}
	if err := checkNesting(e.HTML); err != nil {
		t.Error(err)
	}
}

func TestHostileCustomerDataIsEscaped(t *testing.T) {
	set := newSet(t, step(`---
subject: 'Hi {{ .Customer.FirstName }}'
---
Hi {{ .Customer.FirstName }}, from {{ .Customer.Attributes.company }}.

[Your avatar]({{ .Customer.Attributes.avatar_url }})
`))
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	d.Customer.FirstName = `<script>alert(1)</script>**bold**`
	d.Customer.Attributes["company"] = `{{ .Customer.Email }} & [x](http://evil.test) <b>`
	d.Customer.Attributes["avatar_url"] = "javascript:alert(1)"
	e, err := r.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	want := `<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;**bold**, from {{ .Customer.Email }} &amp; [x](http://evil.test) &lt;b&gt;.</p>
<p><a href="#ZgotmplZ">Your avatar</a></p>`
	if diff := cmp.Diff(want, body(t, e.HTML)); diff != "" {
		t.Errorf("HTML (-want +got):\n%s", diff)
	}
	if want := "Hi <script>alert(1)</script>**bold**"; e.Subject != want {
		t.Errorf("subject = %q, want %q", e.Subject, want)
	}
	if !strings.Contains(e.HTML, "<title>Hi &lt;script&gt;alert(1)&lt;/script&gt;**bold**</title>") {
		t.Errorf("layout does not escape the subject in <title>")
	}
	wantText := "Hi <script>alert(1)</script>**bold**, from {{ .Customer.Email }} & [x](http://evil.test) <b>.\n\nYour avatar (javascript:alert(1))"
	if diff := cmp.Diff(wantText, textBody(e.Text)); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

func TestLineBreakInHeaderIsAnError(t *testing.T) {
	set := newSet(t, step(`---
subject: 'Hi {{ .Customer.FirstName }}'
preheader: 'For {{ .Customer.Attributes.company }}'
---
Body.
`))
	r := compile(t, set)
	for _, tc := range []struct {
		first, company, header string
	}{
		{"Ada\r\nBcc: all@example.com", "Acme", "subject"},
		{"Ada", "Acme\nX-Evil: 1", "preheader"},
	} {
		d := SampleData(set, "https://example.com")
		d.Customer.FirstName = tc.first
		d.Customer.Attributes["company"] = tc.company
		_, err := r.Render("onboarding/welcome", d)
		if !errors.Is(err, ErrHeaderInjection) {
			t.Fatalf("err = %v, want ErrHeaderInjection", err)
		}
		if !strings.Contains(err.Error(), tc.header+":") {
			t.Errorf("err = %q does not name the %s", err, tc.header)
		}
	}
}

func TestRenderPicksLocaleVariant(t *testing.T) {
	set := newSet(t,
		testFile{"campaigns/onboarding/01-welcome.md", "---\nsubject: Welcome\n---\nHello.\n"},
		testFile{"campaigns/onboarding/01-welcome.nl.md", "---\nsubject: Welkom\n---\nHallo.\n"},
	)
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	for locale, want := range map[string]string{"nl": "Welkom", "nl-BE": "Welkom", "en": "Welcome", "": "Welcome"} {
		d.Customer.Locale = locale
		e, err := r.Render("onboarding/welcome", d)
		if err != nil {
			t.Fatal(err)
		}
		if e.Subject != want {
			t.Errorf("locale %q: subject %q, want %q", locale, e.Subject, want)
		}
	}
	d.Customer.Locale = "en"
	e, err := r.RenderFile("campaigns/onboarding/01-welcome.nl.md", d)
	if err != nil || e.Subject != "Welkom" {
		t.Errorf("RenderFile(nl) = %v, %v; want subject Welkom", e, err)
	}
	if _, err := r.Render("onboarding/nope", d); !errors.Is(err, ErrUnknownStep) {
		t.Errorf("unknown step: err = %v, want ErrUnknownStep", err)
	}
}

func TestMissingAttributeRendersZeroValue(t *testing.T) {
	set := newSet(t, step(`---
subject: 'Plan {{ .Customer.Attributes.plan | default "free" }}'
---
{{ .Customer.Attributes.seats }} seats.
`))
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	d.Customer.Attributes = nil
	e, err := r.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "Plan free" || textBody(e.Text) != "0 seats." {
		t.Errorf("got subject %q, text %q", e.Subject, textBody(e.Text))
	}
}

func TestRenderParsesNoMarkdown(t *testing.T) {
	b, err := os.ReadFile("testdata/steps/welcome.md")
	if err != nil {
		t.Fatal(err)
	}
	set := newSet(t, step(string(b)))
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	before := markdownParses.Load()
	for range 10 {
		if _, err := r.Render("onboarding/welcome", d); err != nil {
			t.Fatal(err)
		}
	}
	if n := markdownParses.Load() - before; n != 0 {
		t.Errorf("Render parsed Markdown %d times", n)
	}
}

// TestLayoutIndentationIsNotSent: an HTML layout's indentation is dropped at
// compile time, its line breaks kept (the HTML displays the same); a layout
// with preformatted text keeps every byte.
func TestLayoutIndentationIsNotSent(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<table>\n  <tr>\n    <td>{{ .Content }}</td>\n  </tr>\n</table>\n", "<table>\n<tr>\n<td>{{ .Content }}</td>\n</tr>\n</table>\n"},
		{"<p>one\n\t\ttwo</p>", "<p>one\ntwo</p>"},
		{"<div>\n  <pre>\n  kept\n  </pre>\n</div>", "<div>\n  <pre>\n  kept\n  </pre>\n</div>"},
		{"<div style=\"white-space: pre\">\n  kept</div>", "<div style=\"white-space: pre\">\n  kept</div>"},
		{"<TEXTAREA>\n  kept</TEXTAREA>", "<TEXTAREA>\n  kept</TEXTAREA>"},
	} {
		if got := compactIndent(tc.in); got != tc.want {
			t.Errorf("compactIndent(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
