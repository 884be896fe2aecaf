package render

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/internal/tracktest"
	"github.com/retainmail/retain/link"
)

// referenceTrackClicks is how the worker tracked clicks before Render did.
var referenceTrackClicks = tracktest.Regexps

// referenceUntracked is the worker's set of links never tracked, of links
// with every link made.
func referenceUntracked(links Links) map[string]bool {
	skip := make(map[string]bool)
	for _, k := range []string{LinkUnsubscribe, LinkPreferences} {
		if u, _ := links[k].(string); u != "" {
			skip[u] = true
		}
	}
	nps, _ := links[LinkNPS].([]NPSLink)
	for _, l := range nps {
		skip[l.URL] = true
	}
	return skip
}

// testClick is link.Signer.ClickURL, counting its calls.
type testClick struct {
	signer *link.Signer
	calls  map[string]int
}

func newTestClick(t testing.TB) *testClick {
	s, err := link.NewSigner("0123456789abcdef0123456789abcdef", "https://r.example")
	if err != nil {
		t.Fatal(err)
	}
	return &testClick{signer: s, calls: map[string]int{}}
}

func (c *testClick) click(customer, campaign, step, url string) (string, error) {
	c.calls[url]++
	return c.signer.ClickURL(customer, campaign, step, url)
}

// sameAsReference renders ct tracked, and renders it untracked with every link
// made and tracks it with the regular expressions: the emails must be equal, and
// each URL signed once.
func sameAsReference(t *testing.T, r *Renderer, st *campaign.Step, ct *campaign.Content, d *Data) {
	t.Helper()
	d = withLocale(d, ct)
	eager := *d
	eager.Links = resolveLinks(d.Links)
	want, wantErr := r.Render(st.ID, &eager)
	tc := newTestClick(t)
	got, err := r.RenderTracked(st.ID, d, tc.click)
	if errString(err) != errString(wantErr) {
		t.Fatalf("%s: error %q, untracked %q", ct.Path, errString(err), errString(wantErr))
	}
	if err != nil {
		return
	}
	ref := newTestClick(t)
	one := func(u string) (string, error) { return ref.click(d.Customer.ID, st.Campaign.ID, st.ID, u) }
	want.HTML, want.Text = referenceTrackClicks(want.HTML, want.Text, referenceUntracked(eager.Links), one)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s: tracked email differs from the reference (-reference +tracked):\n%s", ct.Path, diff)
	}
	for u, n := range tc.calls {
		if n != 1 {
			t.Errorf("%s: %s signed %d times", ct.Path, u, n)
		}
		if ref.calls[u] == 0 {
			t.Errorf("%s: %s signed, the reference did not", ct.Path, u)
		}
	}
	for u := range ref.calls {
		if tc.calls[u] == 0 {
			t.Errorf("%s: %s not signed, the reference did", ct.Path, u)
		}
	}
}

// withLocale returns d for the locale of ct, so that Render picks ct.
func withLocale(d *Data, ct *campaign.Content) *Data {
	c := *d
	if ct.Locale != "" {
		c.Customer.Locale = ct.Locale
	}
	return &c
}

func TestRenderTrackedIsRenderThenTheRegexpsOnExampleCampaigns(t *testing.T) {
	set, err := campaign.Load(filepath.Join("..", "campaigns"))
	if err != nil {
		t.Fatalf("example campaigns do not load: %v", err)
	}
	r := compile(t, set)
	normal, templates, _ := modes(r)
	for _, r := range []*Renderer{normal, templates} {
		for _, c := range set.Campaigns {
			for _, st := range c.Steps {
				for _, ct := range append([]*campaign.Content{st.Content}, values(st.Variants)...) {
					for _, d := range customers(set) {
						sameAsReference(t, r, st, ct, d)
					}
				}
			}
		}
	}
}

func TestRenderTrackedIsRenderThenTheRegexpsOnTestdata(t *testing.T) {
	r, set := fuzzRenderer(t)
	normal, templates, _ := modes(r)
	for _, r := range []*Renderer{normal, templates} {
		for _, st := range set.Campaigns[0].Steps {
			for _, d := range customers(set) {
				sameAsReference(t, r, st, st.Content, d)
			}
		}
	}
}

