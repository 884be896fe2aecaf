package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Lease is a claim on due customers: while it holds, no scheduler hands them
// out again and no event handler processes them beside its worker. Each leased
// customer has a key of its own, {p}lease:{id}, holding the lease's random
// Token and expiring after the lease's time to live unless renewed; only the
// holder of the token renews or releases it, and no write of the customer ends
// it.
//
// ClaimDue also adds LeasedOffset to each claimed customer's due score, which
// keeps its real due time (the score minus the offset) and moves it out of
// the range the next claims scan: without it every tick would try, and fail,
// to claim each customer in flight again. The customer's write-back puts its
// next due time there; a release without one (a failure before the write)
// puts the real due time back; and a scheduler puts back, once per lease time,
// those whose lease ran out (RequeueLost: a worker died).
type Lease struct {
	IDs   []string
	Token string
	// TTL is how long the lease lasts each time it is taken or renewed.
	TTL time.Duration
}

// NewToken returns a random token for a lease, or for a claim elsewhere (the
// send ledger's).
func NewToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// leaseScanMax bounds how many due entries one ClaimDue looks at: due
// customers may be leased by an event handler (whose leases leave the due
// index as it is), and scanning past all of them on every tick would cost what
// is in flight. When that many are in flight, the workers are busy: the
// scheduler claims more on a later tick.
const leaseScanMax = 2000

// LeasedOffset is added to the due score of a customer a scheduler leased: 2^44
// ms, about 557 years, far above any real due time, and low enough that the sum
// stays an exact integer in a float64 score.
const LeasedOffset = 1 << 44

// dueTime is the real due time of a due index score.
func dueTime(score float64) time.Time {
	ms := int64(score)
	if ms >= LeasedOffset {
		ms -= LeasedOffset
	}
	return time.UnixMilli(ms)
}

// claimDue takes up to ARGV[3] customers due at ARGV[1] (unix ms) that no one
// holds, oldest first, leasing each for ARGV[2] ms under the token ARGV[4]:
// a second scheduler running it at the same moment gets other customers. It
// adds ARGV[8] (LeasedOffset) to the claimed customers' due scores and sets
// the fresh marker ARGV[7] for half the lease (see TakeLease).
var claimDue = redis.NewScript(`
local claimed, moved, offset, scanned = {}, {}, 0, 0
local limit, max = tonumber(ARGV[3]), tonumber(ARGV[6])
while #claimed < limit and scanned < max do
	local zs = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', offset, 200, 'WITHSCORES')
	if #zs == 0 then break end
	for i = 1, #zs, 2 do
		local id = zs[i]
		scanned = scanned + 1
		if redis.call('SET', ARGV[5] .. id, ARGV[4], 'NX', 'PX', ARGV[2]) then
			claimed[#claimed + 1] = id
			moved[#moved + 1] = string.format('%d', tonumber(zs[i + 1]) + tonumber(ARGV[8]))
			moved[#moved + 1] = id
			if #claimed >= limit then break end
		end
	end
	offset = offset + #zs / 2
end
if #claimed > 0 then
	redis.call('ZADD', KEYS[1], 'XX', unpack(moved))
	redis.call('SET', ARGV[7], '1', 'PX', math.max(1, math.floor(tonumber(ARGV[2]) / 2)))
end
return claimed
`)

// ClaimDue leases up to limit customers whose next email is due at now and
// that nobody holds, oldest first within a shard, for ttl (see Lease). The
// customers of a lease are of one shard: it tries the shards in turn, from the
// one after the shard of its last lease, and returns the first lease it gets.
// The cost follows the number due, not the number of customers. It returns nil
// when none is due.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, ttl time.Duration, limit int) (*Lease, error) {
	start := int(s.nextShard.Load())
	for k := range Shards {
		shard := (start + k) % Shards
		token := NewToken()
		ids, err := claimDue.Run(ctx, s.rdb, []string{s.dueKey(shard)},
			now.UnixMilli(), ttl.Milliseconds(), limit, token, s.sp(shard)+"lease:", leaseScanMax, s.freshKey(shard, token), LeasedOffset).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("store: claim due customers: %w", err)
		}
		if len(ids) > 0 {
			s.nextShard.Store(int32((shard + 1) % Shards))
			return &Lease{IDs: ids, Token: token, TTL: ttl}, nil
		}
	}
	return nil, nil
}

