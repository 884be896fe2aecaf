// Package redistest connects tests to the real Redis server they run against and
// gives each test a key prefix of its own, deleted when the test ends.
//
// The server is $REDIS_URL, or redis://127.0.0.1:6379; scripts/test starts one
// where none answers. Tests never touch keys outside their prefix.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// URL is the Redis the tests use.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

// New returns a client of the test Redis and a fresh key prefix
// ("retain-test:<random>:") whose keys are deleted at cleanup. It fails the test
// when no Redis answers, saying how to start one.
func New(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("REDIS_URL=%q: %v", URL(), err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(tb.Context()).Err(); err != nil {
		rdb.Close()
		tb.Fatalf("no Redis at %s (%v): run scripts/test, which starts one, or set REDIS_URL", URL(), err)
	}
	prefix := Prefix()
	tb.Cleanup(func() {
		if err := Delete(context.Background(), rdb, prefix); err != nil {
			tb.Errorf("cleanup of %s*: %v", prefix, err)
		}
		rdb.Close()
	})
	return rdb, prefix
}

// DB gives the test a client of database db of the test Redis, emptied before and
// after the test, and the URL that points at it (for child processes). It is for
// tests of Asynq, whose keys cannot be put under a prefix: each package that runs
// Asynq uses a database number of its own, so packages tested in parallel do not
// see each other's tasks.
func DB(tb testing.TB, db int) (*redis.Client, string) {
	tb.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("REDIS_URL=%q: %v", URL(), err)
	}
	opt.DB = db
	rdb := redis.NewClient(opt)
	ctx := tb.Context()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		tb.Fatalf("no Redis at %s (%v): run scripts/test, which starts one, or set REDIS_URL", URL(), err)
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		rdb.FlushDB(context.Background())
		rdb.Close()
	})
	u := *opt
	return rdb, fmt.Sprintf("redis://%s/%d", u.Addr, db)
}

// Prefix returns a new random key prefix for one test.
func Prefix() string {
	var r [6]byte
	rand.Read(r[:])
	return "retain-test:" + hex.EncodeToString(r[:]) + ":"
}

// Delete removes every key under prefix.
func Delete(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		return rdb.Unlink(ctx, keys...).Err()
	}
	return nil
}

// Keys returns every key under prefix, for tests that check what was written.
func Keys(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	return rdb.Keys(ctx, prefix+"*").Result()
}
