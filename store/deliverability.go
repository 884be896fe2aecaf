package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

func (s *Store) softKey(email string) string { return s.prefix + "soft:" + normEmail(email) }
func (s *Store) pausedKey() string           { return PausedKey(s.prefix) }

// PausedKey is the hash of the paused campaigns under prefix: campaign ID ->
// Pause JSON (report reads it with its counters).
func PausedKey(prefix string) string { return prefix + "paused" }

// PauseReason is the reason of a Pause as PausedKey holds it, empty for none.
func PauseReason(raw string) string {
	var p Pause
	if raw == "" || json.Unmarshal([]byte(raw), &p) != nil {
		return ""
	}
	return p.Reason
}
func (s *Store) pauseWindowKey(campaign string) string { return s.prefix + "pause-window:" + campaign }

// softScript counts one temporary delivery failure of an address, once per
// report: KEYS[1] the address's sorted set (report ID -> unix ms); ARGV the
// report ID, its time (unix ms), the window's start (unix ms) and its length
// (ms, the key's lifetime). It returns the failures within the window.
var softScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
`)

// CountSoftBounce records a temporary delivery failure of the address (report
// id, at) and returns how many it had within window before now, this one
// included. The same report counted twice counts once.
func (s *Store) CountSoftBounce(ctx context.Context, email, id string, at, now time.Time, window time.Duration) (int, error) {
	n, err := softScript.Run(ctx, s.rdb, []string{s.softKey(email)},
		id, at.UnixMilli(), now.Add(-window).UnixMilli(), window.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("store: count a soft bounce of %s: %w", email, err)
	}
	return n, nil
}

// Pause is why a campaign stopped sending: its complaint or bounce rate over
// its last sends passed the lifecycle's threshold (retain campaign resume
// starts it again).
type Pause struct {
	Campaign string    `json:"-"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// PauseCampaign stops the campaign's sends for reason, unless it is paused
// already; it reports whether this call paused it.
func (s *Store) PauseCampaign(ctx context.Context, campaign, reason string, at time.Time) (bool, error) {
	b, err := json.Marshal(Pause{Reason: reason, At: at})
	if err != nil {
		return false, err
	}
	ok, err := s.rdb.HSetNX(ctx, s.pausedKey(), campaign, b).Result()
	if err != nil {
		return false, fmt.Errorf("store: pause campaign %s: %w", campaign, err)
	}
	return ok, nil
}

// ResumeCampaign lets a paused campaign send again and starts its rate window
// anew, so the sends that paused it do not pause it again; it reports whether
// the campaign was paused.
func (s *Store) ResumeCampaign(ctx context.Context, campaign string) (bool, error) {
	n, err := s.rdb.HDel(ctx, s.pausedKey(), campaign).Result()
	if err != nil {
		return false, fmt.Errorf("store: resume campaign %s: %w", campaign, err)
	}
	if err := s.rdb.Del(ctx, s.pauseWindowKey(campaign)).Err(); err != nil {
		return n > 0, fmt.Errorf("store: resume campaign %s: %w", campaign, err)
	}
	return n > 0, nil
}

// Paused returns the paused campaigns by ID.
func (s *Store) Paused(ctx context.Context) (map[string]Pause, error) {
	h, err := s.rdb.HGetAll(ctx, s.pausedKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("store: paused campaigns: %w", err)
	}
	out := make(map[string]Pause, len(h))
	for id, raw := range h {
		p := Pause{Campaign: id}
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return nil, fmt.Errorf("store: decode the pause of %s: %w", id, err)
		}
		out[id] = p
	}
	return out, nil
}

// Totals are a campaign's sends, bounces and complaints counted so far.
type Totals struct{ Sent, Bounced, Complained int }

// Sub returns t minus u.
func (t Totals) Sub(u Totals) Totals {
	return Totals{Sent: t.Sent - u.Sent, Bounced: t.Bounced - u.Bounced, Complained: t.Complained - u.Complained}
}

// RateWindow returns the campaign's totals over its last sends: at least
// size of them once it has sent that many, fewer than twice size. It keeps two
// marks, the totals when the window began and when the next one began; now
// is the campaign's totals at this moment, and the marks move on when the
// newer one is size sends old.
func (s *Store) RateWindow(ctx context.Context, campaign string, now Totals, size int) (Totals, error) {
	key := s.pauseWindowKey(campaign)
	h, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Totals{}, fmt.Errorf("store: rate window of %s: %w", campaign, err)
	}
	from, next := decodeTotals(h["from"]), decodeTotals(h["next"])
	if h["from"] == "" {
		// The first look: the window holds everything sent so far.
		next = now
	}
	if now.Sent-next.Sent >= size || now.Sent < from.Sent {
		from, next = next, now
		if now.Sent < from.Sent { // counters reset (a new Redis): start over
			from, next = Totals{}, now
		}
		if err := s.rdb.HSet(ctx, key, "from", encodeTotals(from), "next", encodeTotals(next)).Err(); err != nil {
			return Totals{}, fmt.Errorf("store: rate window of %s: %w", campaign, err)
		}
	} else if h["from"] == "" {
		if err := s.rdb.HSet(ctx, key, "from", encodeTotals(from), "next", encodeTotals(next)).Err(); err != nil {
			return Totals{}, fmt.Errorf("store: rate window of %s: %w", campaign, err)
		}
	}
	return now.Sub(from), nil
}

func encodeTotals(t Totals) string {
	return strconv.Itoa(t.Sent) + " " + strconv.Itoa(t.Bounced) + " " + strconv.Itoa(t.Complained)
}

func decodeTotals(v string) Totals {
	var t Totals
	if _, err := fmt.Sscan(v, &t.Sent, &t.Bounced, &t.Complained); err != nil {
		return Totals{}
	}
	return t
}
