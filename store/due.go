package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimDue atomically takes up to ARGV[3] customers whose next email is due at
// ARGV[1] (unix ms) and moves their score to ARGV[2], the end of the lease: a
// second scheduler running the same script at the same moment gets other
// customers, and a customer whose sends die with their worker comes due again when
// the lease ends.
var claimDue = redis.NewScript(`
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
	redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
end
return ids
`)

// ClaimDue returns up to limit customers whose next email is due at now, oldest
// first, and leases them for lease: until then no other ClaimDue returns them. The
// worker's Update of a customer sets its score to the customer's real next due
// time, ending the lease. The cost follows the number due, not the number of
// customers.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]string, error) {
	ids, err := claimDue.Run(ctx, s.rdb, []string{s.dueKey()}, now.UnixMilli(), now.Add(lease).UnixMilli(), limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("store: claim due customers: %w", err)
	}
	return ids, nil
}

// NextDueAt returns when the earliest email in the due index is due (leases
// included), or zero when none is.
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
