package main

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// workspace is what commands that change customers need: campaigns that lint
// clean, the engine, the store and the applier joining them.
type workspace struct {
	loaded  *loaded
	engine  *lifecycle.Engine
	store   *store.Store
	rdb     redis.UniversalClient
	applier *ingest.Applier
}

func (w *workspace) close() { w.rdb.Close() }

// openWorkspace loads the campaigns in dir (default $RETAIN_CAMPAIGNS or .) and
// connects to Redis. Campaigns with problems are refused: nothing is applied with
// rules that do not lint. On failure it reports and returns the exit code.
func openWorkspace(ctx context.Context, c *command, e *env, dir string) (*workspace, int) {
	l, code := loadChecked(c, e, dir)
	if l == nil {
		return nil, code
	}
	st, rdb, err := openStore(ctx, e)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return nil, exitProblems
	}
	countReports(st, e, l)
	eng := lifecycle.New(l.set)
	return &workspace{loaded: l, engine: eng, store: st, rdb: rdb, applier: &ingest.Applier{Store: st, Engine: eng}}, exitOK
}

// countReports makes every customer write through st keep the report counters
// (package report) up to date, in the same transaction.
func countReports(st *store.Store, e *env, l *loaded) {
	st.Also = report.NewRecorder(e.getenv("RETAIN_REDIS_PREFIX"), l.set.Lifecycle).Record
}

// loadChecked loads the campaigns in dir (default $RETAIN_CAMPAIGNS or .) and
// refuses them when they have problems, listing them.
func loadChecked(c *command, e *env, dir string) (*loaded, int) {
	if dir == "" {
		dir = campaignsDir(e)
	}
	d, err := resolveDirs(dir, e.getenv("RETAIN_TEMPLATES"))
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return nil, exitUsage
	}
	return loadCheckedDirs(c, e, d)
}

// loadCheckedDirs is loadChecked for folders already resolved.
func loadCheckedDirs(c *command, e *env, d dirs) (*loaded, int) {
	l, probs, err := loadCampaigns(d)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: %v\n", c.name, err)
		return nil, exitProblems
	}
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintln(e.stderr, p)
		}
		fmt.Fprintf(e.stderr, "retain %s: the campaigns have %s; fix them first (retain lint)\n", c.name, plural(len(probs), "problem"))
		return nil, exitProblems
	}
	return l, exitOK
}
