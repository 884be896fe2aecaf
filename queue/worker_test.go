package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
	"github.com/retainmail/retain/store"
)

func subject(m smtptest.Message) string {
	s, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	return s
}

func TestOnboardingEmailsArriveInOrderWithTheirSpacing(t *testing.T) {
	b := setup(t)
	b.signUp(t, "c1", "Ada")
	b.run(t)
	b.advance(t, 2*24*time.Hour)
	b.advance(t, 5*24*time.Hour)
	b.advance(t, 30*24*time.Hour) // nothing more comes

	msgs := b.smtp.Messages()
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, subject(m))
	}
	want := []string{"Welcome, Ada", "Your first project", "How is it going?"}
	if strings.Join(subjects, "|") != strings.Join(want, "|") {
		t.Fatalf("emails = %q, want %q", subjects, want)
	}
	var dates []time.Time
	for _, m := range msgs {
		d, err := m.Header.Date()
		if err != nil {
			t.Fatal(err)
		}
		dates = append(dates, d)
	}
	if gap := dates[1].Sub(dates[0]); gap != 48*time.Hour {
		t.Errorf("welcome → first project: %v, want 48h", gap)
	}
	if gap := dates[2].Sub(dates[1]); gap != 5*24*time.Hour {
		t.Errorf("first project → check-in: %v, want 120h", gap)
	}
	m := msgs[0]
	to, _ := m.Header.AddressList("To")
	checks := map[string][2]string{
		"From":                  {m.Header.Get("From"), `"Acme" <hello@acme.example>`},
		"To":                    {to[0].String(), `"Ada" <c1@example.org>`},
		"envelope to":           {strings.Join(m.To, ","), "c1@example.org"},
		"Message-ID":            {m.Header.Get("Message-ID"), "<" + mailer.MessageID("onboarding/welcome", "c1", 1, "acme.example") + ">"},
		"List-Unsubscribe":      {m.Header.Get("List-Unsubscribe"), "<https://retain.acme.example/u/c1>, <mailto:unsubscribe@acme.example>"},
		"List-Unsubscribe-Post": {m.Header.Get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click"},
		"Feedback-ID":           {m.Header.Get("Feedback-ID"), "onboarding/welcome:onboarding:onboarding:acme.example"},
		"X-Retain-Topic":        {m.Header.Get("X-Retain-Topic"), "onboarding"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	body := string(m.Raw)
	if !strings.Contains(body, "Hello Ada") || !strings.Contains(body, "multipart/alternative") {
		t.Errorf("welcome body lacks the greeting or is not multipart/alternative:\n%s", body)
	}
	c, _ := b.store.Customer(b.ctx, "c1")
	if enr := c.Enrollments["onboarding"]; enr.Status != lifecycle.Completed || len(enr.Passed) != 3 {
		t.Errorf("enrollment = %+v, want completed with 3 steps passed", enr)
	}
}

func TestUnsubscribeBeforeStep2StopsStep2(t *testing.T) {
	b := setup(t)
	b.signUp(t, "c1", "Ada")
	b.run(t)
	err := b.store.Update(b.ctx, "c1", "", func(c *lifecycle.Customer) (*store.Change, error) {
		c.Unsubscribed = true
		return &store.Change{Customer: c, Due: b.applier.Engine.NextDue(c)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.advance(t, 2*24*time.Hour)
	b.advance(t, 5*24*time.Hour)
	if n := len(b.smtp.Messages()); n != 1 {
		t.Errorf("%d emails arrived, want only the welcome", n)
	}
	c, _ := b.store.Customer(b.ctx, "c1")
	if enr := c.Enrollments["onboarding"]; enr.Status != lifecycle.Exited || enr.Reason != "unsubscribed" {
		t.Errorf("enrollment = %+v, want exited: unsubscribed", enr)
	}
}

func TestSMTP421Then250DeliversExactlyOnce(t *testing.T) {
	b := setup(t)
	b.smtp.FailNext(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "try again later"})
	b.signUp(t, "c1", "Ada")
	b.run(t)
	if n := len(b.smtp.Messages()); n != 0 {
		t.Fatalf("%d emails arrived through a 421", n)
	}
	c, _ := b.store.Customer(b.ctx, "c1")
	enr := c.Enrollments["onboarding"]
	if enr.Attempts != 1 || !enr.Due.Equal(b.clock.Now().Add(time.Minute)) {
		t.Errorf("after a 421: attempts %d, due %v; want 1 and a retry in 1 minute", enr.Attempts, enr.Due)
	}
	b.advance(t, 30*time.Second) // not yet
	b.advance(t, 30*time.Second)
	b.advance(t, time.Hour)
	msgs := b.smtp.Messages()
	if len(msgs) != 1 || subject(msgs[0]) != "Welcome, Ada" {
		t.Fatalf("after the retry: %d emails, want the welcome once", len(msgs))
	}
	// The retry is the same message: a relay that did take the first would see
	// the same Message-ID.
	if got := msgs[0].Header.Get("Message-ID"); got != "<"+mailer.MessageID("onboarding/welcome", "c1", 1, "acme.example")+">" {
		t.Errorf("Message-ID = %s", got)
	}
}

func TestSMTP550BadAddressSuppressesAndNeverRetries(t *testing.T) {
	b := setup(t)
	b.smtp.FailNext(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	b.signUp(t, "c1", "Ada")
	b.run(t)
	b.advance(t, 2*24*time.Hour)
	b.advance(t, 5*24*time.Hour)
	if n := len(b.smtp.Messages()); n != 0 {
		t.Errorf("%d emails arrived for a refused address", n)
	}
	if n := b.smtp.Attempts(); n != 1 {
		t.Errorf("the relay saw %d attempts, want 1: a 5xx is not retried", n)
	}
	sup, err := b.store.Suppression(b.ctx, "c1@example.org")
	if err != nil || sup == nil || !strings.Contains(sup.Reason, "5.1.1") {
		t.Errorf("suppression = %+v, %v; want one naming 5.1.1", sup, err)
	}
	c, _ := b.store.Customer(b.ctx, "c1")
	if enr := c.Enrollments["onboarding"]; enr.Status != lifecycle.Exited || !strings.HasPrefix(enr.Reason, "bounced") {
		t.Errorf("enrollment = %+v, want exited: bounced", enr)
	}
	// A suppressed address is not mailed by other campaigns either.
	b.signUp(t, "c2", "Bob")
	b.run(t)
	if n := len(b.smtp.Messages()); n != 1 {
		t.Errorf("c2 got %d emails, want 1", n)
	}
}

func TestDuplicateSendTaskDoesNotSendTwice(t *testing.T) {
	b := setup(t)
	b.signUp(t, "c1", "Ada")
	// Two workers get the same customer at once (a requeued task, two
	// schedulers): the ledger lets one send.
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- b.worker.Process(b.ctx, "c1") }()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	b.run(t)
	if n := len(b.smtp.Messages()); n != 1 {
		t.Errorf("%d welcome emails, want 1", n)
	}
	// And a task that comes again after the send finds the ledger entry.
	b.worker.Process(b.ctx, "c1")
	if n := len(b.smtp.Messages()); n != 1 {
		t.Errorf("%d welcome emails after a repeated task, want 1", n)
	}
}

func TestTwoSchedulersHandOutEachCustomerOnce(t *testing.T) {
	b := setup(t)
	for i := range 120 {
		b.signUp(t, fmt.Sprintf("c%03d", i), "")
	}
	other, err := NewScheduler(b.scheduler.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A tick hands out a few tasks (each of one shard's customers) until
	// the workers have enough waiting: both schedulers tick at once, the
	// tasks are taken from the queue, until a round hands out nothing.
	insp := asynq.NewInspectorFromRedisClient(b.rdb)
	seen := map[string]int{}
	for round := 0; ; round++ {
		var wg sync.WaitGroup
		var enqueued atomic.Int64
		for _, s := range []*Scheduler{b.scheduler, other} {
			wg.Go(func() {
				_, n, err := s.Tick(b.ctx)
				if err != nil {
					t.Error(err)
				}
				enqueued.Add(int64(n))
			})
		}
		wg.Wait()
		if enqueued.Load() == 0 || round == 20 {
			break
		}
		tasks, err := insp.ListPendingTasks(QueueSends, asynq.PageSize(1000))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			var p SendPayload
			if err := json.Unmarshal(task.Payload, &p); err != nil {
				t.Fatal(err)
			}
			for _, id := range p.Customers {
				seen[id]++
			}
		}
		if _, err := insp.DeleteAllPendingTasks(QueueSends); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 120 {
		t.Errorf("%d customers handed out, want 120", len(seen))
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s handed out %d times", id, n)
		}
	}
}

// TestSuppressedAddressEndsTheEnrollmentOnItsStep: issue 13, defect 9. The
// enrollment a suppressed address ends was recorded on the phantom step
// "onboarding/": the step was read after Stop had cleared it.
func TestSuppressedAddressEndsTheEnrollmentOnItsStep(t *testing.T) {
	b := setup(t)
	if err := b.store.Suppress(b.ctx, "c1@example.org", "550 5.1.1 no such user", b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	b.signUp(t, "c1", "Ada")
	var exited []lifecycle.Change
	b.store.Also = func(_ context.Context, _ redis.Pipeliner, w store.Written) {
		for _, ch := range w.Change.Changes {
			if ch.Kind == lifecycle.KindExited {
				exited = append(exited, ch)
			}
		}
	}
	b.run(t)
	if len(exited) != 1 || exited[0].Step != "onboarding/welcome" {
		t.Errorf("exited changes = %+v; want one on onboarding/welcome", exited)
	}
}

// TestRunSendsThroughTheQueueUntilClose starts the worker and the scheduler
// as retain worker and retain scheduler do: the scheduler hands the welcome due
// at sign-up to the worker through Asynq, and Close stops both.
func TestRunSendsThroughTheQueueUntilClose(t *testing.T) {
	b := setup(t)
	b.signUp(t, "c1", "Ada")
	if err := b.worker.Run(b.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.worker.Close() })
	if err := b.scheduler.Run(b.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.scheduler.Close() })
	for deadline := time.Now().Add(10 * time.Second); len(b.smtp.Messages()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the welcome did not arrive within 10 s")
		}
	}
	b.scheduler.Close()
	b.worker.Close()
	if got := subject(b.smtp.Messages()[0]); got != "Welcome, Ada" {
		t.Errorf("the email sent is %q, want Ada's welcome", got)
	}
}
