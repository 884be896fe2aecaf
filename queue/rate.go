package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// rateLimiter holds every worker to one global send rate: a counter per second in
// Redis ({p}rate:{unix second}). A worker takes a slot by incrementing the current
// second's counter; past the limit it waits for the next second.
type rateLimiter struct {
	rdb    redis.UniversalClient
	prefix string
	perSec int
}

var takeSlot = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 2000) end
return n
`)

// wait blocks until the send may go, or ctx ends.
func (r *rateLimiter) wait(ctx context.Context) error {
	if r == nil || r.perSec <= 0 {
		return nil
	}
	for {
		now := time.Now()
		sec := now.Unix()
		n, err := takeSlot.Run(ctx, r.rdb, []string{fmt.Sprintf("%srate:%d", r.prefix, sec)}).Int()
		if err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		if n <= r.perSec {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Unix(sec+1, 0).Sub(now)):
		}
	}
}
