package main

import (
	"fmt"
	"io"
	"net/mail"
	"path/filepath"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
)

var previewCmd = &command{
	name:    "preview",
	summary: "Render one email step as a customer will receive it",
	usage:   "preview [--customer FILE] [--format html|text|eml] STEP.md",
	help: `STEP.md is a step file inside a campaign folder, such as
campaigns/onboarding/01-welcome.md; a locale variant (01-welcome.nl.md) previews
that translation. The whole campaigns folder is loaded, so the preview uses the
same lifecycle.yaml and layouts as a real send.

Without --customer, a built-in sample customer is used. A customer file is JSON:
  {"id": "c42", "email": "ada@example.com", "first_name": "Ada", "locale": "en",
   "timezone": "Europe/Amsterdam", "stage": "onboarding",
   "attributes": {"plan": "team"}}

Formats: html (the HTML part inside its layout), text (the plain-text part),
eml (the complete RFC 5322 message with the headers it is sent with).

Environment: RETAIN_FROM (From address, default "hello@example.com" with the
sender name of lifecycle.yaml), RETAIN_BASE_URL (base of unsubscribe and
preference links, default http://localhost:8080).

Exit status: 0 rendered, 1 the step or its campaigns have problems, 2 usage error.

Examples:
  retain preview campaigns/onboarding/01-welcome.md
  retain preview --format text --customer ada.json campaigns/nps/01-survey.nl.md
  retain preview --format eml campaigns/onboarding/01-welcome.md > welcome.eml`,
	run: runPreview,
}

func runPreview(c *command, e *env, args []string) int {
	fs := c.flags()
	customerPath := fs.String("customer", "", "customer `FILE` (JSON) to render for; default a built-in sample customer")
	format := fs.String("format", "html", "output `format`: html, text or eml")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usageError(e, "give exactly one step file, got %d", len(pos))
	}
	switch *format {
	case "html", "text", "eml":
	default:
		return c.usageError(e, "unknown format %q: use html, text or eml", *format)
	}
	stepPath := filepath.Clean(pos[0])
	if filepath.Base(stepPath) == campaign.CampaignFile || !strings.HasSuffix(stepPath, ".md") {
		return c.usageError(e, "%s is not a step file: give one like campaigns/onboarding/01-welcome.md", stepPath)
	}
	campaignsDir := filepath.Dir(filepath.Dir(stepPath))
	d, err := resolveDirs(campaignsDir, cmpOr(*templates, e.getenv("RETAIN_TEMPLATES")))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	l, probs, err := loadCampaigns(d)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
		return exitProblems
	}
	step, content := findContent(l.set, stepPath)
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintln(e.stderr, p)
		}
		fmt.Fprintf(e.stderr, "retain preview: %s must be fixed first (retain lint %s lists them)\n", plural(len(probs), "problem"), d.campaigns)
		return exitProblems
	}
	if content == nil {
		fmt.Fprintf(e.stderr, "retain preview: %s is not a step of the campaigns in %s\n", stepPath, d.campaigns)
		return exitProblems
	}

	data := render.SampleData(l.set, baseURL(e))
	if *customerPath != "" {
		c, err := readCustomer(*customerPath, l.set.Lifecycle)
		if err != nil {
			fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
			return exitProblems
		}
		data.Customer = c
	}
	signer, err := linkSigner(e, true)
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	data.Links = customerLinks(signer, l.set.Lifecycle.Links, time.Now)(&lifecycle.Customer{ID: data.Customer.ID}, step.Campaign.ID)
	if content.Locale != "" {
		data.Customer.Locale = content.Locale
	}
	from, err := fromAddress(e, l.set.Lifecycle)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
		return exitUsage
	}
	data.Sender.Email = from.Address

	email, err := l.renderer.Render(step.ID, data)
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
		msg := &mailer.Message{
			From:        *from,
			To:          mail.Address{Name: data.Customer.Name, Address: data.Customer.Email},
			Subject:     email.Subject,
			Text:        email.Text,
			HTML:        email.HTML,
			MessageID:   mailer.MessageID(step.ID, data.Customer.ID, 1, domainOf(from.Address)),
			Date:        time.Now(),
			Unsubscribe: fmt.Sprint(data.Links[render.LinkUnsubscribe]),
		}
		if _, err := msg.WriteTo(e.stdout); err != nil {
			fmt.Fprintf(e.stderr, "retain preview: %s: %v\n", stepPath, err)
			return exitProblems
		}
	}
	return exitOK
}

// findContent returns the step and the content (default or locale variant) that
// were loaded from path.
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
		}
	}
	return nil, nil
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

// customerLinks builds the links of one customer's email in a campaign: signed
// one-click unsubscribe, preferences and NPS score links, and lifecycle.yaml's
// fixed links.
func customerLinks(s *link.Signer, fixed map[string]string, now func() time.Time) func(c *lifecycle.Customer, campaignID string) render.Links {
	return func(c *lifecycle.Customer, campaignID string) render.Links {
		at := now()
		return render.NewLinks(s.UnsubscribeURL(c.ID, ""), s.PreferencesURL(c.ID),
			func(score int) string { return s.NPSURL(c.ID, campaignID, score, at, npsLinkTTL) }, fixed)
	}
}

// npsLinkTTL is how long an NPS score link in an email stays valid.
const npsLinkTTL = 90 * 24 * time.Hour