func TestTrackingRewritesOnlyHTTPLinksOfAnchorsAndTextParentheses(t *testing.T) {
	tr := &tracker{
		click: func(_, _, _, u string) (string, error) {
			if !link.Trackable(u) {
				return "", link.ErrNotTrackable
			}
			return "https://r.example/c/" + strings.NewReplacer("https://", "", "/", "_", "?", "Q", "&", "A").Replace(u), nil
		},
		links: NewLinks("https://r.example/u/tok", "", func(score int) string { return fmt.Sprintf("https://r.example/nps/tok?score=%d", score) }, nil),
	}
	tr.links.URL(LinkNPS) // made: the email uses the NPS links
	htmlIn := `<link href="https://fonts.example/css" rel="stylesheet">` +
		`<a href="https://shop.example/p?a=1&amp;b=2">shop</a> ` +
		`<a class="x" href='https://docs.example/'>docs</a> ` +
		`<a href="javascript:alert(1)">js</a> <a href="mailto:hi@acme.example">mail</a> <a href="#top">top</a> ` +
		`<a href="https://r.example/u/tok">unsubscribe</a> <a href="https://r.example/nps/tok?score=9">9</a>`
	textIn := "shop (https://shop.example/p?a=1&b=2), js (javascript:alert(1)), unsubscribe (https://r.example/u/tok)\n" +
		"Unsubscribe: https://r.example/u/tok\nsee https://bare.example/ too"
	wantHTML := `<link href="https://fonts.example/css" rel="stylesheet">` +
		`<a href="https://r.example/c/shop.example_pQa=1Ab=2">shop</a> ` +
		`<a class="x" href='https://r.example/c/docs.example_'>docs</a> ` +
		`<a href="javascript:alert(1)">js</a> <a href="mailto:hi@acme.example">mail</a> <a href="#top">top</a> ` +
		`<a href="https://r.example/u/tok">unsubscribe</a> <a href="https://r.example/nps/tok?score=9">9</a>`
	wantText := "shop (https://r.example/c/shop.example_pQa=1Ab=2), js (javascript:alert(1)), unsubscribe (https://r.example/u/tok)\n" +
		"Unsubscribe: https://r.example/u/tok\nsee https://bare.example/ too"
	if diff := cmp.Diff(wantHTML, tr.html([]byte(htmlIn))); diff != "" {
		t.Errorf("HTML (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantText, tr.text([]byte(textIn))); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}

// trackInputs are the pieces the fuzz target and the random test build parts of.
var trackInputs = []string{
	"<a href=\"https://a.example/x?b=1&amp;c=2\">", "<A HREF='https://b.example/'>", "<a\thref = \"http://c.example/\">",
	"<a\nclass=x href=\"https://d.example\">", "<a data-href=\"https://e.example/\" href=\"https://f.example/\">",
	"<a title=\"x href='https://g.example/'\">", "<a href=https://h.example/>", "<a href=\"", "<ab href=\"https://i.example\">",
	"<a  nohref=\"x\" HrEf=\"https://j.example/\">", "<link href=\"https://k.example/\">", "<a href=\"javascript:alert(1)\">",
	"<a href=\"https://l.example/&#34;&lt;\">", "<a\fhref=\"https://m.example/\">", "<a\vhref=\"https://n.example/\">", "<a x <a href=\"https://o.example/\">",
	"<a href=\"https://p.example/>q\">", "(https://q.example/)", "(http://r.example/a?b=c&d)", "(https://s.example/a b)", "(https:/t.example/)",
	"(httpss://u.example/)", "((https://v.example/))", "(https://)", "(https://w.example/é\xff)", "(HTTPS://x.example/)", "(http://y.example/\r)",
	"<", ">", "(", ")", "\"", "'", " ", "=", "a", "href", "https://z.example/", "\n", "\x00", "é", "\xe2\x80\xa8",
	"https://r.example/u/tok", "https://r.example/p/tok", "https://r.example/nps/tok?score=3",
}

// trackSame tracks s as the HTML and the text part with the scanners and with
// the regular expressions, and reports a difference.
func trackSame(t *testing.T, s string) {
	t.Helper()
	click := func(u string) (string, error) {
		if !strings.HasPrefix(u, "http") {
			return "", link.ErrNotTrackable
		}
		return "https://r.example/c/<" + u + ">", nil
	}
	links := NewLazyLinks("https://r.example/u/tok", func() string { return "https://r.example/p/tok" },
		func(score int) string { return fmt.Sprintf("https://r.example/nps/tok?score=%d", score) }, nil)
	links.URL(LinkPreferences)
	links.URL(LinkNPS)
	tr := &tracker{click: func(_, _, _, u string) (string, error) { return click(u) }, links: links}
	wantHTML, wantText := referenceTrackClicks(s, s, referenceUntracked(resolveLinks(links)), click)
	if got := tr.html([]byte(s)); got != wantHTML {
		t.Fatalf("HTML part %q:\n got %q\nwant %q", s, got, wantHTML)
	}
	if got := tr.text([]byte(s)); got != wantText {
		t.Fatalf("text part %q:\n got %q\nwant %q", s, got, wantText)
	}
}

func TestTrackingMatchesRegexpsOnRandomParts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(trackInputs[r.IntN(len(trackInputs))])
		}
		trackSame(t, b.String())
	}
}

