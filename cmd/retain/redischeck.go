package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/store"
)

// checkRedis checks the Redis settings worker and scheduler depend on
// (store.CheckServer) as they start: it logs a warning for each setting that
// should change or could not be read, and on an evicting maxmemory-policy
// reports why it refuses to start and returns false.
func checkRedis(ctx context.Context, c *command, e *env, log *slog.Logger, rdb redis.UniversalClient) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	warnings, err := store.CheckServer(ctx, rdb)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return false
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	return true
}
