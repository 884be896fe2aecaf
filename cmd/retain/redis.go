package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/store"
)

const defaultRedisURL = "redis://127.0.0.1:6379/0"

// openStore connects to $REDIS_URL (default redis://127.0.0.1:6379/0) and returns
// the store under $RETAIN_REDIS_PREFIX (default "retain:"). Errors never show the
// URL's password.
func openStore(ctx context.Context, e *env) (*store.Store, *redis.Client, error) {
	raw := e.getenv("REDIS_URL")
	if raw == "" {
		raw = defaultRedisURL
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL %s is not a Redis URL such as redis://:password@host:6379/0", redactURL(raw))
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("cannot reach Redis at %s: %v (start redis-server or set REDIS_URL)", redactURL(raw), err)
	}
	return store.New(rdb, e.getenv("RETAIN_REDIS_PREFIX")), rdb, nil
}

// redactURL hides the password of a URL for messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
