package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type testBundle struct {
	sink *sink
	pool *Pool
}

// setup starts a sink and a pool that sends to it; query is added to the SMTP_URL.
func setup(t *testing.T, opt sinkOptions, scheme, userinfo, query string) *testBundle {
	t.Helper()
	s := newSink(t, opt)
	raw := fmt.Sprintf("%s://%s127.0.0.1:%s?%s", scheme, userinfo, s.port, query)
	cfg, err := ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(cfg)
	t.Cleanup(func() { p.Close() })
	return &testBundle{sink: s, pool: p}
}

func sendN(t *testing.T, p *Pool, n int) {
	t.Helper()
	for i := range n {
		if err := p.Send(context.Background(), message()); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
}

func wantSendError(t *testing.T, err error, want SendError) *SendError {
	t.Helper()
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *SendError", err, err)
	}
	got := *se
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(SendError{}, "Msg", "Err")); diff != "" {
		t.Errorf("SendError mismatch (-want +got):\n%s\nerror: %v", diff, err)
	}
	if Classify(err) != want.Class {
		t.Errorf("Classify = %v, want %v", Classify(err), want.Class)
	}
	return se
}

func TestSendDeliversHeadersAndBothParts(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "")
	m := message()
	sendN(t, b.pool, 1)

	msgs := b.sink.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "news@acme.example" || !cmp.Equal(got.To, []string{"zoe@example.org"}) {
		t.Errorf("envelope = %s -> %v", got.From, got.To)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	headers := map[string]string{
		"Subject":               subject,
		"From":                  msg.Header.Get("From"),
		"Message-ID":            msg.Header.Get("Message-ID"),
		"Date":                  msg.Header.Get("Date"),
		"List-Unsubscribe":      msg.Header.Get("List-Unsubscribe"),
		"List-Unsubscribe-Post": msg.Header.Get("List-Unsubscribe-Post"),
	}
	wantHeaders := map[string]string{
		"Subject":               m.Subject,
		"From":                  `"Acme" <news@acme.example>`,
		"Message-ID":            "<" + m.MessageID + ">",
		"Date":                  "Sat, 14 Mar 2026 09:30:00 +0000",
		"List-Unsubscribe":      "<https://retain.acme.example/u/tok>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	}
	if diff := cmp.Diff(wantHeaders, headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	if diff := cmp.Diff(map[string]string{"text/plain": m.Text, "text/html": m.HTML}, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
}

func TestTenMessagesShareOneConnection(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
	sendN(t, b.pool, 10)
	if got := b.sink.accepted.Load(); got != 1 {
		t.Errorf("connections = %d, want 1", got)
	}
	if got := b.sink.count.Load(); got != 10 {
		t.Errorf("messages = %d, want 10", got)
	}
}

func TestMaxPerConnRecyclesTheConnection(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1&max_per_conn=3")
	sendN(t, b.pool, 10)
	if got := b.sink.accepted.Load(); got != 4 {
		t.Errorf("connections = %d, want 4 (3+3+3+1)", got)
	}
}

func TestConcurrentSendsUseAtMostPoolSizeConnections(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=4")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 16 {
		wg.Go(func() {
			for range 4 {
				errs <- b.pool.Send(context.Background(), message())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := b.sink.accepted.Load(); got > 4 || got < 1 {
		t.Errorf("connections = %d, want 1-4", got)
	}
	if got := b.sink.count.Load(); got != 64 {
		t.Errorf("messages = %d, want 64", got)
	}
}

func Test421IsTemporaryAndTheNextSendUsesAFreshConnection(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
	sendN(t, b.pool, 1)
	b.sink.inject(&fault{stage: "rcpt", n: 1, reply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 5}, Message: "Too busy"}})
	err := b.pool.Send(context.Background(), message())
	wantSendError(t, err, SendError{Class: Temporary, Stage: StageRcpt, Code: 421, Enhanced: "4.4.5"})
	sendN(t, b.pool, 1)
	if got := b.sink.accepted.Load(); got != 2 {
		t.Errorf("connections = %d, want 2: a 421 closes the connection", got)
	}
}

func TestConnectionDroppedWhileIdleIsRedialedOnce(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
	sendN(t, b.pool, 1)
	b.sink.inject(&fault{stage: "mail", n: 1, reply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Idle timeout, bye bye"}})
	sendN(t, b.pool, 1)
	if got, want := b.sink.count.Load(), int64(2); got != want {
		t.Errorf("messages = %d, want %d", got, want)
	}
	if got := b.sink.accepted.Load(); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
}

func TestUnknownMailboxIsBadAddressAndKeepsTheConnection(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
	b.sink.inject(&fault{stage: "rcpt", n: 1, reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}})
	err := b.pool.Send(context.Background(), message())
	se := wantSendError(t, err, SendError{Class: BadAddress, Stage: StageRcpt, Code: 550, Enhanced: "5.1.1"})
	if se.Msg != "No such user" {
		t.Errorf("Msg = %q, want the relay's text", se.Msg)
	}
	sendN(t, b.pool, 1)
	if got := b.sink.accepted.Load(); got != 1 {
		t.Errorf("connections = %d, want 1: a refused RCPT is reset, not redialed", got)
	}
}

func TestSenderAddressStatusIsPermanentNotBadAddress(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "")
	b.sink.inject(&fault{stage: "mail", n: 1, reply: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 8}, Message: "Bad sender's system address"}})
	err := b.pool.Send(context.Background(), message())
	wantSendError(t, err, SendError{Class: Permanent, Stage: StageMail, Code: 553, Enhanced: "5.1.8"})
}

func TestPolicyRejectionAfterDataIsPermanent(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "")
	b.sink.inject(&fault{stage: "data", n: 1, reply: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}})
	err := b.pool.Send(context.Background(), message())
	wantSendError(t, err, SendError{Class: Permanent, Stage: StageEnd, Code: 554, Enhanced: "5.7.1"})
}

