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
