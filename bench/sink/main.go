// Command sink is the benchmark's SMTP relay: it accepts mail on 127.0.0.1,
// discards the bodies and records when each message arrived, by recipient. With
// --delay it waits before its MAIL, RCPT and end-of-DATA replies, as a relay on a
// LAN does. With --rtt it waits once for each burst a client sends, before reading
// it, as if it had just crossed a long link: a client pays it for every reply it
// waits for, and fewer times when it pipelines (RFC 2920). --hide stops it
// announcing EHLO keywords, e.g. PIPELINING (go-smtp still accepts pipelined
// commands).
//
// It prints one line when it listens:
//
//	sink smtp=127.0.0.1:PORT http=127.0.0.1:PORT
//
// and answers on the HTTP address:
//
//	GET  /stats     {"count":N,"first":UNIXNANO,"last":UNIXNANO} since the last reset
//	GET  /arrivals  one line per message: recipient, arrival in unix ns
//	POST /reset     forget everything
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "SMTP listen address")
	httpAddr := flag.String("http", "127.0.0.1:0", "HTTP address for counts and arrival times")
	delay := flag.Duration("delay", 0, "wait before the MAIL, RCPT and end-of-DATA replies")
	rtt := flag.Duration("rtt", 0, "wait before reading each burst of data a client sent (a relay far away)")
	hide := flag.String("hide", "", "EHLO keywords not to announce, comma-separated (e.g. PIPELINING)")
	flag.Parse()

	s := &sink{delay: *delay}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.bench"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxRecipients = 100
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *rtt > 0 || *hide != "" {
		fl := &farListener{Listener: l, rtt: *rtt}
		for kw := range strings.SplitSeq(*hide, ",") {
			if kw = strings.ToUpper(strings.TrimSpace(kw)); kw != "" {
				fl.hide = append(fl.hide, kw)
			}
		}
		l = fl
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", s.stats)
	mux.HandleFunc("GET /arrivals", s.arrivals)
	mux.HandleFunc("POST /reset", s.reset)
	go http.Serve(hl, mux)
	go srv.Serve(l)
	fmt.Printf("sink smtp=%s http=%s\n", l.Addr(), hl.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Close()
}

// arrival is one accepted message.
type arrival struct {
	rcpt string
	at   int64 // unix ns
}

type sink struct {
	delay time.Duration

	mu    sync.Mutex
	seen  []arrival
	bytes int64 // message bytes read after DATA (headers and body, dots unstuffed)
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }

func (s *sink) wait() {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
}

func (s *sink) stats(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := struct {
		Count int   `json:"count"`
		First int64 `json:"first,omitempty"`
		Last  int64 `json:"last,omitempty"`
		Bytes int64 `json:"bytes"`
	}{Count: len(s.seen), Bytes: s.bytes}
	if len(s.seen) > 0 {
		st.First, st.Last = s.seen[0].at, s.seen[len(s.seen)-1].at
	}
	s.mu.Unlock()
	json.NewEncoder(w).Encode(st)
}

func (s *sink) arrivals(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	seen := append([]arrival(nil), s.seen...)
	s.mu.Unlock()
	for _, a := range seen {
		fmt.Fprintf(w, "%s %d\n", a.rcpt, a.at)
	}
}

func (s *sink) reset(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.seen, s.bytes = nil, 0
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

type session struct {
	s  *sink
	to string
}

func (ss *session) Mail(string, *smtp.MailOptions) error { ss.s.wait(); return nil }

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.wait()
	ss.to = to
	return nil
}

func (ss *session) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	ss.s.wait()
	// The time is taken under the lock, so arrivals are in time order.
	ss.s.mu.Lock()
	ss.s.seen = append(ss.s.seen, arrival{rcpt: ss.to, at: time.Now().UnixNano()})
	ss.s.bytes += n
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.to = "" }
func (ss *session) Logout() error { return nil }

// farListener gives each connection --rtt and --hide.
type farListener struct {
	net.Listener
	rtt  time.Duration
	hide []string
}

func (l *farListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	fc := &farConn{Conn: c, rtt: l.rtt, hide: l.hide}
	if l.rtt > 0 {
		fc.buf = make([]byte, 64<<10)
	}
	return fc, nil
}

// farConn sleeps rtt after each read from the socket that returns data, before
// handing the data over. It reads up to 64 KB at a time, so that what a client
// sent in one write (a pipelined envelope, a whole message) pays rtt once, not
// once per 4 KB read of go-smtp's buffer.
type farConn struct {
	net.Conn
	rtt  time.Duration
	hide []string

	buf  []byte // with rtt: read from the socket, not yet handed over
	r, w int
	err  error // from the socket read that filled buf, for after it
}

func (c *farConn) Read(b []byte) (int, error) {
	if c.rtt <= 0 {
		return c.Conn.Read(b)
	}
	if c.r == c.w {
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.buf)
		if n == 0 {
			return 0, err
		}
		time.Sleep(c.rtt)
		c.r, c.w, c.err = 0, n, err
	}
	n := copy(b, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// Write renames the EHLO keywords to hide ("PIPELINING" becomes "XPIPELINING"):
// go-smtp writes each EHLO line with its own Write.
func (c *farConn) Write(b []byte) (int, error) {
	for _, kw := range c.hide {
		if bytes.HasPrefix(b, []byte("250-"+kw)) || bytes.HasPrefix(b, []byte("250 "+kw)) {
			if rest := b[4+len(kw):]; len(rest) == 0 || rest[0] == ' ' || rest[0] == '\r' {
				renamed := append(append(append([]byte(nil), b[:4]...), 'X'), b[4:]...)
				if _, err := c.Conn.Write(renamed); err != nil {
					return 0, err
				}
				return len(b), nil
			}
		}
	}
	return c.Conn.Write(b)
}