// holdLease renews, for ARGV[2] ms, each key of KEYS that holds the token
// ARGV[1], and takes each that no one holds; it returns 1 per key held now,
// else 0.
var holdLease = redis.NewScript(`
local held = {}
for i, k in ipairs(KEYS) do
	local v = redis.call('GET', k)
	if v == ARGV[1] then
		redis.call('PEXPIRE', k, ARGV[2])
		held[i] = 1
	elseif not v then
		redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
		held[i] = 1
	else
		held[i] = 0
	end
end
return held
`)

// releaseLease deletes each key of KEYS[3..] that holds the token ARGV[1], and
// the fresh marker KEYS[1]. With ARGV[2] = "1", each released customer (IDs
// from ARGV[4]) whose due score in KEYS[2] still carries the offset ARGV[3]
// gets its real due time back.
var releaseLease = redis.NewScript(`
redis.call('DEL', KEYS[1])
local mine, ids = {}, {}
local vals = redis.call('MGET', unpack(KEYS, 3))
for i, v in ipairs(vals) do
	if v == ARGV[1] then
		mine[#mine + 1] = KEYS[i + 2]
		ids[#ids + 1] = ARGV[i + 3]
	end
end
if #mine == 0 then return 0 end
redis.call('DEL', unpack(mine))
if ARGV[2] == '1' then
	local scores = redis.call('ZMSCORE', KEYS[2], unpack(ids))
	local back = {}
	for i, sc in ipairs(scores) do
		if sc and tonumber(sc) >= tonumber(ARGV[3]) then
			back[#back + 1] = string.format('%d', tonumber(sc) - tonumber(ARGV[3]))
			back[#back + 1] = ids[i]
		end
	end
	if #back > 0 then redis.call('ZADD', KEYS[2], 'XX', unpack(back)) end
end
return #mine
`)

// LeaseCustomers leases those of ids that nobody holds, for ttl, under a new
// token (the event handler's way to process a customer beside the
// schedulers). The lease's IDs are the customers it got; nil when none.
func (s *Store) LeaseCustomers(ctx context.Context, ids []string, ttl time.Duration) (*Lease, error) {
	return s.HoldLease(ctx, &Lease{IDs: ids, Token: NewToken(), TTL: ttl})
}

// TakeLease is HoldLease for the worker that starts on a lease: a lease
// claimed by ClaimDue less than half its time to live ago (its fresh marker
// still exists) holds every one of its customers for at least another half,
// so it is taken as it is with one EXISTS; an older one is renewed by
// HoldLease. The caller renews it within half its time to live.
func (s *Store) TakeLease(ctx context.Context, l *Lease) (*Lease, error) {
	if l == nil || len(l.IDs) == 0 {
		return nil, nil
	}
	n, err := s.rdb.Exists(ctx, s.freshKey(ShardOf(l.IDs[0]), l.Token)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: take lease of %d customers: %w", len(l.IDs), err)
	}
	if n == 1 {
		return l, nil
	}
	return s.HoldLease(ctx, l)
}

// HoldLease renews l for its TTL and returns the lease of the customers it
// still holds: those whose lease key has l's token, and those whose lease ran
// out and nobody took since (it takes them again). A customer another holder
// took is left out. It returns nil when l holds no customer any more.
func (s *Store) HoldLease(ctx context.Context, l *Lease) (*Lease, error) {
	if l == nil || len(l.IDs) == 0 {
		return nil, nil
	}
	if l.TTL <= 0 {
		return nil, fmt.Errorf("store: hold lease: no time to live")
	}
	out := &Lease{Token: l.Token, TTL: l.TTL}
	for _, ids := range ByShard(l.IDs) { // one script per shard's keys
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = s.leaseKey(id)
		}
		held, err := holdLease.Run(ctx, s.rdb, keys, l.Token, l.TTL.Milliseconds()).Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("store: hold lease of %d customers: %w", len(l.IDs), err)
		}
		for i, h := range held {
			if h == 1 {
				out.IDs = append(out.IDs, ids[i])
			}
		}
	}
	if len(out.IDs) == 0 {
		return nil, nil
	}
	return out, nil
}

