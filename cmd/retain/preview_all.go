package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/render"
)

// previewAllOptions are the flags of retain preview --all.
type previewAllOptions struct {
	out, against, customer, templates string
}

// runPreviewAll is retain preview --all: every step and locale variant of a
// campaigns folder written to a static folder, or with --against only the
// steps that render differently from REF, beside their previous version.
func runPreviewAll(c *command, e *env, o previewAllOptions, pos []string) int {
	if o.out == "" {
		return c.usageError(e, "--all needs --out DIR: the folder to write the preview into")
	}
	if len(pos) > 1 {
		return c.usageError(e, "with --all, give one campaigns folder at most, got %d", len(pos))
	}
	dir := campaignsDir(e)
	if len(pos) == 1 {
		dir = pos[0]
	}
	if strings.HasSuffix(dir, ".md") {
		return c.usageError(e, "with --all, give the project or campaigns folder, not a step file (%s)", dir)
	}
	d, err := resolveDirs(dir, cmpOr(o.templates, e.getenv("RETAIN_TEMPLATES")))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	if within(o.out, d.campaigns) {
		return c.usageError(e, "--out %s is inside the campaigns folder %s: write the preview elsewhere (a folder there would load as a campaign)", o.out, d.campaigns)
	}
	l, probs, err := loadCampaigns(d)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
		return exitProblems
	}
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintln(e.stderr, p)
		}
		fmt.Fprintf(e.stderr, "retain preview: %s must be fixed first (retain lint %s lists them)\n", plural(len(probs), "problem"), d.campaigns)
		return exitProblems
	}
	ctx := context.Background()
	cust, err := previewCustomer(ctx, e, o.customer, l.set.Lifecycle)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
		return exitProblems
	}
	now := time.Now()
	cur, err := newPreviewer(e, l, cust, now)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
		return exitUsage
	}
	var old *previewer
	if o.against != "" {
		ol, code := loadAgainst(c, e, o.against, d, "their steps that do not render are compared as if they were new")
		if ol == nil {
			return code
		}
		if old, err = newPreviewer(e, ol, cust, now); err != nil {
			fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
			return exitUsage
		}
		// Messages name the files at REF as campaigns@REF/…, not by the
		// temporary folder they were read from.
		old.dirName = filepath.ToSlash(filepath.Clean(d.campaigns)) + "@" + o.against
		old.ref = o.against
	}
	site := buildPreview(cur, old, o.against)
	site.Customer = describeCustomer(cur)
	if err := prepareOut(o.out); err != nil {
		return c.usageError(e, "%v", err)
	}
	if err := site.write(o.out); err != nil {
		fmt.Fprintf(e.stderr, "retain preview: %v\n", err)
		return exitProblems
	}
	for _, pe := range site.emails() {
		if pe.Now != nil && pe.Now.Err != "" {
			fmt.Fprintf(e.stderr, "retain preview: %s\n", pe.Now.Err)
		}
	}
	fmt.Fprintf(e.stderr, "retain preview: %s\n", site.summary(o.out))
	fmt.Fprintln(e.stdout, filepath.Join(o.out, "index.html"))
	if site.Failed > 0 {
		return exitProblems
	}
	return exitOK
}

// Statuses of an email and of a step with --against.
const (
	statusChanged   = "changed"
	statusNew       = "new"
	statusUnchanged = "unchanged"
	statusRemoved   = "removed"
)

// previewSite is what retain preview --all writes: its index and every email.
type previewSite struct {
	// Against is the --against REF; empty for a preview of everything.
	Against string
	// Customer says who the emails are rendered for.
	Customer string
	// DefaultLocale is the lifecycle's locale, that of the default content.
	DefaultLocale string
	Campaigns     []*previewCampaign
	// Removed are the emails of the steps REF has and the campaigns do not.
	Removed []*previewEmail

	// Counts for the summary: steps and emails written, and with --against
	// steps by status.
	Steps, Emails                 int
	Changed, New, Gone, Unchanged int
	Failed                        int
	Locales                       []string
}

// previewCampaign is one campaign of the index, with the emails written.
type previewCampaign struct {
	ID, Name string
	Emails   []*previewEmail
}

