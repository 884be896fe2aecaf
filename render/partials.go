package render

import (
	"cmp"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template/parse"

	"github.com/retainmail/retain/campaign"
)

// Partials are the shared blocks of templates/partials/, included in steps and in
// other partials with {{ template "signature" . }}.
//
// A Markdown partial (signature.md) goes through the pipeline of a step body once,
// when the set is compiled: actions tokenized, goldmark, raw HTML off, actions put
// back. It gives an HTML form and a plain-text form, and each part of a step that
// includes it gets the form of its kind. A partial that is one paragraph is inline:
// its forms are the paragraph's content, so it can stand in a paragraph of the step
// ("Welcome aboard,\" and the signature on the next line) or make a paragraph of
// its own on a line of its own. A partial of several blocks (paragraphs, lists,
// headings) must be included on a line of its own, where it sits between the
// step's blocks.
//
// An HTML partial (logo.html) is used as it is in the HTML part and is always a
// block. Its plain-text form is its twin logo.txt, as a layout's is: stripping tags
// would lose the link URLs and the line breaks that a plain-text reader needs.
//
// A locale variant (signature.nl.md) is used for a step file of that locale or
// language, as layouts are: the partial follows the language of the email, never
// the customer's, so an email does not mix languages. A variant needs its default.
//
// A step's templates get the partials they include, transitively, as templates of
// their set: html/template escapes a partial in the context it is included in, as it
// escapes the step, and programs (program.go) compile the call into the partial's
// escaped tree.
type partials struct {
	dir    string // templates/partials
	byName map[string]*partial
}

// partial is one name of templates/partials/: its default file and its variants.
type partial struct {
	name     string
	variants map[string]*partialFile // by locale; "" is the default
	// block says the partial is several blocks (or HTML): it is included only on a
	// line of its own.
	block bool
	// includes are the partials its files include, sorted; sites says where each
	// is first included.
	includes []string
	sites    map[string]includeSite
	// broken says the partial, or one it includes, has problems: a step including
	// it is not compiled. cycle says it is part of a cycle of includes.
	broken, cycle bool
	compiling     bool
	done          bool
}

type includeSite struct {
	src *source
	off int
}

// partialFile is one file of a partial, compiled to the template sources of its two
// forms.
type partialFile struct {
	locale string
	path   string
	src    *source // the Markdown or the HTML
	txt    *source // the plain-text twin of an HTML partial
	acts   []action
	ok     bool // its sources passed the checks
	// html and text are the template sources included in the HTML and the text
	// part; block is the kind of the file.
	html, text string
	block      bool
	// For error positions of a Markdown partial in the trial execution.
	prot             *protected
	htmlSrc, textSrc restored
}

var (
	partialNameRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	partialLocaleRE = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$`)
	// includeRE is a {{ template "name" pipeline }} action: the quoted name and the
	// pipeline.
	includeRE = regexp.MustCompile("(?s)^\\{\\{-?\\s*template\\s+(\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`)\\s*(.*?)\\s*-?\\}\\}$")
)

// defineRE is a {{ define "name" }} or {{ block "name" … }}: a template of the step's own.
var defineRE = regexp.MustCompile(`^\{\{-?\s*(?:define|block)\s+("(?:[^"\\]|\\.)*"|` + "`[^`]*`" + `)`)

// maxIncludeDepth bounds the partials a program follows into; lint rejects cycles,
// so only a deep chain reaches it, and the template runs then.
const maxIncludeDepth = 32

