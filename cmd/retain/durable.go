package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	field := func(name string) string { return infoField(info, name) }
	if d.AOF {
		major, minor := versionOf(field("redis_version"))
		if major < 7 || major == 7 && minor < 2 {
			return "", fmt.Errorf("--wait-aof needs Redis 7.2 or later (WAITAOF); this Redis is %s: use --wait-replicas with a replica, or appendfsync always (see docs/operations.md)", field("redis_version"))
		}
		if field("aof_enabled") != "1" {
			return "", fmt.Errorf("--wait-aof needs appendonly yes on the Redis primary")
		}
	}
	if n, _ := strconv.Atoi(field("connected_slaves")); n < d.Replicas && !d.Follow {
		return fmt.Sprintf("--wait-replicas %d: %d replicas are connected now; sends wait up to --wait-timeout for them and are not sent without them", d.Replicas, n), nil
	}
	return "", nil
}

// durability returns what the send ledger waits for (nil: nothing), from
// --wait-replicas, --wait-aof and --wait-timeout. replicas is -1 when
// --wait-replicas is not given: then, when the primary has replicas connected
// now, the ledger waits for one of them while one is online (Follow): a
// deployment with replicas can fail over to one, and a claim that had not
// reached it could be sent again. note says so, for the log.
func durability(ctx context.Context, rdb redis.UniversalClient, replicas int, aof bool, timeout time.Duration) (d *queue.Durability, note string, err error) {
	if replicas < 0 {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return nil, "", fmt.Errorf("cannot read Redis INFO replication to tell whether the send ledger must wait for replicas: %v; give --wait-replicas (0 or more)", err)
		}
		if n, _ := strconv.Atoi(infoField(info, "connected_slaves")); n == 0 {
			return nil, "", nil
		}
		return &queue.Durability{Replicas: 1, AOF: aof, Timeout: timeout, Follow: true}, "the Redis primary has replicas: each claim and outcome in the send ledger waits for one of them (WAIT) while one is online, so a failover cannot send an email twice; --wait-replicas 0 turns this off, --wait-replicas 1 also stops sending while none is online", nil
	}
	if replicas == 0 && !aof {
		return nil, note, nil
	}
	return &queue.Durability{Replicas: replicas, AOF: aof, Timeout: timeout}, note, nil
}

// infoField returns the value of name in the text of Redis INFO.
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
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