func TestConnectionLostAfterDataIsUnknown(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
	b.sink.inject(&fault{stage: "data", n: 1, drop: true})
	err := b.pool.Send(context.Background(), message())
	wantSendError(t, err, SendError{Class: Unknown, Stage: StageEnd})
	if got := b.sink.count.Load(); got != 1 {
		t.Errorf("sink accepted %d messages; this test wants the relay to have queued it", got)
	}
	sendN(t, b.pool, 1)
	if got := b.sink.accepted.Load(); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
}

func TestDialRefusedIsTemporary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := ParseURL("smtp://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(cfg)
	defer p.Close()
	err = p.Send(context.Background(), message())
	wantSendError(t, err, SendError{Class: Temporary, Stage: StageConnect})
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("err = %v, want it to wrap the *net.OpError", err)
	}
}

func TestCancelledSendReturnsPromptly(t *testing.T) {
	for _, tc := range []struct {
		stage string
		want  SendError
	}{
		// Stalled before DATA: nothing can have been delivered.
		{"mail", SendError{Class: Temporary, Stage: StageMail}},
		// Stalled after the final ".": the relay may have queued it.
		{"data", SendError{Class: Unknown, Stage: StageEnd}},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
			sendN(t, b.pool, 1)
			b.sink.inject(&fault{stage: tc.stage, n: 1, stall: make(chan struct{})})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := b.pool.Send(ctx, message())
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Send took %v after its ctx expired", d)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want it to match context.DeadlineExceeded", err)
			}
			wantSendError(t, err, tc.want)
		})
	}
}

func TestSendWaitingForABusyPoolGivesUpWithItsContext(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=1")
	stall := &fault{stage: "mail", n: 1, stall: make(chan struct{})}
	b.sink.inject(stall)
	busy, cancelBusy := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.pool.Send(busy, message()) }()
	// The busy send holds the pool's only connection once its MAIL has taken
	// the fault and stalls at the sink.
	for deadline := time.Now().Add(5 * time.Second); !b.sink.taken(stall); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the busy send's MAIL did not reach the sink")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b.pool.Send(ctx, message())
	wantSendError(t, err, SendError{Class: Temporary, Stage: StageConnect})
	cancelBusy()
	<-done
}

func TestImplicitTLSWithInsecure(t *testing.T) {
	b := setup(t, sinkOptions{tls: "implicit"}, "smtps", "", "insecure=1")
	sendN(t, b.pool, 2)
	msgs := b.sink.messages()
	if len(msgs) != 2 || !msgs[0].TLS {
		t.Errorf("got %d messages, TLS=%v; want 2 over TLS", len(msgs), len(msgs) > 0 && msgs[0].TLS)
	}
}