// loadPartials reads and compiles templates/partials/ in dir, reporting every problem
// of the files, of their names and of their includes. A directory that does not
// exist holds no partials.
func loadPartials(c *checker, probs *campaign.Problems, dir string) *partials {
	ps := &partials{dir: filepath.Join(dir, "partials"), byName: map[string]*partial{}}
	entries, err := os.ReadDir(ps.dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			probs.Add(ps.dir, campaign.Pos{Line: 1, Col: 1}, "%v", err)
		}
		return ps
	}
	top := campaign.Pos{Line: 1, Col: 1}
	type key struct{ name, locale string }
	files := map[key]map[string]string{} // by extension
	for _, e := range entries {
		fname := e.Name()
		ext := filepath.Ext(fname)
		if e.IsDir() || strings.EqualFold(fname, "README.md") || (ext != ".md" && ext != ".html" && ext != ".txt") {
			continue
		}
		path := filepath.Join(ps.dir, fname)
		name, locale, _ := strings.Cut(strings.TrimSuffix(fname, ext), ".")
		if !partialNameRE.MatchString(name) || (locale != "" && !partialLocaleRE.MatchString(locale)) {
			probs.Add(path, top, "partial file name %q must be NAME.md or NAME.html, as in signature.md (or signature.nl.md for a locale variant)", fname)
			continue
		}
		k := key{name, locale}
		if files[k] == nil {
			files[k] = map[string]string{}
		}
		files[k][ext] = path
	}
	for _, k := range slices.SortedFunc(maps.Keys(files), func(a, b key) int {
		return strings.Compare(a.name+"\x00"+a.locale, b.name+"\x00"+b.locale)
	}) {
		byExt := files[k]
		md, html, txt := byExt[".md"], byExt[".html"], byExt[".txt"]
		f := &partialFile{locale: k.locale}
		switch {
		case md != "" && html != "":
			probs.Add(html, top, "partial %q is both %s and %s: keep one", k.name, filepath.Base(md), filepath.Base(html))
			continue
		case md != "" && txt != "":
			probs.Add(txt, top, "%s is not used: the Markdown partial %s makes its own plain text; delete it", filepath.Base(txt), filepath.Base(md))
			continue
		case html != "" && txt == "":
			probs.Add(html, top, "HTML partial %q needs its plain-text form too: add %s (or write the partial in Markdown, as %s)",
				k.name, strings.TrimSuffix(html, ".html")+".txt", strings.TrimSuffix(filepath.Base(html), ".html")+".md")
			continue
		case md == "" && html == "":
			probs.Add(txt, top, "%s has no %s: a .txt partial is the plain-text form of an HTML partial",
				filepath.Base(txt), strings.TrimSuffix(filepath.Base(txt), ".txt")+".html")
			continue
		}
		f.path = cmp.Or(md, html)
		var ok bool
		if f.src, ok = readPartialSource(probs, f.path, md != ""); ok && html != "" {
			f.txt, ok = readPartialSource(probs, txt, false)
		}
		if !ok {
			continue
		}
		p := ps.byName[k.name]
		if p == nil {
			p = &partial{name: k.name, variants: map[string]*partialFile{}, sites: map[string]includeSite{}}
			ps.byName[k.name] = p
		}
		p.variants[k.locale] = f
	}

	for _, name := range slices.Sorted(maps.Keys(ps.byName)) {
		p := ps.byName[name]
		if p.variants[""] == nil {
			for _, loc := range slices.Sorted(maps.Keys(p.variants)) {
				f := p.variants[loc]
				probs.Add(f.path, top, "locale variant %s has no default partial %s: add the default-locale file first",
					filepath.Base(f.path), name+filepath.Ext(f.path))
			}
			p.broken = true
			continue
		}
		for _, loc := range slices.Sorted(maps.Keys(p.variants)) {
			f := p.variants[loc]
			var ok bool
			f.acts, ok = c.check(f.src, dataType)
			p.addIncludes(f.src, f.acts)
			if f.txt != nil {
				acts, tok := c.check(f.txt, dataType)
				p.addIncludes(f.txt, acts)
				ok = ok && tok
			}
			f.ok = ok
			p.broken = p.broken || !ok
		}
	}
	ps.findCycles(probs)
	for _, name := range slices.Sorted(maps.Keys(ps.byName)) {
		ps.compile(c, probs, ps.byName[name])
	}
	return ps
}

func readPartialSource(probs *campaign.Problems, path string, markdown bool) (*source, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		probs.Add(path, campaign.Pos{Line: 1, Col: 1}, "%v", err)
		return nil, false
	}
	return &source{path: path, text: string(b), line: 1, col: 1, markdown: markdown}, true
}

// include is one {{ template "name" pipeline }} of a source.
type include struct {
	name    string
	nameOff int    // offset of the quoted name in the source
	arg     string // the pipeline, "." as a rule
}

// includeOf returns the include action a of src is, if it is one.
func includeOf(src string, a action) (include, bool) {
	if a.word != "template" {
		return include{}, false
	}
	m := includeRE.FindStringSubmatchIndex(src[a.start:a.end])
	if m == nil {
		return include{}, false
	}
	act := src[a.start:a.end]
	name, err := strconv.Unquote(act[m[2]:m[3]])
	if err != nil {
		return include{}, false
	}
	return include{name: name, nameOff: a.start + m[2], arg: act[m[4]:m[5]]}, true
}

