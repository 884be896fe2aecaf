package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisLog routes go-redis's own messages (a dial that failed, the master a
// Sentinel client switched to) into the process's log, as structured warnings,
// instead of go-redis's plain lines on stderr.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	l.log.WarnContext(ctx, "redis client: "+msg)
}

// logRedisTo makes go-redis log through log (go-redis has one logger per process).
func logRedisTo(log *slog.Logger) { redis.SetLogger(redisLog{log}) }
