package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// opsRoutes registers the operators' endpoints: /healthz for monitoring (open:
// Redis, and whether sending keeps up), /readyz for load balancers (open: Redis
// only, so a stopped scheduler does not take the unsubscribe links down too),
// /metrics for Prometheus (bearer token or Basic auth: it names campaigns and
// their volumes), the Asynq monitor at /monitor/ and the failed-event list at
// /monitor/failed-events (Basic auth).
func (s *Server) opsRoutes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.healthz)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if s.rdb != nil {
		reg.MustRegister(&sendCollector{
			stats:     queue.NewStats(s.rdb, s.prefix),
			inspector: asynq.NewInspectorFromRedisClient(s.rdb),
		})
		reg.MustRegister(&healthCollector{st: s.d.Store, rdb: s.rdb, prefix: s.prefix, now: s.cfg.Now})
		if s.d.Store != nil {
			reg.MustRegister(&deliverabilityCollector{st: s.d.Store, set: s.set})
			reg.MustRegister(&broadcastCollector{st: s.d.Store, set: s.set})
		}
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A Redis outage must not hide the process metrics: the failed
		// collector logs its error and its series are left out.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slogPrinter{s},
	})
	s.mux.Handle("GET /metrics", s.requireTokenOrBasic(metrics))

	var monitor http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the Asynq monitor needs Redis, and retain web was started without it", http.StatusServiceUnavailable)
	})
	if s.rdb != nil {
		monitor = asynqmon.New(asynqmon.Options{RootPath: "/monitor", RedisConnOpt: sharedRedis{s.rdb}})
	}
	s.mux.Handle("/monitor/", s.requireBasic(monitor))
	s.mux.Handle("GET /monitor/failed-events", s.requireBasic(http.HandlerFunc(s.failedEventsPage)))
}

// healthz answers 200 "ok" when Redis answers PING within two seconds and
// sending keeps up, else 503: "redis: …" when Redis does not answer, the JSON
// {"status":"degraded","reasons":[…]} when emails wait longer than
// Config.HealthMaxOverdue or no scheduler ticks, or while the API refuses every
// request because the campaigns have lint problems (health.go). /readyz asks only
// about Redis.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.rdb == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "redis: not configured\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.cfg.Log.Warn("healthz: redis does not answer", "error", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "redis: "+err.Error()+"\n")
		return
	}
	if r.URL.Path == "/healthz" {
		s.backlogHealth(w, r.WithContext(ctx))
		return
	}
	io.WriteString(w, "ok\n")
}

// sharedRedis is an asynq.RedisConnOpt that hands asynqmon the server's own Redis
// client, whatever its kind (single, failover or cluster), instead of opening a
// second pool. asynqmon closes it only in HTTPHandler.Close, which is never called.
type sharedRedis struct{ c redis.UniversalClient }

func (o sharedRedis) MakeRedisClient() any { return o.c }

// Metric descriptions. Counters come from the workers' counts in Redis (package
// queue, stats.go); queue gauges from Asynq's inspector.
var (
	descSends = prometheus.NewDesc("retain_sends_total",
		"Emails handed to the SMTP relay, by campaign, step and result (sent, unknown, bounced, refused, retry).",
		[]string{"campaign", "step", "result"}, nil)
	descSMTPErrors = prometheus.NewDesc("retain_smtp_errors_total",
		"Failed SMTP sends by class (temporary, permanent, bad_address, unknown).",
		[]string{"class"}, nil)
	descQueueSize = prometheus.NewDesc("retain_queue_size",
		"Tasks in an Asynq queue, in any state but completed.",
		[]string{"queue"}, nil)
	descQueuePending = prometheus.NewDesc("retain_queue_pending",
		"Tasks ready to run in an Asynq queue.",
		[]string{"queue"}, nil)
	descQueueLatency = prometheus.NewDesc("retain_queue_latency_seconds",
		"How long the oldest pending task of an Asynq queue has waited.",
		[]string{"queue"}, nil)
)

// sendCollector reads the send counters and the queues' state from Redis at each
// scrape: the sends happen in the worker processes, not here.
type sendCollector struct {
	stats     *queue.Stats
	inspector *asynq.Inspector
}

func (c *sendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSends, descSMTPErrors, descQueueSize, descQueuePending, descQueueLatency} {
		ch <- d
	}
}

func (c *sendCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.stats.Read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descSends, err)
	} else {
		for _, sc := range counts.Sends {
			ch <- prometheus.MustNewConstMetric(descSends, prometheus.CounterValue, float64(sc.Count), sc.Campaign, sc.Step, sc.Result)
		}
		for class, n := range counts.SMTP {
			ch <- prometheus.MustNewConstMetric(descSMTPErrors, prometheus.CounterValue, float64(n), class)
		}
	}
	// Both queues always appear, so an alert on latency has a series before the
	// first task is ever enqueued.
	known, err := c.inspector.Queues()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descQueueSize, err)
		return
	}
	for _, q := range []string{queue.QueueEvents, queue.QueueSends} {
		info := &asynq.QueueInfo{Queue: q}
		if slices.Contains(known, q) {
			if info, err = c.inspector.GetQueueInfo(q); err != nil {
				ch <- prometheus.NewInvalidMetric(descQueueSize, err)
				continue
			}
		}
		ch <- prometheus.MustNewConstMetric(descQueueSize, prometheus.GaugeValue, float64(info.Size), q)
		ch <- prometheus.MustNewConstMetric(descQueuePending, prometheus.GaugeValue, float64(info.Pending), q)
		ch <- prometheus.MustNewConstMetric(descQueueLatency, prometheus.GaugeValue, info.Latency.Seconds(), q)
	}
}

