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

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/queue"
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

// messages builds, for customer i, the message the worker sends (queue.Message,
// with the worker's links, click tracking and From): the bare loop sends the
// same bytes as the pipeline.
type messages struct {
	cfg *queue.WorkerConfig
	eng *lifecycle.Engine
	r   *render.Renderer
	set *campaign.Set
}

func newMessages(set *campaign.Set, r *render.Renderer, bounceDomain string) (*messages, error) {
	signer, err := link.NewSigner(benchSecret, benchBaseURL)
	if err != nil {
		return nil, err
	}
	cfg := &queue.WorkerConfig{
		From:  benchFrom,
		Links: queue.SignedLinks(signer, set.Lifecycle.Links, time.Now),
		Click: signer.ClickURL, // retain worker's default: --track-clicks
		Now:   time.Now,
		// As retain worker: Message-IDs signed with RETAIN_SECRET, and the
		// Return-Path of RETAIN_BOUNCE_DOMAIN when the run sets one.
		Tokens:       bounce.NewTokens([]byte(benchSecret)),
		BounceDomain: bounceDomain,
	}
	return &messages{cfg: cfg, eng: lifecycle.New(set), r: r, set: set}, nil
}

// message is customer i's welcome email, the customer made as the seeding
// makes it (an import of the record with its signed_up event).
func (ms *messages) message(i int) (*mailer.Message, error) {
	rec, err := record(ms.set, i, time.Now())
	if err != nil {
		return nil, err
	}
	c, _, err := ingest.NewCustomer(ms.eng, rec, time.Now())
	if err != nil {
		return nil, err
	}
	for _, ev := range rec.Events {
		if _, err := ms.eng.Apply(c, ev); err != nil {
			return nil, err
		}
	}
	st := ms.set.Step(benchStep)
	enr := c.Enrollments[st.Campaign.ID]
	if enr == nil {
		return nil, fmt.Errorf("customer %d is not enrolled in %s", i, st.Campaign.ID)
	}
	return queue.Message(ms.cfg, ms.eng, ms.r, c, st, enr.Number)
}

// bareLoop sends n messages to addr over conns go-mail connections, conns
// goroutines taking the next customer from a shared counter. Each message is
// rendered and built per send, as the worker builds it. No Redis, no queue, no pool:
// one dialed go-mail client per goroutine, NOOP and RSET off as in mailer.Pool.
func bareLoop(ctx context.Context, addr string, conns, n int, set *campaign.Set, r *render.Renderer, bounceDomain string) (time.Duration, error) {
	ms, err := newMessages(set, r, bounceDomain)
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
				m, err := ms.message(i)
				var gm *gomail.Msg
				if err == nil {
					gm, err = m.BuildFor(true) // the sink announces 8BITMIME
				}
				if err == nil && m.ReturnPath != "" {
					err = gm.EnvelopeFrom(m.ReturnPath)
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
