package render

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/retainmail/retain/campaign"
)

// Errors callers branch on.
var (
	// ErrHeaderInjection means a rendered subject or preheader holds a line break,
	// almost always from customer data: the email must not be sent.
	ErrHeaderInjection = errors.New("line break in header")
	// ErrUnknownStep means the step or file is not part of the compiled set.
	ErrUnknownStep = errors.New("unknown step")
)

// Email is one rendered email.
type Email struct {
	Subject   string
	Preheader string
	HTML      string
	Text      string
}

// Renderer holds every step of a campaign set compiled, ready to render for any
// customer. It is safe for concurrent use.
type Renderer struct {
	steps  map[string]*campaign.Step
	byCont map[*campaign.Content]*compiled
	byPath map[string]*compiled
	attrs  map[string]campaign.AttrType
	// locale is lifecycle.yaml's: the language of a step's default file.
	locale string
	// templatesOnly makes Render execute every template as a template, never as
	// its compiled program; programsOnly makes a program that gives up an error
	// instead of a reason to execute the template. For tests that compare the two.
	templatesOnly, programsOnly bool
}

// compiled is one step file, compiled.
type compiled struct {
	content   *campaign.Content
	campaign  Campaign
	step      Step
	subject   *texttemplate.Template
	preheader *texttemplate.Template
	html      *htmltemplate.Template
	text      *texttemplate.Template
	layout    *layout
	// eventData are the campaign's event_data declarations: an email's
	// .Event.Data gets the zero value of a declared field it lacks.
	eventData map[string]campaign.AttrType
	// links are the step's own links and, with utm: in lifecycle.yaml, the
	// fixed links with the UTM parameters of this campaign and step: put
	// over the email's Links when it renders (stepLinks).
	links Links
	// progs are the compiled programs of the parts, by part; nil where a template
	// could not be compiled and runs as a template.
	progs [len(partNames)]*program
	// partials are the partials attached to html and text, by name.
	partials map[string]*partialFile

	// For error positions in the trial execution.
	body    *source
	prot    *protected
	htmlSrc restored
	textSrc restored
	subjSrc *source
	preSrc  *source
}

// layout is templates/<name>.html and .txt.
type layout struct {
	html     *htmltemplate.Template
	text     *texttemplate.Template
	htmlPath string
	textPath string
	// missing lists the files that do not exist.
	missing []string
	// htmlProg and textProg are the compiled layouts, built once with the first
	// step that uses the layout; compiled tells they were.
	htmlProg, textProg *program
	compiled           bool
}

// htmlLayoutData is what an HTML layout is executed with. Its fields are spelled out,
// not embedded: text/template looks embedded fields up by a slow path.
type htmlLayoutData struct {
	Customer  Customer
	Campaign  Campaign
	Step      Step
	Links     Links
	Sender    Sender
	Content   htmltemplate.HTML
	Subject   string
	Preheader string
}

// textLayoutData is what a text layout is executed with.
type textLayoutData struct {
	Customer  Customer
	Campaign  Campaign
	Step      Step
	Links     Links
	Sender    Sender
	Content   string
	Subject   string
	Preheader string
}