// previewEmail is one step in one locale.
type previewEmail struct {
	CampaignID, StepID, Slug string
	// Variant is the A/B variant ("b"); empty for the step's own content.
	Variant string
	// Locale is the locale variant; empty for the default content.
	Locale string
	// Status is empty without --against.
	Status string
	// Note explains a status that is not plain: a locale variant added or
	// removed, a previous version that does not render.
	Note string
	// Base is where the parts are written under the output folder, without
	// extension: "onboarding/welcome.nl" (or "onboarding/first-project.b" for
	// an A/B variant) for .html, .txt, .eml, .before.html, .compare.html….
	Base string
	// Now is the email as the campaigns render it; nil for a removed step.
	// Before is the email at REF; nil without --against or for a new step.
	Now, Before *renderedEmail
	// Diff is the text part's change, on a compare page.
	Diff []diffLine
}

// renderedEmail is one version of an email: what the worker would send.
type renderedEmail struct {
	// File is the step file, relative to the campaigns folder.
	File  string
	Email *render.Email
	EML   []byte
	// Err says why it could not be rendered; Email is nil then.
	Err string
}

// Label names the email's step in the index: its slug, with the A/B variant.
func (pe *previewEmail) Label() string {
	if pe.Variant == "" {
		return pe.Slug
	}
	return pe.Slug + " (variant " + pe.Variant + ")"
}

// Name is the file name of the email's parts, without extension.
func (pe *previewEmail) Name() string { return path.Base(pe.Base) }

// Compared reports whether the email has a compare page.
func (pe *previewEmail) Compared() bool {
	return pe.Status == statusChanged && pe.Now != nil && pe.Now.Email != nil && pe.Before != nil && pe.Before.Email != nil
}

// buildPreview renders every step of cur; with old, only the steps that
// render differently there, or are not there, and the steps only old has.
func buildPreview(cur, old *previewer, ref string) *previewSite {
	s := &previewSite{Against: ref, DefaultLocale: cur.l.set.Lifecycle.Locale}
	locales := map[string]bool{}
	for _, camp := range cur.l.set.Campaigns {
		pc := &previewCampaign{ID: camp.ID, Name: camp.Name}
		for _, st := range camp.Steps {
			var ost *campaign.Step
			if old != nil {
				ost = old.l.set.Step(st.ID)
			}
			var emails []*previewEmail
			status := statusUnchanged
			if old != nil && ost == nil {
				status = statusNew
			}
			for _, k := range stepEmails(st, ost) {
				now := cur.renderEmail(st, k.variant, k.locale)
				if now == nil {
					if old == nil {
						continue
					}
					if before := old.renderEmail(ost, k.variant, k.locale); before != nil {
						// An A/B variant removed: listed with the removed
						// steps, and its step changed.
						s.Removed = append(s.Removed, &previewEmail{CampaignID: camp.ID, StepID: st.ID, Slug: st.Slug, Variant: k.variant, Locale: k.locale,
							Status: statusRemoved, Note: "A/B variant " + k.variant + " removed: its customers now get the step's own email", Base: emailBase(st, k.variant, k.locale), Before: before})
						if status == statusUnchanged {
							status = statusChanged
						}
					}
					continue
				}
				pe := &previewEmail{CampaignID: camp.ID, StepID: st.ID, Slug: st.Slug, Variant: k.variant, Locale: k.locale, Base: emailBase(st, k.variant, k.locale), Now: now}
				if old != nil {
					compareEmail(pe, st, ost, old)
					if pe.Status != statusUnchanged && status == statusUnchanged {
						status = statusChanged
					}
				}
				emails = append(emails, pe)
			}
			if old != nil {
				switch status {
				case statusUnchanged:
					s.Unchanged++
					continue
				case statusNew:
					s.New++
				default:
					s.Changed++
				}
			}
			s.Steps++
			for _, pe := range emails {
				locales[cmpOr(pe.Locale, s.DefaultLocale)] = true
			}
			pc.Emails = append(pc.Emails, emails...)
		}
		if len(pc.Emails) > 0 {
			s.Campaigns = append(s.Campaigns, pc)
		}
	}
	if old != nil {
		for _, camp := range old.l.set.Campaigns {
			for _, ost := range camp.Steps {
				if cur.l.set.Step(ost.ID) != nil {
					continue
				}
				s.Gone++
				for _, k := range stepEmails(ost, nil) {
					before := old.renderEmail(ost, k.variant, k.locale)
					if before == nil {
						continue
					}
					s.Removed = append(s.Removed, &previewEmail{CampaignID: camp.ID, StepID: ost.ID, Slug: ost.Slug, Variant: k.variant, Locale: k.locale,
						Status: statusRemoved, Base: emailBase(ost, k.variant, k.locale), Before: before})
				}
			}
		}
	}
	for _, pe := range s.emails() {
		if pe.Now != nil {
			s.Emails++
			if pe.Now.Err != "" {
				s.Failed++
			}
		}
	}
	s.Locales = slices.Sorted(maps.Keys(locales))
	return s
}

