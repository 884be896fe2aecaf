package web

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// DefaultHealthMaxOverdue is Config.HealthMaxOverdue's default.
const DefaultHealthMaxOverdue = 5 * time.Minute

// health is /healthz's answer when the deployment is not healthy.
type health struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
}

// degraded returns why sending has stalled, judged from the due index and the
// schedulers' ticks (store.Backlog) at now with the limit max: the oldest due
// email has waited longer than max, or no scheduler has ticked for longer than
// max, or none ever did while emails are due. Nothing, when sending keeps up.
func degraded(b store.Backlog, now time.Time, max time.Duration) []string {
	var reasons []string
	if d := b.Overdue(now); d > max {
		reasons = append(reasons, fmt.Sprintf("the oldest due email is %s overdue (more than %s): are the scheduler and the workers running?", round(d), max))
	}
	switch {
	case b.LastTick.IsZero() && !b.OldestDue.IsZero():
		reasons = append(reasons, "no scheduler has ever ticked, and emails are due: start retain scheduler")
	case !b.LastTick.IsZero() && now.Sub(b.LastTick) > max:
		reasons = append(reasons, fmt.Sprintf("the last scheduler tick was %s ago (more than %s): is retain scheduler running?", round(now.Sub(b.LastTick)), max))
	}
	return reasons
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

// backlogHealth answers /healthz once Redis answered: 200 "ok", or 503 with the
// reasons as JSON when sending has stalled or the API refuses every request
// (requireCampaigns).
func (s *Server) backlogHealth(w http.ResponseWriter, r *http.Request) {
	b, err := s.d.Store.Backlog(r.Context())
	if err != nil {
		s.cfg.Log.Warn("healthz: cannot read the due index", "error", err)
		writeJSON(w, http.StatusServiceUnavailable, health{Status: "degraded", Reasons: []string{err.Error()}})
		return
	}
	reasons := degraded(b, s.cfg.Now(), s.cfg.HealthMaxOverdue)
	if reason := s.campaignsRefused(); reason != "" {
		// The API answers 503 to everything: a load balancer must know.
		reasons = append([]string{"the API refuses every request: " + reason}, reasons...)
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, health{Status: "degraded", Reasons: reasons})
		return
	}
	w.Write([]byte("ok\n"))
}

var (
	descOldestOverdue = prometheus.NewDesc("retain_oldest_overdue_seconds",
		"How long the oldest email of the due index has waited past its send time; 0 when none is overdue.",
		nil, nil)
	descLastTick = prometheus.NewDesc("retain_scheduler_last_tick_timestamp_seconds",
		"When a scheduler last finished a tick, in unix seconds; absent until one has.",
		nil, nil)
	descFailedEvents = prometheus.NewDesc("retain_dead_letter_events",
		"Events the workers could not apply, waiting in the failed-event list (retain event --failed).",
		nil, nil)
	descConditionErrors = prometheus.NewDesc("retain_condition_errors_total",
		"Conditions that failed while an event or time rule ran and counted as false, by campaign (lifecycle.yaml for a transition).",
		[]string{"campaign"}, nil)
)

// healthCollector reads at each scrape what tells whether sending keeps up
// (the due backlog, the last scheduler tick) and whether events are lost
// (the failed-event list, condition errors).
type healthCollector struct {
	st     *store.Store
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOldestOverdue, descLastTick, descFailedEvents, descConditionErrors} {
		ch <- d
	}
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if b, err := c.st.Backlog(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descOldestOverdue, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descOldestOverdue, prometheus.GaugeValue, b.Overdue(c.now()).Seconds())
		if !b.LastTick.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastTick, prometheus.GaugeValue, float64(b.LastTick.UnixMilli())/1000)
		}
	}
	if n, err := c.st.FailedEventCount(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descFailedEvents, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descFailedEvents, prometheus.GaugeValue, float64(n))
	}
	if counts, err := queue.ReadConditionErrors(ctx, c.rdb, c.prefix); err != nil {
		ch <- prometheus.NewInvalidMetric(descConditionErrors, err)
	} else {
		for campaign, n := range counts {
			ch <- prometheus.MustNewConstMetric(descConditionErrors, prometheus.CounterValue, float64(n), campaign)
		}
	}
}

// failedEventsShown bounds the failed events the monitor page lists.
const failedEventsShown = 200

// failedEventsPage lists the failed-event list (GET /monitor/failed-events):
// what could not be applied, why, and how to replay it.
func (s *Server) failedEventsPage(w http.ResponseWriter, r *http.Request) {
	if s.rdb == nil {
		s.errorPage(w, http.StatusServiceUnavailable, "The failed events are in Redis, and retain web was started without it.")
		return
	}
	st := s.d.Store
	events, err := st.FailedEvents(r.Context(), failedEventsShown)
	var total int64
	if err == nil {
		total, err = st.FailedEventCount(r.Context())
	}
	if err != nil {
		s.cfg.Log.Warn("failed events page", "error", err)
		s.errorPage(w, http.StatusServiceUnavailable, "The failed events could not be read: "+err.Error())
		return
	}
	s.render(w, http.StatusOK, "failed.html", struct {
		page
		Events []store.FailedEvent
		Total  int64
	}{page{Title: "Failed events", Problems: s.d.Problems, Note: s.d.ProblemsNote}, events, total})
}
