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

// ResumeCampaign lets a paused campaign send again and starts its rate
// window anew at now, the campaign's totals at this moment, so the sends that
// paused it do not pause it again; it reports whether the campaign was
// paused.
func (s *Store) ResumeCampaign(ctx context.Context, campaign string, now Totals) (bool, error) {
	var del *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		del = p.HDel(ctx, s.pausedKey(), campaign)
		p.HSet(ctx, s.pauseWindowKey(campaign), "from", encodeTotals(now), "next", encodeTotals(now))
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: resume campaign %s: %w", campaign, err)
	}
	return del.Val() > 0, nil
}

// wakeDue makes the customers of one shard's due index due within (from,
// to] due at from, a batch at a time: KEYS[1] the due index; ARGV from, to
// (unix ms), the batch size. Leased customers (scores past LeasedOffset) are
// out of range. It returns how many it moved.
var wakeDue = redis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
end
return #ids
`)

// WakeDue makes every customer whose next email is due after now and within
// d due now, so the scheduler hands them to the workers at its next tick; it
// returns how many. A campaign's resume uses it: the steps its pause
// postponed are due within bounce.PausedWait. A customer whose email is not
// really due is looked at and put back to its time by the worker.
func (s *Store) WakeDue(ctx context.Context, now time.Time, d time.Duration) (int, error) {
	from, to := strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(now.Add(d).UnixMilli(), 10)
	total := 0
	for shard := range Shards {
		for {
			n, err := wakeDue.Run(ctx, s.rdb, []string{s.dueKey(shard)}, from, to, 1000).Int()
			if err != nil {
				return total, fmt.Errorf("store: wake due customers: %w", err)
			}
			total += n
			if n < 1000 {
				break
			}
		}
	}
	return total, nil
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

// rateWindow moves a campaign's rate window marks, in one step so that
// processes checking at once do not lose each other's marks: KEYS[1] the
// window hash; ARGV the totals now ("sent bounced complained") and the
// window size. It returns the "from" mark the window starts at.
var rateWindow = redis.NewScript(`
local now, size = ARGV[1], tonumber(ARGV[2])
local sent = tonumber(string.match(now, '^(%d+)'))
local from = redis.call('HGET', KEYS[1], 'from')
local nxt = redis.call('HGET', KEYS[1], 'next')
if not from or not nxt then
  from, nxt = '0 0 0', now
  redis.call('HSET', KEYS[1], 'from', from, 'next', nxt)
  return from
end
local fromSent = tonumber(string.match(from, '^(%d+)')) or 0
local nextSent = tonumber(string.match(nxt, '^(%d+)')) or 0
if sent < fromSent then
  -- the counters started over (a new Redis): so does the window
  redis.call('HSET', KEYS[1], 'from', '0 0 0', 'next', now)
  return '0 0 0'
end
if sent - nextSent >= size then
  redis.call('HSET', KEYS[1], 'from', nxt, 'next', now)
  return nxt
end
return from
`)

// RateWindow returns the campaign's totals over its last sends. It keeps two
// marks, the totals when the window began and when the next one began; now
// is the campaign's totals at this moment, and the marks move on when the
// newer one is size sends old. Marks move when a bounce or complaint is
// checked, so the window holds size to twice size sends while reports come
// at least every size sends; after a long quiet spell the first check sees
// a longer window, and the next ones the window again.
func (s *Store) RateWindow(ctx context.Context, campaign string, now Totals, size int) (Totals, error) {
	from, err := rateWindow.Run(ctx, s.rdb, []string{s.pauseWindowKey(campaign)}, encodeTotals(now), size).Text()
	if err != nil {
		return Totals{}, fmt.Errorf("store: rate window of %s: %w", campaign, err)
	}
	return now.Sub(decodeTotals(from)), nil
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
