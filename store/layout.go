package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Layout is the version of the key layout this store reads and writes (see
// doc.go, "Keys"): 2, customers in shards (shard.go); 1 was one Redis's
// layout, with global indexes (retain migrate moves its data to 2). It is
// kept in {p}layout, so that a later layout can tell the data it finds and
// migrate it, and a process of this version refuses data written in another
// one instead of corrupting it.
const Layout = 2

func (s *Store) layoutKey() string { return s.prefix + "layout" }

// ErrLayout means Redis holds retain's keys in a layout this version does not
// read.
var ErrLayout = errors.New("Redis holds retain's keys in another layout")

// CheckLayout records Layout in {p}layout when no layout is recorded, and
// returns ErrLayout, saying what to do, when another one is. A client that may
// only read (retain impact on production) records nothing.
func (s *Store) CheckLayout(ctx context.Context) error {
	v, err := s.rdb.Get(ctx, s.layoutKey()).Result()
	if errors.Is(err, redis.Nil) {
		// Layout 1 recorded no version (before it, there was none to tell):
		// its global indexes say it is there.
		if n, err := s.rdb.Exists(ctx, s.prefix+"wake", s.prefix+"due").Result(); err == nil && n > 0 {
			return fmt.Errorf("%w: layout 1 (%swake or %sdue); this retain reads layout %d: stop every retain process and run retain migrate (see docs/operations.md)", ErrLayout, s.prefix, s.prefix, Layout)
		}
		v, err = s.rdb.SetArgs(ctx, s.layoutKey(), Layout, redis.SetArgs{Mode: "NX", Get: true}).Result()
		if errors.Is(err, redis.Nil) || err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("store: read the key layout (%s): %w", s.layoutKey(), err)
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s holds %q, not a layout version", ErrLayout, s.layoutKey(), v)
	case n > Layout:
		return fmt.Errorf("%w: layout %d, written by a later retain; this retain reads layout %d: run the later version", ErrLayout, n, Layout)
	case n < Layout:
		return fmt.Errorf("%w: layout %d; this retain reads layout %d: stop every retain process and run retain migrate (see docs/operations.md)", ErrLayout, n, Layout)
	}
	return nil
}

// CheckPrefix reports a key prefix that would break the key layout: a brace
// would make Redis Cluster hash part of the prefix as the key's hash tag.
func CheckPrefix(prefix string) error {
	if strings.ContainsAny(prefix, "{}") {
		return fmt.Errorf("RETAIN_REDIS_PREFIX %q holds a brace: braces in keys are Redis Cluster hash tags, which retain's key layout sets itself; use letters, digits, ':', '-' or '_'", prefix)
	}
	return nil
}
