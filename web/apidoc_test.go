package web

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docExample is one curl example of docs/api.md and the answer documented
// after it.
type docExample struct {
	line              int // of the curl command, for messages
	method, url, body string
	header            http.Header
	status            int
	answer            map[string]any // nil when the answer has no JSON body
}

// fence is a fenced code block of a Markdown file: its info string and text.
var fence = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```\n")

// docExamples reads every ```sh block of md that runs curl, with the ```http
// block that follows it: "HTTP/1.1 <status> <text>", then the JSON answer.
func docExamples(t *testing.T, md string) []docExample {
	t.Helper()
	blocks := fence.FindAllStringSubmatchIndex(md, -1)
	var out []docExample
	for i, b := range blocks {
		info, text := md[b[2]:b[3]], md[b[4]:b[5]]
		if info != "sh" || !strings.HasPrefix(text, "curl ") {
			continue
		}
		line := strings.Count(md[:b[0]], "\n") + 1
		ex := curlRequest(t, line, text)
		if i+1 >= len(blocks) || md[blocks[i+1][2]:blocks[i+1][3]] != "http" {
			t.Fatalf("docs/api.md:%d: the curl example is not followed by a ```http block with its answer", line)
		}
		status, body, _ := strings.Cut(md[blocks[i+1][4]:blocks[i+1][5]], "\n")
		f := strings.Fields(status)
		if len(f) < 3 || f[0] != "HTTP/1.1" {
			t.Fatalf("docs/api.md:%d: answer starts %q, want HTTP/1.1 <status> <text>", line, status)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || http.StatusText(n) != strings.Join(f[2:], " ") {
			t.Fatalf("docs/api.md:%d: answer status %q is not HTTP/1.1 %d %s", line, status, n, http.StatusText(n))
		}
		ex.status = n
		if strings.TrimSpace(body) != "" {
			if err := json.Unmarshal([]byte(body), &ex.answer); err != nil {
				t.Fatalf("docs/api.md:%d: documented answer is not JSON: %v", line, err)
			}
		}
		out = append(out, ex)
	}
	return out
}

