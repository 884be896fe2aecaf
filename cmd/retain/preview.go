package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

var previewCmd = &command{
	name:    "preview",
	summary: "Render one email step, or every step into a folder, as customers will receive them",
	usage:   "preview [--customer FILE|ID] [--format html|text|eml] STEP.md\n       retain preview --all --out DIR [--against REF] [--customer FILE|ID] [DIR]",
	help: `STEP.md is a step file inside a campaign folder, such as
campaigns/onboarding/01-welcome.md; a locale variant (01-welcome.nl.md) previews
that translation, and an A/B variant (02-first-project.b.md) that variant. The whole campaigns folder is loaded, so the preview uses the
same lifecycle.yaml and layouts as a real send.

With --all, every step, locale variant and A/B variant of the campaigns in DIR (a project or
campaigns folder; default $RETAIN_CAMPAIGNS, else the current directory) is
written to the --out folder: for each, the HTML part, the text part and the .eml
message, as <campaign>/<step>[.<variant>][.<locale>].html, .txt and .eml, and an
index.html listing campaign, step, variant, locale, subject and preheader with
links to each part.
The folder needs no server: open index.html, or keep it as a CI artifact.

With --all --against REF (a git revision such as origin/main, or a folder), only
the steps whose rendered email differs from REF's, or that are new, are written,
each beside its previous version (.before.html, .before.txt, .before.eml) with a
.compare.html page: both HTML parts side by side and the text part as a diff.
Steps that REF has and the campaigns no longer have are listed as removed. Steps
are matched by their identity (campaign/slug): a renamed file is a new step and
a removed one, unless its id: keeps the identity.

Without --customer, a built-in sample customer is used. --customer takes a
customer file, or the ID of a customer stored in Redis (REDIS_URL,
RETAIN_REDIS_PREFIX) when no such file exists. A customer file is JSON:
  {"id": "c42", "email": "ada@example.com", "first_name": "Ada", "locale": "en",
   "timezone": "Europe/Amsterdam", "stage": "onboarding",
   "attributes": {"plan": "team"}}

Formats: html (the HTML part inside its layout), text (the plain-text part),
eml (the complete RFC 5322 message with the headers it is sent with). Links stay
as written: the worker may turn them into click-tracking redirects.

Environment: RETAIN_FROM (From address, default "hello@example.com" with the
sender name of lifecycle.yaml), RETAIN_BASE_URL (base of unsubscribe and
preference links, default http://localhost:8080), RETAIN_SECRET (signs those
links; a fixed preview secret when unset), RETAIN_UNSUBSCRIBE_MAILTO (offered
in List-Unsubscribe, as the worker does).

Exit status: 0 rendered, 1 the step or its campaigns have problems, 2 usage error.

Examples:
  retain preview campaigns/onboarding/01-welcome.md
  retain preview --format text --customer ada.json campaigns/nps/01-survey.nl.md
  retain preview --format eml campaigns/onboarding/01-welcome.md > welcome.eml
  retain preview --all --out preview
  retain preview --all --out preview --against origin/main --customer c42`,
	run: runPreview,
}