func TestSTARTTLSWithInsecure(t *testing.T) {
	b := setup(t, sinkOptions{tls: "starttls"}, "smtp", "", "tls=mandatory&insecure=1")
	sendN(t, b.pool, 2)
	msgs := b.sink.messages()
	if len(msgs) != 2 || !msgs[0].TLS {
		t.Errorf("got %d messages, TLS=%v; want 2 over TLS", len(msgs), len(msgs) > 0 && msgs[0].TLS)
	}
}

func TestSelfSignedCertificateIsRefusedWithoutInsecure(t *testing.T) {
	b := setup(t, sinkOptions{tls: "implicit"}, "smtps", "", "")
	err := b.pool.Send(context.Background(), message())
	se := wantSendError(t, err, SendError{Class: Temporary, Stage: StageConnect})
	if !strings.Contains(se.Msg, "certificate") {
		t.Errorf("Msg = %q, want it to mention the certificate", se.Msg)
	}
}

func TestMandatorySTARTTLSRefusesAServerWithoutIt(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "tls=mandatory")
	err := b.pool.Send(context.Background(), message())
	wantSendError(t, err, SendError{Class: Temporary, Stage: StageConnect})
	if b.sink.count.Load() != 0 {
		t.Error("a message went out in clear")
	}
}

func TestAuthPlain(t *testing.T) {
	for _, tc := range []struct {
		name, scheme, query, password string
		want                          *SendError
	}{
		{"starttls auto", "smtp", "insecure=1", "s3cret", nil},
		{"starttls plain", "smtp", "insecure=1&auth=plain", "s3cret", nil},
		{"smtps auto", "smtps", "insecure=1", "s3cret", nil},
		{"wrong password", "smtp", "insecure=1", "wrong", &SendError{Class: Permanent, Stage: StageConnect, Code: 535, Enhanced: "5.7.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsMode := "starttls"
			if tc.scheme == "smtps" {
				tlsMode = "implicit"
			}
			b := setup(t, sinkOptions{tls: tlsMode, password: "s3cret"}, tc.scheme, "retain:"+tc.password+"@", tc.query)
			err := b.pool.Send(context.Background(), message())
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSendError(t, err, *tc.want)
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestCloseWaitsForSendsAndQuits(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "pool=2")
	sendN(t, b.pool, 3)
	if err := b.pool.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.sink.open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := b.sink.open.Load(); got != 0 {
		t.Errorf("%d connections still open after Close", got)
	}
	err := b.pool.Send(context.Background(), message())
	if !errors.Is(err, ErrPoolClosed) || Classify(err) != Temporary {
		t.Errorf("Send after Close = %v, want ErrPoolClosed (temporary)", err)
	}
}

func TestInvalidMessageIsPermanent(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "")
	m := message()
	m.Subject = "Hi\r\nBcc: victim@example.org"
	err := b.pool.Send(context.Background(), m)
	wantSendError(t, err, SendError{Class: Permanent, Stage: StageBuild})
	if !errors.Is(err, ErrHeaderInjection) {
		t.Errorf("err = %v, want ErrHeaderInjection", err)
	}
}

// sendOne sends m and returns what the sink received.
func sendOne(t *testing.T, b *testBundle, m *Message) received {
	t.Helper()
	if err := b.pool.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	msgs := b.sink.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

// wantDelivered returns what a relay should store for m: m as BuildFor writes it,
// with the MIME boundary the relay saw and every line ending in CRLF (m has no bare
// CR). The sink, like textproto's DotReader, undoes the dot encoding but keeps CRLF.
func wantDelivered(t *testing.T, m *Message, eightBitMIME bool, got []byte) []byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, got)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	gm, err := m.BuildFor(eightBitMIME)
	if err != nil {
		t.Fatal(err)
	}
	gm.SetBoundary(params["boundary"])
	var buf bytes.Buffer
	if _, err := gm.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(strings.ReplaceAll(buf.String(), "\r\n", "\n"), "\n", "\r\n"))
}

// dotMessage has lines that start with "." in both parts, at the start of each part
// and at its end without a line break; its HTML has a line too long to go unencoded.
func dotMessage() *Message {
	m := message()
	// One List-Unsubscribe header: go-mail writes two in random order.
	m.Unsubscribe = "http://localhost:8080/u/tok"
	m.Text = ".\n..\n.hidden\n...\nend.\n\n.\r\n."
	m.HTML = ".<p>a</p>\r\n.\r\n<p>" + strings.Repeat("b. ", 400) + "</p>\n.."
	return m
}

