package queue

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// pausedRefresh is how often a worker reads which campaigns are paused: a
// pause takes effect within it (plus the batches in flight).
const pausedRefresh = time.Second

// pausedCache is the worker's copy of the paused campaigns, read at most once
// per pausedRefresh of real time, so a batch costs no Redis command for it.
type pausedCache struct {
	mu   sync.Mutex
	at   time.Time
	byID map[string]store.Pause
}

func (p *pausedCache) get(ctx context.Context, st *store.Store) (map[string]store.Pause, error) {
	now := time.Now() // the real clock: it is about Redis, not campaign time
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID != nil && now.Sub(p.at) < pausedRefresh && !now.Before(p.at) {
		return p.byID, nil
	}
	m, err := st.Paused(ctx)
	if err != nil {
		return nil, err
	}
	p.byID, p.at = m, now
	return m, nil
}

// checkPauses looks at the rates of the campaigns whose sends the relay
// refused as bounced in this batch (bounce.CheckPause), once the batch's
// counts are written. A failure is logged: the next bounce looks again.
func (w *Worker) checkPauses(ctx context.Context, jobs []*job, now time.Time) {
	var camps []string
	for _, j := range jobs {
		if j.out != nil && !j.out.found && j.out.result == lifecycle.OutcomeBounced && !slices.Contains(camps, j.key.campaign) {
			camps = append(camps, j.key.campaign)
		}
	}
	for _, id := range camps {
		p, err := bounce.CheckPause(ctx, w.store, w.engine.Set().Lifecycle.Deliverability, id, now)
		if err != nil {
			w.cfg.Log.Warn("auto-pause check failed", "campaign", id, "error", err)
			continue
		}
		if p != nil {
			w.cfg.Log.Warn("campaign paused: it sends nothing until `retain campaign resume "+id+"`", "campaign", id, "reason", p.Reason)
		}
	}
}

// nextDue is the engine's NextDue for c, except that the steps of paused
// campaigns, which wait where they are, count as due bounce.PausedWait from
// now: the customer is looked at again then, or when the campaign resumes
// (bounce.Resume wakes it), not at every tick.
func nextDue(c *lifecycle.Customer, paused map[string]store.Pause, now time.Time) time.Time {
	var next time.Time
	for id, enr := range c.Enrollments {
		if enr.Status != lifecycle.Active || enr.Next == "" {
			continue
		}
		due := enr.Due
		if _, ok := paused[id]; ok && due.Before(now.Add(bounce.PausedWait)) {
			due = now.Add(bounce.PausedWait)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}
