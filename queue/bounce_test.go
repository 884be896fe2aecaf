package queue

import (
	"net"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/report"
)

const testBounceDomain = "bounces.acme.example"

// TestBouncesComeBackThroughTheReturnPath: the worker sends each email with a
// Return-Path of its own; the receivers' bounces and complaints, sent back to
// it over SMTP, reach retain inbound's server, which suppresses the
// addresses, records the events on the customers, counts them per step and
// pauses the campaign whose bounce rate passed its threshold, until resumed.
func TestBouncesComeBackThroughTheReturnPath(t *testing.T) {
	b := setup(t)
	set := b.applier.Engine.Set()
	b.store.Also = report.NewRecorder(b.prefix, set.Lifecycle).Record
	set.Lifecycle.Deliverability.PauseWindow = 3 // a small campaign's window, for the test
	tokens := bounce.NewTokens([]byte(strings.Repeat("s", 32)))
	w, err := NewWorker(WorkerConfig{
		Store: b.store, Engine: b.applier.Engine, Renderer: b.worker.renderer, Sender: b.pool,
		From: mail.Address{Name: "Acme", Address: "hello@acme.example"}, Links: testLinks,
		Tokens: tokens, BounceDomain: testBounceDomain, Now: b.clock.Now, Log: b.worker.cfg.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.worker = w
	for _, id := range []string{"anna", "bob", "carla", "dirk"} {
		b.signUp(t, id, strings.ToUpper(id[:1])+id[1:])
	}
	b.run(t)
	sent := map[string]smtptest.Message{}
	for _, m := range b.smtp.Wait(4, 5*time.Second) {
		sent[strings.TrimSuffix(m.To[0], "@example.org")] = m
	}
	if len(sent) != 4 {
		t.Fatalf("sent %d welcome emails, want 4", len(sent))
	}
	for id, m := range sent {
		local, domain, _ := strings.Cut(m.From, "@")
		if !strings.HasPrefix(local, "bounces+") || domain != testBounceDomain || len(local) > 64 {
			t.Errorf("%s: MAIL FROM %q, want bounces+<token>@%s", id, m.From, testBounceDomain)
		}
		if !strings.HasPrefix(m.Header.Get("Message-Id"), "<retain.") {
			t.Errorf("%s: Message-ID %q is not a signed one", id, m.Header.Get("Message-Id"))
		}
		if m.Header.Get("Return-Path") != "" {
			t.Errorf("%s: the sender wrote a Return-Path header (the receiver adds it)", id)
		}
	}

	_, addr := startInbound(t, b, tokens)
	msgID := func(id string) string { return strings.Trim(sent[id].Header.Get("Message-Id"), "<>") }

	// dirk forges a bounce and a complaint about his own email, naming carla's
	// address: a token is good for the address it was sent to only.
	if err := deliver(addr, sent["dirk"].From, readFixture(t, "postfix-hard.eml", sent["dirk"].From, "carla@example.org", msgID("dirk"))); err != nil {
		t.Fatal(err)
	}
	if err := deliver(addr, strings.ToUpper(sent["dirk"].From), readFixture(t, "arf-abuse.eml", sent["dirk"].From, "carla@example.org", msgID("dirk"))); err != nil {
		t.Fatal(err)
	}
	if sup, _ := b.store.Suppression(b.ctx, "carla@example.org"); sup != nil {
		t.Errorf("a report about dirk's email suppressed carla: %+v", sup)
	}
	if c, _ := b.store.Customer(b.ctx, "carla"); c.Unsubscribed {
		t.Error("a report about dirk's email unsubscribed carla")
	}

	// A hard bounce of anna, delivered twice (a retry after a lost reply).
	dsn := readFixture(t, "postfix-hard.eml", sent["anna"].From, "anna@example.org", msgID("anna"))
	for range 2 {
		if err := deliver(addr, sent["anna"].From, dsn); err != nil {
			t.Fatalf("deliver anna's bounce: %v", err)
		}
	}
	// bob complains, through the feedback loop.
	if err := deliver(addr, sent["bob"].From, readFixture(t, "arf-abuse.eml", sent["bob"].From, "Bob@Example.org", msgID("bob"))); err != nil {
		t.Fatalf("deliver bob's complaint: %v", err)
	}
	// A forged token is refused at RCPT.
	forged := strings.Replace(sent["carla"].From, "bounces+", "bounces+a", 1)
	err = deliver(addr, forged, dsn)
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 550 {
		t.Errorf("a forged Return-Path: %v, want 550", err)
	}

	ctx := b.ctx
	sup, err := b.store.Suppression(ctx, "anna@example.org")
	if err != nil || sup == nil || !strings.Contains(sup.Reason, "5.1.1") {
		t.Errorf("anna's suppression = %+v, %v; want one for the 5.1.1 bounce", sup, err)
	}
	sup, err = b.store.Suppression(ctx, "bob@example.org")
	if err != nil || sup == nil || !strings.Contains(sup.Reason, "complained") {
		t.Errorf("bob's suppression = %+v, %v; want one for the complaint", sup, err)
	}
	if sup, _ := b.store.Suppression(ctx, "carla@example.org"); sup != nil {
		t.Errorf("carla suppressed: %+v", sup)
	}
	bob, err := b.store.Customer(ctx, "bob")
	if err != nil || !bob.Unsubscribed {
		t.Errorf("bob after a complaint: unsubscribed %v (%v), want true", bob != nil && bob.Unsubscribed, err)
	}
	evs, err := b.store.Events(ctx, "anna", 10)
	if err != nil {
		t.Fatal(err)
	}
	var bounces []lifecycle.Event
	for _, ev := range evs {
		if ev.Name == bounce.EventBounced {
			bounces = append(bounces, ev)
		}
	}
	if len(bounces) != 1 || bounces[0].Data["step"] != "onboarding/welcome" || bounces[0].Data["matched_by"] != "return-path" {
		t.Errorf("anna's bounce events: %+v, want one for onboarding/welcome", bounces)
	}
	rep, err := report.Read(ctx, b.rdb, b.prefix, set, b.clock.Now().Add(-time.Hour), "onboarding")
	if err != nil {
		t.Fatal(err)
	}
	cr := rep.Campaigns[0]
	if cr.Sent != 4 || cr.Bounced != 1 || cr.Complained != 1 || cr.Steps[0].Bounced != 1 || cr.Steps[0].Complained != 1 {
		t.Errorf("report: sent %d bounced %d complained %d (step: %+v), want 4, 1, 1", cr.Sent, cr.Bounced, cr.Complained, cr.Steps[0])
	}
	// 1 bounce in 4 sends passed 5%, and 1 complaint 0.3%: the campaign paused.
	if !strings.Contains(cr.Paused, "rate") {
		t.Errorf("report: paused %q, want the reason of an auto-pause", cr.Paused)
	}

	// Two days on, carla's and dirk's second step is due: it waits (once the
	// worker's copy of the paused campaigns is renewed).
	b.clock.Advance(2*24*time.Hour + time.Minute)
	time.Sleep(pausedRefresh)
	b.run(t)
	time.Sleep(100 * time.Millisecond)
	if n := len(b.smtp.Messages()); n != 4 {
		t.Fatalf("a paused campaign sent: %d emails, want 4", n)
	}
	carla, _ := b.store.Customer(ctx, "carla")
	if e := carla.Enrollments["onboarding"]; e.Status != lifecycle.Active || e.Next != "first-project" {
		t.Fatalf("carla's enrollment while paused: %+v, want waiting on first-project", e)
	}
	// Resumed, their steps are due at once (not an hour later), and the
	// rate window starts at the campaign's totals now.
	if ok, woken, err := bounce.Resume(ctx, b.store, "onboarding", b.clock.Now()); !ok || woken != 3 || err != nil {
		t.Fatalf("resume: %v, woke %d, %v; want anna (suppressed: her step stops now), carla and dirk", ok, woken, err)
	}
	time.Sleep(pausedRefresh) // the worker's copy of the paused campaigns
	b.run(t)
	msgs := b.smtp.Wait(6, 5*time.Second)
	var to []string
	for _, m := range msgs[4:] {
		to = append(to, m.To[0])
	}
	if len(msgs) != 6 || !strings.Contains(strings.Join(to, " "), "carla@") || !strings.Contains(strings.Join(to, " "), "dirk@") {
		t.Errorf("after resume sent to %v, want carla and dirk (anna is suppressed, bob unsubscribed)", to)
	}
}

// TestSoftBouncesSuppressAtTheLimit: temporary failures count, once each, and
// the third within 30 days suppresses the address.
func TestSoftBouncesSuppressAtTheLimit(t *testing.T) {
	b := setup(t)
	b.store.Also = report.NewRecorder(b.prefix, b.applier.Engine.Set().Lifecycle).Record
	tokens := bounce.NewTokens([]byte(strings.Repeat("s", 32)))
	b.signUp(t, "carla", "Carla")
	_, addr := startInbound(t, b, tokens)
	soft := func(rp string, day int) string {
		return "From: MAILER-DAEMON@mx.example\r\nTo: " + rp + "\r\nSubject: failure\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n" +
			"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; carla@example.org\r\nAction: failed\r\nStatus: 4.2.2\r\n" +
			"Diagnostic-Code: smtp; 452 4.2.2 mailbox full\r\nLast-Attempt-Date: " + b.clock.Now().AddDate(0, 0, day).Format(time.RFC1123Z) + "\r\n\r\n--b--\r\n"
	}
	// Each is another email's final temporary failure; the first is older
	// than 30 days, the third the second's DSN delivered again.
	for i, tc := range []struct{ day, enrollment int }{{-40, 1}, {-10, 2}, {-10, 2}, {-5, 3}, {-1, 4}} {
		rp := tokens.ReturnPath(bounce.Send{Customer: "carla", Address: "carla@example.org", Step: "onboarding/welcome", Enrollment: tc.enrollment}, testBounceDomain)
		if err := deliver(addr, rp, soft(rp, tc.day)); err != nil {
			t.Fatal(err)
		}
		sup, _ := b.store.Suppression(b.ctx, "carla@example.org")
		if want := i == 4; (sup != nil) != want {
			t.Errorf("after soft bounce %d: suppressed %+v, want %v", i+1, sup, want)
		}
	}
	sup, _ := b.store.Suppression(b.ctx, "carla@example.org")
	if sup == nil || !strings.Contains(sup.Reason, "3 delivery failures within 30d") {
		t.Errorf("suppression %+v", sup)
	}
}

// startInbound starts retain inbound's SMTP server on a free port, applying
// reports to b's store with b's clock.
func startInbound(t *testing.T, b *testBundle, tokens *bounce.Tokens) (*bounce.Server, string) {
	t.Helper()
	ap := &bounce.Applier{Store: b.store, Engine: b.applier.Engine, Tokens: tokens, Now: b.clock.Now, Log: b.worker.cfg.Log}
	srv, err := bounce.NewServer(bounce.ServerConfig{Domain: testBounceDomain, Tokens: tokens, Sink: ap.Apply, Log: b.worker.cfg.Log})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return srv, l.Addr().String()
}

// deliver sends msg to rcpt with the null sender, as a receiver sends a bounce.
func deliver(addr, rcpt, msg string) error {
	c, err := smtp.Dial(addr) // plain SMTP: receivers fall back to it without STARTTLS
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("", []string{rcpt}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

func readFixture(t *testing.T, name, rcpt, to, msgID string) string {
	t.Helper()
	raw, err := os.ReadFile("../bounce/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{RCPT}}", rcpt, "{{TO}}", to, "{{MSGID}}", msgID, "{{MSGID_BRACKETED}}", "<"+msgID+">").Replace(string(raw))
	return strings.ReplaceAll(s, "\n", "\r\n")
}