// Compile compiles every step of set, its locale and A/B variants and the layouts they use
// from templatesDir, once. It returns campaign.Problems listing every problem found,
// each at its file:line:col, sorted; the Renderer is nil then.
func Compile(set *campaign.Set, templatesDir string) (*Renderer, error) {
	var probs campaign.Problems
	c := newChecker(set.Lifecycle, &probs)
	r := &Renderer{
		steps:  map[string]*campaign.Step{},
		byCont: map[*campaign.Content]*compiled{},
		byPath: map[string]*compiled{},
		attrs:  c.attrs,
	}
	if set.Lifecycle != nil {
		r.locale = set.Lifecycle.Locale
	}
	layouts := map[string]*layout{}
	parts := loadPartials(c, &probs, templatesDir)
	sample := SampleData(set, "https://example.com")
	for _, camp := range set.Campaigns {
		c.event = camp.EventData
		sample.Event = SampleEvent(camp)
		for _, st := range camp.Steps {
			r.steps[st.ID] = st
			c.stepLinks = st.Links
			links := stepLinks(set.Lifecycle, camp, st)
			contents := []*campaign.Content{st.Content}
			for _, loc := range slices.Sorted(mapKeys(st.Variants)) {
				contents = append(contents, st.Variants[loc])
			}
			// A/B variants are checked and compiled as locale variants
			// are: the same fields, partials and step links.
			for _, v := range st.AB {
				contents = append(contents, v.Content)
				for _, loc := range slices.Sorted(mapKeys(v.Locales)) {
					contents = append(contents, v.Locales[loc])
				}
			}
			for _, ct := range contents {
				if ct == nil {
					continue
				}
				cc := compileContent(c, ct, &probs, templatesDir, layouts, parts)
				if cc == nil {
					continue
				}
				cc.bindLocale()
				cc.campaign = Campaign{ID: camp.ID, Name: camp.Name, Topic: camp.Topic}
				cc.step = Step{ID: st.ID, Slug: st.Slug}
				cc.links = links
				cc.eventData = camp.EventData
				// html/template reports escaping problems only when it first executes.
				if _, err := r.render(cc, sample, nil); err != nil {
					cc.report(&probs, err)
					continue
				}
				cc.compilePrograms()
				r.byCont[ct] = cc
				r.byPath[filepath.Clean(ct.Path)] = cc
			}
		}
	}
	if err := probs.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// headerSource returns the source of a subject or preheader, trimmed of the
// surrounding blanks a YAML block scalar leaves.
func headerSource(path, text string, pos campaign.Pos) *source {
	if pos.Line == 0 {
		pos = campaign.Pos{Line: 1, Col: 1}
	}
	s := &source{path: path, text: text, line: pos.Line, col: pos.Col}
	if strings.TrimSpace(text) == "" {
		return &source{path: path, line: pos.Line, col: pos.Col}
	}
	lead := len(text) - len(strings.TrimLeft(text, " \t\r\n"))
	p := s.pos(lead)
	return &source{path: path, text: strings.TrimSpace(text), line: p.Line, col: p.Col}
}

func compileContent(c *checker, ct *campaign.Content, probs *campaign.Problems, templatesDir string, layouts map[string]*layout, parts *partials) *compiled {
	before := len(*probs)
	cc := &compiled{content: ct}

	cc.subjSrc = headerSource(ct.Path, ct.Subject, ct.SubjectPos)
	if cc.subjSrc.text == "" && !ct.FrontMatterInvalid {
		probs.Add(ct.Path, campaign.Pos{Line: cc.subjSrc.line, Col: cc.subjSrc.col}, "empty subject: every email needs one")
	}
	cc.subject = compileHeader(c, cc.subjSrc, "subject")
	if cc.subject != nil {
		c.subjectLength(cc.subjSrc)
	}
	cc.preSrc = headerSource(ct.Path, ct.Preheader, ct.PreheaderPos)
	cc.preheader = compileHeader(c, cc.preSrc, "preheader")

	line := max(ct.BodyLine, 1)
	cc.body = &source{path: ct.Path, text: ct.Body, line: line, col: 1, markdown: true}
	if acts, ok := c.check(cc.body, dataType); ok {
		parts.mark(c, cc.body, acts, ct.Locale)
		cc.prot = protect(ct.Body, acts)
		h, t, err := markdown(cc.prot)
		if err != nil {
			probs.Add(ct.Path, campaign.Pos{Line: line, Col: 1}, "markdown: %v", err)
		} else {
			cc.htmlSrc = cc.prot.restore(h)
			cc.textSrc = cc.prot.restore(t)
			cc.html, err = htmltemplate.New(ct.Path).Funcs(funcs).Option("missingkey=error").Parse(cc.htmlSrc.text)
			if err != nil {
				probs.Add(ct.Path, campaign.Pos{Line: line, Col: 1}, "%v", err)
			}
			cc.text, err = texttemplate.New(ct.Path).Funcs(funcs).Option("missingkey=error").Parse(cc.textSrc.text)
			if err != nil {
				probs.Add(ct.Path, campaign.Pos{Line: line, Col: 1}, "%v", err)
			}
			parts.attach(probs, cc, ct.Locale)
		}
	}

	name := localeLayout(templatesDir, cmp.Or(ct.Layout, campaign.DefaultLayout), ct.Locale)
	lay, ok := layouts[name]
	if !ok {
		// A layout serves every step: it is checked with lifecycle.yaml's
		// links and no campaign's event data, whichever step compiles it.
		stepLinks, event := c.stepLinks, c.event
		c.stepLinks, c.event = nil, nil
		lay = compileLayout(c, probs, templatesDir, name)
		c.stepLinks, c.event = stepLinks, event
		layouts[name] = lay
	}
	if len(lay.missing) > 0 {
		pos := ct.LayoutPos
		if pos.Line == 0 {
			pos = campaign.Pos{Line: 1, Col: 1}
		}
		verb := "does"
		if len(lay.missing) > 1 {
			verb = "do"
		}
		probs.Add(ct.Path, pos, "layout %q not found: %s %s not exist", name, strings.Join(lay.missing, " and "), verb)
	}
	cc.layout = lay
	if len(*probs) > before || lay.html == nil || lay.text == nil {
		return nil
	}
	return cc
}

func compileHeader(c *checker, s *source, what string) *texttemplate.Template {
	if strings.ContainsAny(s.text, "\r\n") {
		c.add(s, strings.IndexAny(s.text, "\r\n"), "%s must be one line", what)
		return nil
	}
	if _, ok := c.check(s, dataType); !ok {
		return nil
	}
	t, err := texttemplate.New(what).Funcs(funcs).Option("missingkey=error").Parse(s.text)
	if err != nil {
		c.add(s, 0, "%v", err)
		return nil
	}
	return t
}

// localeLayout returns the layout for content in locale: <name>.<locale> or
// <name>.<language> when templates/ has that HTML layout ("default.nl" for a
// 01-welcome.nl.md), else name.
func localeLayout(dir, name, locale string) string {
	if locale == "" {
		return name
	}
	lang, _, _ := strings.Cut(strings.ReplaceAll(locale, "_", "-"), "-")
	for _, l := range []string{locale, lang} {
		if _, err := os.Stat(filepath.Join(dir, name+"."+l+".html")); err == nil {
			return name + "." + l
		}
	}
	return name
}

// compileLayout reads and checks templates/<name>.html and .txt. A layout must show
// the content and a visible unsubscribe link.
// compactIndent drops the indentation of an HTML layout's lines, which keeps
// it readable to edit and which no mail client renders: a run of whitespace
// that holds a line break displays as one space, and the line break stays. A
// layout with preformatted text (<pre>, <textarea>, a white-space style) is
// left as it is.
func compactIndent(html string) string {
	lower := strings.ToLower(html)
	if strings.Contains(lower, "<pre") || strings.Contains(lower, "<textarea") || strings.Contains(lower, "white-space") {
		return html
	}
	var b strings.Builder
	b.Grow(len(html))
	for line := range strings.Lines(html) {
		b.WriteString(strings.TrimLeft(line, " \t"))
	}
	return b.String()
}

func compileLayout(c *checker, probs *campaign.Problems, dir, name string) *layout {
	lay := &layout{
		htmlPath: filepath.Join(dir, name+".html"),
		textPath: filepath.Join(dir, name+".txt"),
	}
	for _, path := range []string{lay.htmlPath, lay.textPath} {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			lay.missing = append(lay.missing, path)
			continue
		}
		if err != nil {
			probs.Add(path, campaign.Pos{Line: 1, Col: 1}, "%v", err)
			continue
		}
		s := &source{path: path, text: string(b), line: 1, col: 1}
		root := htmlLayoutType
		if path == lay.textPath {
			root = textLayoutType
		}
		clear(c.seen)
		if _, ok := c.check(s, root); !ok {
			continue
		}
		for _, need := range []string{".Content", ".Links.Unsubscribe"} {
			if !c.seen[need] {
				c.add(s, 0, "layout never uses {{ %s }}: every email needs it", need)
			}
		}
		if path == lay.htmlPath {
			lay.html, err = htmltemplate.New(path).Funcs(funcs).Option("missingkey=error").Parse(compactIndent(s.text))
		} else {
			lay.text, err = texttemplate.New(path).Funcs(funcs).Option("missingkey=error").Parse(s.text)
		}
		if err != nil {
			c.add(s, 0, "%v", err)
		}
	}
	return lay
}

