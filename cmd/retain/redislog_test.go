package main

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisClientMessagesGoToTheLog: what go-redis says of its own (here, a
// dial that failed) is a structured warning in the process's log.
func TestRedisClientMessagesGoToTheLog(t *testing.T) {
	var buf syncBuffer
	logRedisTo(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { logRedisTo(slog.New(slog.NewTextHandler(os.Stderr, nil))) })
	rdb := redis.NewClient(&redis.Options{Addr: freeAddr(t), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	rdb.Ping(t.Context())
	waitFor(t, 5*time.Second, "go-redis to log the failed dial", func() bool {
		return strings.Contains(buf.String(), `level=WARN msg="redis client: connection pool: failed to dial`)
	})
}