func TestLinesStartingWithADotArriveIntact(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "")
	m := dotMessage()
	got := sendOne(t, b, m)
	if got.Body != smtp.Body8BitMIME {
		t.Errorf("MAIL FROM BODY=%q, want %q", got.Body, smtp.Body8BitMIME)
	}
	if want := wantDelivered(t, m, true, got.Data); !bytes.Equal(got.Data, want) {
		t.Errorf("the relay got a different message (-want +got):\n%s", cmp.Diff(string(want), string(got.Data)))
	}
	parts := rawParts(t, got.Data)
	if text, html := parts["text/plain"], parts["text/html"]; text.CTE != "8bit" || html.CTE != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding: text %q, HTML %q; want 8bit and quoted-printable (a line > 998 octets)", text.CTE, html.CTE)
	}
}

func TestGuideArrivesAsBuilt(t *testing.T) {
	b := setup(t, sinkOptions{}, "smtp", "", "")
	m := guideMessage(t)
	m.Unsubscribe = "http://localhost:8080/u/tok"
	got := sendOne(t, b, m)
	if want := wantDelivered(t, m, true, got.Data); !bytes.Equal(got.Data, want) {
		t.Errorf("the relay got a different message (-want +got):\n%s", cmp.Diff(string(want), string(got.Data)))
	}
	for ct, p := range rawParts(t, got.Data) {
		if p.CTE != "8bit" {
			t.Errorf("%s part is %s, want 8bit", ct, p.CTE)
		}
	}
}

func TestRelayWithout8BITMIMEGetsQuotedPrintable(t *testing.T) {
	b := setup(t, sinkOptions{hide: []string{"8BITMIME"}}, "smtp", "", "")
	m := dotMessage()
	m.Text = "Grüße, Zoë\n" + m.Text
	got := sendOne(t, b, m)
	if got.Body != "" {
		t.Errorf("MAIL FROM BODY=%q to a relay without 8BITMIME", got.Body)
	}
	if want := wantDelivered(t, m, false, got.Data); !bytes.Equal(got.Data, want) {
		t.Errorf("the relay got a different message (-want +got):\n%s", cmp.Diff(string(want), string(got.Data)))
	}
	parts := rawParts(t, got.Data)
	for ct, p := range parts {
		if p.CTE != "quoted-printable" {
			t.Errorf("%s part is %s, want quoted-printable", ct, p.CTE)
		}
	}
	if got := parts["text/plain"].decoded(t); got != strings.ReplaceAll(m.Text, "\r\n", "\n") {
		t.Errorf("text part decodes to %q", got)
	}
}

