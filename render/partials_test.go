package render

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/retainmail/retain/campaign"
)

// templatesWith returns a templates directory holding the real layouts of
// ../templates and the given files of templates/partials/.
func templatesWith(t testing.TB, partials map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	layouts, err := filepath.Glob(filepath.Join("..", "templates", "*.*"))
	if err != nil || len(layouts) == 0 {
		t.Fatalf("no layouts in ../templates: %v", err)
	}
	for _, path := range layouts {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "partials"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range partials {
		if err := os.WriteFile(filepath.Join(dir, "partials", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func compileWith(t testing.TB, set *campaign.Set, dir string) *Renderer {
	t.Helper()
	r, err := Compile(set, dir)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

// testPartials are the partials of the render tests: an inline one, one of several
// blocks that includes the inline one, and an HTML one with its text twin.
var testPartials = map[string]string{
	"signature.md":    "The {{ .Sender.Name }} team\n",
	"signature.nl.md": "Het team van {{ .Sender.Name }}\n",
	"greeting.md":     "Hi {{ .Customer.FirstName | default \"there\" }} of {{ .Customer.Attributes.company | default \"your team\" }}\n",
	"tips.md": "## Tips for {{ .Customer.FirstName }}\n\n" +
		"- Press *?* for the shortcuts.\n- Read [the help]({{ .Links.Help }}).\n\n" +
		"{{ if eq .Customer.Attributes.plan \"free\" }}\nThe free plan has three projects.\n{{ end }}\n\n" +
		"{{ template \"signature\" . }}\n",
	"logo.html": `<p class="logo"><img src="https://example.com/logo.png" alt="{{ .Sender.Name }}"></p>` + "\n",
	"logo.txt":  "{{ .Sender.Name }}\n",
}

// withPartials is a step that includes each test partial; inline is the same step
// with the Markdown partials written out.
const (
	withPartials = `---
subject: Hello
---
{{ template "greeting" . }},

Welcome to Acme.

{{ template "tips" . }}

Welcome aboard,\
{{ template "signature" . }}
`
	inline = `---
subject: Hello
---
Hi {{ .Customer.FirstName | default "there" }} of {{ .Customer.Attributes.company | default "your team" }},

Welcome to Acme.

## Tips for {{ .Customer.FirstName }}

- Press *?* for the shortcuts.
- Read [the help]({{ .Links.Help }}).

{{ if eq .Customer.Attributes.plan "free" }}
The free plan has three projects.
{{ end }}

The {{ .Sender.Name }} team

Welcome aboard,\
The {{ .Sender.Name }} team
`
)

func TestStepWithPartialsRendersAsTheStepWrittenOut(t *testing.T) {
	dir := templatesWith(t, testPartials)
	setP := newSet(t, step(withPartials))
	setI := newSet(t, step(inline))
	rp, ri := compileWith(t, setP, dir), compileWith(t, setI, dir)
	for _, d := range customers(setP) {
		want, err := ri.Render("onboarding/welcome", d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rp.Render("onboarding/welcome", d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("customer %q: step with partials differs from the step written out (-inline +partials):\n%s", d.Customer.FirstName, diff)
		}
		if err := checkNesting(got.HTML); err != nil {
			t.Errorf("invalid HTML: %v", err)
		}
	}
}

func TestHTMLPartialUsesItsTextTwinInTheTextPart(t *testing.T) {
	dir := templatesWith(t, testPartials)
	set := newSet(t, step("---\nsubject: Hello\n---\nHello.\n\n{{ template \"logo\" . }}\n\nBye.\n"))
	e, err := compileWith(t, set, dir).Render("onboarding/welcome", SampleData(set, "https://example.com"))
	if err != nil {
		t.Fatal(err)
	}
	wantHTML := "<p>Hello.</p>\n<p class=\"logo\"><img src=\"https://example.com/logo.png\" alt=\"Acme Projects\"></p>\n<p>Bye.</p>"
	if got := body(t, e.HTML); got != wantHTML {
		t.Errorf("HTML body:\n%s\nwant:\n%s", got, wantHTML)
	}
	if got, want := textBody(e.Text), "Hello.\n\nAcme Projects\n\nBye."; got != want {
		t.Errorf("text body:\n%s\nwant:\n%s", got, want)
	}
}

func TestPartialVariantFollowsTheLocaleOfTheStepFile(t *testing.T) {
	dir := templatesWith(t, testPartials)
	set := newSet(t,
		testFile{path: "campaigns/onboarding/01-welcome.md", text: "---\nsubject: Hello\n---\n{{ template \"signature\" . }}\n"},
		testFile{path: "campaigns/onboarding/01-welcome.nl.md", text: "---\nsubject: Hallo\n---\n{{ template \"signature\" . }}\n"},
		testFile{path: "campaigns/onboarding/02-tips.md", text: "---\nsubject: Tips\n---\n{{ template \"signature\" . }}\n"},
	)
	r := compileWith(t, set, dir)
	d := SampleData(set, "https://example.com")
	for _, tc := range []struct{ step, locale, want string }{
		{"onboarding/welcome", "en", "The Acme Projects team"},
		{"onboarding/welcome", "nl", "Het team van Acme Projects"},
		{"onboarding/welcome", "nl-BE", "Het team van Acme Projects"},
		// No Dutch variant of the step: the email is English, its signature too.
		{"onboarding/tips", "nl", "The Acme Projects team"},
	} {
		d.Customer.Locale = tc.locale
		e, err := r.Render(tc.step, d)
		if err != nil {
			t.Fatal(err)
		}
		if got := body(t, e.HTML); got != "<p>"+tc.want+"</p>" {
			t.Errorf("%s for %s: HTML body %q, want the signature %q", tc.step, tc.locale, got, tc.want)
		}
		if got := textBody(e.Text); got != tc.want {
			t.Errorf("%s for %s: text body %q, want %q", tc.step, tc.locale, got, tc.want)
		}
	}
}

func TestCustomerDataInAPartialIsEscapedAsInAStep(t *testing.T) {
	dir := templatesWith(t, map[string]string{
		"hello.md": "Hi {{ .Customer.FirstName }}, see [{{ .Customer.FirstName }}]({{ .Links.Help }}).\n",
	})
	set := newSet(t, step("---\nsubject: Hello\n---\n{{ template \"hello\" . }}\n"))
	setI := newSet(t, step("---\nsubject: Hello\n---\nHi {{ .Customer.FirstName }}, see [{{ .Customer.FirstName }}]({{ .Links.Help }}).\n"))
	r, ri := compileWith(t, set, dir), compileWith(t, setI, dir)
	d := SampleData(set, "https://example.com")
	d.Customer.FirstName = `<script>alert("x")</script> & Co`
	d.Links["Help"] = `javascript:alert(1)`
	e, err := r.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	want := `<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co, see <a href="#ZgotmplZ">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co</a>.</p>`
	if got := body(t, e.HTML); got != want {
		t.Errorf("HTML body:\n%s\nwant:\n%s", got, want)
	}
	if got, want := textBody(e.Text), `Hi <script>alert("x")</script> & Co, see <script>alert("x")</script> & Co (javascript:alert(1)).`; got != want {
		t.Errorf("text body:\n%s\nwant:\n%s", got, want)
	}
	written, err := ri.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(written, e); diff != "" {
		t.Errorf("partial escapes otherwise than the step written out (-step +partial):\n%s", diff)
	}
}

func TestStepsWithPartialsRunAsProgramsThatMatchTheTemplates(t *testing.T) {
	dir := templatesWith(t, testPartials)
	set := newSet(t, step(withPartials))
	r := compileWith(t, set, dir)
	ct := set.Campaigns[0].Steps[0].Content
	for p, prog := range r.byCont[ct].progs {
		if prog == nil {
			t.Errorf("%s is not compiled", partNames[p])
		}
	}
	for _, s := range hostileStrings {
		for _, d := range customers(set) {
			d.Customer.FirstName = s
			d.Customer.Attributes = withDeclared(d.Customer.Attributes, r.attrs)
			d.Customer.Attributes["company"] = s
			sameAsTemplates(t, r, ct, d, true)
		}
	}
}

// TestPartialLintProblems compiles each testdata/partials/*.txtar (campaigns/ and
// templates/partials/ files, with the real layouts) and compares the problems with
// its "want" file, one per line.
func TestPartialLintProblems(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "partials", "*.txtar"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in testdata/partials: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dir := templatesWith(t, nil)
			root := filepath.Dir(dir)
			var want string
			for _, f := range ar.Files {
				if f.Name == "want" {
					want = string(f.Data)
					continue
				}
				p := filepath.Join(root, f.Name)
				if strings.HasPrefix(f.Name, "templates/") {
					p = filepath.Join(dir, strings.TrimPrefix(f.Name, "templates/"))
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Rename(dir, filepath.Join(root, "templates")); err != nil {
				t.Fatal(err)
			}
			t.Chdir(root)
			var got []string
			set, err := campaign.Load("campaigns")
			if err != nil {
				t.Fatalf("campaigns do not load: %v", err)
			}
			var probs campaign.Problems
			if _, err := Compile(set, "templates"); err != nil && !errors.As(err, &probs) {
				t.Fatal(err)
			}
			for _, p := range probs {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(strings.Split(strings.TrimSpace(want), "\n"), got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// benchSignature is the sign-off of benchStep, as a partial.
var benchSignature = map[string]string{"signature.md": "The {{ .Sender.Name }} team\n"}

func benchPartialSetup(b *testing.B, src string) (*Renderer, *Data) {
	b.Helper()
	set := newSet(b, step(src))
	r := compileWith(b, set, templatesWith(b, benchSignature))
	cc := r.byCont[set.Campaigns[0].Steps[0].Content]
	if cc.progs[partHTML] == nil || cc.progs[partText] == nil {
		b.Fatal("the body is not compiled to programs")
	}
	return r, SampleData(set, "https://example.com")
}

// BenchmarkRenderSignatureInline renders benchStep, whose last line signs it.
func BenchmarkRenderSignatureInline(b *testing.B) {
	r, d := benchPartialSetup(b, benchStep)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Render("onboarding/welcome", d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderSignaturePartial is BenchmarkRenderSignatureInline with the
// signature a partial: the per-customer cost of including one.
func BenchmarkRenderSignaturePartial(b *testing.B) {
	src := strings.Replace(benchStep, "The {{ .Sender.Name }} team\n", "{{ template \"signature\" . }}\n", 1)
	if src == benchStep {
		b.Fatal("benchStep no longer ends with the signature")
	}
	r, d := benchPartialSetup(b, src)
	parses := markdownParses.Load()
	b.ReportAllocs()
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

// TestPartialInALinkDestinationIsEscapedAsAURL: html/template escapes a partial
// included in an attribute into a copy for that context, which programs do not
// follow: the HTML part runs as a template, with the same output.
func TestPartialInALinkDestinationIsEscapedAsAURL(t *testing.T) {
	dir := templatesWith(t, map[string]string{"help.md": "{{ .Links.Help }}?from={{ .Customer.FirstName }}\n"})
	set := newSet(t, step("---\nsubject: Hello\n---\n[Help]({{ template \"help\" . }})\n"))
	r := compileWith(t, set, dir)
	ct := set.Campaigns[0].Steps[0].Content
	d := SampleData(set, "https://example.com")
	d.Customer.FirstName = `Ada "&" <b>`
	e, err := r.Render("onboarding/welcome", d)
	if err != nil {
		t.Fatal(err)
	}
	want := `<p><a href="https://help.example.com/?from=Ada%20%22%26%22%20%3cb%3e">Help</a></p>`
	if got := body(t, e.HTML); got != want {
		t.Errorf("HTML body:\n%s\nwant:\n%s", got, want)
	}
	for _, d := range customers(set) {
		sameAsTemplates(t, r, ct, d, false)
	}
}
