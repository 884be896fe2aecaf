package web

import (
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

func TestHealthzIsOKWhenRedisAnswers(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	resp, body := b.get(t, "/healthz", noAuth)
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}
}

func TestHealthzIs503WhenRedisIsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing answers there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	srv, err := New(Config{APIToken: uiToken, Log: slog.New(slog.DiscardHandler)}, Deps{Store: store.New(rdb, "")})
	if err != nil {
		t.Fatal(err)
	}
	b := &uiBundle{srv: srv}
	b.ts = newTestServer(t, srv)
	resp, body := b.get(t, "/healthz", noAuth)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(body, "redis: ") {
		t.Errorf("/healthz = %d %q, want 503 naming Redis", resp.StatusCode, body)
	}
}

func TestMetricsExposeSendCountersAndQueueGauges(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	ctx := t.Context()
	// What workers count after their sends.
	err := queue.NewStats(b.rdb, b.prefix).Add(ctx,
		queue.Send{Campaign: "onboarding", Step: "welcome", Result: queue.ResultSent},
		queue.Send{Campaign: "onboarding", Step: "welcome", Result: queue.ResultSent},
		queue.Send{Campaign: "onboarding", Step: "welcome", Result: queue.ResultRetry, SMTPClass: queue.SMTPTemporary},
		queue.Send{Campaign: "nps", Step: "survey", Result: queue.ResultBounced, SMTPClass: queue.SMTPBadAddress},
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := queue.NewClient(b.rdb).EnqueueSends(ctx, &store.Lease{IDs: []string{"c1", "c2"}, Token: "t1"}); err != nil {
		t.Fatal(err)
	}
	resp, body := b.get(t, "/metrics", bearerAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	wantContains(t, "/metrics", body,
		`retain_sends_total{campaign="onboarding",result="sent",step="welcome"} 2`,
		`retain_sends_total{campaign="onboarding",result="retry",step="welcome"} 1`,
		`retain_sends_total{campaign="nps",result="bounced",step="survey"} 1`,
		`retain_smtp_errors_total{class="temporary"} 1`,
		`retain_smtp_errors_total{class="bad_address"} 1`,
		`retain_queue_size{queue="sends"} 1`,
		`retain_queue_pending{queue="sends"} 1`,
		`retain_queue_size{queue="events"} 0`,
		`retain_queue_latency_seconds{queue="sends"} `,
		"go_goroutines ",
	)
}

func TestMonitorServesAsynqmonUnderMonitor(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	resp, body := b.get(t, "/monitor/", basicAuth)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "/monitor") {
		t.Errorf("/monitor/: %d, want asynqmon's page rooted at /monitor:\n%.500s", resp.StatusCode, body)
	}
	if err := queue.NewClient(b.rdb).EnqueueSends(t.Context(), &store.Lease{IDs: []string{"c1"}, Token: "t2"}); err != nil {
		t.Fatal(err)
	}
	resp, body = b.get(t, "/monitor/api/queues", basicAuth)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"sends"`) {
		t.Errorf("/monitor/api/queues: %d %s; want the sends queue", resp.StatusCode, body)
	}
}

// TestHealthzIs503WhileTheAPIRefusesForLintProblems: issue 13, defect 9.
// /healthz said 200 while every /api/ route answered 503 because the campaigns
// do not lint; a load balancer kept sending events to it.
func TestHealthzIs503WhileTheAPIRefusesForLintProblems(t *testing.T) {
	b := setupUI(t, "testdata/ui/broken")
	resp, body := b.get(t, "/api/customers/c1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+uiToken) })
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("API with lint problems: %d %s, want 503", resp.StatusCode, body)
	}
	resp, body = b.get(t, "/healthz", noAuth)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "lint problems") {
		t.Errorf("/healthz = %d %q, want 503 naming the lint problems", resp.StatusCode, body)
	}
}

// TestMetricsShowEachBroadcastsEvaluation: /metrics has each loaded
// broadcast's evaluation state, and while it runs or once done its progress
// and its customers by decision; a broadcast no scheduler evaluated yet is
// pending.
func TestMetricsShowEachBroadcastsEvaluation(t *testing.T) {
	b := setupUI(t, filepath.Join("..", "campaigns"))
	ctx := t.Context()
	resp, body := b.get(t, "/metrics", bearerAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	wantContains(t, "/metrics", body,
		`retain_broadcast_state{campaign="planning-templates",state="pending"} 1`,
		`retain_broadcast_state{campaign="planning-templates",state="running"} 0`)
	if err := b.store.StartBroadcast(ctx, "planning-templates", "2027-01-12 09:00 local", b.now, 2000); err != nil {
		t.Fatal(err)
	}
	if err := b.store.CountBroadcast(ctx, "planning-templates", 1000, map[string]int64{"sent": 120, "control group": 13, "not in the audience": 867}); err != nil {
		t.Fatal(err)
	}
	_, body = b.get(t, "/metrics", bearerAuth)
	wantContains(t, "/metrics", body,
		`retain_broadcast_state{campaign="planning-templates",state="running"} 1`,
		`retain_broadcast_state{campaign="planning-templates",state="pending"} 0`,
		`retain_broadcast_audience_scanned{campaign="planning-templates"} 1000`,
		`retain_broadcast_audience_total{campaign="planning-templates"} 2000`,
		`retain_broadcast_audience_customers{campaign="planning-templates",decision="sent"} 120`,
		`retain_broadcast_audience_customers{campaign="planning-templates",decision="control group"} 13`)
}