// TestRefusalsAreClassifiedByStageAndCode: the relay's reply decides Class, Code
// and Enhanced; the enhanced code counts only when the relay announced
// ENHANCEDSTATUSCODES (as go-mail reads it), so an unannounced 5.1.1 is no
// BadAddress. Each case runs against a relay with and without PIPELINING, and must
// fail the same way in both, leave the pool's connection as it says (a refused MAIL
// or RCPT is reset and kept, anything else closes it) and deliver the next message
// intact. The faulted send runs on a reused connection, so a MAIL that finds the
// connection gone (421, or no reply) is retried once on a fresh one.
func TestRefusalsAreClassifiedByStageAndCode(t *testing.T) {
	noESC := []string{"ENHANCEDSTATUSCODES"}
	refuse := func(stage string, code int, enhanced smtp.EnhancedCode, msg string) *fault {
		return &fault{stage: stage, n: 1, reply: &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}}
	}
	drop := func(stage string) *fault { return &fault{stage: stage, n: 1, drop: true} }
	for _, tc := range []struct {
		name    string
		hide    []string
		faults  []*fault
		want    *SendError // nil: delivered after all
		wantMsg string     // "": not checked (a network error's text)
		// conns is how many connections the warm-up, the faulted and the next
		// message took, without and with PIPELINING; delivered how many messages
		// the relay accepted.
		conns     [2]int64
		delivered int64
	}{
		{name: "mail 451 4.3.0", faults: []*fault{refuse("mail", 451, smtp.EnhancedCode{4, 3, 0}, "Try again later")},
			want: &SendError{Class: Temporary, Stage: StageMail, Code: 451, Enhanced: "4.3.0"}, wantMsg: "Try again later", conns: [2]int64{1, 1}, delivered: 2},
		{name: "mail 553 5.1.8", faults: []*fault{refuse("mail", 553, smtp.EnhancedCode{5, 1, 8}, "Bad sender's system address")},
			want: &SendError{Class: Permanent, Stage: StageMail, Code: 553, Enhanced: "5.1.8"}, wantMsg: "Bad sender's system address", conns: [2]int64{1, 1}, delivered: 2},
		{name: "mail 421 retried", faults: []*fault{refuse("mail", 421, smtp.EnhancedCode{4, 4, 2}, "Idle timeout, bye bye")},
			conns: [2]int64{2, 2}, delivered: 3},
		{name: "mail dropped retried", faults: []*fault{drop("mail")},
			conns: [2]int64{2, 2}, delivered: 3},
		{name: "rcpt 550 5.1.1", faults: []*fault{refuse("rcpt", 550, smtp.EnhancedCode{5, 1, 1}, "No such user")},
			want: &SendError{Class: BadAddress, Stage: StageRcpt, Code: 550, Enhanced: "5.1.1"}, wantMsg: "No such user", conns: [2]int64{1, 1}, delivered: 2},
		{name: "rcpt 550 5.1.1 unannounced", hide: noESC, faults: []*fault{refuse("rcpt", 550, smtp.EnhancedCode{5, 1, 1}, "No such user")},
			want: &SendError{Class: Permanent, Stage: StageRcpt, Code: 550}, wantMsg: "5.1.1 No such user", conns: [2]int64{1, 1}, delivered: 2},
		// go-mail looks for the enhanced code in the quoted reply, where it follows
		// "\n" and is not found.
		{name: "rcpt 452 multi-line", faults: []*fault{refuse("rcpt", 452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full\nTry tomorrow")},
			want: &SendError{Class: Temporary, Stage: StageRcpt, Code: 452}, wantMsg: "Mailbox full\n4.2.2 Try tomorrow", conns: [2]int64{1, 1}, delivered: 2},
		{name: "rcpt 421", faults: []*fault{refuse("rcpt", 421, smtp.EnhancedCode{4, 4, 5}, "Too busy")},
			want: &SendError{Class: Temporary, Stage: StageRcpt, Code: 421, Enhanced: "4.4.5"}, wantMsg: "Too busy", conns: [2]int64{2, 2}, delivered: 2},
		{name: "rcpt dropped", faults: []*fault{drop("rcpt")},
			want: &SendError{Class: Temporary, Stage: StageRcpt}, conns: [2]int64{2, 2}, delivered: 2},
		// A relay that answers DATA with 354 although it refused the only
		// recipient: a pipelining client must not send the message, and cannot
		// RSET a relay that waits for one, so it closes the connection. Without
		// PIPELINING DATA is not sent, and the next message's DATA takes the 354.
		{name: "rcpt 550 then DATA 354", faults: []*fault{
			refuse("rcpt", 550, smtp.EnhancedCode{5, 1, 1}, "No such user"),
			refuse("datacmd", 354, smtp.NoEnhancedCode, "Go ahead anyway")},
			want: &SendError{Class: BadAddress, Stage: StageRcpt, Code: 550, Enhanced: "5.1.1"}, wantMsg: "No such user", conns: [2]int64{1, 2}, delivered: 2},
		{name: "data 451 4.3.0", faults: []*fault{refuse("datacmd", 451, smtp.EnhancedCode{4, 3, 0}, "Not now")},
			want: &SendError{Class: Temporary, Stage: StageData, Code: 451, Enhanced: "4.3.0"}, wantMsg: "Not now", conns: [2]int64{2, 2}, delivered: 2},
		{name: "data 554 unannounced", hide: noESC, faults: []*fault{refuse("datacmd", 554, smtp.EnhancedCode{5, 5, 1}, "No valid recipients")},
			want: &SendError{Class: Permanent, Stage: StageData, Code: 554}, wantMsg: "5.5.1 No valid recipients", conns: [2]int64{2, 2}, delivered: 2},
		{name: "end 452 4.3.1", faults: []*fault{refuse("data", 452, smtp.EnhancedCode{4, 3, 1}, "Out of memory")},
			want: &SendError{Class: Temporary, Stage: StageEnd, Code: 452, Enhanced: "4.3.1"}, wantMsg: "Out of memory", conns: [2]int64{2, 2}, delivered: 2},
		{name: "end 552 5.3.4 unannounced", hide: noESC, faults: []*fault{refuse("data", 552, smtp.EnhancedCode{5, 3, 4}, "Message too big")},
			want: &SendError{Class: Permanent, Stage: StageEnd, Code: 552}, wantMsg: "5.3.4 Message too big", conns: [2]int64{2, 2}, delivered: 2},
		{name: "end 554 5.7.1", faults: []*fault{refuse("data", 554, smtp.EnhancedCode{5, 7, 1}, "Message rejected as spam")},
			want: &SendError{Class: Permanent, Stage: StageEnd, Code: 554, Enhanced: "5.7.1"}, wantMsg: "Message rejected as spam", conns: [2]int64{2, 2}, delivered: 2},
		// The relay queued the message and lost the connection before its reply.
		{name: "end dropped", faults: []*fault{drop("data")},
			want: &SendError{Class: Unknown, Stage: StageEnd}, conns: [2]int64{2, 2}, delivered: 3},
	} {
		for mode, pipelining := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pipelining=%v", tc.name, pipelining), func(t *testing.T) {
				hide := slices.Clone(tc.hide)
				if !pipelining {
					hide = append(hide, "PIPELINING")
				}
				b := setup(t, sinkOptions{hide: hide}, "smtp", "", "pool=1")
				sendN(t, b.pool, 1)
				for _, f := range tc.faults {
					f := *f // each run uses its faults up
					b.sink.inject(&f)
				}
				err := b.pool.Send(context.Background(), message())
				if tc.want == nil {
					if err != nil {
						t.Fatalf("Send = %v, want it retried and delivered", err)
					}
				} else {
					se := wantSendError(t, err, *tc.want)
					if tc.wantMsg != "" && se.Msg != tc.wantMsg {
						t.Errorf("Msg = %q, want %q", se.Msg, tc.wantMsg)
					}
				}

				next := dotMessage()
				if err := b.pool.Send(context.Background(), next); err != nil {
					t.Fatalf("next message: %v", err)
				}
				msgs := b.sink.messages()
				if got := int64(len(msgs)); got != tc.delivered {
					t.Errorf("relay accepted %d messages, want %d", got, tc.delivered)
				}
				got := msgs[len(msgs)-1].Data
				if want := wantDelivered(t, next, true, got); !bytes.Equal(got, want) {
					t.Errorf("the next message arrived different (-want +got):\n%s", cmp.Diff(string(want), string(got)))
				}
				if got, want := b.sink.accepted.Load(), tc.conns[mode]; got != want {
					t.Errorf("connections = %d, want %d", got, want)
				}
			})
		}
	}
}