func runPreview(c *command, e *env, args []string) int {
	fs := c.flags()
	customerArg := fs.String("customer", "", "customer `FILE|ID` to render for: a JSON file, or the ID of a customer stored in Redis; default a built-in sample customer")
	format := fs.String("format", "html", "output `format` of one step: html, text or eml")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
	all := fs.Bool("all", false, "render every step and locale variant of the campaigns into the --out folder")
	out := fs.String("out", "", "with --all: the `DIR` to write the preview into (index.html and every part)")
	againstRef := fs.String("against", "", "with --all: only the steps that render differently from git revision or folder `REF`, beside their previous version")
	eventArg := fs.String("event", "", "the trigger event `FILE` (JSON: {\"name\", \"at\", \"data\"}) an event-triggered step sees as .Event; default a sample of the campaign's event_data, or a stored customer's own")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if *all {
		var formatSet bool
		fs.Visit(func(f *flag.Flag) { formatSet = formatSet || f.Name == "format" })
		if formatSet {
			return c.usageError(e, "--format is for one step: --all writes the html, text and eml of every step")
		}
		return runPreviewAll(c, e, previewAllOptions{out: *out, against: *againstRef, customer: *customerArg, templates: *templates}, pos)
	}
	if *out != "" || *againstRef != "" {
		return c.usageError(e, "--out and --against go with --all: retain preview --all --out DIR [--against REF]")
	}
	if len(pos) != 1 {
		return c.usageError(e, "give exactly one step file, got %d (or --all --out DIR for every step)", len(pos))
	}
	switch *format {
	case "html", "text", "eml":
	default:
		return c.usageError(e, "unknown format %q: use html, text or eml", *format)
	}
	p, step, content, code := loadStepPreview(c, e, pos[0], *customerArg, *templates, false)
	if p == nil {
		return code
	}
	if p.event, code = readEventFile(c, e, *eventArg); code != exitOK {
		return code
	}
	l := p.l
	stepPath := filepath.Clean(pos[0])
	data := p.data(step, content.Locale)
	// A variant file (02-first-project.b.md) previews that A/B variant, in the
	// customer's locale as a send picks it.
	email, err := l.renderer.RenderVariant(step.ID, abVariantOf(step, content), data, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %s: %v\n", stepPath, err)
		return exitProblems
	}
	switch *format {
	case "html":
		io.WriteString(e.stdout, email.HTML)
	case "text":
		io.WriteString(e.stdout, email.Text)
	case "eml":
		if _, err := p.message(step, data, email).WriteTo(e.stdout); err != nil {
			fmt.Fprintf(e.stderr, "retain preview: %s: %v\n", stepPath, err)
			return exitProblems
		}
	}
	return exitOK
}

// loadStepPreview loads the campaigns around the step file arg and the
// customer --customer names, for retain preview and retain send-test (test:
// its links are signed with previewSecret whatever RETAIN_SECRET is, so that
// a click in a test email changes no one). On failure it reports and returns
// a nil previewer with the exit code.
func loadStepPreview(c *command, e *env, arg, customerArg, templates string, test bool) (*previewer, *campaign.Step, *campaign.Content, int) {
	stepPath := filepath.Clean(arg)
	if filepath.Base(stepPath) == campaign.CampaignFile || !strings.HasSuffix(stepPath, ".md") {
		return nil, nil, nil, c.usageError(e, "%s is not a step file: give one like campaigns/onboarding/01-welcome.md", stepPath)
	}
	campaignsDir := filepath.Dir(filepath.Dir(stepPath))
	d, err := resolveDirs(campaignsDir, cmpOr(templates, e.getenv("RETAIN_TEMPLATES")))
	if err != nil {
		return nil, nil, nil, c.usageError(e, "%v", err)
	}
	l, probs, err := loadCampaigns(d)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return nil, nil, nil, exitProblems
	}
	step, content := findContent(l.set, stepPath)
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintln(e.stderr, p)
		}
		fmt.Fprintf(e.stderr, "retain %s: %s must be fixed first (retain lint %s lists them)\n", c.name, plural(len(probs), "problem"), d.campaigns)
		return nil, nil, nil, exitProblems
	}
	if content == nil {
		fmt.Fprintf(e.stderr, "retain %s: %s is not a step of the campaigns in %s\n", c.name, stepPath, d.campaigns)
		return nil, nil, nil, exitProblems
	}
	cust, err := previewCustomer(context.Background(), e, customerArg, l.set.Lifecycle)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return nil, nil, nil, exitProblems
	}
	pe := e
	if test {
		pe = e.with("RETAIN_SECRET", "")
	}
	p, err := newPreviewer(pe, l, cust, time.Now())
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return nil, nil, nil, exitUsage
	}
	return p, step, content, exitOK
}

