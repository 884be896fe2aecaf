package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/retainmail/retain/store"
)

var migrateCmd = &command{
	name:    "migrate",
	summary: "Move the Redis keys of an older retain to this version's key layout",
	usage:   "migrate [--dry-run] [--force]",
	help: `Layout 2 puts every key of a customer, its send ledger entries and its
entries in the due and wake indexes in the hash slot of one of 16 shards, so
the same keys work on one Redis, Sentinel and Redis Cluster. retain migrate
moves the keys of layout 1 (retain before sharding) there: it renames each
customer key and ledger entry into its shard's (time to live kept), spreads
the due and wake indexes over the shards, moves the report counters to shard
0, deletes the fresh-lease marks and the requeue lock, and records layout 2
in {prefix}layout last. Other keys keep their names.

Stop every retain process first (workers, schedulers, web): it refuses while
a scheduler ticked within the last minute, unless --force. An interrupted run
is safe to run again: it goes on with the keys not yet moved. It never moves
a key over an existing one (it stops and names both). Run it against the one
Redis (or Sentinel) the data is on; on a Redis Cluster it refuses.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX.

Examples:
  retain migrate --dry-run
  retain migrate`,
	run: runMigrate,
}

func runMigrate(c *command, e *env, args []string) int {
	fs := c.flags()
	dryRun := fs.Bool("dry-run", false, "count what would move and check for conflicts; change nothing")
	force := fs.Bool("force", false, "migrate even though a scheduler ticked within the last minute")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(e, "unexpected argument %q", pos[0])
	}
	raw := e.getenv("REDIS_URL")
	if raw == "" {
		raw = defaultRedisURL
	}
	prefix := e.getenv("RETAIN_REDIS_PREFIX")
	if prefix == "" {
		prefix = store.DefaultPrefix
	}
	if err := store.CheckPrefix(prefix); err != nil {
		fmt.Fprintf(e.stderr, "retain migrate: %v\n", err)
		return exitUsage
	}
	// Ctrl-C stops between two batches: what moved stays moved, and a run
	// again goes on from there.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Not openStore: it refuses data in layout 1, which is what this reads.
	rdb, _, err := store.Connect(ctx, raw, 5*time.Second)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain migrate: %v (start redis-server or set REDIS_URL)\n", err)
		return exitProblems
	}
	defer rdb.Close()

	start := time.Now()
	var last time.Time
	shown := false
	st, err := store.Migrate(ctx, rdb, prefix, store.MigrateOptions{DryRun: *dryRun, Force: *force,
		Progress: func(done, total int) {
			// A line every 2 seconds once the run has taken that long (counting
			// the keys of a large data set does), and the last one.
			if now := time.Now(); now.Sub(start) >= 2*time.Second && now.Sub(last) >= 2*time.Second || shown && done == total {
				last, shown = now, true
				fmt.Fprintf(e.stderr, "retain migrate: %d of %d keys and index members (%d%%)\n", done, total, done*100/max(total, 1))
			}
		}})
	if err != nil {
		fmt.Fprintf(e.stderr, "retain migrate: %v\n", err)
		if errors.Is(err, store.ErrProcessesRunning) {
			fmt.Fprintln(e.stderr, "retain migrate: when you are sure none runs, --force migrates anyway")
		}
		if st.Moved != nil && !*dryRun {
			printMigrated(e, st, prefix, "Moved before it stopped")
			fmt.Fprintln(e.stderr, "retain migrate: layout 2 is not recorded; what moved stays moved, and retain migrate run again goes on with the rest")
		}
		return exitProblems
	}
	if st.From == 2 {
		fmt.Fprintf(e.stdout, "Redis holds layout 2 under %q already: nothing to do.\n", prefix)
		return exitOK
	}
	if *dryRun {
		printMigrated(e, st, prefix, "Would move")
		fmt.Fprintln(e.stdout, "Dry run: nothing changed. Run retain migrate without --dry-run, with every retain process stopped.")
	} else {
		printMigrated(e, st, prefix, "Moved")
		fmt.Fprintf(e.stdout, "Recorded layout 2 in %slayout (%v). Start this version's workers, schedulers and web.\n", prefix, time.Since(start).Round(time.Millisecond))
	}
	return exitOK
}

// printMigrated prints what moved (or would), family by family, after heading.
func printMigrated(e *env, st store.MigrateStats, prefix, heading string) {
	fmt.Fprintf(e.stdout, "%s under %q, from layout 1 to 2:\n", heading, prefix)
	for _, f := range slices.Sorted(maps.Keys(st.Moved)) {
		fmt.Fprintf(e.stdout, "  %-14s %8d keys into their shards\n", f+":", st.Moved[f])
	}
	for _, f := range slices.Sorted(maps.Keys(st.Members)) {
		fmt.Fprintf(e.stdout, "  %-14s %8d members into the %d shards' indexes\n", f, st.Members[f], store.Shards)
	}
	for _, f := range slices.Sorted(maps.Keys(st.Deleted)) {
		fmt.Fprintf(e.stdout, "  %-14s %8d keys deleted (only a running process needs them)\n", f, st.Deleted[f])
	}
	fmt.Fprintf(e.stdout, "  %-14s %8d keys keep their names (email index, suppressions, stats...)\n", "other", st.Kept)
	if st.Gone > 0 {
		fmt.Fprintf(e.stdout, "  %-14s %8d keys gone before their turn (expired)\n", "gone", st.Gone)
	}
}
