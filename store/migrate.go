package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Migrating from layout 1 to layout 2.
//
// Layout 1 is layout 2 without the shards' hash tags: {p}c:{id},
// {p}stages:{id}, {p}events:{id}, {p}seen:{id}, {p}lease:{id}, one {p}due and
// one {p}wake index, {p}lease-fresh:{token}, {p}lock:requeue, the send ledger
// {p}ledger:{customer}:{campaign}:{enrollment}:{slug} and the report counters
// {p}report:…. Migrate moves each key to its shard (RENAMENX, which keeps the
// key's time to live and never overwrites), spreads the members of the two
// indexes over the shards' indexes with their scores, deletes what only a
// running process needs (fresh-lease marks, the requeue lock), and records
// layout 2 in {p}layout last.
//
// The report counters go to shard 0 (package report sums the shards). One of
// them changed form: layout 1 kept NPS counts as a hash a week,
// {p}report:nps:YYYY-Www (promoters, passives, detractors -> people), layout 2
// as one hash, {s}report:nps ("YYYY-Www|promoters"… -> people): each week's
// hash becomes its fields there. The NPS answer keys
// {p}report:nps-answer:{hash} go to shard 0 too: they are named by a hash of
// the customer, so their customer's shard is unknown, and an answer changed
// after the migration (they last NPSAnswerTTL, 400 days) counts as a first
// answer. Every other key (the email index, the
// suppressions, stats, the scheduler's tick…) keeps its name.
//
// It runs while no retain process does: a process of either version would
// write keys under the names of its own layout meanwhile.

// MigrateOptions tunes Migrate.
type MigrateOptions struct {
	// DryRun only counts what would move, and checks that no key would land on
	// one that exists; nothing is written.
	DryRun bool
	// Force migrates even when a scheduler ticked within the last minute
	// (ErrProcessesRunning).
	Force bool
	// Batch is how many keys one SCAN page and one pipeline hold, and how many
	// index members one ZSCAN page and its ZADDs. Default 500.
	Batch int
	// Progress, when set, is called once the work is counted (done 0), then
	// after every batch, with the work done and the work there is: one unit per key, one per member of the due and wake
	// indexes. Total is counted by a first SCAN, so done may end a little off
	// it (SCAN may return a key twice; a key may expire meanwhile).
	Progress func(done, total int)
}

// MigrateStats is what Migrate moved (or, with DryRun, would move).
type MigrateStats struct {
	// From is the layout found: 1 (also when {p}layout was absent), or 2 when
	// there was nothing to do.
	From int
	// Moved counts the keys renamed into their shard, by family: "c",
	// "stages", "events", "seen", "lease", "ledger", "report" (a week's NPS
	// hash, made fields of shard 0's NPS hash, counts as one).
	Moved map[string]int
	// Members counts the members moved into the shards' indexes: "due",
	// "wake".
	Members map[string]int
	// Deleted counts the keys deleted, by family: "lease-fresh",
	// "lock:requeue".
	Deleted map[string]int
	// Kept counts the keys of layout 1 that keep their names (email index,
	// suppressions, stats, the layout key…).
	Kept int
	// Gone counts keys that SCAN listed but that were gone when their turn
	// came: expired, or listed twice.
	Gone int
}

// ErrProcessesRunning means a scheduler ticked within the last minute: retain
// processes seem to run, and Migrate refuses unless forced.
var ErrProcessesRunning = errors.New("retain processes seem to be running")

// ErrMigrateConflict means a key of layout 1 would be moved onto a key of
// layout 2 that exists already; Migrate moves nothing over it.
var ErrMigrateConflict = errors.New("a key exists under both layouts")

// ErrMigrateCluster is Migrate's answer on a Redis Cluster client.
var ErrMigrateCluster = errors.New("store: migrate runs on one Redis, not on a Redis Cluster, where RENAME cannot move a key to another hash slot; layout 1 never ran on a Cluster: migrate the one Redis (or Sentinel) that holds it, then move the data to the Cluster")

// migrateTo is the layout Migrate writes.
const migrateTo = 2

