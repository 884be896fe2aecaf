// Package redistest connects tests to the real Redis server they run against and
// makes sure they delete only what they wrote there.
//
// The server is $REDIS_URL, or redis://127.0.0.1:6379; scripts/test starts one
// where none answers. Most tests get a key prefix of their own (New), deleted
// when the test ends. Tests that run Asynq, whose keys cannot be put under a
// prefix, get a database of their package's from the table below (DB); a
// database is taken only when it is empty or holds nothing but this suite's keys,
// and only those keys are ever deleted: the tests never empty a database.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The databases of the test Redis that tests running Asynq take, one per package:
// Asynq's keys have no prefix, so the queues of packages tested in parallel
// (go test ./...) must not meet. Tests inside one package take their database one
// at a time, and a test run waits while another run (another `go test` on the
// same Redis) holds it.
const (
	WebDB   = 9  // package web: the API, the pages links in emails lead to, previews and operations
	QueueDB = 11 // package queue: the worker and the scheduler
	CmdDB   = 12 // package main of cmd/retain: the scripts and the worker and scheduler processes
)

// databases names the package of each database in the table above. DB refuses a
// number missing here, so the table stays the only place that lists them.
var databases = map[int]string{
	WebDB:   "web",
	QueueDB: "queue",
	CmdDB:   "cmd/retain",
}

// KeyPrefix starts every key the tests write under a prefix of their own.
const KeyPrefix = "retain-test:"

// asynqPrefix starts every key Asynq v0.26 writes.
const asynqPrefix = "asynq:"

const (
	// ownerKey marks a database of the table as the tests': written when a test
	// first takes the database empty, and left there, so that Asynq keys found in
	// it later are known to be an earlier test run's (leftovers of a killed run)
	// rather than another application's queues.
	ownerKey   = KeyPrefix + "owner"
	ownerValue = "retain's tests (internal/redistest) use this database for Asynq; they delete only asynq:* and retain-test:* keys in it. Delete this key to give the database back."

	// lockKey holds the token of the test using the database now. It expires
	// unless renewed, so a killed test run frees the database after lockTTL.
	lockKey = KeyPrefix + "lock"
	lockTTL = 15 * time.Second
	// lockWait is how long a test waits for another test run to free its database.
	lockWait = 3 * time.Minute
)

// URL is the Redis the tests use.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

// connect returns a client of database db of the test Redis (db < 0: the one
// REDIS_URL names), failing the test when no Redis answers.
func connect(tb testing.TB, db int) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("REDIS_URL=%q: %v", URL(), err)
	}
	if db >= 0 {
		opt.DB = db
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(tb.Context()).Err(); err != nil {
		rdb.Close()
		tb.Fatalf("no Redis at %s (%v): run scripts/test, which starts one, or set REDIS_URL", opt.Addr, err)
	}
	return rdb
}

