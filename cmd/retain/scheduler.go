package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

var schedulerCmd = &command{
	name:    "scheduler",
	summary: "Run the scheduler: hand due emails to the workers and apply time rules",
	usage:   "scheduler [--interval 1s] [--batch 50] [--lease 15s] [--campaigns DIR]",
	help: `Every --interval the scheduler applies the lifecycle time rules that came due
("21 days without activity") and claims the customers with an email due, handing
them to the workers in send:due tasks of --batch customers. Only due customers
are read: the store indexes customers by their next time rule and next email.

Several schedulers may run at once (for availability): claims are atomic and
leased, the time-rule sweep takes a lock per tick, so no work is done twice. The
worker that gets a batch renews its lease while it works; a claimed customer
whose worker dies is free again after --lease.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS (see retain help worker).`,
	run: runScheduler,
}

func runScheduler(c *command, e *env, args []string) int {
	fs := c.flags()
	interval := fs.Duration("interval", queue.DefaultInterval, "time between ticks")
	batch := fs.Int("batch", queue.DefaultBatch, "customers per send:due task")
	lease := fs.Duration("lease", queue.DefaultLease, "how long a claimed customer is held for its worker unless the worker renews it")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) > 0 || *interval <= 0 || *batch < 1 || *lease < *interval {
		fmt.Fprintf(e.stderr, "retain scheduler: give positive --interval and --batch, and a --lease longer than the interval\nUsage: retain %s\n", c.usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	if !checkRedis(ctx, c, e, log, ws.rdb) {
		return exitProblems
	}
	recordDeploy(ctx, log, ws.store, ws.loaded.set)
	s, err := queue.NewScheduler(queue.SchedulerConfig{Store: ws.store, Engine: ws.engine, Interval: *interval, Batch: *batch, Lease: *lease, Log: log})
	if err != nil {
		fmt.Fprintf(e.stderr, "retain scheduler: %v\n", err)
		return exitUsage
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(e.stderr, "retain scheduler: %v\n", err)
		return exitProblems
	}
	log.Info("scheduler started", "interval", interval.String(), "redis", store.RedactURL(cmpOr(e.getenv("REDIS_URL"), defaultRedisURL)))
	<-ctx.Done()
	s.Close()
	log.Info("scheduler stopped")
	return exitOK
}
