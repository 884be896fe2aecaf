package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrEvicting means Redis may evict keys when its memory is full: a lost
// customer, enrollment, ledger entry or queued task. Worker and scheduler refuse
// to start on it.
var ErrEvicting = errors.New("Redis evicts keys when its memory is full")

// ForEachMaster calls fn with every server that holds rdb's keys: on Redis
// Cluster with each master (concurrently, as redis.ClusterClient.ForEachMaster
// does), with node its address (host:port); on a single Redis or Sentinel with
// rdb itself, once, with node "". It is for what one server answers only about
// itself (SCAN, KEYS, INFO, CONFIG GET): on a cluster client such a command
// goes to one master, chosen arbitrarily. fn must be safe to run concurrently.
// It returns an error fn returned, or the cluster's when its masters cannot be
// listed.
func ForEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node string, m redis.UniversalClient) error) error {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, "", rdb)
	}
	return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return fn(ctx, m.Options().Addr, m)
	})
}

// CheckServer reads the two Redis settings retain depends on (operations.md,
// "Redis"). It returns ErrEvicting, wrapped with what to set, when
// maxmemory-policy is not noeviction, and a warning when appendonly is off, or
// when the settings cannot be read (managed Redis often refuses CONFIG GET).
// On Redis Cluster it reads them on every master, and the error and warnings
// name the masters they are about.
func CheckServer(ctx context.Context, rdb redis.UniversalClient) (warnings []string, err error) {
	const doc = "see docs/operations.md#redis"
	type result struct {
		node, policy string // policy: set when it evicts
		warnings     []string
	}
	var (
		mu      sync.Mutex
		results []result
	)
	err = ForEachMaster(ctx, rdb, func(ctx context.Context, node string, m redis.UniversalClient) error {
		r := result{node: node}
		r.policy, r.warnings = checkNode(ctx, node, m, doc)
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		return nil
	})
	if err != nil { // only a cluster whose masters cannot be listed
		return []string{fmt.Sprintf("could not check the Redis settings (%v): make sure maxmemory-policy is noeviction and appendonly is yes on every master, %s", err, doc)}, nil
	}
	slices.SortFunc(results, func(a, b result) int { return strings.Compare(a.node, b.node) })
	var evicting []string
	for _, r := range results {
		switch {
		case r.policy != "" && r.node == "":
			evicting = append(evicting, r.policy)
		case r.policy != "":
			evicting = append(evicting, fmt.Sprintf("%s on the master %s", r.policy, r.node))
		}
		warnings = append(warnings, r.warnings...)
	}
	if len(evicting) > 0 {
		return nil, fmt.Errorf("%w (maxmemory-policy %s): an evicted key is a lost customer, enrollment, ledger entry or queued task; set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf or your provider's settings), %s", ErrEvicting, strings.Join(evicting, ", "), doc)
	}
	return warnings, nil
}

// checkNode is CheckServer on one server, node ("" on a single Redis): the
// maxmemory-policy when it evicts, and the warnings.
func checkNode(ctx context.Context, node string, rdb redis.UniversalClient, doc string) (evicting string, warnings []string) {
	settings, server := "the Redis settings", "Redis"
	if node != "" {
		settings, server = "the settings of the Redis master "+node, "the Redis master "+node
	}
	policy, err := configGet(ctx, rdb, "maxmemory-policy")
	if err != nil {
		return "", []string{fmt.Sprintf("could not check %s (CONFIG GET: %v): make sure maxmemory-policy is noeviction and appendonly is yes, %s", settings, err, doc)}
	}
	if policy != "noeviction" {
		return policy, nil
	}
	aof, err := configGet(ctx, rdb, "appendonly")
	switch {
	case err != nil:
		warnings = append(warnings, fmt.Sprintf("could not check whether %s persists writes (CONFIG GET appendonly: %v): make sure appendonly is yes, %s", server, err, doc))
	case aof != "yes":
		warnings = append(warnings, fmt.Sprintf("%s runs with appendonly %s: a restart loses what was written since the last snapshot (customers, schedules, the send ledger, so emails may go out twice); set appendonly yes and appendfsync everysec, %s", server, aof, doc))
	}
	return "", warnings
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
