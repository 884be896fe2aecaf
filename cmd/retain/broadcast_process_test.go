package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// TestBroadcastSentOnceWhenAWorkerIsKilled: a broadcast due now goes to the
// 100 business customers of 130 through retain scheduler and retain worker
// processes; the worker is SIGKILLed with the 40th email in flight (claimed
// in the ledger, not delivered), and a new worker finishes the broadcast.
// Every business customer gets it exactly once; the free-plan, the
// unsubscribed and the suppressed customers get nothing.
func TestBroadcastSentOnceWhenAWorkerIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := retainBinary(t)
	rdb, redisURL := redistest.DB(t, redistest.CmdDB)
	prefix := redistest.Prefix()
	srv := smtptest.Start(t)
	dir := filepath.Join(t.TempDir(), "campaigns")
	files := map[string]string{
		"lifecycle.yaml": "sender: {name: Acme, address: \"Acme B.V., Keizersgracht 1, Amsterdam\"}\nattributes: {plan: string}\nstages: [customer]\n",
		"news/campaign.md": "---\nname: News\nkind: broadcast\naudience: 'customer.plan == \"business\"'\nsend_at: " +
			time.Now().UTC().Format(time.RFC3339) + "\ntopic: news\n---\n",
		"news/01-news.md": "---\nsubject: News for {{ .Customer.FirstName }}\n---\nSomething new.\n",
	}
	for name, src := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := campaign.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, prefix)
	applier := &ingest.Applier{Store: st, Engine: lifecycle.New(set)}
	const customers, business = 130, 100
	for i := range customers {
		plan := "business"
		if i >= business {
			plan = "free"
		}
		rec := &ingest.Record{ID: fmt.Sprintf("c%03d", i), Email: fmt.Sprintf("c%03d@example.org", i), FirstName: fmt.Sprint("Customer ", i),
			Attributes: map[string]any{"plan": plan}}
		if err := ingest.Check(rec, set.Lifecycle); err != nil {
			t.Fatal(err)
		}
		if _, err := applier.Record(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	// Among the business customers: one unsubscribed, one suppressed.
	err = st.Update(t.Context(), "c007", "", func(c *lifecycle.Customer) (*store.Change, error) {
		c.Unsubscribed = true
		return &store.Change{Customer: c}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Suppress(t.Context(), "c011@example.org", "bounced", time.Now()); err != nil {
		t.Fatal(err)
	}
	const want = business - 2
	b := &processBundle{bin: bin, smtp: srv, st: st, rdb: rdb, prefix: prefix, env: append(os.Environ(),
		"REDIS_URL="+redisURL, "RETAIN_REDIS_PREFIX="+prefix, "SMTP_URL="+srv.URL(),
		"RETAIN_FROM=Acme <hello@acme.example>", "RETAIN_BASE_URL=https://retain.acme.example", "RETAIN_SECRET=0123456789abcdef0123456789abcdef",
		"RETAIN_CAMPAIGNS="+dir, "RETAIN_TEMPLATES=../../templates")}

	srv.SetDelay(5 * time.Millisecond)
	killAt, killed := make(chan struct{}), make(chan struct{})
	srv.OnMail(func(n int) {
		if n == 40 {
			close(killAt)
			<-killed // the MAIL reply waits until the worker is dead
		}
	})
	b.start(t, "scheduler", "--interval", "100ms", "--lease", "2s")
	worker := b.startEnv(t, []string{"SMTP_URL=" + srv.URL() + "&pool=1&timeout=1s"}, "worker", "--concurrency", "1", "--claim-ttl", "2s")
	select {
	case <-killAt:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d emails arrived before the kill point", len(srv.Messages()))
	}
	for deadline := time.Now().Add(10 * time.Second); b.ledgerSent(t) < len(srv.Messages()); {
		if time.Now().After(deadline) {
			t.Fatalf("the ledger records %d sends, the relay took %d", b.ledgerSent(t), len(srv.Messages()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	worker.Process.Signal(syscall.SIGKILL)
	worker.Wait()
	close(killed)
	before := len(srv.Messages())
	srv.OnMail(nil)

	b.startEnv(t, []string{"SMTP_URL=" + srv.URL() + "&timeout=1s"}, "worker", "--concurrency", "4", "--claim-ttl", "2s")
	srv.Wait(want, 60*time.Second)
	b.waitSettled(t, want, 30*time.Second)
	msgs := srv.Messages()
	got := map[string]int{}
	for _, m := range msgs {
		got[strings.TrimSuffix(m.To[0], "@example.org")]++
	}
	for i := range customers {
		id := fmt.Sprintf("c%03d", i)
		wantN := 1
		if i >= business || id == "c007" || id == "c011" {
			wantN = 0
		}
		if got[id] != wantN {
			t.Errorf("%s got the broadcast %d times, want %d", id, got[id], wantN)
		}
	}
	if len(msgs) != want {
		t.Errorf("%d messages in all (killed after %d), want %d", len(msgs), before, want)
	}
	states, err := st.BroadcastStates(t.Context(), []string{"news"})
	if err != nil {
		t.Fatal(err)
	}
	if s := states["news"]; s == nil || s.State != store.BroadcastDone || s.Counts["sent"] != want || s.Counts["unsubscribed"] != 1 || s.Counts["suppressed"] != 1 {
		t.Errorf("evaluation %+v, want done with %d sent, 1 unsubscribed, 1 suppressed", s, want)
	}
}
