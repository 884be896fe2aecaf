package bounce

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// ServerConfig configures the SMTP server of retain inbound.
type ServerConfig struct {
	// Domain is the bounce domain (RETAIN_BOUNCE_DOMAIN): mail is accepted
	// for bounces+<token>@Domain with a token Tokens signed, and refused for
	// any other address.
	Domain string
	Tokens *Tokens
	// Sink applies the reports of each message; a failure answers 451, so
	// the sending server tries again later.
	Sink Sink
	// MaxSize is the largest message accepted, in bytes; default 10 MB (a
	// DSN returns the original message, and retain's are well under 1 MB).
	MaxSize int64
	// TLS, when set, is offered with STARTTLS.
	TLS *tls.Config
	// Hostname is the name the server greets with; default Domain.
	Hostname string
	Log      *slog.Logger
}

// Server is retain inbound's SMTP server: the MX of the bounce domain.
type Server struct {
	cfg ServerConfig
	srv *smtp.Server
}

// NewServer returns the server of cfg; Serve starts it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Domain == "" || cfg.Tokens == nil || cfg.Sink == nil {
		return nil, errors.New("bounce: the server needs its Domain, Tokens and Sink")
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 10 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = cmpOr(cfg.Hostname, cfg.Domain)
	s.srv.MaxMessageBytes = cfg.MaxSize
	s.srv.MaxRecipients = 10
	s.srv.ReadTimeout = 2 * time.Minute
	s.srv.WriteTimeout = 2 * time.Minute
	s.srv.TLSConfig = cfg.TLS
	return s, nil
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops accepting and closes every connection.
func (s *Server) Close() error { return s.srv.Close() }

// Shutdown stops accepting and waits for the sessions in progress to end, or
// ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	remote := ""
	if a := c.Conn().RemoteAddr(); a != nil {
		remote = a.String()
	}
	return &session{s: b.s, remote: remote}, nil
}

type session struct {
	s      *Server
	remote string
	tokens []string
}

func (ss *session) Reset()                               { ss.tokens = nil }
func (ss *session) Logout() error                        { return nil }
func (ss *session) Mail(string, *smtp.MailOptions) error { return nil }

// maxReports is the most reports retain inbound reads from one message.
const maxReports = 10

// errNoMailbox refuses any recipient but a valid token of the bounce domain.
var errNoMailbox = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox: this server takes only bounces of retain's emails"}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, err := ss.s.cfg.Tokens.ParseReturnPath(to, ss.s.cfg.Domain); err != nil {
		ss.s.cfg.Log.Info("inbound: recipient refused", "rcpt", clip(to, 120), "remote", ss.remote)
		return errNoMailbox
	}
	local, _, _ := cutLast(to, "@")
	ss.tokens = append(ss.tokens, strings.ToLower(local[len(ReturnPathPrefix):]))
	return nil
}

func (ss *session) Data(r io.Reader) error {
	log := ss.s.cfg.Log.With("remote", ss.remote)
	reports, err := ParseMail(r)
	if err != nil {
		// Not MIME: nothing to learn, and nothing a retry would change.
		log.Warn("inbound: message ignored: it is not a MIME message", "error", err)
		return nil
	}
	if len(reports) == 0 {
		log.Info("inbound: message ignored: not a bounce or complaint (an auto-reply, a delay notice)")
		return nil
	}
	if len(reports) > maxReports {
		// A Return-Path is one email's: a report on more recipients than
		// that is not a receiver's (their reports name one address each).
		log.Warn("inbound: a message with many reports: only the first are read", "reports", len(reports), "read", maxReports)
		reports = reports[:maxReports]
	}
	for i := range reports {
		reports[i].Token = ss.tokens[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ss.s.cfg.Sink(ctx, reports); err != nil {
		log.Error("inbound: reports not applied; the sender will retry", "reports", len(reports), "error", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}
	}
	return nil
}
