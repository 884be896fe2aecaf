package main

import (
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/internal/redistest"
)

// TestWorkerAndSchedulerRefuseAnEvictingRedis starts a redis-server of its own
// with maxmemory-policy allkeys-lru (the shared test Redis is never
// reconfigured): worker and scheduler refuse to start on it, saying what to set.
func TestWorkerAndSchedulerRefuseAnEvictingRedis(t *testing.T) {
	srv := redistest.StartServer(t, "--maxmemory-policy", "allkeys-lru")
	env := map[string]string{
		"REDIS_URL": "redis://" + srv.Addr + "/0", "RETAIN_CAMPAIGNS": "testdata/e2e/campaigns", "RETAIN_TEMPLATES": "../../templates",
		"SMTP_URL": "smtp://127.0.0.1:1?tls=none", "RETAIN_FROM": "Acme <hello@acme.example>",
		"RETAIN_BASE_URL": "https://retain.acme.example", "RETAIN_SECRET": "0123456789abcdef0123456789abcdef",
	}
	for _, cmd := range []string{"worker", "scheduler"} {
		type result struct {
			code int
			errs string
		}
		done := make(chan result, 1)
		go func() {
			code, _, errs := runRetain(env, cmd)
			done <- result{code, errs}
		}()
		var code int
		var errs string
		select {
		case r := <-done:
			code, errs = r.code, r.errs
		case <-time.After(20 * time.Second):
			t.Fatalf("retain %s started on an evicting Redis and runs: it must refuse", cmd)
		}
		if code != exitProblems || !strings.Contains(errs, "maxmemory-policy allkeys-lru") || !strings.Contains(errs, "set maxmemory-policy noeviction") {
			t.Errorf("retain %s on an evicting Redis: exit %d, stderr:\n%s\nwant exit 1 saying to set maxmemory-policy noeviction", cmd, code, errs)
		}
	}
}
