package web

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// degradedHealthz gets /healthz and decodes its 503 answer.
func degradedHealthz(t *testing.T, b *uiBundle) health {
	t.Helper()
	resp, body := b.get(t, "/healthz", noAuth)
	var h health
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("/healthz = %d %s %q, want 503 JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "degraded" {
		t.Fatalf("/healthz body %q: %v; want {\"status\":\"degraded\",...}", body, err)
	}
	return h
}

// TestHealthzIsDegradedWhenEmailsWaitAndNoSchedulerTicks reproduces issue 12:
// every scheduler stopped and an email overdue left /metrics at queue latency 0
// and /healthz at ok. Now /metrics shows the overdue email and the last tick,
// and /healthz turns 503 once either is older than the limit; /readyz, for load
// balancers, still answers ok as long as Redis does.
func TestHealthzIsDegradedWhenEmailsWaitAndNoSchedulerTicks(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "c1", Email: "ada@example.com", FirstName: "Ada"}) // welcome due now
	st := store.New(b.rdb, b.prefix)
	lastTick := b.now.Add(time.Second)
	if err := st.RecordTick(t.Context(), lastTick); err != nil {
		t.Fatal(err)
	}
	b.now = b.now.Add(36 * time.Second) // the schedulers stopped a while ago

	resp, body := b.get(t, "/healthz", noAuth)
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz at 36 s overdue = %d %q, want 200 ok (under the 5m limit)", resp.StatusCode, body)
	}
	_, body = b.get(t, "/metrics", bearerAuth)
	wantContains(t, "/metrics", body,
		"retain_oldest_overdue_seconds 36\n",
		fmt.Sprintf("retain_scheduler_last_tick_timestamp_seconds %g\n", float64(lastTick.Unix())),
	)

	b.now = b.now.Add(5 * time.Minute)
	h := degradedHealthz(t, b)
	if len(h.Reasons) != 2 || !strings.Contains(h.Reasons[0], "oldest due email is 5m36s overdue") || !strings.Contains(h.Reasons[1], "last scheduler tick was 5m35s ago") {
		t.Errorf("reasons = %q, want the overdue email and the stale tick", h.Reasons)
	}
	if resp, body := b.get(t, "/readyz", noAuth); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz = %d %q, want 200 ok: Redis answers", resp.StatusCode, body)
	}

	// A lower limit (RETAIN_HEALTH_MAX_OVERDUE=30s) sees it sooner.
	b.now = lastTick.Add(35 * time.Second) // 36 s overdue, last tick 35 s ago
	srv, err := New(Config{APIToken: uiToken, HealthMaxOverdue: 30 * time.Second, Now: func() time.Time { return b.now }, Log: slog.New(slog.DiscardHandler)}, b.srv.d)
	if err != nil {
		t.Fatal(err)
	}
	strict := &uiBundle{srv: srv, ts: newTestServer(t, srv)}
	if h := degradedHealthz(t, strict); len(h.Reasons) != 2 {
		t.Errorf("reasons with a 30s limit = %q, want both", h.Reasons)
	}
}

func TestHealthzIsDegradedWhenEmailsAreDueAndNoSchedulerEverTicked(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	if resp, body := b.get(t, "/healthz", noAuth); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with nothing due = %d %q, want 200", resp.StatusCode, body)
	}
	b.signUp(t, &ingest.Record{ID: "c1", Email: "ada@example.com"})
	h := degradedHealthz(t, b)
	if len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "no scheduler has ever ticked") {
		t.Errorf("reasons = %q, want no scheduler", h.Reasons)
	}
	_, body := b.get(t, "/metrics", bearerAuth)
	if strings.Contains(body, "retain_scheduler_last_tick_timestamp_seconds ") {
		t.Errorf("/metrics has a last tick before any tick:\n%s", body)
	}
}

// TestFailedEventsAndConditionErrorsShowInMetricsAndTheMonitor: what the
// workers keep in Redis (the failed-event list, the condition error counters)
// reaches /metrics and /monitor/failed-events of retain web.
func TestFailedEventsAndConditionErrorsShowInMetricsAndTheMonitor(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	ctx := t.Context()
	st := store.New(b.rdb, b.prefix)
	f := store.FailedEvent{Customer: "ghost", Event: &lifecycle.Event{ID: "e1", Name: "order_placed", At: b.now},
		Error: "unknown customer: import it first", At: b.now, Attempts: 1}
	if err := st.AddFailedEvent(ctx, f); err != nil {
		t.Fatal(err)
	}
	conds := queue.NewConditionErrors(b.rdb, b.prefix, slog.New(slog.DiscardHandler), nil)
	conds.Report(ctx, "c1", []lifecycle.Change{
		{Kind: lifecycle.KindConditionError, Campaign: "big-order", Reason: "trigger.where"},
		{Kind: lifecycle.KindConditionError, Reason: "transitions.where"},
		{Kind: lifecycle.KindEnrolled, Campaign: "any-order"},
	})
	_, body := b.get(t, "/metrics", bearerAuth)
	wantContains(t, "/metrics", body,
		"retain_dead_letter_events 1\n",
		`retain_condition_errors_total{campaign="big-order"} 1`,
		`retain_condition_errors_total{campaign="lifecycle.yaml"} 1`,
		"retain_oldest_overdue_seconds 0\n",
	)
	resp, body := b.get(t, "/monitor/failed-events", basicAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/monitor/failed-events: %d\n%s", resp.StatusCode, body)
	}
	wantContains(t, "/monitor/failed-events", body, store.FailedEventID("ghost", "e1", ""), "ghost", "order_placed",
		"unknown customer: import it first", "retain event --replay ID")
	if resp, _ := b.get(t, "/monitor/failed-events", noAuth); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/monitor/failed-events without auth: %d, want 401", resp.StatusCode)
	}
}
