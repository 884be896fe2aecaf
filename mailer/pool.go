package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// Pool sends messages over a few long-lived SMTP connections; go-mail has no pool of
// its own. It is safe for concurrent use.
//
// At most Config.PoolSize connections are open; a Send waits (or gives up with its
// ctx) while all are busy. Connections are dialed on first need, reused for up to
// Config.MaxPerConn messages, closed after any failure that leaves their state in
// doubt, and closed when idle for longer than Config.IdleTimeout.
type Pool struct {
	cfg     Config
	cfgErr  error
	tlsConf *tls.Config
	dkim    *dkimSigner // nil: messages go unsigned
	now     func() time.Time

	tokens chan struct{} // one per connection a Send may hold
	done   chan struct{} // closed by Close

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
	active sync.WaitGroup
}

// NewPool returns a pool for cfg, applying its defaults. It does not dial. Call
// cfg.Validate first: if cfg is invalid every Send fails with that error, classified
// Temporary so that nothing queued is dropped while the configuration is wrong.
func NewPool(cfg Config) *Pool {
	cfg = cfg.withDefaults()
	p := &Pool{
		cfg:    cfg,
		cfgErr: cfg.Validate(),
		dkim:   newDKIMSigner(cfg.DKIM),
		now:    time.Now,
		tokens: make(chan struct{}, max(cfg.PoolSize, 1)),
		done:   make(chan struct{}),
		tlsConf: &tls.Config{
			ServerName:         cfg.Host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.Insecure, //nolint:gosec // opt-in for local relays, documented on Config.Insecure
		},
	}
	return p
}

// Send delivers m to the relay and returns nil once the relay accepted it with 250
// after the final ".". Any other outcome is a *SendError with a Class. A Send cut
// short by ctx returns promptly; its error matches ctx.Err() with errors.Is and its
// Class says where the exchange stopped (Unknown if it stopped awaiting the reply to
// the final ".").
func (p *Pool) Send(ctx context.Context, m *Message) error {
	return p.send(ctx, m, nil)
}

// SendFenced is Send with a fence: once a connection is ready it calls fence,
// and the message itself (its content, and with it the final "." that makes
// the relay take it) goes only when fence returned nil; otherwise it returns a
// *SendError of Class Temporary and Stage StageFence wrapping the fence's
// error, having delivered nothing. The envelope (MAIL, RCPT, DATA) is sent
// while fence runs, so the fence's round trip costs no time on the
// connection; a fence that refuses after the relay said 354 closes the
// connection, the one clean way out of DATA. fence is called once per
// message, and SendFenced returns only after it returned. ctx bounds the wait
// for a connection, the dial and the fence; the exchange runs to its end (each
// step bounded by Config.Timeout) even when ctx ends, so a message is never
// abandoned between DATA and the relay's reply.
func (p *Pool) SendFenced(ctx context.Context, m *Message, fence func(context.Context) error) error {
	return p.send(ctx, m, fence)
}

func (p *Pool) send(ctx context.Context, m *Message, fence func(context.Context) error) error {
	if p.cfgErr != nil {
		return &SendError{Class: Temporary, Stage: StageConnect, Msg: "invalid config: " + p.cfgErr.Error(), Err: p.cfgErr}
	}
	o, err := m.prepare()
	if err != nil {
		return &SendError{Class: Permanent, Stage: StageBuild, Msg: err.Error(), Err: err}
	}
	o.dkim = p.dkim.keysFor(m.From.Address)

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return &SendError{Class: Temporary, Stage: StageConnect, Msg: ErrPoolClosed.Error(), Err: ErrPoolClosed}
	}
	p.active.Add(1)
	p.mu.Unlock()
	defer p.active.Done()

	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx, &SendError{Class: Temporary, Stage: StageConnect, Msg: "waiting for a connection", Err: ctx.Err()})
	case <-p.done:
		return &SendError{Class: Temporary, Stage: StageConnect, Msg: ErrPoolClosed.Error(), Err: ErrPoolClosed}
	}
	defer func() { <-p.tokens }()

	var gate func() error // waits for the fence's verdict; nil without a fence
	for attempt := 0; ; attempt++ {
		c := p.takeIdle()
		reused := c != nil
		if c == nil {
			if c, err = p.dial(ctx); err != nil {
				return ctxError(ctx, classify(err, false))
			}
		}
		if fence != nil && gate == nil {
			// Once per message, beside the envelope; a retry on a fresh
			// connection waits for the same fence.
			done := make(chan struct{})
			var ferr error
			go func(ctx context.Context) {
				defer close(done)
				ferr = fence(ctx)
			}(ctx)
			defer func() { <-done }()
			gate = func() error { <-done; return ferr }
			ctx = context.WithoutCancel(ctx)
		}
		se := c.send(ctx, o, gate)
		c.sent++ // relays count transactions, refused ones too
		if se == nil {
			p.release(c, !c.tc.interrupted())
			return nil
		}
		p.release(c, se.keepConn(c))
		if gate != nil && se.Stage != StageFence {
			// A refusing fence outranks the relay's answer: the send was
			// not this worker's to make.
			if err := gate(); err != nil {
				return fenceError(err)
			}
		}
		// A reused connection may have been dropped by the relay while idle; that
		// shows at MAIL FROM, before anything of this message was accepted, so one
		// more try on a fresh connection is safe.
		if reused && attempt == 0 && se.Stage == StageMail && (se.Code == 0 || se.Code == 421) && ctx.Err() == nil {
			continue
		}
		return ctxError(ctx, se)
	}
}