// compareEmail sets the status of pe, whose step st was ost at REF (old).
func compareEmail(pe *previewEmail, st, ost *campaign.Step, old *previewer) {
	if ost == nil {
		pe.Status = statusNew
		return
	}
	loc := pe.Locale
	pe.Before = old.renderEmail(ost, pe.Variant, loc)
	switch {
	case pe.Before == nil && pe.Variant != "":
		pe.Status, pe.Note = statusNew, "new A/B variant"
		return
	case pe.Before == nil:
		pe.Status = statusChanged // REF had nothing for this locale
	case pe.Before.Email == nil:
		pe.Status, pe.Note = statusChanged, "did not render at "+old.ref+": "+pe.Before.Err
		return
	case pe.Now.Email != nil && *pe.Now.Email == *pe.Before.Email:
		pe.Status = statusUnchanged
	default:
		pe.Status = statusChanged
	}
	_, isNow := variantLocales(st, pe.Variant)[loc]
	_, wasThen := variantLocales(ost, pe.Variant)[loc]
	switch {
	case loc == "" || isNow == wasThen:
	case isNow && pe.Before != nil:
		pe.Note = fmt.Sprintf("new %s variant: %s customers got %s before", loc, loc, pe.Before.File)
	case isNow:
		pe.Note = fmt.Sprintf("new %s variant", loc)
	default:
		pe.Note = fmt.Sprintf("the %s variant was removed: %s customers now get %s", loc, loc, pe.Now.File)
	}
}

// emailKey names one email of a step: an A/B variant ("" for the step's own
// content) in a locale ("" for the default).
type emailKey struct{ variant, locale string }

// stepEmails are the emails to render of step st, and ost at REF: the step's
// own content, then each A/B variant of either by name, each in the default
// locale first, then in every locale variant it has in either, sorted.
func stepEmails(st, ost *campaign.Step) []emailKey {
	variants := map[string]bool{"": true}
	for _, s := range []*campaign.Step{st, ost} {
		if s != nil {
			for _, v := range s.AB {
				variants[v.Name] = true
			}
		}
	}
	var out []emailKey
	for _, v := range slices.Sorted(maps.Keys(variants)) {
		set := map[string]bool{}
		for _, s := range []*campaign.Step{st, ost} {
			for loc := range variantLocales(s, v) {
				set[loc] = true
			}
		}
		out = append(out, emailKey{v, ""})
		for _, loc := range slices.Sorted(maps.Keys(set)) {
			out = append(out, emailKey{v, loc})
		}
	}
	return out
}

// variantLocales are the locale variants of A/B variant name of st (the
// step's own for ""); none when st is nil or has no such variant.
func variantLocales(st *campaign.Step, name string) map[string]*campaign.Content {
	if st == nil {
		return nil
	}
	if name == "" {
		return st.Variants
	}
	if v := st.ABVariant(name); v != nil {
		return v.Locales
	}
	return nil
}

// emailBase is where the parts of step st in A/B variant variant and locale
// are written: onboarding/first-project.b.nl.
func emailBase(st *campaign.Step, variant, locale string) string {
	b := st.Campaign.ID + "/" + st.Slug
	if variant != "" {
		b += "." + variant
	}
	if locale != "" {
		b += "." + locale
	}
	return b
}

