// Package render turns the steps of a campaign set into emails: subject, preheader,
// an HTML part wrapped in an html/template layout and a plain-text part wrapped in a
// text/template layout.
//
// It owns the step templates and the layouts in templates/: Compile parses every step
// body as Markdown once (goldmark, CommonMark, raw HTML off), with each {{…}} action
// swapped for an alphanumeric token first and put back after, so actions work in text,
// headings and link destinations, and an action alone on a line ({{ if }}, {{ else }},
// {{ end }}, {{ range }}, {{ with }}) wraps whole paragraphs or list items. The
// result is compiled as html/template, so customer data is escaped in context and never
// read as Markdown or HTML. The text part comes from the same Markdown tree. Render
// only executes templates: no Markdown is parsed per customer.
//
// Compile also lints: template syntax, unclosed {{ if }}, unknown functions, unknown
// fields (checked against Data, the declared attributes and the declared links),
// missing or broken layouts, empty subjects and the Markdown pitfalls (<{{ .X }}>
// autolinks, {{ range }} building list items on one line, a block action mixed into a
// paragraph). Every problem is a campaign.Problem at its file:line:col, and everything
// is executed once with SampleData so that html/template's escaping errors surface
// at compile time, not at send time.
//
// The package does not load campaigns (package campaign), sign links (package link;
// the caller hands Links and the click signer in), decide who gets which step (package
// lifecycle) or send mail (package mailer).
//
//	set, err := campaign.Load("campaigns")
//	r, err := render.Compile(set, "templates")      // campaign.Problems on lint errors
//
//	// worker, per due send (and the previews of a real customer, so they show
//	// what is sent):
//	links := render.NewLazyLinks(unsubURL, prefsURL, npsURL, set.Lifecycle.Links)
//	d := render.NewData(engine, customer, links, "hello@acme.test")
//	email, err := r.RenderTracked("onboarding/first-project", d, signer.ClickURL)
//	if errors.Is(err, render.ErrHeaderInjection) { … } // never send it
//
// Links may be lazy: NewLinks makes the eleven NPS score links, and NewLazyLinks the
// preference link too, only when a template of the email reads them (a program where it
// reads .Links; a template, which would see the lazy value, gets every link made
// first). A step without an NPS question signs no score links.
//
// RenderTracked tracks clicks as it renders: once the HTML and text parts are
// executed, the href of every <a> and every "(url)" of the text part is passed to the
// click signer (link.Signer.ClickURL), each distinct URL once per email, except the
// email's own unsubscribe, preference and NPS links; a URL the signer refuses stays as
// it is. In the HTML part the attribute holds the URL HTML-escaped: the URL a client
// follows is what is signed, and the tracked one is written escaped (track.go).
//
//	// retain preview STEP.md, for the built-in sample customer:
//	d := render.SampleData(set, baseURL)
//	email, err := r.RenderFile("campaigns/onboarding/01-welcome.nl.md", d)
//
// Render does not run the templates through text/template's reflection. Once Compile
// has executed a step (html/template escapes on first execution), it turns each
// template's parse tree into a program of Go closures (program.go): static text,
// field chains on Data and the layout data resolved once, retain's functions, the
// builtins and html/template's escapers (ported in escape.go) called directly. A
// template using anything a program does not support (a CSS or JS context, an
// unknown function, a {{ template }} without data or in an attribute) stays a
// template; a {{ template }} of a partial runs the partial's own program. A program
// that meets a value it does not handle at send time (an attribute of an unexpected
// type, a missing link, any error) hands over to the template, whose output or error
// is what counts. The output is byte for byte html/template's and text/template's; the tests
// check that on every example campaign and under fuzzing.
//
// Render picks the locale variant with campaign.Step.ContentFor(d.Customer.Locale) and
// fills d.Campaign and d.Step itself; RenderVariant renders an A/B variant of the step
// (lifecycle.Decision.Variant), in the customer's locale as ContentForVariant picks it.
// A/B variant files are compiled and checked exactly as locale variants are. Declared attributes the customer lacks render as
// the zero value of their type, so {{ .Customer.Attributes.plan | default "free" }}
// works; a missing key anywhere else (an unset link) is an error, not "<no value>".
//
// Functions available to steps and layouts, besides text/template's builtins:
// default (sprig order: {{ .Customer.FirstName | default "there" }}), upper, lower,
// and the formatting helpers of format.go, which write in the customer's locale and
// time zone: date, time and datetime ({{ date "long" .Customer.Attributes.renews_at }},
// or a Go layout), number, money ({{ money .Customer.Attributes.balance "EUR" }}),
// percent and plural ({{ plural .Customer.Counters.orders "%d order" "%d orders" }}).
//
// Partials, shared blocks such as a signature, are templates/partials/<name>.md (or
// <name>.html with its plain-text twin <name>.txt), included with
// {{ template "name" . }} in steps and partials. Compile renders a Markdown partial
// once, as it renders a step body, and adds the HTML and text forms to the templates
// of each step that includes it, in the step file's locale (partials.go): they are
// escaped in context and run as programs like the step itself.
//
// Layouts are templates/<name>.html and templates/<name>.txt. They see .Content (the
// rendered body: template.HTML in HTML, string in text), .Subject, .Preheader and
// everything a step sees (.Customer, .Campaign, .Step, .Links, .Sender). Each must use
// {{ .Content }} and {{ .Links.Unsubscribe }}.
package render
