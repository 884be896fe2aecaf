package mailer

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// longAgo is a deadline in the past: it makes every pending and future read and
// write on a connection fail at once.
var longAgo = time.Unix(1, 0)

// trackedConn is the TCP connection under go-mail's SMTP client (and under TLS).
// It lets the pool interrupt a blocked exchange when a ctx is done, and records
// whether a write failed, which tells a lost reply after the final "." (Unknown)
// from a "." that never left (Temporary).
type trackedConn struct {
	net.Conn // nil until attach

	writeFailed atomic.Bool

	mu        sync.Mutex
	cancelled bool
}

// attach sets the dialed connection, interrupting it at once if the Send that
// dials it was cancelled meanwhile.
func (c *trackedConn) attach(raw net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Conn = raw
	if c.cancelled {
		_ = raw.SetDeadline(longAgo)
	}
}

// interrupt fails all I/O on the connection from now on; go-mail resets deadlines
// before each message, so the flag keeps them in the past.
func (c *trackedConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelled = true
	if c.Conn != nil {
		_ = c.Conn.SetDeadline(longAgo)
	}
}

func (c *trackedConn) interrupted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancelled
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.writeFailed.Store(true)
	}
	return n, err
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, c.Conn.SetDeadline)
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(t, c.Conn.SetReadDeadline)
}

func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(t, c.Conn.SetWriteDeadline)
}

func (c *trackedConn) setDeadline(t time.Time, set func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelled {
		t = longAgo
	}
	return set(t)
}

// Close closes the socket; closing twice or before attach is harmless.
func (c *trackedConn) Close() error {
	c.mu.Lock()
	raw := c.Conn
	c.mu.Unlock()
	if raw == nil {
		return nil
	}
	return raw.Close()
}
