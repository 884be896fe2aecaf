package campaign

import (
	"strings"
	"testing"
)

func TestSplitFrontMatter(t *testing.T) {
	for _, tc := range []struct {
		src, yaml, body string
		bodyLine        int
		err             error
	}{
		{"---\nsubject: Hi\n---\nBody\n", "subject: Hi\n", "Body\n", 4, nil},
		{"---\n---\n", "", "", 3, nil},
		{"\ufeff---\na: 1\n--- \n\nText", "a: 1\n", "\nText", 4, nil},
		{"---\na: 1\n---", "a: 1\n", "", 4, nil},
		{"subject: Hi\n", "", "subject: Hi\n", 1, errNoFrontMatter},
		{"---\nsubject: Hi\n", "", "", 1, errUnclosedFrontMatter},
		{"---", "", "", 1, errUnclosedFrontMatter},
	} {
		y, body, line, err := splitFrontMatter(tc.src)
		if y != tc.yaml || body != tc.body || line != tc.bodyLine || err != tc.err {
			t.Errorf("splitFrontMatter(%q) = %q, %q, %d, %v; want %q, %q, %d, %v", tc.src, y, body, line, err, tc.yaml, tc.body, tc.bodyLine, tc.err)
		}
	}
}

// FuzzStepFile feeds arbitrary step files to the loader: it must never panic, the
// body must be the tail of the file starting on BodyLine, and every problem must point
// inside the file.
func FuzzStepFile(f *testing.F) {
	f.Add("---\nsubject: Hi {{ .Customer.FirstName }}\ndelay: 2d\nat: \"09:30\"\n---\nBody\n")
	f.Add("---\nsubject: [unclosed\n---\n")
	f.Add("---\nonly_if: customer.plan == \n---\n")
	f.Add("---\nsubject: a\nsubject: b\n---\n")
	f.Add("---\n\tsubject: tab\n---\n")
	f.Add("---\nsubject: |\n  two\n  lines\nskip_if: >\n  customer.x\n---\n")
	f.Add("no front matter")
	f.Add("---\n'\r\r\n---\n")
	f.Add("---\nsubject: Hi\rsubjekt: x\u2028\u0085: [\n---\n")
	l := parseLifecycle("lifecycle.yaml", "stages: [lead]\nattributes: {plan: string}", new(Problems))
	env := newEnvs(l)
	f.Fuzz(func(t *testing.T, src string) {
		src = strings.ReplaceAll(src, "\r\n", "\n")
		var probs Problems
		st := &Step{}
		ct := loadContent("s.md", src, "", l, env, st, &probs)
		lines := strings.Count(src, "\n") + 2
		for _, p := range probs {
			if p.Line < 1 || p.Line > lines || p.Col < 1 {
				t.Errorf("problem outside the file (%d lines): %v", lines, p)
			}
		}
		if ct == nil {
			return
		}
		if !strings.HasSuffix(src, ct.Body) {
			t.Errorf("body %q is not the tail of %q", ct.Body, src)
		}
		if head := src[:len(src)-len(ct.Body)]; ct.Body != "" && strings.Count(head, "\n")+1 != ct.BodyLine {
			t.Errorf("body starts on line %d, BodyLine = %d", strings.Count(head, "\n")+1, ct.BodyLine)
		}
	})
}

// The YAML parser also ends lines at a lone CR, NEL, LS and PS; problems must still
// be reported at the file's line (counted in \n, as editors and grep do) and column.
func TestFrontMatterPositionsWithOtherLineBreaks(t *testing.T) {
	l := parseLifecycle("lifecycle.yaml", "stages: [lead]\nattributes: {plan: string}", new(Problems))
	env := newEnvs(l)
	for _, tc := range []struct{ src, want string }{
		{"---\nsubject: Hi\rsubjekt: x\n---\nBody\n", "s.md:2:13: "},
		{"---\nsubject: Hi\u2028subjekt: x\n---\nBody\n", "s.md:2:13: "},
		{"---\nsubject: Hi\u0085\u0085subjekt: x\n---\nBody\n", "s.md:2:14: "},
		{"---\n'\r\r\n---\n", "s.md:3:1: invalid YAML"},
		{"---\n\"\r\r\r\n---\n", "s.md:3:1: invalid YAML"},
		{"---\nskip_if: |\r  customer.plan ==\r  \n---\n", "s.md:2:"},
	} {
		var probs Problems
		loadContent("s.md", tc.src, "", l, env, &Step{}, &probs)
		if len(probs) == 0 || !strings.HasPrefix(probs[0].String(), tc.want) {
			t.Errorf("%q: problems %v, want the first at %q", tc.src, probs, tc.want)
		}
	}
}
