// Package inbox is the SMTP server and inbox page of retain dev: it accepts every
// message sent to it on 127.0.0.1 (emersion/go-smtp), keeps the last ones in
// memory, and shows them over HTTP — a list, each message's HTML part (in a
// sandboxed frame), text part, headers and raw source — with a JSON API for tests
// and tools.
//
// It delivers nothing and stores nothing on disk: it is for development only.
package inbox

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Config configures an Inbox. Zero fields take the defaults noted.
type Config struct {
	// Addr is the SMTP listen address; default 127.0.0.1:0 (a free port).
	Addr string
	// Max is how many messages are kept; older ones are dropped. Default 1000.
	Max int
	// MaxSize is the largest message accepted, in bytes; default 10 MiB.
	MaxSize int64
	// Notice, when set, returns lines shown at the top of every inbox page
	// (retain dev shows campaign changes it refused to load).
	Notice func() []string
	// Now is the clock that stamps received messages; default time.Now.
	Now func() time.Time
	// Log; default slog.Default().
	Log *slog.Logger
}

// Inbox is a running SMTP server and the messages it received. It is an
// http.Handler serving the pages under /inbox/.
type Inbox struct {
	cfg  Config
	srv  *smtp.Server
	addr string
	// handler serves the pages (http.go).
	handler http.Handler

	mu     sync.Mutex
	msgs   []*Message // oldest first
	nextID int
	notify chan struct{} // closed and replaced at every new message
}

// Start listens on cfg.Addr and serves SMTP until Close.
func Start(cfg Config) (*Inbox, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Max <= 0 {
		cfg.Max = 1000
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 10 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("inbox: listen on %s: %w", cfg.Addr, err)
	}
	b := &Inbox{cfg: cfg, addr: l.Addr().String(), notify: make(chan struct{})}
	b.handler = b.routes()
	b.srv = smtp.NewServer(backend{b})
	b.srv.Domain = "localhost"
	b.srv.AllowInsecureAuth = true
	b.srv.MaxMessageBytes = cfg.MaxSize
	b.srv.ReadTimeout = time.Minute
	b.srv.WriteTimeout = time.Minute
	go func() {
		if err := b.srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			cfg.Log.Error("inbox: smtp server", "error", err)
		}
	}()
	return b, nil
}

// Addr is the SMTP server's host:port.
func (b *Inbox) Addr() string { return b.addr }

// URL is the SMTP_URL that sends to the inbox (plain SMTP, no TLS).
func (b *Inbox) URL() string { return "smtp://" + b.addr + "?tls=none" }

// Close stops the SMTP server; the messages stay readable.
func (b *Inbox) Close() error { return b.srv.Close() }

// Messages returns the messages kept, oldest first.
func (b *Inbox) Messages() []*Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Message(nil), b.msgs...)
}

// Message returns the message with id, or nil.
func (b *Inbox) Message(id int) *Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// Changed returns a channel closed when the next message arrives.
func (b *Inbox) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.notify
}

func (b *Inbox) add(from string, to []string, raw []byte) {
	m := parse(raw)
	m.From, m.To, m.Received = from, to, b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextID++
	m.ID = b.nextID
	b.msgs = append(b.msgs, m)
	if len(b.msgs) > b.cfg.Max {
		b.msgs = append([]*Message(nil), b.msgs[len(b.msgs)-b.cfg.Max:]...)
	}
	close(b.notify)
	b.notify = make(chan struct{})
}

// backend is the go-smtp backend: every session accepts every message.
type backend struct{ b *Inbox }

func (be backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: be.b}, nil }

type session struct {
	b    *Inbox
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.add(s.from, append([]string(nil), s.to...), raw)
	return nil
}
