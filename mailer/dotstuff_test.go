package mailer

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"testing"
)

// dotStuffCases are the edges of DotWriter's state machine; they also seed FuzzDotStuff.
var dotStuffCases = []struct {
	name, in, want string
}{
	{"empty", "", "\r\n.\r\n"},
	{"crlf line", "a\r\n", "a\r\n.\r\n"},
	{"final line without crlf", "a\r\nb", "a\r\nb\r\n.\r\n"},
	{"bare lf", "a\nb\n", "a\r\nb\r\n.\r\n"},
	{"dot first byte", ".a\r\n", "..a\r\n.\r\n"},
	{"dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
	{"dot dot line", "a\r\n..\r\n", "a\r\n...\r\n.\r\n"},
	{"dot after bare lf", "a\n.b\n", "a\r\n..b\r\n.\r\n"},
	{"only a dot", ".", "..\r\n.\r\n"},
	{"dot mid line", "a.b\r\n", "a.b\r\n.\r\n"},
	{"bare cr then dot", "a\r.b\r\n", "a\r.b\r\n.\r\n"},
	{"cr cr lf", "a\r\r\nb", "a\r\r\r\nb\r\n.\r\n"},
	{"cr cr cr lf", "a\r\r\r\n", "a\r\r\r\n.\r\n"},
	{"final bare cr", "a\r", "a\r\n.\r\n"},
	{"final cr cr", "a\r\r", "a\r\r\r\n.\r\n"},
	{"lone lf", "\n", "\r\n.\r\n"},
	{"lone crlf", "\r\n", "\r\n.\r\n"},
	{"blank lines", "\n\n\r\n\n", "\r\n\r\n\r\n\r\n.\r\n"},
	{"cr lf cr lf dot", "\r\n\r\n.", "\r\n\r\n..\r\n.\r\n"},
	{"lf cr", "a\n\rb", "a\r\n\rb\r\n.\r\n"},
}

// textprotoDot is the reference: what net/textproto's DotWriter sends for msg.
func textprotoDot(msg []byte) []byte {
	var out bytes.Buffer
	w := textproto.NewWriter(bufio.NewWriter(&out))
	d := w.DotWriter()
	d.Write(msg)
	d.Close()
	return out.Bytes()
}

func TestDotStuffMatchesTextproto(t *testing.T) {
	for _, tc := range dotStuffCases {
		t.Run(tc.name, func(t *testing.T) {
			ref := textprotoDot([]byte(tc.in))
			if string(ref) != tc.want {
				t.Fatalf("textproto sends %q for %q; the case's want %q is wrong", ref, tc.in, tc.want)
			}
			if got := appendDotStuffed(nil, []byte(tc.in)); string(got) != tc.want {
				t.Errorf("appendDotStuffed(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDotStuffAppendsToDst(t *testing.T) {
	got := appendDotStuffed([]byte("DATA "), []byte(".x\n"))
	if string(got) != "DATA ..x\r\n.\r\n" {
		t.Errorf("got %q", got)
	}
}

func FuzzDotStuff(f *testing.F) {
	for _, tc := range dotStuffCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(".\r\n..\n.\r\r\n\r.\n\n."))
	f.Fuzz(func(t *testing.T, msg []byte) {
		want := textprotoDot(msg)
		if got := appendDotStuffed(nil, msg); !bytes.Equal(got, want) {
			t.Errorf("appendDotStuffed(%q)\n got %q\nwant %q", msg, got, want)
		}
	})
}

// BenchmarkDotStuff dot-encodes the guide email's MIME (12 KB, bare LF line ends in
// its text part) with appendDotStuffed and with textproto's DotWriter.
func BenchmarkDotStuff(b *testing.B) {
	gm, err := guideMessage(b).BuildFor(true)
	if err != nil {
		b.Fatal(err)
	}
	var mime bytes.Buffer
	if _, err := gm.WriteTo(&mime); err != nil {
		b.Fatal(err)
	}
	b.Run("appendDotStuffed", func(b *testing.B) {
		b.SetBytes(int64(mime.Len()))
		var out []byte
		for b.Loop() {
			out = appendDotStuffed(out[:0], mime.Bytes())
		}
	})
	b.Run("textproto", func(b *testing.B) {
		b.SetBytes(int64(mime.Len()))
		w := textproto.NewWriter(bufio.NewWriter(io.Discard))
		for b.Loop() {
			d := w.DotWriter()
			d.Write(mime.Bytes())
			d.Close()
		}
	})
}