// renderEmail renders A/B variant variant ("" for the step's own content) of
// step st for the customer in locale (empty: the customer's own): the
// locale's file, or what the variant falls back to for that locale. It is nil
// when st is nil or has no such A/B variant.
func (p *previewer) renderEmail(st *campaign.Step, variant, locale string) *renderedEmail {
	if st == nil || variant != "" && st.ABVariant(variant) == nil {
		return nil
	}
	ct := st.ContentForVariant(variant, locale)
	if ct == nil {
		return nil
	}
	r := &renderedEmail{File: p.relPath(ct.Path)}
	d := p.data(st, locale)
	email, err := p.l.renderer.RenderContent(ct, d)
	if err != nil {
		r.Err = p.name(err.Error())
		return r
	}
	var eml bytes.Buffer
	if _, err := p.message(st, d, email).WriteTo(&eml); err != nil {
		r.Err = p.name(fmt.Sprintf("%s: %v", ct.Path, err))
		return r
	}
	r.Email, r.EML = email, eml.Bytes()
	return r
}

// relPath is path relative to the campaigns folder, with forward slashes.
func (p *previewer) relPath(file string) string {
	if rel, err := filepath.Rel(p.l.set.Dir, file); err == nil {
		return filepath.ToSlash(rel)
	}
	return filepath.ToSlash(file)
}

// name replaces the campaigns folder in msg with dirName, when set.
func (p *previewer) name(msg string) string {
	if p.dirName == "" {
		return msg
	}
	return strings.ReplaceAll(msg, filepath.Clean(p.l.set.Dir), p.dirName)
}

// describeCustomer says whom p renders for, for the index.
func describeCustomer(p *previewer) string {
	if p.customer == nil {
		c := render.SampleData(p.l.set, p.baseURL).Customer
		return fmt.Sprintf("the built-in sample customer, %s <%s> (locale %s, %s)", c.Name, c.Email, c.Locale, c.Timezone)
	}
	c := p.customer
	return fmt.Sprintf("customer %s, %s <%s> (locale %s, %s)", c.ID, cmpOr(c.Name, c.FirstName), c.Email,
		cmpOr(c.Locale, p.l.set.Lifecycle.Locale), p.eng.Location(c))
}

// emails are every email of the site, written and removed.
func (s *previewSite) emails() []*previewEmail {
	var out []*previewEmail
	for _, pc := range s.Campaigns {
		out = append(out, pc.Emails...)
	}
	return append(out, s.Removed...)
}

// Counts says how many steps there are, or with --against how many changed.
func (s *previewSite) Counts() string {
	if s.Against != "" {
		return fmt.Sprintf("%s changed, %d new, %d removed, %d unchanged", plural(s.Changed, "step"), s.New, s.Gone, s.Unchanged)
	}
	return fmt.Sprintf("%s, %s", plural(s.Steps, "step"), plural(s.Emails, "email"))
}

// summary is the line retain preview --all ends with.
func (s *previewSite) summary(out string) string {
	var b strings.Builder
	if s.Against != "" {
		fmt.Fprintf(&b, "against %s: %s; ", s.Against, s.Counts())
	} else {
		fmt.Fprintf(&b, "%s; ", plural(s.Steps, "step"))
	}
	b.WriteString(plural(s.Emails, "email"))
	if len(s.Locales) > 0 {
		fmt.Fprintf(&b, " in %s (%s)", plural(len(s.Locales), "locale"), strings.Join(s.Locales, ", "))
	}
	fmt.Fprintf(&b, " written to %s", out)
	if s.Failed > 0 {
		fmt.Fprintf(&b, "; %s did not render", plural(s.Failed, "email"))
	}
	return b.String()
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	ap, err1 := filepath.Abs(path)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// prepareOut makes dir ready for a preview: created when missing, emptied when
// it holds an earlier preview (a CI job or a marketer running it again), and
// refused when it holds anything else.
func prepareOut(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--out %s: %v", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %v (give a folder)", dir, err)
	case len(entries) == 0:
		return nil
	}
	if !isPreview(filepath.Join(dir, "index.html")) {
		return fmt.Errorf("--out %s is not empty and holds no earlier preview: give a new or empty folder", dir)
	}
	for _, en := range entries {
		if err := os.RemoveAll(filepath.Join(dir, en.Name())); err != nil {
			return fmt.Errorf("--out %s: clear the earlier preview: %v", dir, err)
		}
	}
	return nil
}

// isPreview reports whether the file at path is the index of a preview.
func isPreview(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	return bytes.Contains(head[:n], []byte(previewGenerator))
}