// Render renders step stepID for the customer in d, in the locale variant that
// Step.ContentFor picks for d.Customer.Locale. Campaign and Step of d are filled in from
// the set; d is not modified.
func (r *Renderer) Render(stepID string, d *Data) (*Email, error) {
	return r.RenderTracked(stepID, d, nil)
}

// RenderTracked is Render with click tracking: every http(s) link of the HTML part
// (the href of each <a>) and of the text part (each "(url)" after a link's text)
// becomes click(customer, campaign, step, url) — link.Signer.ClickURL —, url a link of
// step (its identity) of campaign sent to customer, or stays as it is when click
// returns an error. The email's own unsubscribe, preference and NPS links (d.Links)
// are never rewritten, and each distinct URL is passed to click once. A nil click
// tracks nothing.
func (r *Renderer) RenderTracked(stepID string, d *Data, click func(customer, campaign, step, url string) (string, error)) (*Email, error) {
	return r.RenderVariant(stepID, "", d, click)
}

// RenderVariant is RenderTracked for A/B variant variant of the step (as
// lifecycle.Decision.Variant names it; "" or campaign.VariantA is the step's
// own content), in the locale variant Step.ContentForVariant picks for
// d.Customer.Locale. A variant the step does not have renders the step's own
// content. Clicks are tracked per step, whatever the variant.
func (r *Renderer) RenderVariant(stepID, variant string, d *Data, click func(customer, campaign, step, url string) (string, error)) (*Email, error) {
	st, ok := r.steps[stepID]
	if !ok {
		return nil, fmt.Errorf("render %s: %w", stepID, ErrUnknownStep)
	}
	cc, ok := r.byCont[st.ContentForVariant(variant, d.Customer.Locale)]
	if !ok {
		return nil, fmt.Errorf("render %s: %w", stepID, ErrUnknownStep)
	}
	var t *tracker
	if click != nil {
		t = &tracker{click: click, customer: d.Customer.ID, campaign: cc.campaign.ID, step: cc.step.ID}
	}
	e, err := r.render(cc, d, t)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", cc.content.Path, err)
	}
	return e, nil
}

