package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

// checkDurability tells, before the worker starts, whether Redis can give what
// --wait-replicas and --wait-aof ask: WAITAOF needs Redis 7.2 or later and
// appendonly; WAIT needs the replicas connected. A Redis that cannot ever give
// it is an error; replicas missing now are a warning (sends wait for them).
// On Redis Cluster it reads every master, and the weakest decides.
func checkDurability(ctx context.Context, rdb redis.UniversalClient, d *queue.Durability) (warning string, err error) {
	if d == nil {
		return "", nil
	}
	ps, err := readPrimaries(ctx, rdb, "server", "replication", "persistence")
	if err != nil {
		return "", fmt.Errorf("--wait-replicas/--wait-aof: cannot read Redis INFO: %v", err)
	}
	return judgeDurability(ps, d)
}

// judgeDurability is checkDurability on what it read of each primary.
func judgeDurability(ps []primary, d *queue.Durability) (warning string, err error) {
	if d.AOF {
		for _, p := range ps {
			major, minor := versionOf(p.version)
			if major < 7 || major == 7 && minor < 2 {
				this := "this Redis"
				if p.node != "" {
					this = "the Redis master " + p.node
				}
				return "", fmt.Errorf("--wait-aof needs Redis 7.2 or later (WAITAOF); %s is %s: use --wait-replicas with a replica, or appendfsync always (see docs/operations.md)", this, p.version)
			}
		}
		for _, p := range ps {
			switch {
			case p.aof:
			case p.node == "":
				return "", fmt.Errorf("--wait-aof needs appendonly yes on the Redis primary")
			default:
				return "", fmt.Errorf("--wait-aof needs appendonly yes on every Redis master; %s has appendonly no", p.node)
			}
		}
	}
	if p := weakest(ps); p.replicas < d.Replicas && !d.Follow {
		if p.node != "" {
			return fmt.Sprintf("--wait-replicas %d: the Redis master %s has %d replicas connected now; sends wait up to --wait-timeout for them and are not sent without them", d.Replicas, p.node, p.replicas), nil
		}
		return fmt.Sprintf("--wait-replicas %d: %d replicas are connected now; sends wait up to --wait-timeout for them and are not sent without them", d.Replicas, p.replicas), nil
	}
	return "", nil
}

// durability returns what the send ledger waits for (nil: nothing), from
// --wait-replicas, --wait-aof and --wait-timeout. replicas is -1 when
// --wait-replicas is not given: then, when the primary has replicas connected
// now (on Redis Cluster: every master has), the ledger waits for one of them
// while one is online (Follow): a deployment with replicas can fail over to
// one, and a claim that had not reached it could be sent again. note says so,
// for the log.
func durability(ctx context.Context, rdb redis.UniversalClient, replicas int, aof bool, timeout time.Duration) (d *queue.Durability, note string, err error) {
	if replicas < 0 {
		ps, err := readPrimaries(ctx, rdb, "replication")
		if err != nil {
			return nil, "", fmt.Errorf("cannot read Redis INFO replication to tell whether the send ledger must wait for replicas: %v; give --wait-replicas (0 or more)", err)
		}
		if weakest(ps).replicas == 0 {
			return nil, "", nil
		}
		return &queue.Durability{Replicas: 1, AOF: aof, Timeout: timeout, Follow: true}, "the Redis primary has replicas: each claim and outcome in the send ledger waits for one of them (WAIT) while one is online, so a failover cannot send an email twice; --wait-replicas 0 turns this off, --wait-replicas 1 also stops sending while none is online", nil
	}
	if replicas == 0 && !aof {
		return nil, note, nil
	}
	return &queue.Durability{Replicas: replicas, AOF: aof, Timeout: timeout}, note, nil
}

// A primary is what INFO tells of a Redis primary: the one Redis, or on Redis
// Cluster a master, node.
type primary struct {
	node     string // host:port of a cluster's master, "" otherwise
	version  string // redis_version
	aof      bool   // aof_enabled
	replicas int    // connected_slaves
}

// readPrimaries reads the INFO sections of every primary (store.ForEachMaster),
// in the order of their addresses.
func readPrimaries(ctx context.Context, rdb redis.UniversalClient, sections ...string) ([]primary, error) {
	var (
		mu sync.Mutex
		ps []primary
	)
	err := store.ForEachMaster(ctx, rdb, func(ctx context.Context, node string, m redis.UniversalClient) error {
		info, err := m.Info(ctx, sections...).Result()
		if err != nil && node != "" {
			return fmt.Errorf("%s: %w", node, err)
		}
		if err != nil {
			return err
		}
		p := primary{node: node, version: infoField(info, "redis_version"), aof: infoField(info, "aof_enabled") == "1"}
		p.replicas, _ = strconv.Atoi(infoField(info, "connected_slaves"))
		mu.Lock()
		defer mu.Unlock()
		ps = append(ps, p)
		return nil
	})
	if err == nil && len(ps) == 0 {
		err = errors.New("no Redis master")
	}
	slices.SortFunc(ps, func(a, b primary) int { return strings.Compare(a.node, b.node) })
	return ps, err
}

// weakest is the primary with the fewest replicas connected (the first of
// those); ps is not empty.
func weakest(ps []primary) primary {
	w := ps[0]
	for _, p := range ps[1:] {
		if p.replicas < w.replicas {
			w = p
		}
	}
	return w
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
