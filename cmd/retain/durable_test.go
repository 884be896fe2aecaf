package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/queue"
)

// TestCheckDurabilitySaysWhatRedisCannotGive runs the worker's start-up check
// on a redis-server of the test's own, without AOF and without replicas.
func TestCheckDurabilitySaysWhatRedisCannotGive(t *testing.T) {
	rdb := redistest.StartServer(t).Client(t)
	ctx := context.Background()
	if w, err := checkDurability(ctx, rdb, nil); w != "" || err != nil {
		t.Errorf("no durability asked: %q %v", w, err)
	}
	// Before 7.2 there is no WAITAOF; from 7.2 on, appendonly is off here.
	if _, err := checkDurability(ctx, rdb, &queue.Durability{AOF: true, Timeout: time.Second}); err == nil ||
		!(strings.Contains(err.Error(), "needs Redis 7.2 or later") || strings.Contains(err.Error(), "needs appendonly yes")) {
		t.Errorf("--wait-aof on a Redis without AOF: %v", err)
	}
	w, err := checkDurability(ctx, rdb, &queue.Durability{Replicas: 1, Timeout: time.Second})
	if err != nil || !strings.Contains(w, "0 replicas are connected now") {
		t.Errorf("--wait-replicas 1 without a replica: warning %q, error %v", w, err)
	}
}

// TestDurabilityDefaultFollowsReplicas: without --wait-replicas, the ledger
// waits for a replica exactly when the primary has one connected.
func TestDurabilityDefaultFollowsReplicas(t *testing.T) {
	ctx := context.Background()
	primary := redistest.StartServer(t)
	rdb := primary.Client(t)
	d, note, err := durability(ctx, rdb, -1, false, time.Second)
	if d != nil || note != "" || err != nil {
		t.Errorf("no replica: %+v %q %v", d, note, err)
	}
	host, port, _ := strings.Cut(primary.Addr, ":")
	redistest.StartServer(t, "--replicaof", host, port)
	waitFor(t, 10*time.Second, "the replica to connect", func() bool {
		info, _ := rdb.Info(ctx, "replication").Result()
		return infoField(info, "connected_slaves") == "1"
	})
	d, note, err = durability(ctx, rdb, -1, false, 2*time.Second)
	if err != nil || d == nil || d.Replicas != 1 || d.Timeout != 2*time.Second || !d.Follow || !strings.Contains(note, "the Redis primary has replicas") {
		t.Errorf("a replica: %+v %q %v", d, note, err)
	}
	if d, _, err := durability(ctx, rdb, 0, false, time.Second); d != nil || err != nil {
		t.Errorf("--wait-replicas 0 with a replica: %+v %v", d, err)
	}
	if d, _, err := durability(ctx, rdb, 2, false, time.Second); d == nil || d.Replicas != 2 || err != nil {
		t.Errorf("--wait-replicas 2: %+v %v", d, err)
	}
}