// Migrate moves the keys under prefix (DefaultPrefix when empty) from layout 1
// to layout 2, or does nothing when {p}layout holds 2 already. Run it with
// every retain process stopped: it refuses with ErrProcessesRunning when
// {p}scheduler:tick is less than a minute old, unless o.Force.
//
// The work is batched, o.Batch keys per round trip. It is safe to run again
// after an interruption: a moved key is under its new name, which the SCAN
// passes over, an index half copied is copied again (ZADD of the same member
// and score), and {p}layout says 1 (written first when absent) until
// everything moved, then 2, so no process of layout 2 starts on half-moved
// data (CheckLayout refuses layout 1). A key whose new name exists already is
// left in place and the run ends with ErrMigrateConflict, naming both: report
// counters go to shard 0 unmerged.
//
// It refuses a Redis Cluster client (ErrMigrateCluster): RENAME cannot move a
// key to another hash slot. Layout 1 only ever ran on one Redis (or
// Sentinel): migrate there, then move the data.
func Migrate(ctx context.Context, rdb redis.UniversalClient, prefix string, o MigrateOptions) (MigrateStats, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := CheckPrefix(prefix); err != nil {
		return MigrateStats{}, err
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return MigrateStats{}, ErrMigrateCluster
	}
	layoutKey := prefix + "layout"
	v, err := rdb.Get(ctx, layoutKey).Result()
	absent := errors.Is(err, redis.Nil)
	switch {
	case absent, err == nil && v == "1":
	case err != nil:
		return MigrateStats{}, fmt.Errorf("store: migrate: read %s: %w", layoutKey, err)
	case v == strconv.Itoa(migrateTo):
		return MigrateStats{From: migrateTo}, nil
	default:
		return MigrateStats{}, fmt.Errorf("%w: %s holds %q; migrate reads layout 1 and writes layout %d", ErrLayout, layoutKey, v, migrateTo)
	}
	if !o.Force && !o.DryRun {
		if err := checkNoTick(ctx, rdb, prefix+"scheduler:tick", time.Now()); err != nil {
			return MigrateStats{}, err
		}
	}
	if !o.DryRun && absent {
		// Recorded first, so that once the indexes have moved a process of
		// layout 2 still finds layout 1 and refuses the half-moved data.
		if err := rdb.SetNX(ctx, layoutKey, 1, 0).Err(); err != nil {
			return MigrateStats{}, fmt.Errorf("store: migrate: record layout 1 in %s: %w", layoutKey, err)
		}
	}
	m := &migration{rdb: rdb, p: prefix, o: o, st: MigrateStats{From: 1,
		Moved: map[string]int{}, Members: map[string]int{}, Deleted: map[string]int{}}}
	if m.total, err = m.count(ctx); err != nil {
		return m.st, err
	}
	if o.Progress != nil {
		o.Progress(0, m.total)
	}
	if err := m.run(ctx); err != nil {
		return m.st, err
	}
	if !o.DryRun {
		if err := rdb.Set(ctx, layoutKey, migrateTo, 0).Err(); err != nil {
			return m.st, fmt.Errorf("store: migrate: record layout %d in %s: %w", migrateTo, layoutKey, err)
		}
	}
	return m.st, nil
}

// checkNoTick returns ErrProcessesRunning when the scheduler's tick at key is
// less than a minute before now.
func checkNoTick(ctx context.Context, rdb redis.UniversalClient, key string, now time.Time) error {
	v, err := rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: migrate: read %s: %w", key, err)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("store: migrate: %s holds %q, not a time in unix ms", key, v)
	}
	if ago := now.Sub(time.UnixMilli(ms)); ago < time.Minute {
		return fmt.Errorf("%w: a scheduler ticked %v ago (%s): stop every retain worker, scheduler and web process first", ErrProcessesRunning, max(ago, 0).Round(time.Second), key)
	}
	return nil
}

// migration is one run of Migrate.
type migration struct {
	rdb   redis.UniversalClient
	p     string
	o     MigrateOptions
	st    MigrateStats
	done  int
	total int
}

// migrateOp is what becomes of one key of layout 1.
type migrateOp struct {
	kind   opKind
	family string
	key    string
	to     string // opRename: the new name
}

type opKind int

const (
	opKeep opKind = iota
	opRename
	opDelete
	opIndex // due or wake: members spread over the shards' indexes
	opNPS   // a week's NPS hash: its fields go to shard 0's NPS hash
)

// customerFamilies are the keys of layout 1 named {p}{family}{customer ID}.
var customerFamilies = []string{"c:", "stages:", "events:", "seen:", "lease:"}

