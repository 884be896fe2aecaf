package render

import (
	"errors"
	"os"
	"path/filepath"
	stdregexp "regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/retainmail/retain/campaign"
)

// problems compiles files against layoutsDir and returns the problems as strings.
func problems(t *testing.T, layoutsDir string, files ...testFile) []string {
	t.Helper()
	_, err := Compile(newSet(t, files...), layoutsDir)
	if err == nil {
		return nil
	}
	var probs campaign.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Compile error %T is not campaign.Problems: %v", err, err)
	}
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = p.String()
	}
	return out
}

func TestCompileProblems(t *testing.T) {
	const path = "campaigns/onboarding/01-welcome.md"
	for _, tc := range []struct {
		name string
		file string
		want []string
	}{
		{
			name: "unknown field with suggestion",
			file: "---\nsubject: Hi\n---\nHi {{ .Customer.Frist }},\n",
			want: []string{path + ":4:16: unknown field \"Frist\" in .Customer (did you mean \"FirstName\"?)"},
		},
		{
			name: "unknown top-level field",
			file: "---\nsubject: Hi\n---\n\nHi {{ .Custmer.FirstName }}\n",
			want: []string{path + ":5:7: unknown field \"Custmer\" (did you mean \"Customer\"?)"},
		},
		{
			name: "unknown field inside with",
			file: "---\nsubject: Hi\n---\n{{ with .Customer }}\n{{ .Emial }}\n{{ end }}\n",
			want: []string{path + ":5:4: unknown field \"Emial\" in .Customer (did you mean \"Email\"?)"},
		},
		{
			name: "unknown field inside range over NPS",
			file: "---\nsubject: Hi\n---\n{{ range .Links.NPS }}[{{ .Scor }}]({{ $.Links.Dashbord }}) {{ end }}\n",
			want: []string{
				path + ":4:27: unknown field \"Scor\" in an element of .Links.NPS (did you mean \"Score\"?)",
				path + ":4:47: unknown link \"Dashbord\" in .Links (did you mean \"Dashboard\"?)",
			},
		},
		{
			name: "undeclared attribute",
			file: "---\nsubject: Hi\n---\n{{ .Customer.Attributes.plann }} {{ .Customer.Attributes.shoe_size }}\n",
			want: []string{
				path + ":4:24: unknown attribute \"plann\" in .Customer.Attributes (did you mean \"plan\"?)",
				path + ":4:57: unknown attribute \"shoe_size\" in .Customer.Attributes (declare it under attributes in lifecycle.yaml)",
			},
		},
		{
			name: "field of a string",
			file: "---\nsubject: Hi\n---\n{{ .Customer.Email.Domain }}\n",
			want: []string{path + ":4:19: .Customer.Email has type string, which has no field \"Domain\""},
		},
		{
			name: "variable field",
			file: "---\nsubject: Hi\n---\n{{ $c := .Customer }}{{ $c.Nmae }}\n",
			want: []string{path + ":4:27: unknown field \"Nmae\" in $c (did you mean \"Name\"?)"},
		},
		{
			name: "unknown field in subject",
			file: "---\nsubject: 'Hi {{ .Customer.FirstNam }}'\n---\nBody\n",
			want: []string{path + ":2:26: unknown field \"FirstNam\" in .Customer (did you mean \"FirstName\"?)"},
		},
		{
			name: "unknown function",
			file: "---\nsubject: Hi\n---\nText\n\nHi {{ .Customer.FirstName | defualt \"there\" }}\n",
			want: []string{path + ":6:29: unknown function \"defualt\" (did you mean \"default\"?)"},
		},
		{
			name: "unclosed if reported at the if",
			file: "---\nsubject: Hi\n---\nHi\n\n  {{ if .Customer.FirstName }}\nHello\n",
			want: []string{path + ":6:3: {{ if }} is never closed: add {{ end }}"},
		},
		{
			name: "end without opener",
			file: "---\nsubject: Hi\n---\nHi {{ end }}\n",
			want: []string{path + ":4:4: {{ end }} without an {{ if }}, {{ range }} or {{ with }} to close"},
		},
		{
			name: "unclosed action",
			file: "---\nsubject: Hi\n---\nHi {{ .Customer.FirstName\n",
			want: []string{path + ":4:4: unclosed action {{ .Customer.FirstName: add the closing }}"},
		},
		{
			name: "syntax error in an action",
			file: "---\nsubject: Hi\n---\nOne\n\nTwo {{ .Customer.FirstName ) }}\n",
			want: []string{path + ":6:5: unexpected right paren"},
		},
		{
			name: "unclosed if in preheader",
			file: "---\nsubject: Hi\npreheader: 'Hey {{ if .Customer.FirstName }}you'\n---\nBody\n",
			want: []string{path + ":3:17: {{ if }} is never closed: add {{ end }}"},
		},
		{
			name: "autolink around an action",
			file: "---\nsubject: Hi\n---\nGo to <{{ .Links.Dashboard }}> now.\n",
			want: []string{path + ":4:7: <{{ .Links.Dashboard }}> is not a link: Markdown autolinks cannot hold template actions; write [text]({{ .Links.Dashboard }})"},
		},
		{
			name: "range building list items on one line",
			file: "---\nsubject: Hi\n---\nScores:\n\n{{ range .Links.NPS }}- {{ .Score }} {{ end }}\n",
			want: []string{path + ":6:1: {{ range }} builds list items on one line, which Markdown reads as one item; put {{ range }} and {{ end }} on lines of their own around the item line"},
		},
		{
			name: "if inside a paragraph closed on a line of its own",
			file: "---\nsubject: Hi\n---\nHello {{ if .Customer.FirstName }}\nthere\n{{ end }}\n",
			want: []string{path + ":4:7: {{ if }} and its {{ end }} on line 6 must both stand on lines of their own (to wrap whole paragraphs or list items) or both sit inside one paragraph"},
		},
		{
			name: "if inside a paragraph spanning paragraphs",
			file: "---\nsubject: Hi\n---\nHello {{ if .Customer.FirstName }}there\n\nnext {{ end }}paragraph\n",
			want: []string{path + ":4:7: {{ if }} inside a paragraph must end in that paragraph; to wrap whole paragraphs put {{ if }} and {{ end }} on lines of their own"},
		},
		{
			name: "empty subject",
			file: "---\nsubject: '  '\n---\nBody\n",
			want: []string{path + ":2:11: empty subject: every email needs one"},
		},
		{
			name: "missing subject",
			file: "---\npreheader: x\n---\nBody\n",
			want: []string{path + ":1:1: empty subject: every email needs one"},
		},
		{
			name: "missing layout",
			file: "---\nsubject: Hi\nlayout: promo\n---\nBody\n",
			want: []string{path + ":3:9: layout \"promo\" not found: ../templates/promo.html and ../templates/promo.txt do not exist"},
		},
		{
			name: "actions in a URL query need no escaping by hand",
			file: "---\nsubject: Hi\n---\nBody\n\n[x](https://example.com/?q={{ .Customer.FirstName }}&amp;{{ \"a\" }})\n",
			want: nil,
		},
		{
			// Issue 13, defect 9: only the first of each template was named.
			name: "every unknown function",
			file: "---\nsubject: Hi {{ foo1 .Customer.FirstName }}\n---\nBody {{ foo2 \"x\" }} and {{ foo3 }} {{ foo2 }}\n",
			want: []string{
				path + ":2:16: unknown function \"foo1\"",
				path + ":4:9: unknown function \"foo2\"",
				path + ":4:28: unknown function \"foo3\"",
			},
		},
		{
			name: "execution error with sample data",
			file: "---\nsubject: Hi\n---\nBody\n\nScore {{ index .Links.NPS 20 }}\n",
			want: []string{path + ":6:9: with sample data: <index .Links.NPS 20>: error calling index: index out of range: 20"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, filepath.Join("..", "templates"), testFile{path: path, text: tc.file})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileReportsEveryProblemSorted(t *testing.T) {
	got := problems(t, filepath.Join("..", "templates"),
		testFile{"campaigns/onboarding/02-tips.md", "---\nsubject: ''\n---\n{{ .Customer.Nope }}\n"},
		testFile{"campaigns/onboarding/01-welcome.md", "---\nsubject: Hi\n---\n{{ .Links.Nope }}\n\n{{ if .Customer.Email }}\n"},
		testFile{"campaigns/onboarding/01-welcome.nl.md", "---\nsubject: Hoi {{ .Klant }}\n---\nHallo\n"},
	)
	want := []string{
		`campaigns/onboarding/01-welcome.md:6:1: {{ if }} is never closed: add {{ end }}`,
		`campaigns/onboarding/01-welcome.nl.md:2:17: unknown field "Klant"`,
		`campaigns/onboarding/02-tips.md:2:11: empty subject: every email needs one`,
		`campaigns/onboarding/02-tips.md:4:13: unknown field "Nope" in .Customer`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestLayoutProblemsAreReportedInTheLayoutFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("default.html", "<html>\n<body>\n{{ .Content }}\n<a href=\"{{ .Links.Unsubscribe }}\">x</a> {{ .Sender.Adress }}\n{{ if .Subject }}\n</body>\n")
	write("default.txt", "{{ .Content }}\n")
	got := problems(t, dir, step("---\nsubject: Hi\n---\nBody\n"))
	want := []string{
		filepath.Join(dir, "default.html") + ":5:1: {{ if }} is never closed: add {{ end }}",
		filepath.Join(dir, "default.txt") + ":1:1: layout never uses {{ .Links.Unsubscribe }}: every email needs it",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	write("default.html", "<html>\n<body>\n{{ .Content }}\n<a href=\"{{ .Links.Unsubscribe }}\">x</a> {{ .Sender.Adress }}\n</body>\n")
	write("default.txt", "{{ .Content }}\n{{ .Links.Unsubscribe }}\n")
	got = problems(t, dir, step("---\nsubject: Hi\n---\nBody\n"))
	want = []string{filepath.Join(dir, "default.html") + ":4:52: unknown field \"Adress\" in .Sender (did you mean \"Address\"?)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	write("default.html", "<html>\n<body>\n{{ .Content }}\n<a href=\"{{ .Links.Unsubscribe }}\n</body>\n")
	got = problems(t, dir, step("---\nsubject: Hi\n---\nBody\n"))
	if len(got) != 1 || !matches(`^`+filepath.Join(dir, "default.html")+`:\d+:\d+: with sample data: .*`, got[0]) {
		t.Errorf("escaping problem not reported in the layout: %q", got)
	}
}

func matches(pattern, s string) bool {
	return stdregexp.MustCompile(pattern).MatchString(s)
}