// TestPipeliningSendsTheEnvelopeInOneWrite: to a relay that announces PIPELINING,
// MAIL FROM, RCPT TO and DATA arrive in one read, with the parameters go-mail's
// Mail sends a command at a time to the same relay.
func TestPipeliningSendsTheEnvelopeInOneWrite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hide     []string
		smtpUTF8 bool
		want     string
	}{
		{"8BITMIME and SMTPUTF8", nil, true,
			"MAIL FROM:<news@acme.example> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<zoe@example.org>\r\nDATA\r\n"},
		{"neither", []string{"8BITMIME"}, false,
			"MAIL FROM:<news@acme.example>\r\nRCPT TO:<zoe@example.org>\r\nDATA\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			envelopes := map[bool][]string{} // pipelining: the reads from MAIL to DATA
			for _, pipelining := range []bool{false, true} {
				hide := slices.Clone(tc.hide)
				if !pipelining {
					hide = append(hide, "PIPELINING")
				}
				b := setup(t, sinkOptions{hide: hide, smtpUTF8: tc.smtpUTF8, keepRead: true}, "smtp", "", "")
				sendN(t, b.pool, 1)
				var in bool
				for _, chunk := range b.sink.reads() {
					in = in || bytes.HasPrefix(chunk, []byte("MAIL FROM:"))
					if in {
						envelopes[pipelining] = append(envelopes[pipelining], string(chunk))
					}
					if bytes.HasSuffix(chunk, []byte("DATA\r\n")) {
						break
					}
				}
			}
			if got := strings.Join(envelopes[false], ""); got != tc.want {
				t.Errorf("without PIPELINING the relay read %q, want %q", got, tc.want)
			}
			if diff := cmp.Diff([]string{tc.want}, envelopes[true]); diff != "" {
				t.Errorf("with PIPELINING, reads from MAIL to DATA (-want +got):\n%s", diff)
			}
		})
	}
}
