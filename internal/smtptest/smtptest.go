// Package smtptest runs a real SMTP server on 127.0.0.1 for tests (emersion/go-smtp
// over TCP): it keeps every message it accepts, counts connections, and can be told
// to answer the next messages with an error reply or a delay, to refuse MAIL or
// the end of DATA for a while, or to go down and come back on the same port.
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
	// Accepted is when the server took the message: right before it wrote
	// its 250 reply to the final ".".
	Accepted time.Time
}

// Server is a running test SMTP server.
type Server struct {
	Addr string
	srv  *smtp.Server
	l    net.Listener

	mu       sync.Mutex
	msgs     []Message
	conns    int
	attempts int
	failures []*smtp.SMTPError // answered to the next DATA, one each
	delay    time.Duration
	notify   chan struct{}
	mails    int
	onMail   func(n int)
	onData   func(n int)
	open     int
	// mailErr is answered to every MAIL until mailUntil, dataErr to the end
	// of every DATA until dataUntil (FailMailFor, FailDataFor).
	mailErr, dataErr     *smtp.SMTPError
	mailUntil, dataUntil time.Time
	// down is true while the server is stopped (Stop); gen counts the stops,
	// and a session opened before the last one is dropped at its next MAIL.
	down bool
	gen  int
	// quiet drops go-smtp's error log (Quiet).
	quiet bool
}

// Quiet stops the server logging the errors of its connections to stderr
// ("connection reset by peer" from every client a test kills).
func (s *Server) Quiet() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quiet = true
}

// errorLog is go-smtp's error log: its default, unless the server is quiet.
type errorLog struct {
	s *Server
	l smtp.Logger
}

func (e errorLog) Printf(format string, v ...any) {
	if !e.quiet() {
		e.l.Printf(format, v...)
	}
}

func (e errorLog) Println(v ...any) {
	if !e.quiet() {
		e.l.Println(v...)
	}
}

func (e errorLog) quiet() bool {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return e.s.quiet
}

// OnMail makes the server call fn at every MAIL command with how many there were
// so far, before replying: a test can act at a known point of a send. nil stops.
func (s *Server) OnMail(fn func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onMail = fn
}

// OnData makes the server call fn when the final "." of a message has
// arrived, before it replies, with how many messages arrived so far (refused
// ones included): a test can act between a sender's "." and the relay's 250.
// nil stops.
func (s *Server) OnData(fn func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onData = fn
}

// Start starts a server on a free port, closed at cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{notify: make(chan struct{}, 1)}
	s.srv = smtp.NewServer(s)
	s.srv.ErrorLog = errorLog{s, s.srv.ErrorLog}
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = l.Addr().String()
	s.l = l
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

// FailMailFor makes the server answer err to every MAIL command for d from now,
// e.g. 421 while a relay is overloaded. A sender's transaction ends there:
// nothing of the message was taken.
func (s *Server) FailMailFor(err *smtp.SMTPError, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailErr, s.mailUntil = err, time.Now().Add(d)
}

// FailDataFor makes the server answer err to the final "." of every message
// for d from now (e.g. 451 after DATA): the message was transferred and is
// refused, not kept. FailNext's replies, when some are left, come first.
func (s *Server) FailDataFor(err *smtp.SMTPError, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataErr, s.dataUntil = err, time.Now().Add(d)
}

// Stop takes the relay down: its listener closes, so connections are refused,
// and every session open now is dropped (its connection closed without a
// reply) at its next MAIL; a transaction in progress is answered first.
// Resume brings it back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return
	}
	s.down = true
	s.gen++
	s.l.Close()
}

// Resume brings a stopped server back on the same address, as a restarted
// relay: the sessions from before the stop stay dropped.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down {
		return nil
	}
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	s.l, s.down = l, false
	go s.srv.Serve(l)
	return nil
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
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns++
	s.open++
	gen := s.gen
	s.mu.Unlock()
	return &session{s: s, conn: c, gen: gen}, nil
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
	conn *smtp.Conn
	gen  int // the server's stops when the session began
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
	dropped := ss.gen != ss.s.gen
	var refuse *smtp.SMTPError
	if ss.s.mailErr != nil && time.Now().Before(ss.s.mailUntil) {
		refuse = ss.s.mailErr
	}
	ss.s.mu.Unlock()
	if dropped {
		// The relay went down since this session began: the client sees its
		// connection closed.
		ss.conn.Close()
		return errDropped
	}
	if hook != nil {
		hook(n)
	}
	ss.s.wait()
	if refuse != nil {
		return refuse
	}
	ss.from = from
	return nil
}

// errDropped is what Mail returns for a session dropped by Stop; the
// connection is closed before go-smtp could write it.
var errDropped = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Service not available, closing transmission channel"}

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
	ss.s.mu.Lock()
	ss.s.attempts++
	n, hook := ss.s.attempts, ss.s.onData
	ss.s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	ss.s.wait()
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if len(ss.s.failures) > 0 {
		f := ss.s.failures[0]
		ss.s.failures = ss.s.failures[1:]
		return f
	}
	if ss.s.dataErr != nil && time.Now().Before(ss.s.dataUntil) {
		return ss.s.dataErr
	}
	m := Message{From: ss.from, To: ss.to, Raw: raw, Accepted: time.Now()}
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