func FuzzTrackMatchesRegexps(f *testing.F) {
	for _, s := range trackInputs {
		f.Add(s)
	}
	f.Add(strings.Join(trackInputs, ""))
	f.Fuzz(func(t *testing.T, s string) { trackSame(t, s) })
}

func TestNPSLinksAreMadeOnlyForStepsThatUseThem(t *testing.T) {
	set, err := campaign.Load(filepath.Join("..", "campaigns"))
	if err != nil {
		t.Fatal(err)
	}
	r := compile(t, set)
	normal, templates, _ := modes(r)
	for _, tc := range []struct {
		step          string
		nps, prefs    int64
		templatesMake bool // a template is executed with every link made
	}{
		{"onboarding/welcome", 0, 1, true},
		{"nps/survey", 11, 1, true},
	} {
		for name, r := range map[string]*Renderer{"programs": normal, "templates": templates} {
			var nps, prefs atomic.Int64
			d := SampleData(set, "https://example.com")
			d.Links = NewLazyLinks("https://r.example/u/tok", func() string { prefs.Add(1); return "https://r.example/p/tok" },
				func(score int) string { nps.Add(1); return fmt.Sprintf("https://r.example/nps/%d", score) }, set.Lifecycle.Links)
			if _, err := r.RenderTracked(tc.step, d, newTestClick(t).click); err != nil {
				t.Fatal(err)
			}
			wantNPS := tc.nps
			if name == "templates" {
				wantNPS = 11
			}
			if nps.Load() != wantNPS || prefs.Load() != tc.prefs {
				t.Errorf("%s, %s: %d NPS links and %d preference links made, want %d and %d", tc.step, name, nps.Load(), prefs.Load(), wantNPS, tc.prefs)
			}
		}
	}
}

func TestLazyLinksRenderInEveryUseOfLinks(t *testing.T) {
	// Each way a template reaches .Links, through a program and through the
	// template (slice is not compiled).
	for _, body := range []string{
		"{{ range .Links.NPS }}[{{ .Score }}]({{ .URL }}) {{ end }}",
		"{{ with .Links }}[x]({{ .Preferences }}) {{ len .NPS }}{{ end }}",
		"{{ range $k, $v := .Links }}{{ $k }}={{ if eq $k \"NPS\" }}{{ len $v }}{{ else }}{{ $v }}{{ end }} {{ end }}",
		"[9]({{ (index .Links.NPS 9).URL }}) {{ index .Links \"Preferences\" }}",
		"{{ $l := .Links }}[p]({{ $l.Preferences }}) {{ if $l.NPS }}nps{{ end }}",
		"{{ slice .Links.Preferences 0 8 }} {{ range .Links.NPS }}{{ .URL }} {{ end }}",
	} {
		set := newSet(t, step("---\nsubject: Hi\n---\n"+body+"\n"))
		r := compile(t, set)
		ct := set.Campaigns[0].Steps[0].Content
		d := SampleData(set, "https://example.com")
		d.Links = NewLazyLinks("https://r.example/u/tok", func() string { return "https://r.example/p/tok" },
			func(score int) string { return fmt.Sprintf("https://r.example/nps/%d", score) }, set.Lifecycle.Links)
		sameAsTemplates(t, r, ct, d, false)
		e, err := r.RenderContent(ct, d)
		if err != nil {
			t.Fatal(err)
		}
		eager := *d
		eager.Links = NewLinks("https://r.example/u/tok", "https://r.example/p/tok",
			func(score int) string { return fmt.Sprintf("https://r.example/nps/%d", score) }, set.Lifecycle.Links)
		want, err := r.RenderContent(ct, &eager)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("%s: lazy links render otherwise (-eager +lazy):\n%s", body, diff)
		}
		if strings.Contains(e.Text, "0x") {
			t.Errorf("%s: a lazy link printed as a pointer:\n%s", body, e.Text)
		}
	}
}

// BenchmarkGuide renders the bench's ~500-word step (../bench/testdata): as
// Render does, untracked; with every link refused by click, so that only the
// scan for links is added ("scanned" less "untracked" is the most that
// tracking links while the template executes could save); and tracked, every
// link signed into a click link.
func BenchmarkGuide(b *testing.B) {
	set, err := campaign.Load(filepath.Join("..", "bench", "testdata", "campaigns"))
	if err != nil {
		b.Fatal(err)
	}
	r := compile(b, set)
	d := SampleData(set, "https://retain.acme.example")
	s, err := link.NewSigner("0123456789abcdef0123456789abcdef", "https://retain.acme.example")
	if err != nil {
		b.Fatal(err)
	}
	refuse := func(_, _, _, _ string) (string, error) { return "", link.ErrNotTrackable }
	for _, bc := range []struct {
		name  string
		click func(customer, campaign, step, url string) (string, error)
	}{{"untracked", nil}, {"scanned", refuse}, {"tracked", s.ClickURL}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.RenderTracked("welcome/guide", d, bc.click); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