// fenceError is the error of a send its fence refused.
func fenceError(err error) *SendError {
	return &SendError{Class: Temporary, Stage: StageFence, Msg: "fence: " + err.Error(), Err: err}
}

// keepConn says whether the connection is still in a known state after e: only a
// relay's refusal of MAIL or RCPT (other than 421) after which RSET succeeds, and
// not when the pipelined replies left the session in doubt (c.broken).
func (e *SendError) keepConn(c *conn) bool {
	if (e.Stage != StageMail && e.Stage != StageRcpt) || e.Code == 0 || e.Code == 421 || c.broken {
		return false
	}
	// The transaction is still open on the relay: RSET ends it.
	return !c.tc.interrupted() && c.sc.Reset() == nil
}

// Close stops new sends, waits for those in flight to finish (each is bounded by
// Config.Timeout), then says QUIT on every idle connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()

	p.active.Wait()

	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.quit())
	}
	return errors.Join(errs...)
}

// takeIdle returns the most recently used idle connection, closing expired ones.
func (p *Pool) takeIdle() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if p.now().Sub(c.lastUsed) < p.cfg.IdleTimeout {
			return c
		}
		c.tc.Close()
	}
	return nil
}

// release returns c to the idle list, or closes it when it must not carry more.
func (p *Pool) release(c *conn, keep bool) {
	if !keep || c.sent >= p.cfg.MaxPerConn {
		if keep {
			c.quit() // healthy: say goodbye so the relay logs a clean session
		} else {
			c.tc.Close()
		}
		return
	}
	c.lastUsed = p.now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.quit()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// dial opens, secures and authenticates a new connection. The TCP (and, for
// implicit TLS, the TLS) dial is ours rather than go-mail's, so that the pool holds
// the socket: to interrupt any exchange when ctx is done (go-mail's Send takes no
// context) and to see whether writes failed (see classify).
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	tc := &trackedConn{}
	stop := context.AfterFunc(ctx, tc.interrupt)
	defer stop()

	dialFn := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc.attach(raw)
		if p.cfg.TLS != TLSImplicit {
			return tc, nil
		}
		tlsConn := tls.Client(tc, p.tlsConf)
		if err := tlsConn.HandshakeContext(dctx); err != nil {
			raw.Close()
			return nil, err
		}
		return tlsConn, nil
	}
	mc, err := gomail.NewClient(p.cfg.Host, p.clientOptions(dialFn)...)
	if err != nil {
		return nil, fmt.Errorf("configure client: %w", err)
	}
	sc, err := mc.DialToSMTPClientWithContext(ctx)
	if err != nil {
		// go-mail leaves the socket open when EHLO or STARTTLS fails.
		tc.Close()
		return nil, err
	}
	if tc.interrupted() {
		tc.Close()
		return nil, ctx.Err()
	}
	return &conn{sc: sc, tc: tc, timeout: p.cfg.Timeout}, nil
}

func (p *Pool) clientOptions(dial gomail.DialContextFunc) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(p.cfg.Port),
		gomail.WithTimeout(p.cfg.Timeout),
		gomail.WithTLSConfig(p.tlsConf),
		gomail.WithDialContextFunc(dial),
		// A NOOP before every message costs a round trip; a connection that died
		// while idle shows at MAIL FROM instead, and Send retries that once.
		gomail.WithoutNoop(),
		// go-mail sends RSET after every delivered message. After the 250 to the
		// final "." the relay has already cleared the transaction (RFC 5321
		// §4.1.1.4), so it is a wasted round trip. go-mail still sends RSET after a
		// refused MAIL or RCPT, and the pool closes the connection after any other
		// failure.
		gomail.WithoutRset(),
	}
	switch p.cfg.TLS {
	case TLSMandatory:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default: // implicit TLS is done by the dialer; none is none
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if p.cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(p.cfg.HELO))
	}
	if p.cfg.Auth != AuthNone {
		opts = append(opts, gomail.WithUsername(p.cfg.Username), gomail.WithPassword(p.cfg.Password))
		switch p.cfg.Auth {
		case AuthAuto:
			// Not SMTPAuthAutoDiscover: with our own dialer go-mail believes an
			// smtps connection is unencrypted and would never pick PLAIN or LOGIN.
			// PLAIN and LOGIN still refuse to run without TLS (except to localhost).
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5,
				gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
		case AuthPlain:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain))
		case AuthLogin:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthLogin))
		case AuthCramMD5:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthCramMD5))
		case AuthSCRAMSHA1:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthSCRAMSHA1))
		case AuthSCRAMSHA256:
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthSCRAMSHA256))
		}
	}
	return opts
}

// conn is one SMTP session, used by one Send at a time.
type conn struct {
	sc       *smtp.Client
	tc       *trackedConn
	timeout  time.Duration // Config.Timeout, for each message's exchange
	sent     int
	lastUsed time.Time
	// broken says the session is in an unknown state: a pipelined reply could not
	// be read, or DATA got 354 for a message that must not be sent. The connection
	// is closed, not reset (see pipelinedEnvelope).
	broken bool
}

// quit says QUIT and closes, without waiting long for a relay that is gone.
func (c *conn) quit() error {
	_ = c.tc.SetDeadline(time.Now().Add(2 * time.Second))
	err := c.sc.Quit()
	c.tc.Close()
	return err
}
