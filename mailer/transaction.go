package mailer

import (
	"bytes"
	"context"
	"errors"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"
)

// outgoing is a Message made ready for any connection: its headers checked, its
// envelope known, and which body parts may go unencoded. Its MIME is written per
// connection, because the encodings depend on the relay's EHLO.
type outgoing struct {
	msg   *gomail.Msg
	from  string
	rcpts []string
	plain [2]bool // text, HTML: see isPlain
	// dkim are the keys that sign the message (Pool.send sets them); none: unsigned.
	dkim []dkim.SignOptions
}

// prepare builds what Pool.Send needs before it takes a connection; its errors
// are about the message (StageBuild).
func (m *Message) prepare() (*outgoing, error) {
	msg, err := m.build()
	if err != nil {
		return nil, err
	}
	o := &outgoing{msg: msg, plain: [2]bool{isPlain(m.Text), isPlain(m.HTML)}}
	if o.from, err = msg.GetSender(false); err != nil {
		return nil, err
	}
	if m.ReturnPath != "" {
		// Not checkFrom: its cache keeps every address it saw, and each
		// email has a Return-Path of its own. retain makes them; a space or
		// angle bracket would still break MAIL FROM.
		if strings.Count(m.ReturnPath, "@") != 1 || strings.ContainsFunc(m.ReturnPath, func(r rune) bool { return r <= ' ' || r == '<' || r == '>' || r > '~' }) {
			return nil, errors.New("return path " + strconv.Quote(m.ReturnPath) + " is not an address")
		}
		o.from = m.ReturnPath
	}
	if o.rcpts, err = msg.GetRecipients(); err != nil {
		return nil, err
	}
	return o, nil
}

// dataBuf holds one message while it is sent: the MIME as go-mail writes it, then
// the same in SMTP's dot encoding with its final ".".
type dataBuf struct {
	mime bytes.Buffer
	data []byte
}

var dataBufs = sync.Pool{New: func() any { return new(dataBuf) }}

// maxPooledData keeps the odd huge message from pinning its buffers in the pool.
const maxPooledData = 1 << 20

func putDataBuf(b *dataBuf) {
	if b.mime.Cap() > maxPooledData || cap(b.data) > maxPooledData {
		return
	}
	b.mime.Reset()
	b.data = b.data[:0]
	dataBufs.Put(b)
}

// write fills b with o's message for a relay that announced 8BITMIME or not.
// With keys in o.dkim, the message as go-mail wrote it is signed, and the
// DKIM-Signature fields go first in DATA, ahead of the dot-encoded message: they
// are CRLF lines that never start with ".", so the encoding leaves them as they
// are, and a receiver that undoes it has the signed bytes.
func (o *outgoing) write(b *dataBuf, eightBitMIME bool) error {
	setEncodings(o.msg, o.plain, eightBitMIME)
	if _, err := o.msg.WriteTo(&b.mime); err != nil {
		return err
	}
	b.data = b.data[:0]
	if len(o.dkim) > 0 {
		var err error
		if b.data, err = appendDKIMSignatures(b.data, b.mime.Bytes(), o.dkim); err != nil {
			return err
		}
	}
	b.data = appendDotStuffed(b.data, b.mime.Bytes())
	return nil
}

// send runs one SMTP transaction, interrupting it when ctx is done.
// gate, when set, is waited for before the message content goes: its error
// stops the send there (StageFence) and closes the connection.
func (c *conn) send(ctx context.Context, o *outgoing, gate func() error) *SendError {
	if err := ctx.Err(); err != nil {
		return ctxError(ctx, &SendError{Class: Temporary, Stage: StageConnect, Msg: "not sent", Err: err})
	}
	c.tc.writeFailed.Store(false)
	stop := context.AfterFunc(ctx, c.tc.interrupt)
	defer stop()
	return c.transact(o, gate)
}

