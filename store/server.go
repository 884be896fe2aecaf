package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ErrEvicting means Redis may evict keys when its memory is full: a lost
// customer, enrollment, ledger entry or queued task. Worker and scheduler refuse
// to start on it.
var ErrEvicting = errors.New("Redis evicts keys when its memory is full")

// CheckServer reads the two Redis settings retain depends on (operations.md,
// "Redis"). It returns ErrEvicting, wrapped with what to set, when
// maxmemory-policy is not noeviction, and a warning when appendonly is off, or
// when the settings cannot be read (managed Redis often refuses CONFIG GET).
func CheckServer(ctx context.Context, rdb redis.UniversalClient) (warnings []string, err error) {
	const doc = "see docs/operations.md#redis"
	policy, err := configGet(ctx, rdb, "maxmemory-policy")
	if err != nil {
		return []string{fmt.Sprintf("could not check the Redis settings (CONFIG GET: %v): make sure maxmemory-policy is noeviction and appendonly is yes, %s", err, doc)}, nil
	}
	if policy != "noeviction" {
		return nil, fmt.Errorf("%w (maxmemory-policy %s): an evicted key is a lost customer, enrollment, ledger entry or queued task; set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf or your provider's settings), %s", ErrEvicting, policy, doc)
	}
	aof, err := configGet(ctx, rdb, "appendonly")
	switch {
	case err != nil:
		warnings = append(warnings, fmt.Sprintf("could not check whether Redis persists writes (CONFIG GET appendonly: %v): make sure appendonly is yes, %s", err, doc))
	case aof != "yes":
		warnings = append(warnings, fmt.Sprintf("Redis runs with appendonly %s: a restart loses what was written since the last snapshot (customers, schedules, the send ledger, so emails may go out twice); set appendonly yes and appendfsync everysec, %s", aof, doc))
	}
	return warnings, nil
}

// configGet returns the value of one Redis setting.
func configGet(ctx context.Context, rdb redis.UniversalClient, name string) (string, error) {
	m, err := rdb.ConfigGet(ctx, name).Result()
	if err != nil {
		return "", err
	}
	v, ok := m[name]
	if !ok {
		return "", fmt.Errorf("%s not in the reply", name)
	}
	return v, nil
}
