package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/queue"
)

// checkDurability tells, before the worker starts, whether Redis can give what
// --wait-replicas and --wait-aof ask: WAITAOF needs Redis 7.2 or later and
// appendonly; WAIT needs the replicas connected. A Redis that cannot ever give
// it is an error; replicas missing now are a warning (sends wait for them).
func checkDurability(ctx context.Context, rdb redis.UniversalClient, d *queue.Durability) (warning string, err error) {
	if d == nil {
		return "", nil
	}
	info, err := rdb.Info(ctx, "server", "replication", "persistence").Result()
	if err != nil {
		return "", fmt.Errorf("--wait-replicas/--wait-aof: cannot read Redis INFO: %v", err)
	}
	field := func(name string) string {
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
				return v
			}
		}
		return ""
	}
	if d.AOF {
		major, minor := versionOf(field("redis_version"))
		if major < 7 || major == 7 && minor < 2 {
			return "", fmt.Errorf("--wait-aof needs Redis 7.2 or later (WAITAOF); this Redis is %s: use --wait-replicas with a replica, or appendfsync always (see docs/operations.md)", field("redis_version"))
		}
		if field("aof_enabled") != "1" {
			return "", fmt.Errorf("--wait-aof needs appendonly yes on the Redis primary")
		}
	}
	if n, _ := strconv.Atoi(field("connected_slaves")); n < d.Replicas {
		return fmt.Sprintf("--wait-replicas %d: %d replicas are connected now; sends wait up to --wait-timeout for them and are not sent without them", d.Replicas, n), nil
	}
	return "", nil
}

// versionOf returns the major and minor number of a version such as 7.0.15.
func versionOf(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, _ = strconv.Atoi(parts[0])
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}