func (p *partial) addIncludes(s *source, acts []action) {
	for _, a := range acts {
		inc, ok := includeOf(s.text, a)
		if !ok {
			continue
		}
		if _, seen := p.sites[inc.name]; !seen {
			p.sites[inc.name] = includeSite{src: s, off: inc.nameOff}
			p.includes = append(p.includes, inc.name)
		}
	}
	slices.Sort(p.includes)
}

// findCycles reports every cycle of includes once, at the include that closes it,
// and marks its partials broken: a partial in a cycle would never finish.
func (ps *partials) findCycles(probs *campaign.Problems) {
	const (
		unseen = iota
		open
		closed
	)
	color := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		color[name] = open
		stack = append(stack, name)
		p := ps.byName[name]
		for _, next := range p.includes {
			if ps.byName[next] == nil {
				continue
			}
			switch color[next] {
			case unseen:
				visit(next)
			case open:
				cyc := append(slices.Clone(stack[slices.Index(stack, next):]), next)
				for _, n := range cyc {
					ps.byName[n].cycle, ps.byName[n].broken = true, true
				}
				site := p.sites[next]
				probs.Add(site.src.path, site.src.pos(site.off), "partials include each other in a cycle: %s", strings.Join(cyc, " → "))
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = closed
	}
	for _, name := range slices.Sorted(maps.Keys(ps.byName)) {
		if color[name] == unseen {
			visit(name)
		}
	}
}

// compile makes the forms of p's files, after those of the partials it includes:
// whether an include stands for blocks depends on the partial included.
func (ps *partials) compile(c *checker, probs *campaign.Problems, p *partial) {
	if p.done || p.compiling {
		return
	}
	p.compiling = true
	defer func() { p.compiling, p.done = false, true }()
	for _, name := range p.includes {
		if q := ps.byName[name]; q != nil {
			ps.compile(c, probs, q)
		}
	}
	if p.variants[""] == nil {
		return
	}
	for _, loc := range slices.Sorted(maps.Keys(p.variants)) {
		f := p.variants[loc]
		if !f.ok {
			continue
		}
		before := len(*probs)
		ps.markIn(c, f.src, f.acts, f.locale, p)
		if f.txt != nil {
			acts, _ := scanActions(f.txt.text)
			ps.markIn(c, f.txt, acts, f.locale, p)
		}
		if len(*probs) > before {
			p.broken = true
			continue
		}
		if f.txt != nil {
			f.block = true
			f.html = f.src.text
			if !strings.HasSuffix(f.html, "\n") {
				f.html += "\n"
			}
			f.text = strings.TrimRight(f.txt.text, "\r\n") + "\n\n"
			continue
		}
		prot := protect(f.src.text, f.acts)
		h, t, err := markdown(prot)
		if err != nil {
			probs.Add(f.path, campaign.Pos{Line: 1, Col: 1}, "markdown: %v", err)
			p.broken = true
			continue
		}
		f.block = !(len(prot.blockLines) == 0 && strings.HasPrefix(h, "<p>") && strings.HasSuffix(h, "</p>\n") &&
			strings.Count(h, "<p>") == 1 && strings.Count(h, "</p>") == 1)
		if !f.block {
			h = strings.TrimSuffix(strings.TrimPrefix(h, "<p>"), "</p>\n")
			t = strings.TrimRight(t, "\n")
		}
		f.prot, f.htmlSrc, f.textSrc = prot, prot.restore(h), prot.restore(t)
		f.html, f.text = f.htmlSrc.text, f.textSrc.text
	}
	def := p.variants[""]
	p.block = def.block
	if p.broken {
		return
	}
	for _, loc := range slices.Sorted(maps.Keys(p.variants)) {
		if f := p.variants[loc]; f.block != def.block {
			probs.Add(f.path, campaign.Pos{Line: 1, Col: 1}, "%s is %s but %s is %s: a locale variant must be the same kind",
				filepath.Base(f.path), kindOf(f.block), filepath.Base(def.path), kindOf(def.block))
			p.broken = true
		}
	}
}

func kindOf(block bool) string {
	if block {
		return "several blocks (or HTML), included on a line of its own"
	}
	return "one paragraph, included inline"
}

// file returns the file of p for content in locale: <name>.<locale>, else
// <name>.<language>, else the default.
func (p *partial) file(locale string) *partialFile {
	if locale != "" {
		if f := p.variants[locale]; f != nil {
			return f
		}
		lang, _, _ := strings.Cut(strings.ReplaceAll(locale, "_", "-"), "-")
		if f := p.variants[lang]; f != nil {
			return f
		}
	}
	return p.variants[""]
}

// mark checks the includes of a step body s, whose actions are acts, and marks the
// include of a block partial that stands on a line of its own as a block action, so
// that it sits between the step's Markdown blocks. A nil ps has no partials.
func (ps *partials) mark(c *checker, s *source, acts []action, locale string) {
	if ps == nil {
		return
	}
	ps.markIn(c, s, acts, locale, nil)
}

// markIn is mark for the body of a step (from nil) or of partial from.
func (ps *partials) markIn(c *checker, s *source, acts []action, locale string, from *partial) {
	defined := map[string]bool{}
	for _, a := range acts {
		if a.word == "define" || a.word == "block" {
			if m := defineRE.FindStringSubmatch(s.text[a.start:a.end]); m != nil {
				if name, err := strconv.Unquote(m[1]); err == nil {
					defined[name] = true
				}
			}
		}
	}
	var open []string
	for i, a := range acts {
		switch {
		case a.opens():
			open = append(open, a.word)
		case a.word == "end" && len(open) > 0:
			open = open[:len(open)-1]
		}
		inc, ok := includeOf(s.text, a)
		if !ok || defined[inc.name] {
			continue
		}
		p := ps.byName[inc.name]
		if p == nil {
			hint := campaign.DidYouMean(inc.name, slices.Sorted(maps.Keys(ps.byName)))
			if hint == "" {
				hint = fmt.Sprintf(" (add %s)", filepath.Join(ps.dir, inc.name+".md"))
			}
			c.add(s, inc.nameOff, "unknown partial %q%s", inc.name, hint)
			continue
		}
		switch {
		case inc.arg != "." && inc.arg != "$":
			c.add(s, a.start, "pass the email's data to partial %q: {{ template %q . }}", inc.name, inc.name)
		case inc.arg == "." && (slices.Contains(open, "with") || slices.Contains(open, "range")):
			c.add(s, a.start, "inside {{ with }} or {{ range }} dot is not the email's data: pass $ to partial %q ({{ template %q $ }})", inc.name, inc.name)
		}
		if p.broken {
			if from == nil || !from.cycle || !p.cycle {
				path := filepath.Join(ps.dir, inc.name+".md")
				if f := p.file(locale); f != nil {
					path = f.path
				}
				c.add(s, inc.nameOff, "partial %q cannot be used until the problems of %s are fixed", inc.name, path)
			}
			continue
		}
		if !p.block {
			continue
		}
		lineStart := strings.LastIndexByte(s.text[:a.start], '\n') + 1
		lineEnd := strings.IndexByte(s.text[a.end:], '\n')
		if lineEnd < 0 {
			lineEnd = len(s.text) - a.end
		}
		if strings.TrimSpace(s.text[lineStart:a.start]) != "" || strings.TrimSpace(s.text[a.end:a.end+lineEnd]) != "" {
			c.add(s, a.start, "partial %q is several blocks (paragraphs, lists, headings or HTML): include it on a line of its own", inc.name)
			continue
		}
		acts[i].block = true
	}
}

// attach adds to cc's templates the partials its body includes, transitively, in
// the forms for content in locale: the HTML forms to its HTML template, the text
// forms to its text template. mark has reported every include that cannot be
// attached.
func (ps *partials) attach(probs *campaign.Problems, cc *compiled, locale string) {
	if ps == nil || cc.html == nil || cc.text == nil || cc.prot == nil {
		return
	}
	var names []string
	var add func(name string)
	add = func(name string) {
		p := ps.byName[name]
		if p == nil || p.broken || slices.Contains(names, name) {
			return
		}
		names = append(names, name)
		for _, next := range p.includes {
			add(next)
		}
	}
	for _, a := range cc.prot.acts {
		if inc, ok := includeOf(cc.prot.src, a); ok && cc.html.Lookup(inc.name) == nil {
			add(inc.name)
		}
	}
	cc.partials = map[string]*partialFile{}
	for _, name := range names {
		f := ps.byName[name].file(locale)
		cc.partials[name] = f
		if _, err := cc.html.New(name).Parse(f.html); err != nil {
			probs.Add(f.path, campaign.Pos{Line: 1, Col: 1}, "%v", err)
		}
		if _, err := cc.text.New(name).Parse(f.text); err != nil {
			probs.Add(f.path, campaign.Pos{Line: 1, Col: 1}, "%v", err)
		}
	}
}

// partialOf returns the partial that err, of the trial execution of cc, comes
// from; nil when it comes from the step itself. he is err as html/template's.
func (cc *compiled) partialOf(err error, he *htmltemplate.Error) *partialFile {
	name := ""
	if he != nil {
		name = he.Name
	} else if m := execPos.FindStringSubmatch(err.Error()); m != nil {
		name = m[1]
	}
	// html/template names a partial escaped for another context name$htmltemplate_….
	name, _, _ = strings.Cut(name, "$")
	return cc.partials[name]
}

// report adds a problem of the trial execution at its position in f: line and col
// (1-based), or off, in the form of part that was executed.
func (f *partialFile) report(probs *campaign.Problems, p part, msg string, line, col, off int) {
	src, form := f.src, f.html
	if p == partText {
		form = f.text
		if f.txt != nil {
			src = f.txt
		}
	}
	if off < 0 {
		off = (&source{text: form}).offset(line, max(col, 1))
	}
	if f.prot != nil {
		rs := f.htmlSrc
		if p == partText {
			rs = f.textSrc
		}
		off = rs.sourceOffset(f.prot, off)
	}
	probs.Add(src.path, src.pos(off), "%s", msg)
}

// bodyProgram compiles the HTML or text body of cc, following its includes into the
// partials of its template set; nil when it runs as a template.
func (cc *compiled) bodyProgram(html bool) *program {
	tree := cc.text.Tree
	lookup := func(name string) *parse.Tree {
		if t := cc.text.Lookup(name); t != nil {
			return t.Tree
		}
		return nil
	}
	if html {
		tree = cc.html.Tree
		lookup = func(name string) *parse.Tree {
			// A partial included in another context than text is escaped into a
			// derived template html/template does not look up: the step runs as
			// a template then.
			if t := cc.html.Lookup(name); t != nil {
				return t.Tree
			}
			return nil
		}
	}
	p, err := newProgramWith(tree, reflect.TypeFor[*Data](), html, lookup)
	if err != nil {
		return nil
	}
	return p
}

// newProgramWith is newProgram for a template whose {{ template }} calls lookup
// resolves: each call runs the called tree as a program of its own, dot and $ its
// data, as text/template runs it.
func newProgramWith(tree *parse.Tree, root reflect.Type, html bool, lookup func(string) *parse.Tree) (*program, error) {
	if tree == nil || tree.Root == nil {
		return nil, &unsupportedError{"empty template"}
	}
	b := &builder{html: html, calls: lookup}
	return b.program(tree.Root, root)
}

// program compiles list with dot, and $, of type root.
func (b *builder) program(list *parse.ListNode, root reflect.Type) (*program, error) {
	b.vars = []variable{{name: "$", slot: 0, typ: root}}
	b.nvars = 1
	st := b.list(list, root)
	if b.err != nil {
		return nil, b.err
	}
	return &program{root: st, nvars: b.nvars}, nil
}

// templateCall compiles {{ template "name" pipeline }}.
func (b *builder) templateCall(n *parse.TemplateNode, dot reflect.Type) op {
	if b.calls == nil || n.Pipe == nil || b.depth >= maxIncludeDepth {
		b.fail("template %q", n.Name)
		return nil
	}
	tree := b.calls(n.Name)
	if tree == nil || tree.Root == nil {
		b.fail("template %q not found", n.Name)
		return nil
	}
	arg, t := b.pipeline(n.Pipe, dot)
	if b.err != nil {
		return nil
	}
	if t == nil {
		b.fail("template %q called with data of unknown type", n.Name)
		return nil
	}
	sub := &builder{html: b.html, calls: b.calls, depth: b.depth + 1}
	prog, err := sub.program(tree.Root, t)
	if err != nil {
		b.fail("template %q: %v", n.Name, err)
		return nil
	}
	return func(s *state, dot any) error {
		v, err := arg(s, dot)
		if err != nil {
			return err
		}
		return prog.run(s.w, v)
	}
}