// RenderContent renders one compiled step file, whatever the customer's locale: the
// preview of a locale or A/B variant.
func (r *Renderer) RenderContent(ct *campaign.Content, d *Data) (*Email, error) {
	cc, ok := r.byCont[ct]
	if !ok {
		return nil, fmt.Errorf("render %s: %w", ct.Path, ErrUnknownStep)
	}
	e, err := r.render(cc, d, nil)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", ct.Path, err)
	}
	return e, nil
}

// RenderFile is RenderContent for the step file at path, as the campaign loader named
// it ("campaigns/onboarding/01-welcome.nl.md", "campaigns/onboarding/02-first-project.b.md").
func (r *Renderer) RenderFile(path string, d *Data) (*Email, error) {
	cc, ok := r.byPath[filepath.Clean(path)]
	if !ok {
		return nil, fmt.Errorf("render %s: %w", path, ErrUnknownStep)
	}
	return r.RenderContent(cc.content, d)
}

// part names the template an execution error comes from.
type part int

const (
	partSubject part = iota
	partPreheader
	partHTML
	partText
	partLayoutHTML
	partLayoutText
)

var partNames = [...]string{"subject", "preheader", "HTML body", "text body", "HTML layout", "text layout"}

// partError is an execution error of one part of an email.
type partError struct {
	part part
	err  error
}