// New returns a client of the test Redis and a fresh key prefix
// ("retain-test:<random>:") whose keys are deleted at cleanup. It fails the test
// when no Redis answers, saying how to start one.
func New(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	rdb := connect(tb, -1)
	if pkg, ok := databases[rdb.Options().DB]; ok {
		rdb.Close()
		tb.Fatalf("REDIS_URL names database %d, which the Asynq tests of package %s take (see internal/redistest): point it at another, e.g. 0", rdb.Options().DB, pkg)
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

// held records which test of this process holds each database.
var held = struct {
	sync.Mutex
	by map[int]string
}{by: map[int]string{}}

// DB gives the test database db of the test Redis — one of WebDB, QueueDB, CmdDB,
// for tests of Asynq, whose keys cannot be put under a prefix — and the URL that
// points at it (for child processes). The test finds the database without Asynq
// keys or keys of earlier tests, and its Asynq keys and every retain-test: key
// it wrote are deleted when it ends.
//
// The database is taken only when it is empty, or holds nothing but keys these
// tests write: retain-test:* keys, and asynq:* keys next to the mark the tests
// leave in a database they took empty. Anything else fails the test and is left
// as it is: the tests never empty a database.
func DB(tb testing.TB, db int) (*redis.Client, string) {
	tb.Helper()
	pkg, ok := databases[db]
	if !ok {
		tb.Fatalf("redistest: database %d is not in the table of test databases in internal/redistest: add it there", db)
	}
	held.Lock()
	if other, ok := held.by[db]; ok {
		held.Unlock()
		tb.Fatalf("redistest: database %d (package %s) is held by %s: tests that take a database must not run in parallel or inside each other", db, pkg, other)
	}
	held.by[db] = tb.Name()
	held.Unlock()
	tb.Cleanup(func() {
		held.Lock()
		delete(held.by, db)
		held.Unlock()
	})

	rdb := connect(tb, db)
	tb.Cleanup(func() { rdb.Close() })
	ctx := tb.Context()
	addr := rdb.Options().Addr
	if err := checkOwned(ctx, rdb); err != nil {
		tb.Fatalf("redistest: database %d of the Redis at %s %v. The tests of package %s use that database for Asynq, whose keys have no prefix, and delete keys there: point REDIS_URL at a Redis you can spare (e.g. `redis-server --port 6390 --save ''` and REDIS_URL=redis://127.0.0.1:6390), or empty that database yourself if its keys are yours to lose", db, addr, err, pkg)
	}
	if err := rdb.SetNX(ctx, ownerKey, ownerValue, 0).Err(); err != nil {
		tb.Fatalf("redistest: mark database %d as the tests': %v", db, err)
	}
	unlock := lock(tb, rdb, db, pkg)
	tb.Cleanup(func() {
		// Runs before unlock and Close (cleanups run last registered first),
		// while this test still holds the database.
		if err := deleteOwn(context.Background(), rdb); err != nil {
			tb.Errorf("redistest: cleanup of database %d: %v", db, err)
		}
		unlock()
	})
	if err := deleteOwn(ctx, rdb); err != nil {
		tb.Fatalf("redistest: clear database %d of an earlier test's keys: %v", db, err)
	}
	return rdb, dbURL(tb, db)
}

// checkOwned returns an error saying what the database holds when it holds a key
// these tests did not write. On Redis Cluster it reads every master.
func checkOwned(ctx context.Context, rdb redis.UniversalClient) error {
	var (
		mu       sync.Mutex
		owned    bool
		asynqKey string
	)
	err := forEachMaster(ctx, rdb, func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			switch k := iter.Val(); {
			case k == ownerKey:
				mu.Lock()
				owned = true
				mu.Unlock()
			case strings.HasPrefix(k, KeyPrefix):
			case strings.HasPrefix(k, asynqPrefix):
				mu.Lock()
				asynqKey = k
				mu.Unlock()
			default:
				return fmt.Errorf("holds %q, which these tests did not write", k)
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("cannot be read: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if asynqKey != "" && !owned {
		return fmt.Errorf("holds Asynq's %q without the mark %q these tests leave in a database they took empty: those may be another application's queues", asynqKey, ownerKey)
	}
	return nil
}

// releaseLock deletes the lock when it still holds this test's token.
var releaseLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// renewLock extends the lock when it still holds this test's token.
var renewLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// lock takes the database's lock for the test, waiting while another test run
// holds it, and keeps it until the returned func is called.
func lock(tb testing.TB, rdb *redis.Client, db int, pkg string) (unlock func()) {
	tb.Helper()
	host, _ := os.Hostname()
	token := fmt.Sprintf("%s on %s, pid %d (%s)", tb.Name(), host, os.Getpid(), randomHex(6))
	ctx := tb.Context()
	deadline := time.Now().Add(lockWait)
	for logged := false; ; {
		ok, err := rdb.SetNX(ctx, lockKey, token, lockTTL).Result()
		if err != nil {
			tb.Fatalf("redistest: lock database %d: %v", db, err)
		}
		if ok {
			break
		}
		holder, _ := rdb.Get(ctx, lockKey).Result()
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: database %d (package %s) has been held for %s by another test run: %s", db, pkg, lockWait, holder)
		}
		if !logged {
			tb.Logf("redistest: database %d is held by another test run (%s): waiting", db, holder)
			logged = true
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("redistest: waiting for database %d: %v", db, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				renewLock.Run(context.Background(), rdb, []string{lockKey}, token, lockTTL.Milliseconds())
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		if err := releaseLock.Run(context.Background(), rdb, []string{lockKey}, token).Err(); err != nil {
			tb.Errorf("redistest: unlock database %d: %v", db, err)
		}
	}
}

// deleteOwn deletes the Asynq keys and the retain-test: keys of a database the
// caller holds, but not the database's mark and lock.
func deleteOwn(ctx context.Context, rdb redis.UniversalClient) error {
	if err := Delete(ctx, rdb, asynqPrefix); err != nil {
		return err
	}
	return deleteWhere(ctx, rdb, KeyPrefix, func(k string) bool { return k != ownerKey && k != lockKey })
}

// dbURL is REDIS_URL pointed at database db.
func dbURL(tb testing.TB, db int) string {
	tb.Helper()
	u, err := url.Parse(URL())
	if err != nil {
		tb.Fatalf("REDIS_URL=%q: %v", URL(), err)
	}
	if u.Scheme == "unix" {
		q := u.Query()
		q.Set("db", strconv.Itoa(db))
		u.RawQuery = q.Encode()
	} else {
		u.Path = "/" + strconv.Itoa(db)
	}
	return u.String()
}

// Prefix returns a new random key prefix for one test.
func Prefix() string {
	return KeyPrefix + randomHex(6) + ":"
}

func randomHex(n int) string {
	r := make([]byte, n)
	rand.Read(r)
	return hex.EncodeToString(r)
}

// Delete removes every key under prefix (on Redis Cluster, on every master).
func Delete(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	return deleteWhere(ctx, rdb, prefix, nil)
}

// deleteWhere removes the keys under prefix that match (every one when match
// is nil). On Redis Cluster it scans every master and unlinks key by key, in
// a pipeline: one UNLINK of keys in different slots is refused.
func deleteWhere(ctx context.Context, rdb redis.UniversalClient, prefix string, match func(string) bool) error {
	unlink := func(keys []string) error { return rdb.Unlink(ctx, keys...).Err() }
	if _, ok := rdb.(*redis.ClusterClient); ok {
		unlink = func(keys []string) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			return err
		}
	}
	return forEachMaster(ctx, rdb, func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			if k := iter.Val(); match == nil || match(k) {
				keys = append(keys, k)
			}
			if len(keys) == 1000 {
				if err := unlink(keys); err != nil {
					return err
				}
				keys = keys[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(keys) > 0 {
			return unlink(keys)
		}
		return nil
	})
}

// Keys returns every key under prefix (on Redis Cluster, of every master), for
// tests that check what was written.
func Keys(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]string, error) {
	var (
		mu  sync.Mutex
		all []string
	)
	err := forEachMaster(ctx, rdb, func(ctx context.Context, node redis.UniversalClient) error {
		keys, err := node.Keys(ctx, prefix+"*").Result()
		mu.Lock()
		defer mu.Unlock()
		all = append(all, keys...)
		return err
	})
	return all, err
}

// forEachMaster calls fn with each master of a Redis Cluster, concurrently,
// or with rdb itself, once, for what one server answers only about itself
// (SCAN, KEYS). It is store.ForEachMaster, which this package cannot import:
// the store's tests import this package.
func forEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node redis.UniversalClient) error) error {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, rdb)
	}
	return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return fn(ctx, m) })
}
