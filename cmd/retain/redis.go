package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/store"
)

const defaultRedisURL = "redis://127.0.0.1:6379/0"

// openStore connects to $REDIS_URL (default redis://127.0.0.1:6379/0: one server,
// Sentinel or Cluster, see store.URLForms) and returns the store under
// $RETAIN_REDIS_PREFIX (default "retain:"). Errors never show a password.
func openStore(ctx context.Context, e *env) (*store.Store, redis.UniversalClient, error) {
	raw := e.getenv("REDIS_URL")
	if raw == "" {
		raw = defaultRedisURL
	}
	prefix := e.getenv("RETAIN_REDIS_PREFIX")
	if err := store.CheckPrefix(prefix); err != nil {
		return nil, nil, err
	}
	logRedisTo(slog.New(slog.NewTextHandler(e.stderr, nil)))
	rdb, _, err := store.Connect(ctx, raw, 5*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("%v (start redis-server or set REDIS_URL)", err)
	}
	st := store.New(rdb, prefix)
	if err := st.CheckLayout(ctx); err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return st, rdb, nil
}