// ReleaseLease ends l for the customers it still holds, and gives those whose
// due entry is still the claim's (nothing wrote them meanwhile) their real due
// time back: they are claimed again on the next tick. Keys another holder took
// are left alone.
func (s *Store) ReleaseLease(ctx context.Context, l *Lease) error {
	return s.releaseLease(ctx, l, "1")
}

// EndLease ends l for the customers it still holds, once each of them was
// written back with its next due time: ReleaseLease without the due entries.
func (s *Store) EndLease(ctx context.Context, l *Lease) error {
	return s.releaseLease(ctx, l, "")
}

func (s *Store) releaseLease(ctx context.Context, l *Lease, restore string) error {
	if l == nil || len(l.IDs) == 0 {
		return nil
	}
	// Scripts unpack their keys onto Lua's stack: keep each call well
	// below its limit (8,000). One call per shard's keys.
	const chunk = 1000
	var errs []error
	for _, group := range ByShard(l.IDs) {
		shard := ShardOf(group[0])
		for ids := range slices.Chunk(group, chunk) {
			keys := make([]string, 2, len(ids)+2)
			keys[0], keys[1] = s.freshKey(shard, l.Token), s.dueKey(shard)
			args := make([]any, 3, len(ids)+3)
			args[0], args[1], args[2] = l.Token, restore, LeasedOffset
			for _, id := range ids {
				keys = append(keys, s.leaseKey(id))
				args = append(args, id)
			}
			if err := releaseLease.Run(ctx, s.rdb, keys, args...).Err(); err != nil && err != redis.Nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: release lease of %d customers: %w", len(l.IDs), err)
	}
	return nil
}

// requeueLost gives the customers whose due score carries the offset ARGV[1]
// and whose lease key (ARGV[2] .. id) is gone their real due time back, at
// most once per ARGV[4] ms (the lock KEYS[2]), at most ARGV[3] of them.
var requeueLost = redis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return -1 end
local zs = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[3], 'WITHSCORES')
local back = {}
for i = 1, #zs, 2 do
	if redis.call('EXISTS', ARGV[2] .. zs[i]) == 0 then
		back[#back + 1] = string.format('%d', tonumber(zs[i + 1]) - tonumber(ARGV[1]))
		back[#back + 1] = zs[i]
	end
end
if #back > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(back)) end
return #back / 2
`)

// RequeueLost puts back in the due range the customers a scheduler leased
// whose lease ran out without a write-back or a release (their worker died),
// with their real due time, so the next claim hands them out again. It does
// the work at most once per every in each shard, whichever scheduler calls
// it, looking at no more than leaseScanMax customers in flight per shard, and
// returns how many it put back (-1 when it was no shard's turn).
func (s *Store) RequeueLost(ctx context.Context, every time.Duration) (int, error) {
	total, turns := 0, 0
	for shard := range Shards {
		n, err := requeueLost.Run(ctx, s.rdb, []string{s.dueKey(shard), s.requeueLockKey(shard)},
			LeasedOffset, s.sp(shard)+"lease:", leaseScanMax, max(every.Milliseconds(), 1)).Int()
		if err != nil {
			return total, fmt.Errorf("store: requeue customers of lost leases: %w", err)
		}
		if n >= 0 {
			total += n
			turns++
		}
	}
	if turns == 0 {
		return -1, nil
	}
	return total, nil
}

// NextDueAt returns when the earliest email in the due index is due, in
// flight or not, or zero when none is.
func (s *Store) NextDueAt(ctx context.Context) (time.Time, error) {
	return s.oldestDue(ctx, s.rdb)
}

// oldestDue is the earliest real due time in the due index: the lower of the
// first entry waiting and the first entry in flight.
func (s *Store) oldestDue(ctx context.Context, rdb redis.Cmdable) (time.Time, error) {
	var firsts []*redis.ZSliceCmd // per shard: the first waiting, the first in flight
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range Shards {
			firsts = append(firsts,
				p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.dueKey(shard), ByScore: true, Start: "-inf", Stop: "(" + strconv.Itoa(LeasedOffset), Count: 1}),
				p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.dueKey(shard), ByScore: true, Start: strconv.Itoa(LeasedOffset), Stop: "+inf", Count: 1}))
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	var oldest time.Time
	for _, first := range firsts {
		if zs := first.Val(); len(zs) > 0 {
			if t := dueTime(zs[0].Score); oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	return oldest, nil
}
