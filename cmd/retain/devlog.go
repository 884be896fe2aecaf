package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// devSends is the worker's log in retain dev: one line on stdout for each
// email sent and each step skipped, with the reason, so a marketer watching
// the terminal sees what happens to their campaigns; every other record goes
// to next (warnings and errors).
type devSends struct {
	out   io.Writer
	mu    *sync.Mutex
	now   func() time.Time
	attrs []slog.Attr
	next  slog.Handler
}

func newDevSends(out io.Writer, now func() time.Time, next slog.Handler) *devSends {
	return &devSends{out: out, mu: &sync.Mutex{}, now: now, next: next}
}

func (h *devSends) Enabled(context.Context, slog.Level) bool { return true }

func (h *devSends) Handle(ctx context.Context, r slog.Record) error {
	var line string
	switch r.Message {
	case "email sent", "email maybe sent: connection lost after DATA":
		line = "sent  %s/%s to %s"
	case "step skipped":
		line = "skip  %s/%s for %s: %s"
	default:
		if h.next.Enabled(ctx, r.Level) {
			return h.next.Handle(ctx, r)
		}
		return nil
	}
	a := map[string]string{}
	for _, at := range h.attrs {
		a[at.Key] = at.Value.String()
	}
	r.Attrs(func(at slog.Attr) bool {
		a[at.Key] = at.Value.String()
		return true
	})
	args := []any{h.now().Format("Mon 2006-01-02 15:04"), a["campaign"], a["step"], a["customer"]}
	if r.Message == "step skipped" {
		args = append(args, a["reason"])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.out, "%s  "+line+"\n", args...)
	return nil
}

func (h *devSends) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *devSends) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
