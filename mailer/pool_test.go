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
// BadAddress.
func TestRefusalsAreClassifiedByStageAndCode(t *testing.T) {
	noESC := []string{"ENHANCEDSTATUSCODES"}
	for _, tc := range []struct {
		name    string
		hide    []string
		fault   *fault
		want    SendError
		wantMsg string
	}{
		{"rcpt 550 5.1.1", nil, &fault{stage: "rcpt", n: 1, reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}},
			SendError{Class: BadAddress, Stage: StageRcpt, Code: 550, Enhanced: "5.1.1"}, "No such user"},
		{"rcpt 550 5.1.1 unannounced", noESC, &fault{stage: "rcpt", n: 1, reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}},
			SendError{Class: Permanent, Stage: StageRcpt, Code: 550}, "5.1.1 No such user"},
		{"mail 451 4.3.0", nil, &fault{stage: "mail", n: 1, reply: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}},
			SendError{Class: Temporary, Stage: StageMail, Code: 451, Enhanced: "4.3.0"}, "Try again later"},
		// go-mail looks for the enhanced code in the quoted reply, where it follows
		// "\n" and is not found.
		{"rcpt 452 multi-line", nil, &fault{stage: "rcpt", n: 1, reply: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full\nTry tomorrow"}},
			SendError{Class: Temporary, Stage: StageRcpt, Code: 452}, "Mailbox full\n4.2.2 Try tomorrow"},
		{"end 452 4.3.1", nil, &fault{stage: "data", n: 1, reply: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Out of memory"}},
			SendError{Class: Temporary, Stage: StageEnd, Code: 452, Enhanced: "4.3.1"}, "Out of memory"},
		{"end 552 5.3.4 unannounced", noESC, &fault{stage: "data", n: 1, reply: &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}},
			SendError{Class: Permanent, Stage: StageEnd, Code: 552}, "5.3.4 Message too big"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, sinkOptions{hide: tc.hide}, "smtp", "", "pool=1")
			b.sink.inject(tc.fault)
			se := wantSendError(t, b.pool.Send(context.Background(), message()), tc.want)
			if se.Msg != tc.wantMsg {
				t.Errorf("Msg = %q, want %q", se.Msg, tc.wantMsg)
			}
			sendN(t, b.pool, 1)
			wantConns := int64(1) // a refused MAIL or RCPT is reset, not redialed
			if tc.want.Stage == StageEnd {
				wantConns = 2
			}
			if got := b.sink.accepted.Load(); got != wantConns {
				t.Errorf("connections = %d, want %d", got, wantConns)
			}
		})
	}
}
