package main

import (
	"context"
	"fmt"
	"net/mail"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/store"
)

var sendTestCmd = &command{
	name:    "send-test",
	summary: "Send one email step to an address through the relay, as the worker would, marked as a test",
	usage:   "send-test --to ADDRESS [--customer FILE|ID] STEP.md",
	help: `STEP.md is a step file inside a campaign folder (a locale variant such as
01-welcome.nl.md sends that translation, an A/B variant such as
02-first-project.b.md that variant). The step is rendered for the customer
as retain preview renders it — the built-in sample customer, a customer file,
or the ID of a customer stored in Redis — built with the headers the worker
sends (From, Reply-To, List-Unsubscribe, Feedback-ID, the campaign's topic) and
sent through SMTP_URL to --to, with "[test] " before its subject and a Message-ID
of its own.

Nothing else changes: no send ledger entry, no report counter, no customer
state, no event; a customer ID is only read. The email's links are signed with
a key retain web refuses, so a click in a test email (unsubscribe included)
changes no one.

Environment: SMTP_URL and RETAIN_FROM (required, as for the worker),
RETAIN_DKIM_KEYS (signs it as the worker would), RETAIN_BASE_URL, RETAIN_UNSUBSCRIBE_MAILTO, RETAIN_TEMPLATES; REDIS_URL and
RETAIN_REDIS_PREFIX for --customer ID.`,
	run: runSendTest,
}

func runSendTest(c *command, e *env, args []string) int {
	fs := c.flags()
	to := fs.String("to", "", "the `ADDRESS` to send the test email to (required)")
	customerArg := fs.String("customer", "", "customer `FILE|ID` to render for: a JSON file, or the ID of a customer stored in Redis; default a built-in sample customer")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
	eventArg := fs.String("event", "", "the trigger event `FILE` (JSON: {\"name\", \"at\", \"data\"}) an event-triggered step sees as .Event, as for retain preview")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usageError(e, "give exactly one step file, got %d", len(pos))
	}
	rcpt, err := mail.ParseAddress(*to)
	if *to == "" || err != nil {
		return c.usageError(e, "--to %q: give the address to send the test to, such as --to you@acme.example", *to)
	}
	if e.getenv("RETAIN_FROM") == "" {
		return c.usageError(e, "RETAIN_FROM is required, as for the worker: the From address, such as \"Acme <hello@acme.example>\"")
	}
	smtpCfg, err := mailer.ParseURL(e.getenv("SMTP_URL"))
	if err != nil {
		return c.usageError(e, "%v", err)
	}
	if spec := e.getenv(dkimEnv); spec != "" { // signed as the worker signs
		keys, _, problems := dkimKeys(spec)
		if len(problems) > 0 {
			return c.usageError(e, "%s", strings.Join(problems, "; "))
		}
		smtpCfg.DKIM = keys
	}
	p, step, content, code := loadStepPreview(c, e, pos[0], *customerArg, *templates, true)
	if p == nil {
		return code
	}
	if p.event, code = readEventFile(c, e, *eventArg); code != exitOK {
		return code
	}
	data := p.data(step, content.Locale)
	email, err := p.l.renderer.RenderVariant(step.ID, abVariantOf(step, content), data, nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain send-test: %s: %v\n", pos[0], err)
		return exitProblems
	}
	m := p.message(step, data, email)
	m.To = mail.Address{Name: m.To.Name, Address: rcpt.Address}
	m.Subject = "[test] " + m.Subject
	m.MessageID = mailer.MessageID(step.ID, "test-"+store.NewToken(), 0, domainOf(m.From.Address))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	smtpCfg.PoolSize = 1
	pool := mailer.NewPool(smtpCfg)
	defer pool.Close()
	if err := pool.Send(ctx, m); err != nil {
		fmt.Fprintf(e.stderr, "retain send-test: %s to %s through %s: %v\n", step.ID, rcpt.Address, smtpCfg.Redacted(), err)
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "sent %s (%q) to %s through %s, Message-ID <%s>\n", step.ID, m.Subject, rcpt.Address, smtpCfg.Redacted(), m.MessageID)
	return exitOK
}
