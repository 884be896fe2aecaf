package lifecycle

import (
	"testing"
	"time"
)

// TestRecordAppliesEachSendOutcome: the engine, not the worker, decides what
// a send outcome does to the enrollment, and every change of the step carries
// the outcome as a typed value.
func TestRecordAppliesEachSendOutcome(t *testing.T) {
	e := engine(t)
	e.RetryBase, e.RetryMax = time.Minute, 3*time.Minute
	start := at(ams, "2026-03-02 10:00")
	newCustomer := func() *Customer {
		c, _, err := e.NewCustomer("c1", "c1@example.com", "onboarding", start)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Retries count attempts and back off: 1m, 2m, then at most 3m.
	c := newCustomer()
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		chs, err := e.Record(c, "onboarding", start, OutcomeRetry, "421 try later")
		if err != nil || len(chs) != 1 || chs[0].Kind != KindRetry || chs[0].Outcome != OutcomeRetry || chs[0].Step != "onboarding/welcome" {
			t.Fatalf("retry %d: %+v %v", i+1, chs, err)
		}
		if enr := c.Enrollments["onboarding"]; enr.Attempts != i+1 || !enr.Due.Equal(start.Add(want)) || enr.Next != "welcome" {
			t.Fatalf("after retry %d: attempts %d, due %v, next %s; want %d, %v, welcome", i+1, enr.Attempts, enr.Due, enr.Next, i+1, start.Add(want))
		}
	}
	// Then the send goes: the step passes as sent and the attempts reset.
	chs, err := e.Record(c, "onboarding", start.Add(time.Hour), OutcomeSent, "")
	if err != nil || chs[0].Kind != KindSent || chs[0].Outcome != OutcomeSent {
		t.Fatalf("sent: %+v %v", chs, err)
	}
	if enr := c.Enrollments["onboarding"]; enr.Attempts != 0 || enr.Next != "first-project" || !c.LastSent.Equal(start.Add(time.Hour)) {
		t.Errorf("after the send: %+v, last sent %v", enr, c.LastSent)
	}
	// A refusal skips the step; the next one is scheduled.
	chs, _ = e.Record(c, "onboarding", start.Add(50*time.Hour), OutcomeRefused, "554 5.7.1 spam")
	if chs[0].Kind != KindSkipped || chs[0].Outcome != OutcomeRefused || chs[0].Step != "onboarding/first-project" || c.Enrollments["onboarding"].Next != "team" {
		t.Errorf("refused: %+v, next %s", chs, c.Enrollments["onboarding"].Next)
	}
	// A bounce ends the enrollment, and says on which step.
	chs, _ = e.Record(c, "onboarding", start.Add(80*time.Hour), OutcomeBounced, "550 5.1.1 no such user")
	if len(chs) != 1 || chs[0].Kind != KindExited || chs[0].Outcome != OutcomeBounced || chs[0].Step != "onboarding/team" || c.Enrollments["onboarding"].Status != Exited {
		t.Errorf("bounced: %+v, status %s", chs, c.Enrollments["onboarding"].Status)
	}
	if _, err := e.Record(c, "onboarding", start, OutcomeSent, ""); err == nil {
		t.Error("Record on an ended enrollment: no error")
	}
	// Maybe delivered counts as sent.
	c = newCustomer()
	if chs, _ := e.Record(c, "onboarding", start, OutcomeUnknown, "EOF after DATA"); chs[0].Kind != KindSent || chs[0].Outcome != OutcomeUnknown {
		t.Errorf("unknown: %+v", chs)
	}
}