// Deliverability metrics: per campaign, from the report counters and the
// paused campaigns.
var (
	descPaused = prometheus.NewDesc("retain_campaign_paused",
		"1 while the campaign is paused (auto-pause on its complaint or bounce rate, or retain campaign pause), else 0.",
		[]string{"campaign"}, nil)
	descBounced = prometheus.NewDesc("retain_campaign_bounced_total",
		"Hard bounces of the campaign's emails: refused by the relay or reported later (DSN, provider webhook).",
		[]string{"campaign"}, nil)
	descComplained = prometheus.NewDesc("retain_campaign_complaints_total",
		"Complaints (marked as spam) about the campaign's emails.",
		[]string{"campaign"}, nil)
	descCampaignSent = prometheus.NewDesc("retain_campaign_sent_total",
		"Emails of the campaign the relay accepted: the denominator of its bounce and complaint rates.",
		[]string{"campaign"}, nil)
)

// deliverabilityCollector reports each loaded campaign's pause state and its
// bounce and complaint counts at each scrape.
type deliverabilityCollector struct {
	st  *store.Store
	set func() *campaign.Set
}

func (c *deliverabilityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPaused, descBounced, descComplained, descCampaignSent} {
		ch <- d
	}
}

func (c *deliverabilityCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paused, err := c.st.Paused(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPaused, err)
		return
	}
	set := c.set()
	if set == nil {
		return
	}
	for _, camp := range set.Campaigns {
		v := 0.0
		if _, ok := paused[camp.ID]; ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, v, camp.ID)
		t, err := report.Totals(ctx, c.st.Redis(), c.st.Prefix(), camp.ID)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descBounced, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(descBounced, prometheus.CounterValue, float64(t.Bounced), camp.ID)
		ch <- prometheus.MustNewConstMetric(descComplained, prometheus.CounterValue, float64(t.Complained), camp.ID)
		ch <- prometheus.MustNewConstMetric(descCampaignSent, prometheus.CounterValue, float64(t.Sent), camp.ID)
	}
}

// Broadcast metrics: each broadcast's audience evaluation, from the state the
// evaluating scheduler keeps in Redis (store.BroadcastState).
var (
	descBroadcastState = prometheus.NewDesc("retain_broadcast_state",
		"1 for the broadcast's evaluation state: pending (not due yet, or no scheduler got to it), running, done or skipped.",
		[]string{"campaign", "state"}, nil)
	descBroadcastScanned = prometheus.NewDesc("retain_broadcast_audience_scanned",
		"Customers the broadcast's audience evaluation has decided so far; compare with retain_broadcast_audience_total for progress.",
		[]string{"campaign"}, nil)
	descBroadcastTotal = prometheus.NewDesc("retain_broadcast_audience_total",
		"Stored customers (estimated) when the broadcast's audience evaluation started.",
		[]string{"campaign"}, nil)
	descBroadcastDecided = prometheus.NewDesc("retain_broadcast_audience_customers",
		"Customers of the broadcast's audience evaluation by decision: sent, control group, not in the audience, unsubscribed, suppressed, ….",
		[]string{"campaign", "decision"}, nil)
)

// broadcastCollector reports each loaded broadcast's evaluation at each
// scrape.
type broadcastCollector struct {
	st  *store.Store
	set func() *campaign.Set
}

func (c *broadcastCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBroadcastState, descBroadcastScanned, descBroadcastTotal, descBroadcastDecided} {
		ch <- d
	}
}

func (c *broadcastCollector) Collect(ch chan<- prometheus.Metric) {
	set := c.set()
	if set == nil {
		return
	}
	var ids []string
	for _, camp := range set.Campaigns {
		if camp.IsBroadcast() {
			ids = append(ids, camp.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	states, err := c.st.BroadcastStates(ctx, ids)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBroadcastState, err)
		return
	}
	for _, id := range ids {
		st := states[id]
		state := "pending"
		if st != nil {
			state = st.State
		}
		for _, s := range []string{"pending", store.BroadcastRunning, store.BroadcastDone, store.BroadcastSkipped} {
			v := 0.0
			if s == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descBroadcastState, prometheus.GaugeValue, v, id, s)
		}
		if st == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descBroadcastScanned, prometheus.GaugeValue, float64(st.Scanned), id)
		ch <- prometheus.MustNewConstMetric(descBroadcastTotal, prometheus.GaugeValue, float64(st.Total), id)
		for decision, n := range st.Counts {
			ch <- prometheus.MustNewConstMetric(descBroadcastDecided, prometheus.GaugeValue, float64(n), id, decision)
		}
	}
}

// slogPrinter passes promhttp's error log to the server's logger.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.cfg.Log.Warn("metrics", "error", fmt.Sprint(v...))
}