// transact is go-mail's SendWithSMTPClient for one message, with the envelope sent
// one of two ways (envelope, pipelinedEnvelope) and DATA our own: the message is
// dot-encoded in memory and written through smtp.Client.Text in one write, where
// go-mail's DataCloser writes a byte at a time into a 4 KB buffer. What go-mail does
// around the steps is kept: a check that the client is connected and a fresh
// deadline (Config.Timeout) for each message. Unlike go-mail it sends no RSET after
// a refused MAIL or RCPT; keepConn does, once, when the connection is worth keeping.
func (c *conn) transact(o *outgoing, gate func() error) *SendError {
	if !c.sc.HasConnection() {
		return c.fail(StageConnect, gomail.ErrNoActiveConnection, false)
	}
	if err := c.sc.UpdateDeadline(c.timeout); err != nil {
		return c.fail(StageConnect, err, false)
	}
	esc, _ := c.sc.Extension("ENHANCEDSTATUSCODES")
	eightBitMIME, _ := c.sc.Extension("8BITMIME")
	pipelining, _ := c.sc.Extension("PIPELINING")

	b := dataBufs.Get().(*dataBuf)
	defer putDataBuf(b)
	if err := o.write(b, eightBitMIME); err != nil {
		return &SendError{Class: Permanent, Stage: StageBuild, Msg: err.Error(), Err: err}
	}

	var se *SendError
	if pipelining && o.validLines() {
		se = c.pipelinedEnvelope(o, esc, eightBitMIME)
	} else {
		se = c.envelope(o, esc)
	}
	if se != nil {
		return se
	}

	// The relay answered DATA with 354: the content may go once the gate
	// allows; else nothing may follow but closing the connection.
	if gate != nil {
		if err := gate(); err != nil {
			c.broken = true
			return fenceError(err)
		}
	}
	// The buffered writer is empty after the
	// commands' flush, so a message larger than its 4 KB goes straight to the
	// socket; a smaller one leaves with Flush.
	text := c.sc.Text
	if _, err := text.W.Write(b.data); err != nil {
		return c.fail(StageData, err, esc)
	}
	if err := text.W.Flush(); err != nil {
		return c.fail(StageData, err, esc)
	}
	if _, _, err := text.ReadResponse(250); err != nil {
		return c.fail(StageEnd, err, esc)
	}
	return nil
}

// envelope sends MAIL FROM, RCPT TO and DATA a command at a time, each waiting for
// its reply: MAIL and RCPT are go-mail's (MAIL adds BODY=8BITMIME and SMTPUTF8 as
// the relay allows). It returns nil once the relay answered DATA with 354.
func (c *conn) envelope(o *outgoing, esc bool) *SendError {
	if err := c.sc.Mail(o.from); err != nil {
		return c.fail(StageMail, err, esc)
	}
	var rcptErr error
	for _, rcpt := range o.rcpts {
		if err := c.sc.Rcpt(rcpt); err != nil {
			rcptErr = err // like go-mail: try every recipient, report the last refusal
		}
	}
	if rcptErr != nil {
		return c.fail(StageRcpt, rcptErr, esc)
	}

	text := c.sc.Text
	id, err := text.Cmd("DATA")
	if err != nil {
		return c.fail(StageData, err, esc)
	}
	text.StartResponse(id)
	_, _, err = text.ReadResponse(354)
	text.EndResponse(id)
	if err != nil {
		return c.fail(StageData, err, esc)
	}
	return nil
}

