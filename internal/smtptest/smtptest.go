// Package smtptest runs a real SMTP server on 127.0.0.1 for tests (emersion/go-smtp
// over TCP): it keeps every message it accepts, counts connections, and can be told
// to answer the next messages with an error reply or a delay.
package smtptest

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message.
type Message struct {
	From string
	To   []string
	Raw  []byte
	// Header is the parsed header of Raw.
	Header mail.Header
}

// Server is a running test SMTP server.
type Server struct {
	Addr string
	srv  *smtp.Server

	mu       sync.Mutex
	msgs     []Message
	conns    int
	attempts int
	failures []*smtp.SMTPError // answered to the next DATA, one each
	delay    time.Duration
	notify   chan struct{}
	mails    int
	onMail   func(n int)
	open     int
}

// OnMail makes the server call fn at every MAIL command with how many there were
// so far, before replying: a test can act at a known point of a send. nil stops.
func (s *Server) OnMail(fn func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onMail = fn
}

// Start starts a server on a free port, closed at cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{notify: make(chan struct{}, 1)}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = l.Addr().String()
	go s.srv.Serve(l)
	tb.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is the SMTP_URL of the server (plain SMTP, no TLS).
func (s *Server) URL() string { return "smtp://" + s.Addr + "?tls=none" }

// FailNext makes the server answer the next DATA commands with these replies,
// one message each, e.g. &smtp.SMTPError{Code: 421, ...}.
func (s *Server) FailNext(errs ...*smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, errs...)
}

// SetDelay makes the server wait d before replying to MAIL, RCPT and DATA.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Messages returns the accepted messages so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Connections returns how many connections the server accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Mails returns how many MAIL commands the server received: sends begun.
func (s *Server) Mails() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mails
}

// Open returns how many sessions are open: connections that greeted the server
// and have not been closed. Once it is 0 after a client is gone, the server has
// seen every command that client sent.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// Attempts returns how many messages the server was sent, refused ones included.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Wait waits until at least n messages arrived or timeout passes, and returns
// the messages.
func (s *Server) Wait(n int, timeout time.Duration) []Message {
	deadline := time.After(timeout)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-s.notify:
		case <-deadline:
			return s.Messages()
		}
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns++
	s.open++
	s.mu.Unlock()
	return &session{s: s}, nil
}

func (s *Server) wait() {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

type session struct {
	s    *Server
	from string
	to   []string
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error {
	ss.s.mu.Lock()
	ss.s.open--
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	ss.s.mails++
	n, hook := ss.s.mails, ss.s.onMail
	ss.s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	ss.s.wait()
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.wait()
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.wait()
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.attempts++
	if len(ss.s.failures) > 0 {
		f := ss.s.failures[0]
		ss.s.failures = ss.s.failures[1:]
		return f
	}
	m := Message{From: ss.from, To: ss.to, Raw: raw}
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Header = msg.Header
	}
	ss.s.msgs = append(ss.s.msgs, m)
	select {
	case ss.s.notify <- struct{}{}:
	default:
	}
	return nil
}
