package bounce

import (
	"context"
	"fmt"

	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// CheckPause looks at the campaign's complaint and bounce rates over its last
// sends (policy.PauseWindow of them at least, fewer than twice as many) and
// pauses it when either passes its threshold: its emails then wait until
// `retain campaign resume`. A campaign with fewer sends than the window is
// never paused: a rate of a few sends says little. It returns the pause it
// made, nil when it made none.
func CheckPause(ctx context.Context, st *store.Store, policy campaign.Deliverability, campaignID string, now time.Time) (*store.Pause, error) {
	if campaignID == "" || policy.PauseWindow <= 0 || (policy.PauseComplaintRate <= 0 && policy.PauseBounceRate <= 0) {
		return nil, nil
	}
	total, err := report.Totals(ctx, st.Redis(), st.Prefix(), campaignID)
	if err != nil {
		return nil, err
	}
	w, err := st.RateWindow(ctx, campaignID, total, policy.PauseWindow)
	if err != nil {
		return nil, err
	}
	if w.Sent < policy.PauseWindow {
		return nil, nil
	}
	var reason string
	switch {
	case policy.PauseComplaintRate > 0 && rate(w.Complained, w.Sent) > policy.PauseComplaintRate:
		reason = fmt.Sprintf("complaint rate %s over the last %d sends (%d complaints) passed %s", pct(rate(w.Complained, w.Sent)), w.Sent, w.Complained, pct(policy.PauseComplaintRate))
	case policy.PauseBounceRate > 0 && rate(w.Bounced, w.Sent) > policy.PauseBounceRate:
		reason = fmt.Sprintf("bounce rate %s over the last %d sends (%d bounces) passed %s", pct(rate(w.Bounced, w.Sent)), w.Sent, w.Bounced, pct(policy.PauseBounceRate))
	default:
		return nil, nil
	}
	paused, err := st.PauseCampaign(ctx, campaignID, reason, now)
	if err != nil || !paused {
		return nil, err
	}
	return &store.Pause{Campaign: campaignID, Reason: reason, At: now}, nil
}

func rate(n, of int) float64 { return float64(n) / float64(of) }

// pct formats a rate as a percentage with the decimals it needs: 0.3%, 5%,
// 0.12%.
func pct(r float64) string {
	s := fmt.Sprintf("%.2f", r*100)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s + "%"
}

// PausedWait is how long the next step of a paused campaign waits before a
// worker looks at it again; Resume wakes those steps at once.
const PausedWait = time.Hour

// Resume lets a paused campaign send again: its rate window starts anew at
// its totals now, and the customers whose steps its pause postponed are due
// at once (store.WakeDue). It reports whether the campaign was paused, and
// how many customers it woke.
func Resume(ctx context.Context, st *store.Store, campaignID string, now time.Time) (bool, int, error) {
	total, err := report.Totals(ctx, st.Redis(), st.Prefix(), campaignID)
	if err != nil {
		return false, 0, err
	}
	was, err := st.ResumeCampaign(ctx, campaignID, total)
	if err != nil || !was {
		return was, 0, err
	}
	n, err := st.WakeDue(ctx, now, PausedWait)
	return true, n, err
}