// pipelinedEnvelope is envelope for a relay that announced PIPELINING (RFC 2920):
// MAIL FROM, every RCPT TO and DATA leave in one write, then their replies are read
// in order, which saves two round trips, and as many writes, flushes and waits for
// the socket, per message. The commands are byte for byte what go-mail's Mail and
// Rcpt send for retain's client (no DSN, so no RET or NOTIFY; SMTPUTF8 not skipped).
//
// Every reply is read, even after a refusal (a relay answers the commands after a
// refused MAIL with 503 or similar), so that the session is where the relay has it.
// The failure returned is the one envelope returns for the same replies: MAIL's,
// else the last refused RCPT's, else DATA's; so Class, keepConn's RSET and
// Pool.send's retry do not depend on the relay's extensions. Two outcomes leave the
// session in doubt, and mark the connection broken so that it is closed rather than
// reset: a reply that could not be read, and a 354 to DATA after a refused MAIL or
// RCPT. There the relay waits for a message that must not go out (envelope would
// not have sent it), and any line we send, RSET included, would be taken as its
// text. RFC 2920 §3.1 suggests a lone "." then, but that hands the relay an empty
// message, delivered to any recipient it did accept; a relay processes a
// transaction only once it has the final "." (RFC 5321 §4.1.1.4), so closing the
// connection sends nothing.
func (c *conn) pipelinedEnvelope(o *outgoing, esc, eightBitMIME bool) *SendError {
	text := c.sc.Text
	w := text.W
	w.WriteString("MAIL FROM:")
	w.WriteString(o.from)
	if eightBitMIME {
		w.WriteString(" BODY=8BITMIME")
	}
	if smtpUTF8, _ := c.sc.Extension("SMTPUTF8"); smtpUTF8 {
		w.WriteString(" SMTPUTF8")
	}
	w.WriteString("\r\n")
	for _, rcpt := range o.rcpts {
		w.WriteString("RCPT TO:")
		w.WriteString(rcpt)
		w.WriteString("\r\n")
	}
	w.WriteString("DATA\r\n")
	if err := w.Flush(); err != nil {
		// What envelope reports when MAIL cannot be written.
		return c.fail(StageMail, err, esc)
	}

	_, _, mailErr := text.ReadResponse(250)
	if mailErr != nil && !isReply(mailErr) {
		c.broken = true
		return c.fail(StageMail, mailErr, esc)
	}
	var rcptErr error
	for range o.rcpts {
		_, _, err := text.ReadResponse(25) // 250 or 251, as Rcpt accepts
		if err == nil {
			continue
		}
		if !isReply(err) {
			c.broken = true
			if mailErr != nil {
				return c.fail(StageMail, mailErr, esc)
			}
			return c.fail(StageRcpt, err, esc) // envelope too ends with this error last
		}
		rcptErr = err
	}
	_, _, dataErr := text.ReadResponse(354)

	var se *SendError
	switch {
	case mailErr != nil:
		se = c.fail(StageMail, mailErr, esc)
	case rcptErr != nil:
		se = c.fail(StageRcpt, rcptErr, esc)
	case dataErr != nil:
		se = c.fail(StageData, dataErr, esc)
	default:
		return nil
	}
	if dataErr == nil || !isReply(dataErr) {
		c.broken = true
	}
	return se
}

// isReply says whether err is a whole reply the relay sent, with a code other than
// the one expected, rather than a failure to read one (the session then is out of
// step).
func isReply(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te)
}

// validLines says whether the envelope's addresses are fit for a command line, as
// smtp.Client.Mail and Rcpt check (no CR or LF; Message refuses them already).
// When not, transact leaves the refusal to envelope, which reports it as it always
// has.
func (o *outgoing) validLines() bool {
	if strings.ContainsAny(o.from, "\r\n") {
		return false
	}
	for _, rcpt := range o.rcpts {
		if strings.ContainsAny(rcpt, "\r\n") {
			return false
		}
	}
	return true
}

// fail classifies the error of one step of transact.
func (c *conn) fail(stage Stage, err error, esc bool) *SendError {
	return replyError(stage, err, esc, c.tc.writeFailed.Load())
}

// replyError classifies the error of one SMTP step as classify did when go-mail ran
// the step and returned a *gomail.SendError, whose code and enhanced code
// replyCode and replyEnhanced compute as go-mail does.
func replyError(stage Stage, err error, esc, writeFailed bool) *SendError {
	out := &SendError{Stage: stage, Code: replyCode(err), Msg: err.Error(), Err: err}
	if esc {
		out.Enhanced = replyEnhanced(err)
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		out.Msg = te.Msg
	}
	out.Msg = trimEnhanced(out.Msg, out.Enhanced)
	out.Class = classOf(out, writeFailed)
	return out
}

// replyCode is go-mail's errorCode: the reply code when the error's text starts
// with a 4xx or 5xx one, else 0.
func replyCode(err error) int {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	s := err.Error()
	if len(s) < 3 || s[0] != '4' && s[0] != '5' {
		return 0
	}
	code, _ := strconv.Atoi(s[:3])
	return code
}

// anyEnhancedRE is go-mail's pattern for an RFC 3463 code anywhere in a reply.
var anyEnhancedRE = regexp.MustCompile(`\b([245])\.\d{1,3}\.\d{1,3}\b`)

// replyEnhanced is go-mail's enhancedStatusCode for a relay that announced
// ENHANCEDSTATUSCODES: the first RFC 3463 code in the error's text. Since Go 1.26
// that text quotes the reply, so a code right after a line break ("\n4.2.2") is not
// found; kept so that classes stay as they were.
func replyEnhanced(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	s := err.Error()
	if s == "" || s[0] != '2' && s[0] != '4' && s[0] != '5' {
		return ""
	}
	return anyEnhancedRE.FindString(s)
}
