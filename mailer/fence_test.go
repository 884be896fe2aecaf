package mailer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSendFencedSendsNothingWhenTheFenceRefuses: the fence runs once a
// connection is ready, and a refusal sends nothing (the relay sees no MAIL);
// a fence that allows sends the message, even when ctx ends after the fence.
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