func (e *partError) Error() string { return partNames[e.part] + ": " + e.err.Error() }
func (e *partError) Unwrap() error { return e.err }

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render renders cc for d, its links tracked by t when t is not nil.
func (r *Renderer) render(cc *compiled, d *Data, t *tracker) (*Email, error) {
	data := *d
	data.Campaign, data.Step = cc.campaign, cc.step
	if len(cc.links) > 0 {
		data.Links = maps.Clone(d.Links)
		for name, u := range cc.links {
			data.Links[name] = u
		}
	}
	data.Customer.Attributes = withDeclared(d.Customer.Attributes, r.attrs)
	data.Event.Data = withDeclaredEvent(d.Event.Data, cc.eventData)
	data.Customer.lang = cmp.Or(cc.content.Locale, r.locale)
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	exec := func(p part, v any) (string, error) {
		if err := r.execute(buf, cc, p, v); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	var e Email
	var err error
	if e.Subject, err = exec(partSubject, &data); err != nil {
		return nil, err
	}
	if strings.ContainsAny(e.Subject, "\r\n") {
		return nil, fmt.Errorf("subject: %w", ErrHeaderInjection)
	}
	if e.Preheader, err = exec(partPreheader, &data); err != nil {
		return nil, err
	}
	if strings.ContainsAny(e.Preheader, "\r\n") {
		return nil, fmt.Errorf("preheader: %w", ErrHeaderInjection)
	}
	body, err := exec(partHTML, &data)
	if err != nil {
		return nil, err
	}
	lay := &htmlLayoutData{Customer: data.Customer, Campaign: data.Campaign, Step: data.Step, Links: data.Links, Sender: data.Sender, Content: htmltemplate.HTML(body), Subject: e.Subject, Preheader: e.Preheader}
	if err := r.execute(buf, cc, partLayoutHTML, lay); err != nil {
		return nil, err
	}
	if t != nil {
		t.links = lay.Links
		e.HTML = t.html(buf.Bytes())
	} else {
		e.HTML = buf.String()
	}
	data.Links = lay.Links // its lazy links made, if the HTML ran as a template
	if err := r.execute(buf, cc, partText, &data); err != nil {
		return nil, err
	}
	content := finishText(buf.Bytes())
	tlay := &textLayoutData{Customer: data.Customer, Campaign: data.Campaign, Step: data.Step, Links: data.Links, Sender: data.Sender, Content: content, Subject: e.Subject, Preheader: e.Preheader}
	if err := r.execute(buf, cc, partLayoutText, tlay); err != nil {
		return nil, err
	}
	if t == nil {
		e.Text = finishText(buf.Bytes())
		return &e, nil
	}
	text := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(text)
	text.Reset()
	finishTextTo(text, buf.Bytes())
	t.links = tlay.Links
	e.Text = t.text(text.Bytes())
	return &e, nil
}

// execute writes part p of cc, executed with v, to buf (reset first): through its
// compiled program when it has one, through the template when it has not or when
// the program gives up, so that the template's output or error is what counts.
func (r *Renderer) execute(buf *bytes.Buffer, cc *compiled, p part, v any) error {
	buf.Reset()
	if prog := cc.progs[p]; prog != nil && !r.templatesOnly {
		err := prog.run(buf, v)
		if err == nil {
			return nil
		}
		if r.programsOnly {
			return &partError{part: p, err: err}
		}
		buf.Reset()
	}
	// text/template sees a lazy link as the pointer it is: make them all first.
	switch v := v.(type) {
	case *Data:
		v.Links = resolveLinks(v.Links)
	case *htmlLayoutData:
		v.Links = resolveLinks(v.Links)
	case *textLayoutData:
		v.Links = resolveLinks(v.Links)
	}
	if err := cc.template(p).Execute(buf, v); err != nil {
		return &partError{part: p, err: err}
	}
	return nil
}

// template returns the template of part p.
func (cc *compiled) template(p part) interface {
	Execute(w io.Writer, data any) error
} {
	switch p {
	case partSubject:
		return textExec{cc.subject}
	case partPreheader:
		return textExec{cc.preheader}
	case partHTML:
		return cc.html
	case partText:
		return cc.text
	case partLayoutHTML:
		return cc.layout.html
	}
	return cc.layout.text
}

// compilePrograms builds the programs of cc's templates, and of its layout's if that
// is not done yet. It must run after cc was executed once, when html/template has
// escaped the HTML templates. What cannot be compiled keeps running as a template.
func (cc *compiled) compilePrograms() {
	data := reflect.TypeFor[*Data]()
	build := func(tree *parse.Tree, root reflect.Type, html bool) *program {
		p, err := newProgram(tree, root, html)
		if err != nil {
			return nil
		}
		return p
	}
	if cc.subject != nil {
		cc.progs[partSubject] = build(cc.subject.Tree, data, false)
	}
	if cc.preheader != nil {
		cc.progs[partPreheader] = build(cc.preheader.Tree, data, false)
	}
	cc.progs[partHTML] = cc.bodyProgram(true)
	cc.progs[partText] = cc.bodyProgram(false)
	lay := cc.layout
	if !lay.compiled {
		lay.htmlProg = build(lay.html.Tree, reflect.TypeFor[*htmlLayoutData](), true)
		lay.textProg = build(lay.text.Tree, reflect.TypeFor[*textLayoutData](), false)
		lay.compiled = true
	}
	cc.progs[partLayoutHTML] = lay.htmlProg
	cc.progs[partLayoutText] = lay.textProg
}

// textExec lets a possibly nil header template (an empty preheader) execute to "".
type textExec struct{ t *texttemplate.Template }

func (x textExec) Execute(w io.Writer, data any) error {
	if x.t == nil {
		return nil
	}
	return x.t.Execute(w, data)
}

var execPos = regexp.MustCompile(`^(?:html/)?template: ?(.*?):(\d+)(?::(\d+))?: (?:executing "[^"]*" at )?`)

// report turns an error of the trial execution into a problem at the source position
// it comes from.
func (cc *compiled) report(probs *campaign.Problems, err error) {
	var pe *partError
	if !errors.As(err, &pe) {
		probs.Add(cc.content.Path, campaign.Pos{Line: 1, Col: 1}, "%v", err)
		return
	}
	msg := pe.err.Error()
	line, col, off := 0, 0, -1
	var he *htmltemplate.Error
	if errors.As(pe.err, &he) {
		msg = he.Description
		if he.Node != nil {
			off = int(he.Node.Position())
		}
		line = he.Line
	}
	if m := execPos.FindStringSubmatch(pe.err.Error()); m != nil {
		line, _ = strconv.Atoi(m[2])
		col, _ = strconv.Atoi(m[3])
		if he == nil {
			msg = pe.err.Error()[len(m[0]):]
		}
	}
	at := func(s *source) int {
		if off >= 0 {
			return off
		}
		return s.offset(line, max(col, 1))
	}
	msg = "with sample data: " + msg
	if f := cc.partialOf(pe.err, he); f != nil {
		f.report(probs, pe.part, msg, line, col, off)
		return
	}
	switch pe.part {
	case partSubject:
		probs.Add(cc.content.Path, cc.subjSrc.pos(at(cc.subjSrc)), "subject %s", msg)
	case partPreheader:
		probs.Add(cc.content.Path, cc.preSrc.pos(at(cc.preSrc)), "preheader %s", msg)
	case partHTML, partText:
		rs := cc.htmlSrc
		if pe.part == partText {
			rs = cc.textSrc
		}
		gen := &source{text: rs.text, line: 1, col: 1}
		probs.Add(cc.content.Path, cc.body.pos(rs.sourceOffset(cc.prot, at(gen))), "%s", msg)
	case partLayoutHTML, partLayoutText:
		path := cc.layout.htmlPath
		if pe.part == partLayoutText {
			path = cc.layout.textPath
		}
		b, _ := os.ReadFile(path)
		s := &source{path: path, text: string(b), line: 1, col: 1}
		probs.Add(path, s.pos(at(s)), "%s", msg)
	}
}
