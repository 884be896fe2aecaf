package mailer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSendFencedSendsNothingWhenTheFenceRefuses: the fence runs once a
// connection is ready, and a refusal delivers nothing; a fence that allows
// sends the message, even when ctx ends after the fence.
func TestSendFencedSendsNothingWhenTheFenceRefuses(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "tls=none")
	stop := errors.New("held elsewhere")
	calls := 0
	err := b.pool.SendFenced(context.Background(), message(), func(context.Context) error { calls++; return stop })
	se := wantSendError(t, err, SendError{Class: Temporary, Stage: StageFence})
	if !errors.Is(se, stop) || calls != 1 {
		t.Errorf("err = %v after %d fence calls; want the fence's error after one", err, calls)
	}
	if n := len(b.sink.messages()); n != 0 {
		t.Fatalf("the relay got %d messages although the fence refused", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	err = b.pool.SendFenced(ctx, message(), func(context.Context) error {
		cancel() // shutdown begins right after the fence: the send goes on
		return nil
	})
	if err != nil {
		t.Fatalf("fenced send: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(b.sink.messages()) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(b.sink.messages()); n != 1 {
		t.Errorf("the relay got %d messages, want the one past its fence", n)
	}
}

// TestFenceRunsBesideTheEnvelope: the envelope goes while the fence runs, and
// the content waits for it. A slow fence that refuses after the relay's 354
// delivers nothing and closes that connection (the next send dials a new one
// and arrives); a slow fence that allows delivers the message.
func TestFenceRunsBesideTheEnvelope(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		name := "pipelining"
		var hide []string
		if !pipelining {
			name, hide = "one command at a time", []string{"PIPELINING"}
		}
		t.Run(name, func(t *testing.T) {
			b := setup(t, sinkOptions{hide: hide}, "smtp", "", "tls=none")
			if err := b.pool.Send(context.Background(), message()); err != nil { // a connection to reuse
				t.Fatal(err)
			}
			stop := errors.New("held elsewhere")
			slow := func(verdict error) func(context.Context) error {
				return func(context.Context) error {
					time.Sleep(150 * time.Millisecond) // the envelope is long answered
					return verdict
				}
			}
			start := time.Now()
			err := b.pool.SendFenced(context.Background(), message(), slow(stop))
			wantSendError(t, err, SendError{Class: Temporary, Stage: StageFence})
			if !errors.Is(err, stop) {
				t.Errorf("err = %v, want the fence's", err)
			}
			if waited := time.Since(start); waited < 150*time.Millisecond {
				t.Errorf("SendFenced returned after %v, before its fence did", waited)
			}
			if n := len(b.sink.messages()); n != 1 {
				t.Fatalf("the relay got %d messages, want only the first: the refused one must not arrive", n)
			}
			if err := b.pool.SendFenced(context.Background(), message(), slow(nil)); err != nil {
				t.Fatalf("a slow fence that allows: %v", err)
			}
			if n := len(b.sink.messages()); n != 2 {
				t.Errorf("the relay got %d messages, want 2", n)
			}
			if n := b.sink.accepted.Load(); n != 2 {
				t.Errorf("%d connections, want 2: the refused send's is closed, its 354 pending", n)
			}
		})
	}
}
