package web

import (
	"context"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// TestSend lets the step preview send the step to an address, as retain
// send-test does: through the relay, with the worker's headers, "[test] "
// before the subject, and the preview's links, which change no one.
type TestSend struct {
	// Sender sends it (a *mailer.Pool of SMTP_URL).
	Sender interface {
		Send(ctx context.Context, m *mailer.Message) error
	}
	// From is the worker's From address (RETAIN_FROM).
	From mail.Address
	// UnsubscribeMailto is RETAIN_UNSUBSCRIBE_MAILTO, for List-Unsubscribe.
	UnsubscribeMailto string
}

// sendTest sends the step as the page previews it (the customer and locale
// of the form) to the form's address, and shows the page again saying how
// it went. The form is accepted from the preview's own pages only.
func (s *Server) sendTest(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "This form is accepted from retain web's own pages only.", http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "The form could not be read: "+err.Error(), http.StatusBadRequest)
		return
	}
	// The page's own query: the preview the button was under.
	q := url.Values{}
	for _, k := range []string{"customer", "locale"} {
		if v := r.PostForm.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	r.URL.RawQuery = q.Encode()
	if s.d.TestSend == nil {
		s.showStep(w, r, "retain web cannot send test emails: start it with SMTP_URL and RETAIN_FROM set, or use retain send-test.", true)
		return
	}
	to := strings.TrimSpace(r.PostForm.Get("to"))
	if err := ingest.CheckEmail(to); err != nil {
		s.showStep(w, r, "Nothing sent: "+err.Error()+".", true)
		return
	}
	_, st, ok := s.lookup(w, r)
	if !ok {
		return
	}
	p := s.renderStepFor(r, st, true)
	if p.Email == nil {
		s.showStep(w, r, "Nothing sent: the step does not render ("+p.Err+").", true)
		return
	}
	ts := s.d.TestSend
	senderName := ""
	if set := s.set(); set != nil && set.Lifecycle != nil {
		senderName = set.Lifecycle.Sender.Name
	}
	from, replyTo := queue.StepSender(ts.From, st, senderName)
	m := &mailer.Message{
		From: from, ReplyTo: replyTo,
		To:                mail.Address{Name: p.Customer.Name, Address: to},
		Subject:           "[test] " + p.Email.Subject,
		Text:              p.Email.Text,
		HTML:              p.Email.HTML,
		MessageID:         mailer.MessageID(st.ID, "test-"+store.NewToken(), 0, domainOfAddr(from.Address)),
		Date:              s.cfg.Now(),
		Unsubscribe:       baseURL(r) + "/preview/unsubscribe",
		UnsubscribeMailto: ts.UnsubscribeMailto,
		Headers:           queue.StepHeaders(st, domainOfAddr(from.Address)),
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if err := ts.Sender.Send(ctx, m); err != nil {
		s.cfg.Log.Warn("test email not sent", "step", st.ID, "error", err)
		s.showStep(w, r, "Not sent: the relay answered "+err.Error(), true)
		return
	}
	s.cfg.Log.Info("test email sent", "step", st.ID, "customer", customerOrSample(p.CustomerID), "message_id", m.MessageID)
	q.Set("sent", to)
	http.Redirect(w, r, stepURL(st)+"?"+q.Encode(), http.StatusSeeOther)
}

// sameOrigin reports whether a form post comes from a page of this server: a
// browser says where a post comes from (Sec-Fetch-Site, Origin), so another
// site cannot make a logged-in operator's browser send email. A client that
// says neither (curl) is not a browser a site can drive.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	return origin == "" || origin == baseURL(r)
}

func domainOfAddr(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

func customerOrSample(id string) string {
	if id == "" {
		return "(sample)"
	}
	return id
}
