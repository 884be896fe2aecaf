package main

import (
	"context"
	"slices"
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
	if d, _, err := durability(ctx, rdb, 2, false, time.Second); d == nil || d.Replicas != 2 || d.Follow || err != nil {
		t.Errorf("--wait-replicas 2: %+v %v", d, err)
	}
}

// TestDurabilityOnCluster: on Redis Cluster the start-up check and the
// default read every master: with a replica each the ledger follows them,
// and once one master has lost its replica, that master decides.
func TestDurabilityOnCluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t)
	cc := c.Client(t)
	ps, err := readPrimaries(ctx, cc, "server", "replication", "persistence")
	if err != nil || len(ps) != len(c.Masters) {
		t.Fatalf("readPrimaries = %+v, %v; want the %d masters", ps, err, len(c.Masters))
	}
	for _, m := range c.Masters {
		if !slices.ContainsFunc(ps, func(p primary) bool { return p.node == m.Addr && p.replicas == 1 && p.version != "" }) {
			t.Errorf("readPrimaries = %+v, want the master %s with its version and 1 replica", ps, m.Addr)
		}
	}
	d, _, err := durability(ctx, cc, -1, false, time.Second)
	if err != nil || d == nil || d.Replicas != 1 || !d.Follow {
		t.Errorf("durability with a replica on each master: %+v %v, want to follow 1", d, err)
	}
	// The cluster's nodes run without AOF, and the check names a master.
	if _, err := checkDurability(ctx, cc, &queue.Durability{AOF: true, Timeout: time.Second}); err == nil ||
		!slices.ContainsFunc(c.Masters, func(m *redistest.Server) bool { return strings.Contains(err.Error(), "master "+m.Addr) }) {
		t.Errorf("--wait-aof on a cluster without AOF: %v, want an error naming a master", err)
	}

	lonely := c.Masters[2]
	c.Replicas[2].Kill()
	mc := lonely.Client(t)
	waitFor(t, 10*time.Second, "the master to see its replica gone", func() bool {
		info, _ := mc.Info(ctx, "replication").Result()
		return infoField(info, "connected_slaves") == "0"
	})
	if d, _, err := durability(ctx, cc, -1, false, time.Second); d != nil || err != nil {
		t.Errorf("durability with a master without replica: %+v %v, want nothing to wait for", d, err)
	}
	w, err := checkDurability(ctx, cc, &queue.Durability{Replicas: 1, Timeout: time.Second})
	if err != nil || !strings.Contains(w, "the Redis master "+lonely.Addr+" has 0 replicas connected now") {
		t.Errorf("--wait-replicas 1 with a master without replica: warning %q, error %v", w, err)
	}
}

// TestJudgeDurabilityTakesTheWeakestMaster: of a cluster's masters, one with
// appendonly off fails --wait-aof, and the one with fewest replicas is named.
func TestJudgeDurabilityTakesTheWeakestMaster(t *testing.T) {
	ps := []primary{
		{node: "10.0.0.1:6379", version: "7.4.2", aof: true, replicas: 2},
		{node: "10.0.0.2:6379", version: "7.4.2", aof: false, replicas: 1},
		{node: "10.0.0.3:6379", version: "7.2.0", aof: true, replicas: 2},
	}
	_, err := judgeDurability(ps, &queue.Durability{AOF: true})
	if err == nil || !strings.Contains(err.Error(), "10.0.0.2:6379 has appendonly no") {
		t.Errorf("--wait-aof with AOF off on one master: %v", err)
	}
	ps[1].aof = true
	if w, err := judgeDurability(ps, &queue.Durability{AOF: true, Replicas: 2}); err != nil || !strings.Contains(w, "10.0.0.2:6379 has 1 replicas connected") {
		t.Errorf("--wait-aof --wait-replicas 2 with one replica on one master: %q %v", w, err)
	}
	ps[2].version = "7.0.15"
	if _, err := judgeDurability(ps, &queue.Durability{AOF: true}); err == nil || !strings.Contains(err.Error(), "the Redis master 10.0.0.3:6379 is 7.0.15") {
		t.Errorf("--wait-aof with Redis 7.0 on one master: %v", err)
	}
}