// previewCustomer returns the customer --customer names: a customer file, or
// the ID of a customer stored in Redis when no such file exists (and the name
// does not end in .json). It returns nil for the built-in sample customer.
func previewCustomer(ctx context.Context, e *env, arg string, l *campaign.Lifecycle) (*lifecycle.Customer, error) {
	if arg == "" {
		return nil, nil
	}
	if _, err := os.Stat(arg); err == nil || strings.HasSuffix(arg, ".json") {
		return customerFile(arg, l)
	}
	st, rdb, err := openStore(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("--customer %s: no such file, so it is a customer ID, but %v", arg, err)
	}
	defer rdb.Close()
	c, err := st.Customer(ctx, arg)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("--customer %s: there is no such file, nor a customer with that ID in Redis: give a customer JSON file or the ID of a stored customer", arg)
	}
	return c, err
}

// previewer renders the steps of one version of the campaigns for one customer,
// and builds their messages as the worker does.
type previewer struct {
	l *loaded
	// customer is nil for the built-in sample customer; eng decides what
	// templates see of a real one.
	customer *lifecycle.Customer
	eng      *lifecycle.Engine
	baseURL  string
	from     *mail.Address
	mailto   string
	links    func(c *lifecycle.Customer, campaignID string) render.Links
	// now dates the messages and the NPS links: one moment for a whole
	// preview, so that two versions of a step compare equal when they are.
	now time.Time
	// ref and dirName, for the campaigns of retain preview --against REF:
	// REF, and how messages name their folder (campaigns@REF).
	ref, dirName string
	// event, when set (--event FILE), is the trigger event steps see.
	event *lifecycle.Event
}

// newPreviewer returns the previewer of l for cust (nil: the sample customer),
// configured from the environment as the worker is. Its errors are the
// environment's.
func newPreviewer(e *env, l *loaded, cust *lifecycle.Customer, now time.Time) (*previewer, error) {
	from, err := fromAddress(e, l.set.Lifecycle)
	if err != nil {
		return nil, err
	}
	signer, err := linkSigner(e, true)
	if err != nil {
		return nil, err
	}
	mailto := e.getenv("RETAIN_UNSUBSCRIBE_MAILTO")
	if mailto != "" && !strings.HasPrefix(mailto, "mailto:") {
		return nil, fmt.Errorf("RETAIN_UNSUBSCRIBE_MAILTO %q must be a mailto: URL such as mailto:unsubscribe@acme.example", mailto)
	}
	p := &previewer{l: l, customer: cust, baseURL: baseURL(e), from: from, mailto: mailto, now: now,
		links: queue.SignedLinks(signer, l.set.Lifecycle.Links, func() time.Time { return now })}
	if cust != nil {
		p.eng = lifecycle.New(l.set)
	}
	return p, nil
}

// data is what step st is executed with, for the customer in locale (empty:
// the customer's own): render.NewData as the worker builds it, or the sample
// customer with links signed as the worker signs them.
func (p *previewer) data(st *campaign.Step, locale string) *render.Data {
	var d *render.Data
	if p.customer == nil {
		d = render.SampleData(p.l.set, p.baseURL)
		d.Links = p.links(&lifecycle.Customer{ID: d.Customer.ID}, st.Campaign.ID)
		d.Sender.Email = p.from.Address
	} else {
		d = render.NewData(p.eng, p.customer, p.links(p.customer, st.Campaign.ID), p.from.Address)
	}
	switch {
	case p.event != nil:
		d.Event = render.NewEvent(st.Campaign, p.event.Name, p.event.At, p.event.Data)
	case p.customer != nil:
		d.Event = render.EventOf(p.customer, st.Campaign)
	default:
		d.Event = render.SampleEvent(st.Campaign)
	}
	if locale != "" {
		d.Customer.Locale = locale
	}
	return d
}

