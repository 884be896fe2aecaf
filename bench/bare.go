package main

import (
	"context"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/render"
)

// benchStep is the ~500-word step every figure sends.
const benchStep = "welcome/guide"

// benchFrom is RETAIN_FROM of the worker and the From of the bare loop.
var benchFrom = mail.Address{Name: "Acme Projects", Address: "hello@acme.example"}

const benchBaseURL = "https://retain.acme.example"

// benchSecret is RETAIN_SECRET of the worker; the bare loop signs its links
// with it too, so both send the same bytes.
const benchSecret = "retain-bench-secret-0123456789abcdef"

// renderMessage renders the bench step for customer i as the worker does
// (queue.Worker.message): the same data, links and headers.
func renderMessage(set *campaign.Set, r *render.Renderer, signer *link.Signer, i int) (*mailer.Message, error) {
	id := customerID(i)
	plan := "free"
	if i%3 == 0 {
		plan = "team"
	}
	d := &render.Data{
		Customer: render.Customer{ID: id, Email: customerEmail(i), FirstName: "Ada", Name: "Ada Lovelace",
			Locale: set.Lifecycle.Locale, Timezone: set.Lifecycle.Timezone.String(), Stage: "onboarding",
			Attributes: render.Attributes{"plan": plan, "company": "Analytical Engines Ltd"}},
		Links: render.NewLinks(signer.UnsubscribeURL(id, ""), signer.PreferencesURL(id),
			func(score int) string { return signer.NPSURL(id, "welcome", score, time.Now(), 90*24*time.Hour) }, set.Lifecycle.Links),
		Sender: render.Sender{Name: set.Lifecycle.Sender.Name, Email: benchFrom.Address, Address: set.Lifecycle.Sender.Address},
	}
	email, err := r.Render(benchStep, d)
	if err != nil {
		return nil, err
	}
	return &mailer.Message{
		From: benchFrom, To: mail.Address{Name: "Ada Lovelace", Address: customerEmail(i)},
		Subject: email.Subject, Text: email.Text, HTML: email.HTML,
		MessageID:   mailer.MessageID(benchStep, id, 1, "acme.example"),
		Date:        time.Now(),
		Unsubscribe: signer.UnsubscribeURL(id, ""),
	}, nil
}

// bareLoop sends n messages to addr over conns go-mail connections, conns
// goroutines taking the next customer from a shared counter. Each message is
// rendered and built per send, like the worker does. No Redis, no queue, no pool:
// one dialed go-mail client per goroutine, NOOP and RSET off as in mailer.Pool.
func bareLoop(ctx context.Context, addr string, conns, n int, set *campaign.Set, r *render.Renderer) (time.Duration, error) {
	signer, err := link.NewSigner(benchSecret, benchBaseURL)
	if err != nil {
		return 0, err
	}
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	begin := time.Now()
	for range conns {
		wg.Go(func() {
			c, err := gomail.NewClient(host, gomail.WithPort(port), gomail.WithTLSPolicy(gomail.NoTLS),
				gomail.WithoutNoop(), gomail.WithoutRset(), gomail.WithHELO("bench.local"))
			if err == nil {
				err = c.DialWithContext(ctx)
			}
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				m, err := renderMessage(set, r, signer, i)
				var gm *gomail.Msg
				if err == nil {
					gm, err = m.Build()
				}
				if err == nil {
					err = c.Send(gm)
				}
				if err != nil {
					errs <- fmt.Errorf("bare loop message %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	close(errs)
	return elapsed, <-errs
}
