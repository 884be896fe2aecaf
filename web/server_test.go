package web

import (
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// TestRunServesOnAddrUntilClose starts retain web as the binary does.
func TestRunServesOnAddrUntilClose(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // free for Run
	srv, err := New(Config{APIToken: uiToken, Addr: addr, Log: slog.New(slog.DiscardHandler)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz without Redis = %d, want 503", resp.StatusCode)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/readyz"); err == nil {
		t.Error("retain web still answers after Close")
	}
}