// readEventFile reads --event FILE: one event as the API takes it, {"name",
// "at", "data"}. None when path is empty.
func readEventFile(c *command, e *env, path string) (*lifecycle.Event, int) {
	if path == "" {
		return nil, exitOK
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: --event: %v\n", c.name, err)
		return nil, exitUsage
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var ev lifecycle.Event
	if err := dec.Decode(&ev); err != nil {
		fmt.Fprintf(e.stderr, "retain %s: --event %s: %v: give one event as JSON, such as {\"name\": \"order_placed\", \"at\": \"2026-03-14T09:30:00Z\", \"data\": {\"product\": \"Desk lamp\"}}\n", c.name, path, err)
		return nil, exitUsage
	}
	if ev.Name == "" {
		fmt.Fprintf(e.stderr, "retain %s: --event %s: the event has no \"name\"\n", c.name, path)
		return nil, exitUsage
	}
	return &ev, exitOK
}

// message is email, rendered from step st with d, as the worker builds it
// (queue.Worker.message) for a first enrollment, with its links as written.
func (p *previewer) message(st *campaign.Step, d *render.Data, email *render.Email) *mailer.Message {
	unsub, _ := d.Links[render.LinkUnsubscribe].(string)
	from, replyTo := queue.StepSender(*p.from, st, "")
	return &mailer.Message{
		From:              from,
		ReplyTo:           replyTo,
		To:                mail.Address{Name: cmpOr(d.Customer.Name, d.Customer.FirstName), Address: d.Customer.Email},
		Subject:           email.Subject,
		Text:              email.Text,
		HTML:              email.HTML,
		MessageID:         mailer.MessageID(st.ID, d.Customer.ID, 1, domainOf(from.Address)),
		Date:              p.now,
		Unsubscribe:       unsub,
		UnsubscribeMailto: p.mailto,
		Headers:           queue.StepHeaders(st, domainOf(from.Address)),
	}
}

// findContent returns the step and the content (default, locale variant, A/B
// variant or an A/B variant's locale variant) that were loaded from path.
func findContent(set *campaign.Set, path string) (*campaign.Step, *campaign.Content) {
	for _, c := range set.Campaigns {
		for _, st := range c.Steps {
			if filepath.Clean(st.Content.Path) == path {
				return st, st.Content
			}
			for _, v := range st.Variants {
				if filepath.Clean(v.Path) == path {
					return st, v
				}
			}
			for _, v := range st.AB {
				if filepath.Clean(v.Content.Path) == path {
					return st, v.Content
				}
				for _, lv := range v.Locales {
					if filepath.Clean(lv.Path) == path {
						return st, lv
					}
				}
			}
		}
	}
	return nil, nil
}

// abVariantOf is the name of the A/B variant of st that ct belongs to
// (02-first-project.b.md and 02-first-project.b.nl.md are "b"); "" for the
// step's own files.
func abVariantOf(st *campaign.Step, ct *campaign.Content) string {
	for _, v := range st.AB {
		if v.Content == ct {
			return v.Name
		}
		for _, lv := range v.Locales {
			if lv == ct {
				return v.Name
			}
		}
	}
	return ""
}

func baseURL(e *env) string {
	if u := e.getenv("RETAIN_BASE_URL"); u != "" {
		return u
	}
	return "http://localhost:8080"
}

// fromAddress is RETAIN_FROM, or hello@example.com named after the sender.
func fromAddress(e *env, l *campaign.Lifecycle) (*mail.Address, error) {
	from := e.getenv("RETAIN_FROM")
	if from == "" {
		return &mail.Address{Name: l.Sender.Name, Address: "hello@example.com"}, nil
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("RETAIN_FROM %q is not an email address such as \"Acme <hello@acme.example>\": %v", from, err)
	}
	if a.Name == "" {
		a.Name = l.Sender.Name
	}
	return a, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

// previewSecret signs preview links when RETAIN_SECRET is not set: they have the
// real shape but no retain web accepts them.
const previewSecret = "retain-preview-links-are-not-for-sending"

// linkSigner is the signer of RETAIN_SECRET and the base URL; preview falls back
// to previewSecret.
func linkSigner(e *env, preview bool) (*link.Signer, error) {
	secret := e.getenv("RETAIN_SECRET")
	if secret == "" && preview {
		secret = previewSecret
	}
	return link.NewSigner(secret, baseURL(e))
}
