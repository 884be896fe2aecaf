package mailer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is a real SMTP server (go-smtp) on 127.0.0.1 that records what it receives
// and can be told to misbehave for the next messages.
type sink struct {
	addr     string
	port     string
	password string   // user "retain"; empty: no AUTH offered
	discard  bool     // count messages without keeping them (benchmarks)
	hide     []string // EHLO keywords not to announce (plain connections only)
	keepRead bool     // keep what is read from clients, a chunk per Read (reads)

	accepted atomic.Int64 // TCP connections accepted
	open     atomic.Int64 // TCP connections not yet closed
	count    atomic.Int64 // messages accepted
	data     atomic.Int64 // bytes of the accepted messages, as delivered (dot-unstuffed)
	wire     atomic.Int64 // bytes read from clients, commands and TLS included

	mu     sync.Mutex
	msgs   []received
	faults []*fault
	chunks [][]byte // with keepRead
}

type received struct {
	From string
	Body smtp.BodyType // MAIL FROM's BODY= parameter
	To   []string
	Data []byte
	TLS  bool
}

// fault makes the sink answer the next n commands of one stage with reply, or drop
// the connection (drop), or hold the reply until stall is closed. The stages are
// "mail", "rcpt", "data" (the reply after the message's final ".", and a drop after
// reading the message) and "datacmd": the reply to the DATA command itself, only
// with reply and on plain connections. go-smtp has no hook there, so the sink rewrites its answer to DATA
// (354, or 502 when no recipient was accepted) on the way out, whatever state that
// leaves go-smtp in: the client must close such a connection anyway.
type fault struct {
	stage string
	n     int
	reply *smtp.SMTPError
	drop  bool
	stall chan struct{}
}

type sinkOptions struct {
	tls      string // "", "starttls" or "implicit"
	password string
	discard  bool
	hide     []string // EHLO keywords not to announce, e.g. "8BITMIME"; only with tls ""
	smtpUTF8 bool     // announce SMTPUTF8 (go-smtp does not by default)
	keepRead bool     // keep what is read from clients (sink.reads)
}

func newSink(t testing.TB, opt sinkOptions) *sink {
	t.Helper()
	s := &sink{password: opt.password, discard: opt.discard, hide: opt.hide, keepRead: opt.keepRead}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.EnableSMTPUTF8 = opt.smtpUTF8
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener = &countingListener{Listener: ln, s: s}
	switch opt.tls {
	case "starttls":
		srv.TLSConfig = selfSigned(t)
	case "implicit":
		l = tls.NewListener(l, selfSigned(t))
	}
	s.addr = ln.Addr().String()
	_, s.port, _ = net.SplitHostPort(s.addr)
	go srv.Serve(l)
	t.Cleanup(func() {
		s.mu.Lock()
		for _, f := range s.faults {
			if f.stall != nil {
				close(f.stall)
			}
		}
		s.faults = nil
		s.mu.Unlock()
		srv.Close()
	})
	return s
}

func (s *sink) inject(f *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// take returns the fault for stage, if one is pending, and uses it up.
func (s *sink) take(stage string) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.stage == stage && f.n > 0 {
			f.n--
			if f.n == 0 && f.stall == nil {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

// taken says whether f has been used up: its last command reached the sink.
func (s *sink) taken(f *fault) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.n == 0
}

// reads returns what the sink read from clients, a chunk per Read, with keepRead.
func (s *sink) reads() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.chunks...)
}

func (s *sink) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, c: c}, nil
}

type session struct {
	s      *sink
	c      *smtp.Conn
	authed bool
	from   string
	body   smtp.BodyType
	to     []string
}

func (ss *session) apply(f *fault) error {
	if f == nil {
		return nil
	}
	if f.stall != nil {
		<-f.stall
	}
	if f.drop {
		ss.c.Conn().Close()
		return io.ErrUnexpectedEOF
	}
	if f.reply != nil {
		return f.reply
	}
	return nil
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.password == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "retain" || pass != ss.s.password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.password != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if err := ss.apply(ss.s.take("mail")); err != nil {
		return err
	}
	ss.from = from
	if opts != nil {
		ss.body = opts.Body
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.apply(ss.s.take("rcpt")); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f := ss.s.take("data")
	if f != nil && f.reply != nil {
		return ss.apply(f)
	}
	// The message is in: record it before a stall or a drop, as a relay that
	// queued it and then lost the connection would have.
	ss.s.count.Add(1)
	ss.s.data.Add(int64(len(data)))
	if !ss.s.discard {
		_, isTLS := ss.c.TLSConnectionState()
		ss.s.mu.Lock()
		ss.s.msgs = append(ss.s.msgs, received{From: ss.from, Body: ss.body, To: ss.to, Data: data, TLS: isTLS})
		ss.s.mu.Unlock()
	}
	return ss.apply(f)
}

func (ss *session) Reset() { ss.from, ss.body, ss.to = "", "", nil }

func (ss *session) Logout() error { return nil }

type countingListener struct {
	net.Listener
	s *sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.accepted.Add(1)
	l.s.open.Add(1)
	return &countingConn{Conn: c, s: l.s}, nil
}

type countingConn struct {
	net.Conn
	s    *sink
	once sync.Once
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.s.wire.Add(int64(n))
	if c.s.keepRead && n > 0 {
		c.s.mu.Lock()
		c.s.chunks = append(c.s.chunks, bytes.Clone(b[:n]))
		c.s.mu.Unlock()
	}
	return n, err
}

// Write renames the EHLO keywords the sink hides ("8BITMIME" becomes "X8BITMIME")
// and replaces the reply to DATA for a "datacmd" fault: go-smtp writes each reply
// line with its own Write.
func (c *countingConn) Write(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("354 ")) || bytes.HasPrefix(b, []byte("502 5.5.1 Missing RCPT TO command.")) {
		if f := c.s.take("datacmd"); f != nil && f.reply != nil {
			if _, err := c.Conn.Write(replyLine(f.reply)); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	for _, kw := range c.s.hide {
		if bytes.HasPrefix(b, []byte("250-"+kw+"\r\n")) || bytes.HasPrefix(b, []byte("250 "+kw+"\r\n")) {
			renamed := append(append(append([]byte(nil), b[:4]...), 'X'), b[4:]...)
			if _, err := c.Conn.Write(renamed); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	return c.Conn.Write(b)
}

// replyLine is e as one reply line, with its enhanced code when it has one.
func replyLine(e *smtp.SMTPError) []byte {
	if e.EnhancedCode == (smtp.EnhancedCode{}) || e.EnhancedCode == smtp.NoEnhancedCode {
		return fmt.Appendf(nil, "%d %s\r\n", e.Code, e.Message)
	}
	ec := e.EnhancedCode
	return fmt.Appendf(nil, "%d %d.%d.%d %s\r\n", e.Code, ec[0], ec[1], ec[2], e.Message)
}

func (c *countingConn) Close() error {
	c.once.Do(func() { c.s.open.Add(-1) })
	return c.Conn.Close()
}

// selfSigned returns a server TLS config with a fresh certificate for 127.0.0.1.
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
