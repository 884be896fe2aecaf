package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar on a terminal, redrawn every 200 ms, and
// prints messages above it. Off a terminal it only prints the messages.
type progress struct {
	w          io.Writer
	on         bool
	path       string
	size       int64
	read, rows *atomic.Int64

	mu      sync.Mutex
	started time.Time
	redraw  *redrawer
}

func (p *progress) start() {
	p.started = time.Now()
	if !p.on {
		return
	}
	p.redraw = startRedraw(func() {
		p.mu.Lock()
		p.draw()
		p.mu.Unlock()
	})
}

// redrawer calls a draw function every 200 ms until stopped.
type redrawer struct {
	done, stopped chan struct{}
}

func startRedraw(draw func()) *redrawer {
	r := &redrawer{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(r.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-t.C:
				draw()
			}
		}
	}()
	return r
}

// stop ends the redrawing and waits for a draw under way.
func (r *redrawer) stop() {
	close(r.done)
	<-r.stopped
}

func (p *progress) draw() {
	const width = 30
	frac := 1.0
	if p.size > 0 {
		frac = min(float64(p.read.Load())/float64(p.size), 1)
	}
	filled := int(frac * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '-'
		if i < filled {
			bar[i] = '='
		}
	}
	rate := float64(p.rows.Load()) / time.Since(p.started).Seconds()
	fmt.Fprintf(p.w, "\r\033[K%s [%s] %3.0f%%  %d rows  %.0f rows/s", p.path, bar, frac*100, p.rows.Load(), rate)
}

// println prints a message on its own line, above the bar.
func (p *progress) println(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, msg)
	if p.on {
		p.draw()
	}
}

func (p *progress) stop() {
	if !p.on {
		return
	}
	p.redraw.stop()
	fmt.Fprint(p.w, "\r\033[K")
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
