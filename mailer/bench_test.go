package mailer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"os"
	"strconv"
	"testing"

	gomail "github.com/wneessen/go-mail"
)

// guideMessage is the bench's welcome/guide step (~500 words) as the worker renders
// it: testdata/guide.txt and testdata/guide.html, about 10 KB of ASCII text and HTML
// with goldmark's one-line paragraphs.
func guideMessage(tb testing.TB) *Message {
	tb.Helper()
	text, err := os.ReadFile("testdata/guide.txt")
	if err != nil {
		tb.Fatal(err)
	}
	html, err := os.ReadFile("testdata/guide.html")
	if err != nil {
		tb.Fatal(err)
	}
	m := message()
	m.To = mail.Address{Name: "Ada Lovelace", Address: "customer0000042@example.org"}
	m.Subject = "Your first week with Acme, Ada"
	m.Text, m.HTML = string(text), string(html)
	return m
}

// BenchmarkPoolSend sends to an in-process go-smtp sink that answers at once (and
// announces PIPELINING), over one connection and over eight.
func BenchmarkPoolSend(b *testing.B) {
	benchmarkPoolSend(b, message())
}

// BenchmarkPoolSendGuide is BenchmarkPoolSend with the realistic guide email.
func BenchmarkPoolSendGuide(b *testing.B) {
	benchmarkPoolSend(b, guideMessage(b))
}

// BenchmarkPoolSendGuidePipelining is BenchmarkPoolSendGuide over one connection to
// a relay that announces PIPELINING (the envelope leaves in one write) and to one
// that does not (a command at a time).
func BenchmarkPoolSendGuidePipelining(b *testing.B) {
	m := guideMessage(b)
	for _, pipelining := range []bool{false, true} {
		b.Run(fmt.Sprintf("pipelining=%v", pipelining), func(b *testing.B) {
			opt := sinkOptions{discard: true}
			if !pipelining {
				opt.hide = []string{"PIPELINING"}
			}
			benchmarkPool(b, m, opt, 1)
		})
	}
}

func benchmarkPoolSend(b *testing.B, m *Message) {
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			benchmarkPool(b, m, sinkOptions{discard: true}, conns)
		})
	}
}

func benchmarkPool(b *testing.B, m *Message, opt sinkOptions, conns int) {
	s := newSink(b, opt)
	cfg, err := ParseURL(fmt.Sprintf("smtp://127.0.0.1:%s?tls=none&pool=%d", s.port, conns))
	if err != nil {
		b.Fatal(err)
	}
	p := NewPool(cfg)
	defer p.Close()
	b.ReportAllocs()
	b.SetParallelism(conns) // at least conns senders, so every connection is busy
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Send(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportSink(b, s)
}

// BenchmarkGoMailBare is the floor for BenchmarkPoolSend/conns=1: one go-mail client
// on one connection, no pool, NOOP and RSET off, the message built once as the pool
// builds it for the sink (which announces 8BITMIME).
func BenchmarkGoMailBare(b *testing.B) {
	benchmarkGoMailBare(b, message())
}

// BenchmarkGoMailBareGuide is BenchmarkGoMailBare with the guide email.
func BenchmarkGoMailBareGuide(b *testing.B) {
	benchmarkGoMailBare(b, guideMessage(b))
}

func benchmarkGoMailBare(b *testing.B, m *Message) {
	s := newSink(b, sinkOptions{discard: true})
	port, _ := strconv.Atoi(s.port)
	c, err := gomail.NewClient("127.0.0.1", gomail.WithPort(port), gomail.WithTLSPolicy(gomail.NoTLS),
		gomail.WithoutNoop(), gomail.WithoutRset())
	if err != nil {
		b.Fatal(err)
	}
	if err := c.DialWithContext(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	gm, err := m.BuildFor(true)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Send(gm); err != nil {
			b.Fatal(err)
		}
	}
	reportSink(b, s)
}

// reportSink reports messages per second and, per message, the bytes the sink read
// (SMTP commands included) and the size of the message it received.
func reportSink(b *testing.B, s *sink) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if n := s.count.Load(); n > 0 {
		b.ReportMetric(float64(s.wire.Load())/float64(n), "wire-B/msg")
		b.ReportMetric(float64(s.data.Load())/float64(n), "data-B/msg")
	}
}

// BenchmarkDataPath is the CPU of one guide email's DATA payload, without the
// network: built and written as go-mail's Send writes it (quoted-printable, through
// textproto's DotWriter) and as Pool.Send writes it to a relay with 8BITMIME.
func BenchmarkDataPath(b *testing.B) {
	m := guideMessage(b)
	w := textproto.NewWriter(bufio.NewWriter(io.Discard))
	b.Run("gomail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gm, err := m.Build()
			if err != nil {
				b.Fatal(err)
			}
			d := w.DotWriter()
			if _, err := gm.WriteTo(d); err != nil {
				b.Fatal(err)
			}
			if err := d.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pool", func(b *testing.B) {
		benchmarkPoolDataPath(b, m, w, nil)
	})
}

// benchmarkPoolDataPath is the pool's DATA payload of m for a relay with 8BITMIME,
// signed by signer (nil: unsigned), written to w.
func benchmarkPoolDataPath(b *testing.B, m *Message, w *textproto.Writer, signer *dkimSigner) {
	b.ReportAllocs()
	for b.Loop() {
		o, err := m.prepare()
		if err != nil {
			b.Fatal(err)
		}
		o.dkim = signer.keysFor(m.From.Address)
		buf := dataBufs.Get().(*dataBuf)
		if err := o.write(buf, true); err != nil {
			b.Fatal(err)
		}
		w.W.Write(buf.data)
		if err := w.W.Flush(); err != nil {
			b.Fatal(err)
		}
		putDataBuf(buf)
	}
}

// BenchmarkDataPathDKIM is BenchmarkDataPath's pool case, the guide email to a
// relay with 8BITMIME, unsigned and signed: the cost of DKIM per email.
func BenchmarkDataPathDKIM(b *testing.B) {
	m := guideMessage(b)
	w := textproto.NewWriter(bufio.NewWriter(io.Discard))
	for _, kind := range []string{"none", "rsa2048", "ed25519", "dual"} {
		var keys []DKIMKey
		switch kind {
		case "rsa2048":
			keys = dkimKeys(b, "rsa")
		case "ed25519", "dual":
			keys = dkimKeys(b, kind)
		}
		signer := newDKIMSigner(keys)
		b.Run(kind, func(b *testing.B) {
			benchmarkPoolDataPath(b, m, w, signer)
		})
	}
}
