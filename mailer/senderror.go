package mailer

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// Class says what the worker does after a failed send.
type Class int

const (
	// Temporary: not delivered; retry with backoff. SMTP 4xx, and connection
	// failures before the message's final "." was written.
	Temporary Class = iota + 1
	// Permanent: the relay refused with 5xx; do not retry.
	Permanent
	// BadAddress: the relay refused the recipient with 5.1.x (e.g. 550 5.1.1);
	// permanent, and the address should be suppressed.
	BadAddress
	// Unknown: the connection was lost after the final "." of DATA was written but
	// before the reply arrived (RFC 5321 §4.5.3.2). The message may or may not have
	// been delivered: record it as sent-unknown, never retry it blindly.
	Unknown
)

func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case Permanent:
		return "permanent"
	case BadAddress:
		return "bad address"
	case Unknown:
		return "unknown"
	}
	return "none"
}

// Stage is the step of the SMTP exchange that failed.
type Stage string

// Stages of a send. StageConnect errors (dial, TLS, AUTH, a closed pool) concern the
// relay, not the message: a Permanent one there (wrong password) means every send
// will fail until an operator fixes the configuration.
const (
	StageBuild   Stage = "build"   // the Message could not be turned into MIME
	StageConnect Stage = "connect" // dial, greeting, EHLO, STARTTLS, AUTH
	StageFence   Stage = "fence"   // the caller's fence refused the send before MAIL FROM
	StageMail    Stage = "mail"    // MAIL FROM
	StageRcpt    Stage = "rcpt"    // RCPT TO
	StageData    Stage = "data"    // DATA command and message body
	StageEnd     Stage = "end"     // final "." and its reply
)

// SendError is the error Pool.Send returns: a failed send, classified once.
type SendError struct {
	Class Class
	Stage Stage
	// Code is the SMTP reply code (e.g. 550), 0 when no reply was read.
	Code int
	// Enhanced is the RFC 3463 status code (e.g. "5.1.1") if the relay sent one.
	Enhanced string
	// Msg is the relay's reply text, or what went wrong when there was no reply.
	Msg string
	// Err is the underlying error (a *gomail.SendError, a net error, ctx.Err(), …).
	Err error
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("smtp ")
	b.WriteString(string(e.Stage))
	b.WriteString(": ")
	if e.Code != 0 {
		fmt.Fprintf(&b, "%d ", e.Code)
	}
	if e.Enhanced != "" && !strings.HasPrefix(e.Msg, e.Enhanced) {
		b.WriteString(e.Enhanced)
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	fmt.Fprintf(&b, " (%s)", e.Class)
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// Classify returns the class of an error from Pool.Send, or classifies a go-mail,
// SMTP reply or network error the same way. It returns 0 for nil. An error it cannot
// place is Temporary: a send that failed for an unknown reason before reaching the
// relay is safe to retry.
func Classify(err error) Class {
	if err == nil {
		return 0
	}
	var se *SendError
	if errors.As(err, &se) {
		return se.Class
	}
	return classify(err, false).Class
}

// ErrPoolClosed is returned by Send after Close.
var ErrPoolClosed = errors.New("mailer: pool closed")

var enhancedRE = regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}\b`)

// classify turns an error from go-mail into a SendError. wroteFailed says a write
// to the socket failed during this message: then the final "." cannot have been
// sent in full, and a lost reply after it is not ambiguous.
func classify(err error, writeFailed bool) *SendError {
	if se := (*SendError)(nil); errors.As(err, &se) {
		return se
	}
	out := &SendError{Err: err, Stage: StageConnect}
	var gse *gomail.SendError
	if errors.As(err, &gse) {
		out.Stage = stageOf(gse.Reason)
		out.Code = gse.ErrorCode()
		out.Enhanced = gse.EnhancedStatusCode()
		out.Msg = replyText(gse)
	} else {
		var te *textproto.Error
		if errors.As(err, &te) {
			out.Code = te.Code
			out.Msg = te.Msg
			out.Enhanced = enhancedRE.FindString(te.Msg)
		} else {
			out.Msg = err.Error()
		}
	}
	out.Msg = trimEnhanced(out.Msg, out.Enhanced)
	out.Class = classOf(out, writeFailed)
	return out
}

// trimEnhanced drops the enhanced status code that starts a reply's text.
func trimEnhanced(msg, enhanced string) string {
	return strings.TrimSpace(strings.TrimPrefix(msg, enhanced))
}

func classOf(e *SendError, writeFailed bool) Class {
	switch {
	case e.Stage == StageBuild:
		return Permanent
	case e.Code >= 500 && e.Code < 600:
		if isAddressStatus(e.Enhanced) && e.Stage != StageMail && e.Stage != StageConnect {
			return BadAddress
		}
		return Permanent
	case e.Code >= 400 && e.Code < 500:
		return Temporary
	case e.Stage == StageEnd && !writeFailed:
		// Every byte up to and including the final "." reached the socket, and
		// then the reply was lost: the relay may have accepted the message.
		return Unknown
	}
	return Temporary
}

// isAddressStatus reports a 5.1.x status about the recipient. 5.1.7 and 5.1.8 are
// about the sender's address and must not suppress the recipient.
func isAddressStatus(enhanced string) bool {
	return strings.HasPrefix(enhanced, "5.1.") && enhanced != "5.1.7" && enhanced != "5.1.8"
}

func stageOf(r gomail.SendErrReason) Stage {
	switch r {
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		return StageBuild
	case gomail.ErrSMTPMailFrom:
		return StageMail
	case gomail.ErrSMTPRcptTo:
		return StageRcpt
	case gomail.ErrSMTPData, gomail.ErrWriteContent:
		return StageData
	case gomail.ErrSMTPDataClose, gomail.ErrSMTPReset:
		return StageEnd
	}
	return StageConnect // ErrConnCheck, ErrAmbiguous
}

// replyText digs the relay's reply out of a go-mail SendError, which keeps its
// underlying errors unexported and has no Unwrap: "<reason>: <550 text>, affected
// recipient(s): …, affected message ID: …".
func replyText(e *gomail.SendError) string {
	s := strings.TrimPrefix(e.Error(), e.Reason.String()+": ")
	for _, sep := range []string{", affected recipient(s): ", ", affected message ID: "} {
		if i := strings.Index(s, sep); i >= 0 {
			s = s[:i]
		}
	}
	if code := e.ErrorCode(); code != 0 {
		s = strings.TrimPrefix(s, fmt.Sprintf("%03d ", code))
	}
	// Since Go 1.26 textproto.Error quotes the reply text.
	if q, err := strconv.QuotedPrefix(s); err == nil {
		if text, err := strconv.Unquote(q); err == nil {
			return text
		}
	}
	return s
}

// ctxError wraps a send cut short by ctx so that errors.Is(err, context.Canceled)
// holds while the class still follows where the exchange stopped.
func ctxError(ctx context.Context, se *SendError) *SendError {
	if ctx.Err() == nil || errors.Is(se.Err, ctx.Err()) {
		return se
	}
	se.Err = errors.Join(ctx.Err(), se.Err)
	se.Msg = ctx.Err().Error() + ": " + se.Msg
	return se
}
