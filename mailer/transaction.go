package mailer

import (
	"bytes"
	"context"
	"errors"
	"net/textproto"
	"regexp"
	"strconv"
	"sync"

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
func (o *outgoing) write(b *dataBuf, eightBitMIME bool) error {
	setEncodings(o.msg, o.plain, eightBitMIME)
	if _, err := o.msg.WriteTo(&b.mime); err != nil {
		return err
	}
	b.data = appendDotStuffed(b.data[:0], b.mime.Bytes())
	return nil
}

// send runs one SMTP transaction, interrupting it when ctx is done.
func (c *conn) send(ctx context.Context, o *outgoing) *SendError {
	if err := ctx.Err(); err != nil {
		return ctxError(ctx, &SendError{Class: Temporary, Stage: StageConnect, Msg: "not sent", Err: err})
	}
	c.tc.writeFailed.Store(false)
	stop := context.AfterFunc(ctx, c.tc.interrupt)
	defer stop()
	return c.transact(o)
}

// transact is go-mail's SendWithSMTPClient for one message, with MAIL and RCPT
// still go-mail's (MAIL adds BODY=8BITMIME and SMTPUTF8 as the relay allows) and
// DATA our own: the message is dot-encoded in memory and written through
// smtp.Client.Text in one write, where go-mail's DataCloser writes a byte at a time
// into a 4 KB buffer. What go-mail does around the steps is kept: a check that the
// client is connected and a fresh deadline (Config.Timeout) for each message.
// Unlike go-mail it sends no RSET after a refused MAIL or RCPT; keepConn does, once,
// when the connection is worth keeping.
func (c *conn) transact(o *outgoing) *SendError {
	if !c.sc.HasConnection() {
		return c.fail(StageConnect, gomail.ErrNoActiveConnection, false)
	}
	if err := c.sc.UpdateDeadline(c.timeout); err != nil {
		return c.fail(StageConnect, err, false)
	}
	esc, _ := c.sc.Extension("ENHANCEDSTATUSCODES")
	eightBitMIME, _ := c.sc.Extension("8BITMIME")

	b := dataBufs.Get().(*dataBuf)
	defer putDataBuf(b)
	if err := o.write(b, eightBitMIME); err != nil {
		return &SendError{Class: Permanent, Stage: StageBuild, Msg: err.Error(), Err: err}
	}

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
	// The buffered writer is empty after the command's flush, so a message larger
	// than its 4 KB goes straight to the socket; a smaller one leaves with Flush.
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