// classify tells what becomes of key, a key under p of layout 1.
func classify(p, key string) migrateOp {
	rest := strings.TrimPrefix(key, p)
	op := migrateOp{key: key}
	switch {
	case rest == "due" || rest == "wake":
		op.kind, op.family = opIndex, rest
	case rest == "lock:requeue":
		op.kind, op.family = opDelete, rest
	case strings.HasPrefix(rest, "lease-fresh:"):
		op.kind, op.family = opDelete, "lease-fresh"
	case strings.HasPrefix(rest, "report:nps:"):
		op.kind, op.family, op.to = opNPS, "report", ShardPrefix(p, 0)+"report:nps"
	case strings.HasPrefix(rest, "report:"):
		op.kind, op.family, op.to = opRename, "report", ShardPrefix(p, 0)+rest
	case strings.HasPrefix(rest, "ledger:"):
		// ledger:{customer}:{campaign}:{enrollment}:{slug}: an ID may hold ':',
		// so the customer is what comes before the last three parts.
		body := strings.TrimPrefix(rest, "ledger:")
		customer := body
		for range 3 {
			i := strings.LastIndexByte(customer, ':')
			if i < 0 {
				return op // not a ledger entry: left alone
			}
			customer = customer[:i]
		}
		op.kind, op.family, op.to = opRename, "ledger", CustomerPrefix(p, customer)+rest
	default:
		for _, f := range customerFamilies {
			if id, ok := strings.CutPrefix(rest, f); ok {
				op.kind, op.family, op.to = opRename, strings.TrimSuffix(f, ":"), CustomerPrefix(p, id)+rest
				break
			}
		}
	}
	return op
}

// match is the SCAN pattern of the keys under p that are not of layout 2
// (whose names go on with a hash tag, "{").
func (m *migration) match() string { return globEscape(m.p) + "[^{]*" }

// count returns the work there is: the keys of layout 1, and the members of
// the two indexes.
func (m *migration) count(ctx context.Context) (int, error) {
	n := 0
	iter := m.rdb.Scan(ctx, 0, m.match(), int64(m.o.Batch)).Iterator()
	for iter.Next(ctx) {
		n++
		if op := classify(m.p, iter.Val()); op.kind == opIndex {
			members, err := m.rdb.ZCard(ctx, op.key).Result()
			if err != nil {
				return 0, fmt.Errorf("store: migrate: count %s: %w", op.key, err)
			}
			n += int(members)
		}
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("store: migrate: scan %s*: %w", m.p, err)
	}
	return n, nil
}

// run moves every key, a batch at a time.
func (m *migration) run(ctx context.Context) error {
	batch := make([]migrateOp, 0, m.o.Batch)
	var conflicts []migrateOp
	flush := func() error {
		c, err := m.apply(ctx, batch)
		if err != nil {
			return err
		}
		conflicts = append(conflicts, c...)
		m.advance(len(batch))
		batch = batch[:0]
		return nil
	}
	iter := m.rdb.Scan(ctx, 0, m.match(), int64(m.o.Batch)).Iterator()
	for iter.Next(ctx) {
		op := classify(m.p, iter.Val())
		switch op.kind {
		case opKeep:
			m.st.Kept++
			m.advance(1)
		case opIndex:
			if err := m.moveIndex(ctx, op); err != nil {
				return err
			}
		case opNPS:
			conflict, err := m.moveNPS(ctx, op)
			if err != nil {
				return err
			}
			if conflict {
				conflicts = append(conflicts, op)
			}
		default:
			batch = append(batch, op)
			if len(batch) == m.o.Batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("store: migrate: scan %s*: %w", m.p, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if len(conflicts) > 0 {
		c := conflicts[0]
		return fmt.Errorf("%w: %d keys were not moved because their layout-2 name is taken, such as %s (its layout-2 name %s exists): nothing is moved over a key or merged into one; compare the two, delete the one that is wrong and run the migration again", ErrMigrateConflict, len(conflicts), c.key, c.to)
	}
	return nil
}

// advance adds n units of work done and reports progress.
func (m *migration) advance(n int) {
	m.done += n
	if m.o.Progress != nil && n > 0 {
		m.o.Progress(m.done, max(m.total, m.done))
	}
}

// apply renames and deletes the keys of ops in one pipeline (with DryRun, only
// checks that the new names are free), and returns the renames whose new name
// was taken.
func (m *migration) apply(ctx context.Context, ops []migrateOp) ([]migrateOp, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	cmds := make([]redis.Cmder, len(ops))
	// Each command's own error is read below: a rename whose key is gone fails
	// alone, and an error of the connection fails them all.
	_, _ = m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, op := range ops {
			switch {
			case m.o.DryRun && op.kind == opRename:
				cmds[i] = p.Exists(ctx, op.to)
			case m.o.DryRun:
				cmds[i] = p.Exists(ctx, op.key)
			case op.kind == opRename:
				cmds[i] = p.RenameNX(ctx, op.key, op.to)
			default:
				cmds[i] = p.Unlink(ctx, op.key)
			}
		}
		return nil
	})
	var conflicts []migrateOp
	for i, op := range ops {
		var ok bool
		switch c := cmds[i].(type) {
		case *redis.BoolCmd: // RENAMENX: false when the new name is taken
			if isNoSuchKey(c.Err()) {
				m.st.Gone++
				continue
			}
			if c.Err() != nil {
				return conflicts, fmt.Errorf("store: migrate: rename %s to %s: %w", op.key, op.to, c.Err())
			}
			if !c.Val() {
				conflicts = append(conflicts, op)
				continue
			}
			ok = true
		case *redis.IntCmd: // UNLINK, or EXISTS in a dry run
			if c.Err() != nil {
				return conflicts, fmt.Errorf("store: migrate: %s: %w", op.key, c.Err())
			}
			switch {
			case m.o.DryRun && op.kind == opRename && c.Val() > 0:
				conflicts = append(conflicts, op)
				continue
			case op.kind == opDelete && c.Val() == 0:
				m.st.Gone++
				continue
			}
			ok = true
		}
		if ok && op.kind == opRename {
			m.st.Moved[op.family]++
		} else if ok {
			m.st.Deleted[op.family]++
		}
	}
	return conflicts, nil
}

// moveNPS turns op.key, a week's NPS hash of layout 1, into the fields
// "WEEK|bucket" of op.to, shard 0's NPS hash, and deletes it, in one
// MULTI/EXEC. It reports a conflict, and changes nothing, when op.to has one
// of those fields already.
func (m *migration) moveNPS(ctx context.Context, op migrateOp) (conflict bool, err error) {
	week := strings.TrimPrefix(op.key, m.p+"report:nps:")
	h, err := m.rdb.HGetAll(ctx, op.key).Result()
	if err != nil {
		return false, fmt.Errorf("store: migrate: read %s: %w", op.key, err)
	}
	if len(h) == 0 {
		m.st.Gone++
		m.advance(1)
		return false, nil
	}
	fields := make([]string, 0, len(h))
	values := make([]any, 0, 2*len(h))
	for bucket, n := range h {
		fields = append(fields, week+"|"+bucket)
		values = append(values, week+"|"+bucket, n)
	}
	taken, err := m.rdb.HMGet(ctx, op.to, fields...).Result()
	if err != nil {
		return false, fmt.Errorf("store: migrate: read %s: %w", op.to, err)
	}
	for _, v := range taken {
		if v != nil {
			m.advance(1)
			return true, nil
		}
	}
	if !m.o.DryRun {
		_, err = m.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, op.to, values...)
			p.Del(ctx, op.key)
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("store: migrate: move %s into %s: %w", op.key, op.to, err)
		}
	}
	m.st.Moved[op.family]++
	m.advance(1)
	return false, nil
}

