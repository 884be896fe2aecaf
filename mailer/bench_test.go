package mailer

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	gomail "github.com/wneessen/go-mail"
)

// BenchmarkPoolSend sends to an in-process go-smtp sink that answers at once, over
// one connection and over eight.
func BenchmarkPoolSend(b *testing.B) {
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			s := newSink(b, sinkOptions{discard: true})
			cfg, err := ParseURL(fmt.Sprintf("smtp://127.0.0.1:%s?tls=none&pool=%d", s.port, conns))
			if err != nil {
				b.Fatal(err)
			}
			p := NewPool(cfg)
			defer p.Close()
			m := message()
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkGoMailBare is the floor for BenchmarkPoolSend/conns=1: one go-mail client
// on one connection, no pool, NOOP and RSET off, the message built once.
func BenchmarkGoMailBare(b *testing.B) {
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
	gm, err := message().Build()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Send(gm); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
