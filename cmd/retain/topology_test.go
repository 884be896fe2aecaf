package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/internal/smtptest"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// TestSentinelEndToEnd runs retain as the Procfile does on a Sentinel
// deployment (a master, a replica, three sentinels): see endToEnd. The worker
// finds the replica and waits for it before each send.
func TestSentinelEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a Sentinel deployment")
	}
	s := redistest.StartSentinel(t)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs()})
	t.Cleanup(func() { rdb.Close() })
	workerLog := endToEnd(t, s.URL(0), rdb)
	if !strings.Contains(workerLog, "waits for one of them") {
		t.Errorf("the worker did not say it waits for the replica:\n%s", workerLog)
	}
}

// TestClusterEndToEnd is endToEnd on a Redis Cluster of three masters with a
// replica each: the customers' keys spread over every master.
func TestClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a Redis Cluster")
	}
	c := redistest.StartCluster(t)
	workerLog := endToEnd(t, c.URL(), c.Client(t))
	if !strings.Contains(workerLog, "waits for one of them") {
		t.Errorf("the worker did not say it waits for the replicas:\n%s", workerLog)
	}
}

// endToEnd runs retain as the Procfile does — import, scheduler, worker, web —
// with REDIS_URL redisURL (rdb is a client of the same Redis, for the test's
// own reads): the imported customers' signed_up events are applied by the
// worker, each welcome email arrives once, a one-click unsubscribe through
// retain web lands in Redis, and retain report counts the sends. It returns
// the worker's log.
func endToEnd(t *testing.T, redisURL string, rdb redis.UniversalClient) string {
	t.Helper()
	bin := retainBinary(t)
	const prefix, customers = "retain:", 30
	relay := smtptest.Start(t)
	webAddr := freeAddr(t)
	b := &processBundle{bin: bin, smtp: relay, st: store.New(rdb, prefix), rdb: rdb, prefix: prefix,
		env: append(os.Environ(),
			"REDIS_URL="+redisURL, "RETAIN_REDIS_PREFIX="+prefix, "SMTP_URL="+relay.URL(),
			"RETAIN_FROM=Acme <hello@acme.example>", "RETAIN_BASE_URL=https://retain.acme.example", "RETAIN_SECRET=0123456789abcdef0123456789abcdef",
			"RETAIN_API_TOKEN=token-for-the-test", "PORT="+strings.TrimPrefix(webAddr, "127.0.0.1:"),
			"RETAIN_CAMPAIGNS=testdata/e2e/campaigns", "RETAIN_TEMPLATES=../../templates")}

	var jsonl strings.Builder
	at := time.Now().UTC().Format(time.RFC3339)
	for i := range customers {
		fmt.Fprintf(&jsonl, `{"id": "s%02d", "email": "s%02d@example.org", "first_name": "Customer %d", "events": [{"name": "signed_up", "at": %q}]}`+"\n", i, i, i, at)
	}
	file := filepath.Join(t.TempDir(), "customers.jsonl")
	if err := os.WriteFile(file, []byte(jsonl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := b.run(t, "import", file)
	if !strings.Contains(out, fmt.Sprintf("%d customers created", customers)) {
		t.Fatalf("retain import: %s", out)
	}

	b.start(t, "scheduler", "--interval", "100ms")
	_, workerLog := b.startOut(t, nil, "worker")
	b.start(t, "web")
	relay.Wait(customers, time.Minute)
	b.waitSettled(t, customers, 30*time.Second)
	ids := messageIDs(relay.Messages())
	if len(ids) != customers {
		t.Errorf("%d distinct emails arrived, want %d", len(ids), customers)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
	}

	// One-click unsubscribe (RFC 8058) from the first email's header,
	// posted to retain web.
	m := relay.Messages()[0]
	var link string
	for _, part := range strings.Split(m.Header.Get("List-Unsubscribe"), ",") {
		if u := strings.Trim(strings.TrimSpace(part), "<>"); strings.HasPrefix(u, "https://") {
			link = u
		}
	}
	u, err := url.Parse(link)
	if err != nil || link == "" {
		t.Fatalf("List-Unsubscribe %q: %v", m.Header.Get("List-Unsubscribe"), err)
	}
	u.Scheme, u.Host = "http", webAddr
	var resp *http.Response
	waitFor(t, 20*time.Second, "retain web to answer", func() bool {
		resp, err = http.PostForm(u.String(), url.Values{"List-Unsubscribe": {"One-Click"}})
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", u, resp.Status)
	}
	c, err := b.st.CustomerByEmail(t.Context(), m.To[0])
	if err != nil || c == nil || !c.Unsubscribed {
		t.Errorf("after the one-click unsubscribe, %s in Redis: %+v, %v", m.To[0], c, err)
	}

	var rep report.Report
	if err := json.Unmarshal([]byte(b.run(t, "report", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Campaigns) != 1 || rep.Campaigns[0].Enrolled != customers || len(rep.Campaigns[0].Steps) == 0 ||
		rep.Campaigns[0].Steps[0].Sent != customers || rep.Campaigns[0].Steps[0].Unsubscribed != 1 {
		t.Errorf("report: %+v, want %d enrolled and sent, 1 unsubscribed", rep.Campaigns, customers)
	}
	return workerLog.String()
}

// run runs `retain args...` to its end and returns its standard output,
// failing the test on a non-zero exit.
func (b *processBundle) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Env = b.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("retain %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
