package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Lease is a claim on due customers: while it holds, no scheduler hands them
// out again and no event handler processes them beside its worker. Each leased
// customer has a key of its own, {p}lease:{id}, holding the lease's random
// Token and expiring after the lease's time to live unless renewed. The due
// index is never touched by leasing: its score stays the customer's real due
// time, so no write of the customer can end a lease by accident, and a lease is
// only renewed or released by whoever holds its token.
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

// leaseScanMax bounds how many due entries one ClaimDue looks at: the oldest
// due customers may all be leased (being sent), and scanning past all of them
// on every tick would cost what is in flight. When that many are in flight, the
// workers are busy: the scheduler claims more on a later tick.
const leaseScanMax = 2000

// claimDue takes up to ARGV[3] customers due at ARGV[1] (unix ms) that no one
// holds, oldest first, leasing each for ARGV[2] ms under the token ARGV[4]:
// a second scheduler running it at the same moment gets other customers.
var claimDue = redis.NewScript(`
local claimed, offset, scanned = {}, 0, 0
local limit, max = tonumber(ARGV[3]), tonumber(ARGV[6])
while #claimed < limit and scanned < max do
	local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', offset, 200)
	if #ids == 0 then break end
	for _, id in ipairs(ids) do
		scanned = scanned + 1
		if redis.call('SET', ARGV[5] .. id, ARGV[4], 'NX', 'PX', ARGV[2]) then
			claimed[#claimed + 1] = id
			if #claimed >= limit then break end
		end
	end
	offset = offset + #ids
end
return claimed
`)

// ClaimDue leases up to limit customers whose next email is due at now and
// that nobody holds, oldest first, for ttl (see Lease). The cost follows the
// number due and in flight, not the number of customers. It returns nil when
// none is due.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, ttl time.Duration, limit int) (*Lease, error) {
	token := NewToken()
	ids, err := claimDue.Run(ctx, s.rdb, []string{s.dueKey()},
		now.UnixMilli(), ttl.Milliseconds(), limit, token, s.leaseKey(""), leaseScanMax).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("store: claim due customers: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return &Lease{IDs: ids, Token: token, TTL: ttl}, nil
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

// releaseLease deletes each key of KEYS that holds the token ARGV[1].
var releaseLease = redis.NewScript(`
for _, k in ipairs(KEYS) do
	if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 0
`)

// LeaseCustomers leases those of ids that nobody holds, for ttl, under a new
// token (the event handler's way to process a customer beside the
// schedulers). The lease's IDs are the customers it got; nil when none.
func (s *Store) LeaseCustomers(ctx context.Context, ids []string, ttl time.Duration) (*Lease, error) {
	return s.HoldLease(ctx, &Lease{IDs: ids, Token: NewToken(), TTL: ttl})
}

// HoldLease renews l for its TTL and returns the lease of the customers it
// still holds: those whose lease key has l's token, and those whose lease ran
// out and nobody took since (it takes them again). A customer another holder
// took is left out. It returns nil when l holds no customer any more.
func (s *Store) HoldLease(ctx context.Context, l *Lease) (*Lease, error) {
	if l == nil || len(l.IDs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(l.IDs))
	for i, id := range l.IDs {
		keys[i] = s.leaseKey(id)
	}
	if l.TTL <= 0 {
		return nil, fmt.Errorf("store: hold lease: no time to live")
	}
	held, err := holdLease.Run(ctx, s.rdb, keys, l.Token, l.TTL.Milliseconds()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("store: hold lease of %d customers: %w", len(l.IDs), err)
	}
	out := &Lease{Token: l.Token, TTL: l.TTL}
	for i, h := range held {
		if h == 1 {
			out.IDs = append(out.IDs, l.IDs[i])
		}
	}
	if len(out.IDs) == 0 {
		return nil, nil
	}
	return out, nil
}

// ReleaseLease ends l for the customers it still holds: they can be claimed
// again at their due time. Keys another holder took are left alone.
func (s *Store) ReleaseLease(ctx context.Context, l *Lease) error {
	if l == nil || len(l.IDs) == 0 {
		return nil
	}
	keys := make([]string, len(l.IDs))
	for i, id := range l.IDs {
		keys[i] = s.leaseKey(id)
	}
	if err := releaseLease.Run(ctx, s.rdb, keys, l.Token).Err(); err != nil && err != redis.Nil {
		return fmt.Errorf("store: release lease of %d customers: %w", len(l.IDs), err)
	}
	return nil
}

// NextDueAt returns when the earliest email in the due index is due, or zero
// when none is.
func (s *Store) NextDueAt(ctx context.Context) (time.Time, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.dueKey(), 0, 0).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	if len(zs) == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), nil
}