// isNoSuchKey tells RENAME's error for a source key that does not exist.
func isNoSuchKey(err error) bool { return err != nil && strings.Contains(err.Error(), "no such key") }

// moveIndex adds every member of the index op.key (due or wake of layout 1)
// to the index of the same name of its shard, with its score, and deletes
// op.key once all are there. Run again after an interruption, it adds the
// same members again, which changes nothing.
func (m *migration) moveIndex(ctx context.Context, op migrateOp) error {
	if m.o.DryRun {
		n, err := m.rdb.ZCard(ctx, op.key).Result()
		if err != nil {
			return fmt.Errorf("store: migrate: count %s: %w", op.key, err)
		}
		m.st.Members[op.family] += int(n)
		m.advance(int(n) + 1)
		return nil
	}
	var cursor uint64
	for {
		page, next, err := m.rdb.ZScan(ctx, op.key, cursor, "", int64(m.o.Batch)).Result()
		if err != nil {
			return fmt.Errorf("store: migrate: read %s: %w", op.key, err)
		}
		shards := map[int][]redis.Z{}
		for i := 0; i+1 < len(page); i += 2 {
			score, err := strconv.ParseFloat(page[i+1], 64)
			if err != nil {
				return fmt.Errorf("store: migrate: %s: member %q has score %q: %w", op.key, page[i], page[i+1], err)
			}
			shard := ShardOf(page[i])
			shards[shard] = append(shards[shard], redis.Z{Member: page[i], Score: score})
		}
		if len(shards) > 0 {
			_, err = m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for shard, zs := range shards {
					p.ZAdd(ctx, ShardPrefix(m.p, shard)+op.family, zs...)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("store: migrate: copy %s into the shards' indexes: %w", op.key, err)
			}
		}
		m.st.Members[op.family] += len(page) / 2
		m.advance(len(page) / 2)
		if cursor = next; cursor == 0 {
			break
		}
	}
	if err := m.rdb.Unlink(ctx, op.key).Err(); err != nil {
		return fmt.Errorf("store: migrate: delete %s: %w", op.key, err)
	}
	m.advance(1)
	return nil
}