// curlRequest parses a curl command as a POSIX shell splits it (quotes,
// backslash-newline), with $RETAIN_URL and $RETAIN_API_TOKEN expanded outside
// single quotes. It knows -X, -H, -d and curl's output flags (-s, -S).
func curlRequest(t *testing.T, line int, cmd string) docExample {
	t.Helper()
	words := shellWords(t, line, cmd)
	ex := docExample{line: line, method: http.MethodGet, header: http.Header{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		arg := func() string {
			if i+1 >= len(words) {
				t.Fatalf("docs/api.md:%d: %s needs an argument", line, w)
			}
			i++
			return words[i]
		}
		switch {
		case w == "-X":
			ex.method = arg()
		case w == "-H":
			k, v, ok := strings.Cut(arg(), ":")
			if !ok {
				t.Fatalf("docs/api.md:%d: header %q has no colon", line, words[i])
			}
			ex.header.Add(k, strings.TrimSpace(v))
		case w == "-d" || w == "--data":
			ex.body = arg()
			if ex.method == http.MethodGet {
				ex.method = http.MethodPost
			}
		case w == "-s" || w == "-S" || w == "-sS":
		case strings.HasPrefix(w, "-"):
			t.Fatalf("docs/api.md:%d: curl option %s is not one the test knows", line, w)
		default:
			if ex.url != "" {
				t.Fatalf("docs/api.md:%d: two URLs, %q and %q", line, ex.url, w)
			}
			ex.url = w
		}
	}
	return ex
}

// docEnv is what the examples' variables stand for in the test.
var docEnv = map[string]string{"RETAIN_URL": "", "RETAIN_API_TOKEN": testToken}

func shellWords(t *testing.T, line int, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in := false // a word has started
	expand := func(rest string) (string, int) {
		for name, val := range docEnv {
			if strings.HasPrefix(rest, "$"+name) {
				return val, len(name) + 1
			}
		}
		t.Fatalf("docs/api.md:%d: unknown variable in %q", line, rest[:min(len(rest), 20)])
		return "", 0
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i += 2
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words, in = append(words, w.String()), false
				w.Reset()
			}
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				t.Fatalf("docs/api.md:%d: unclosed '", line)
			}
			w.WriteString(s[i+1 : i+1+end])
			in, i = true, i+end+2
		case c == '"':
			i++
			for i < len(s) && s[i] != '"' {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
					w.WriteByte(s[i+1])
					i += 2
				case s[i] == '$':
					v, n := expand(s[i:])
					w.WriteString(v)
					i += n
				default:
					w.WriteByte(s[i])
					i++
				}
			}
			if i >= len(s) {
				t.Fatalf("docs/api.md:%d: unclosed \"", line)
			}
			in, i = true, i+1
		case c == '$':
			v, n := expand(s[i:])
			w.WriteString(v)
			in, i = true, i+n
		default:
			w.WriteByte(c)
			in, i = true, i+1
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestAPIDocExamplesAnswerAsDocumented runs every curl example of docs/api.md,
// in order, against retain web on the test Redis, and checks the documented
// status; and, of the documented answer, an error's "error" and "field"
// exactly, and every top-level key of any other.
func TestAPIDocExamplesAnswerAsDocumented(t *testing.T) {
	src, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t)
	examples := docExamples(t, string(src))
	if len(examples) < 10 {
		t.Fatalf("docs/api.md has %d curl examples; every route has at least one", len(examples))
	}
	routes := map[string]bool{}
	for _, ex := range examples {
		name := fmt.Sprintf("docs/api.md:%d: %s %s", ex.line, ex.method, ex.url)
		path, ok := strings.CutPrefix(ex.url, "/")
		if !ok {
			t.Fatalf("%s: the URL must start with $RETAIN_URL/", name)
		}
		resp, body := b.do(t, ex.method, "/"+path, ex.body, func(r *http.Request) {
			r.Header = ex.header.Clone()
		})
		if resp.StatusCode != ex.status {
			t.Errorf("%s: %d %s; documented %d", name, resp.StatusCode, body, ex.status)
			continue
		}
		routes[ex.method+" "+routeOf(path)] = true
		if ex.answer == nil {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Errorf("%s: answer %q is not a JSON object", name, body)
			continue
		}
		if _, isErr := ex.answer["error"]; isErr {
			if got["error"] != ex.answer["error"] || got["field"] != ex.answer["field"] {
				t.Errorf("%s: answer %s; documented error %q on field %v", name, body, ex.answer["error"], ex.answer["field"])
			}
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(ex.answer)) {
			if _, ok := got[k]; !ok {
				t.Errorf("%s: documented key %q is not in the answer %s", name, k, body)
			}
		}
	}
	for _, r := range []string{"POST /api/events", "PUT /api/customers/{id}", "GET /api/customers/{id}", "GET /api/customers/{id}/timeline",
		"GET /api/customers", "GET /api/customers/{id}/emails",
		"PUT /api/customers/{id}/subscription", "GET /api/customers/{id}/consent",
		"GET /api/suppressions", "GET /api/suppressions/{email}", "PUT /api/suppressions/{email}", "DELETE /api/suppressions/{email}", "POST /api/suppressions/import"} {
		if !routes[r] {
			t.Errorf("docs/api.md has no example of %s that answers as documented", r)
		}
	}
}

// routeOf is the route pattern of an API path ("api/customers/c1/timeline?x").
func routeOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	if len(parts) >= 3 && parts[1] == "customers" {
		parts[2] = "{id}"
	}
	if len(parts) >= 3 && parts[1] == "suppressions" && parts[2] != "import" {
		parts[2] = "{email}"
	}
	return "/" + strings.Join(parts, "/")
}
