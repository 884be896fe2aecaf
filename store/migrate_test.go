package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
)

// layout1 is a data set in layout 1 under p, written by hand as a retain of
// that layout left it: two customers (one whose ID holds ':'), their indexes,
// a lease, a fresh-lease mark and the requeue lock, a ledger entry, report
// counters and the keys that keep their names.
type layout1 struct {
	// moves maps each key that moves to its name in layout 2.
	moves map[string]string
	// kept are the keys that keep their names; deleted those that go.
	kept, deleted []string
	// due and wake are the indexes' members and scores.
	due, wake map[string]float64
	// ttl are the keys written with a time to live, by their layout-1 name.
	ttl map[string]time.Duration
	// nps are the fields layout 2's NPS hash holds after the migration of the
	// weekly NPS hashes.
	nps map[string]string
}

const leasedOffset = 1 << 44 // a due score while a lease holds the customer

func writeLayout1(t *testing.T, rdb *redis.Client, p string) layout1 {
	t.Helper()
	ctx := t.Context()
	c := func(id string) string { return CustomerPrefix(p, id) }
	d := layout1{
		moves: map[string]string{
			p + "c:cus:1":                           c("cus:1") + "c:cus:1",
			p + "stages:cus:1":                      c("cus:1") + "stages:cus:1",
			p + "events:cus:1":                      c("cus:1") + "events:cus:1",
			p + "seen:cus:1":                        c("cus:1") + "seen:cus:1",
			p + "lease:cus:1":                       c("cus:1") + "lease:cus:1",
			p + "c:bob":                             c("bob") + "c:bob",
			p + "seen:bob":                          c("bob") + "seen:bob",
			p + "ledger:cus:1:onboarding:1:welcome": c("cus:1") + "ledger:cus:1:onboarding:1:welcome",
			p + "ledger:bob:winback:3:come-back":    c("bob") + "ledger:bob:winback:3:come-back",
			p + "report:stages":                     ShardPrefix(p, 0) + "report:stages",
			p + "report:campaign:onboarding":        ShardPrefix(p, 0) + "report:campaign:onboarding",
			p + "report:goal:onboarding":            ShardPrefix(p, 0) + "report:goal:onboarding",
			p + "report:nps-answer:0a1b":            ShardPrefix(p, 0) + "report:nps-answer:0a1b",
		},
		kept: []string{p + "email:ann@example.com", p + "suppressed", p + "scheduler:tick", p + "stats:sends",
			p + "failed-events", p + "campaigns:deployed", p + "lock:sweep"},
		deleted: []string{p + "lease-fresh:tok-1", p + "lock:requeue"},
		due:     map[string]float64{},
		wake:    map[string]float64{},
		ttl: map[string]time.Duration{p + "lease:cus:1": time.Hour, p + "ledger:cus:1:onboarding:1:welcome": 48 * time.Hour,
			p + "lease-fresh:tok-1": time.Hour, p + "report:nps-answer:0a1b": 400 * 24 * time.Hour},
		nps: map[string]string{"2026-W09|promoters": "2", "2026-W09|detractors": "1", "2026-W10|passives": "4"},
	}
	base := float64(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli())
	for i := range 40 {
		id := fmt.Sprintf("cus:%d", i)
		d.wake[id] = base + float64(i)*1000
		if i%2 == 0 {
			d.due[id] = base + float64(i)
		}
	}
	d.due["cus:1"] = leasedOffset + base // leased now: the score keeps the offset
	d.wake["bob"] = base - 1

	_, err := rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		pp.Set(ctx, p+"layout", "1", 0)
		pp.Set(ctx, p+"c:cus:1", `{"id":"cus:1","stage":"onboarding"}`, 0)
		pp.RPush(ctx, p+"stages:cus:1", `{"to":"lead"}`, `{"from":"lead","to":"onboarding"}`)
		pp.LPush(ctx, p+"events:cus:1", `{"id":"e1","name":"signed_up"}`)
		pp.ZAdd(ctx, p+"seen:cus:1", redis.Z{Member: "e1", Score: base})
		pp.Set(ctx, p+"lease:cus:1", "tok-1", time.Hour)
		pp.Set(ctx, p+"c:bob", `{"id":"bob"}`, 0)
		pp.ZAdd(ctx, p+"seen:bob", redis.Z{Member: "b1", Score: base}, redis.Z{Member: "b2", Score: base + 1})
		pp.Set(ctx, p+"ledger:cus:1:onboarding:1:welcome", "sent|1772355600000", 48*time.Hour)
		pp.Set(ctx, p+"ledger:bob:winback:3:come-back", "failed", 0)
		pp.HSet(ctx, p+"report:stages", "onboarding", 1, "active", 1)
		pp.HSet(ctx, p+"report:campaign:onboarding", "enrolled", 2, "onboarding/welcome:sent", 1)
		pp.ZAdd(ctx, p+"report:goal:onboarding", redis.Z{Member: "cus:1:1", Score: 86400})
		pp.HSet(ctx, p+"report:nps:2026-W09", "promoters", 2, "detractors", 1)
		pp.HSet(ctx, p+"report:nps:2026-W10", "passives", 4)
		pp.Set(ctx, p+"report:nps-answer:0a1b", "1772355600000|2026-W09|promoters", 400*24*time.Hour)
		pp.Set(ctx, p+"email:ann@example.com", "cus:1", 0)
		pp.HSet(ctx, p+"suppressed", "eve@example.com", `{"reason":"bounce"}`)
		pp.Set(ctx, p+"scheduler:tick", time.Now().Add(-2*time.Hour).UnixMilli(), 0)
		pp.HSet(ctx, p+"stats:sends", "sent", 3)
		pp.LPush(ctx, p+"failed-events", `{"id":"f1"}`)
		pp.Set(ctx, p+"campaigns:deployed", `{"hash":"x"}`, 0)
		pp.Set(ctx, p+"lock:sweep", "owner", 0)
		pp.Set(ctx, p+"lease-fresh:tok-1", "1", time.Hour)
		pp.Set(ctx, p+"lock:requeue", "owner", 0)
		for _, idx := range []struct {
			key string
			m   map[string]float64
		}{{p + "due", d.due}, {p + "wake", d.wake}} {
			for id, score := range idx.m {
				pp.ZAdd(ctx, idx.key, redis.Z{Member: id, Score: score})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	shards := map[int]bool{}
	for id := range d.due {
		shards[ShardOf(id)] = true
	}
	if len(shards) < 3 {
		t.Fatalf("the due index spans %d shards: pick other IDs", len(shards))
	}
	return d
}

// keysUnder lists every key under p, sorted.
func keysUnder(t *testing.T, rdb *redis.Client, p string) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(t.Context(), 0, globEscape(p)+"*", 1000).Iterator()
	for iter.Next(t.Context()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// dumps returns DUMP of each key: the serialized value, the same wherever
// the key is renamed to.
func dumps(t *testing.T, rdb *redis.Client, keys []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keys {
		v, err := rdb.Dump(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

// indexOf reads the members and scores of the index named name of every shard.
func indexOf(t *testing.T, rdb *redis.Client, p, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for shard := range Shards {
		zs, err := rdb.ZRangeWithScores(t.Context(), ShardPrefix(p, shard)+name, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zs {
			id := z.Member.(string)
			if ShardOf(id) != shard {
				t.Errorf("%s of shard %d holds %s, of shard %d", name, shard, id, ShardOf(id))
			}
			out[id] = z.Score
		}
	}
	return out
}

func TestMigrateMovesEveryKeyOfLayout1(t *testing.T) {
	rdb, p := redistest.New(t)
	ctx := t.Context()
	d := writeLayout1(t, rdb, p)
	var old []string
	for k := range d.moves {
		old = append(old, k)
	}
	before := dumps(t, rdb, append(old, d.kept...))

	var calls, lastDone, lastTotal int
	st, err := Migrate(ctx, rdb, p, MigrateOptions{Batch: 5, Progress: func(done, total int) {
		calls++
		if done < lastDone {
			t.Errorf("progress went back from %d to %d", lastDone, done)
		}
		lastDone, lastTotal = done, total
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := MigrateStats{From: 1,
		Moved:   map[string]int{"c": 2, "stages": 1, "events": 1, "seen": 2, "lease": 1, "ledger": 2, "report": 6},
		Members: map[string]int{"due": len(d.due), "wake": len(d.wake)},
		Deleted: map[string]int{"lease-fresh": 1, "lock:requeue": 1},
		Kept:    len(d.kept) + 1, // and the layout key
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if calls < 3 || lastDone != lastTotal || lastTotal != len(old)+len(d.kept)+len(d.deleted)+5+len(d.due)+len(d.wake) {
		t.Errorf("progress: %d calls, last %d of %d", calls, lastDone, lastTotal)
	}

	// Every key is where layout 2 puts it, with its value and time to live;
	// nothing else is left under the prefix.
	wantKeys := append([]string{p + "layout", ShardPrefix(p, 0) + "report:nps"}, d.kept...)
	for _, k := range d.moves {
		wantKeys = append(wantKeys, k)
	}
	for _, name := range []string{"due", "wake"} {
		for shard := range Shards {
			if n, _ := rdb.Exists(ctx, ShardPrefix(p, shard)+name).Result(); n == 1 {
				wantKeys = append(wantKeys, ShardPrefix(p, shard)+name)
			}
		}
	}
	slices.Sort(wantKeys)
	if diff := cmp.Diff(wantKeys, keysUnder(t, rdb, p)); diff != "" {
		t.Errorf("keys after the migration (-want +got):\n%s", diff)
	}
	for from, to := range d.moves {
		if got := dumps(t, rdb, []string{to})[to]; got != before[from] {
			t.Errorf("%s: value differs from %s's", to, from)
		}
		ttl, err := rdb.PTTL(ctx, to).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch want, ok := d.ttl[from]; {
		case ok && (ttl <= want-time.Minute || ttl > want):
			t.Errorf("%s: time to live %v, want about %v", to, ttl, want)
		case !ok && ttl != -1:
			t.Errorf("%s: time to live %v, want none", to, ttl)
		}
	}
	for _, k := range d.kept {
		if got := dumps(t, rdb, []string{k})[k]; got != before[k] {
			t.Errorf("%s changed", k)
		}
	}
	if diff := cmp.Diff(d.due, indexOf(t, rdb, p, "due")); diff != "" {
		t.Errorf("due indexes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(d.wake, indexOf(t, rdb, p, "wake")); diff != "" {
		t.Errorf("wake indexes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(d.nps, rdb.HGetAll(ctx, ShardPrefix(p, 0)+"report:nps").Val()); diff != "" {
		t.Errorf("NPS hash of shard 0 (-want +got):\n%s", diff)
	}
	if v := rdb.Get(ctx, p+"layout").Val(); v != "2" {
		t.Errorf("layout %q, want 2", v)
	}

	// A second run finds layout 2 and changes nothing.
	keys := keysUnder(t, rdb, p)
	after := dumps(t, rdb, keys)
	st, err = Migrate(ctx, rdb, p, MigrateOptions{})
	if err != nil || st.From != 2 || len(st.Moved) != 0 {
		t.Fatalf("second run: %+v, %v; want layout 2 found, nothing done", st, err)
	}
	if diff := cmp.Diff(after, dumps(t, rdb, keysUnder(t, rdb, p))); diff != "" {
		t.Errorf("the second run changed keys (-before +after):\n%s", diff)
	}
}

func TestMigrateWithoutLayoutKeyAndDryRun(t *testing.T) {
	rdb, p := redistest.New(t)
	ctx := t.Context()
	d := writeLayout1(t, rdb, p)
	rdb.Del(ctx, p+"layout") // written by a retain from before the layout key
	keys := keysUnder(t, rdb, p)
	before := dumps(t, rdb, keys)

	dry, err := Migrate(ctx, rdb, p, MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, dumps(t, rdb, keysUnder(t, rdb, p))); diff != "" {
		t.Fatalf("the dry run changed keys (-before +after):\n%s", diff)
	}
	st, err := Migrate(ctx, rdb, p, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dry.Kept++ // the real run wrote {p}layout "1" first, and SCAN saw it
	if diff := cmp.Diff(dry, st); diff != "" {
		t.Errorf("the dry run counted otherwise than the migration (-dry +real):\n%s", diff)
	}
	if st.Members["due"] != len(d.due) || rdb.Get(ctx, p+"layout").Val() != "2" {
		t.Errorf("stats %+v, layout %q", st, rdb.Get(ctx, p+"layout").Val())
	}
}

func TestMigrateResumesAfterAnInterruption(t *testing.T) {
	rdb, p := redistest.New(t)
	ctx := t.Context()
	const n = 300
	want := map[string]string{}
	due := map[string]float64{}
	_, err := rdb.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i := range n {
			id := "cus_" + strconv.Itoa(i)
			for _, f := range []string{"c:", "stages:", "seen:"} {
				pp.Set(ctx, p+f+id, f+id, 0)
				want[CustomerPrefix(p, id)+f+id] = f + id
			}
			due[id] = float64(i)
			pp.ZAdd(ctx, p+"due", redis.Z{Member: id, Score: float64(i)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The first run stops part way: its context ends after a few batches.
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err = Migrate(stop, rdb, p, MigrateOptions{Batch: 50, Progress: func(done, total int) {
		if done >= total/3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	if v := rdb.Get(ctx, p+"layout").Val(); v != "1" {
		t.Fatalf("after an interruption, layout %q: want 1, so that no process of layout 2 starts", v)
	}
	left := 0
	for _, k := range keysUnder(t, rdb, p) {
		if classify(p, k).kind != opKeep {
			left++
		}
	}
	if left == 0 || left >= 3*n+1 {
		t.Fatalf("%d keys of layout 1 left after the interruption: want some moved and some not", left)
	}

	st, err := Migrate(ctx, rdb, p, MigrateOptions{Batch: 50})
	if err != nil {
		t.Fatal(err)
	}
	moved := st.Moved["c"] + st.Moved["stages"] + st.Moved["seen"]
	if moved >= 3*n || moved == 0 {
		t.Errorf("the second run moved %d keys: want those the first left", moved)
	}
	for k, v := range want {
		if got := rdb.Get(ctx, k).Val(); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if diff := cmp.Diff(due, indexOf(t, rdb, p, "due")); diff != "" {
		t.Errorf("due indexes (-want +got):\n%s", diff)
	}
	for _, k := range keysUnder(t, rdb, p) {
		if !strings.HasPrefix(k, p+"{") && k != p+"layout" {
			t.Errorf("%s is left in layout 1", k)
		}
	}
	if v := rdb.Get(ctx, p+"layout").Val(); v != "2" {
		t.Errorf("layout %q, want 2", v)
	}
}

func TestMigrateRefusesConflictsRunningProcessesAndOtherLayouts(t *testing.T) {
	ctx := t.Context()
	t.Run("report counters in shard 0 already", func(t *testing.T) {
		rdb, p := redistest.New(t)
		rdb.HSet(ctx, p+"report:stages", "active", 5)
		rdb.HSet(ctx, ShardPrefix(p, 0)+"report:stages", "active", 1)
		rdb.Set(ctx, p+"c:ann", "{}", 0)
		rdb.HSet(ctx, p+"report:nps:2026-W09", "promoters", 5, "passives", 1)
		rdb.HSet(ctx, ShardPrefix(p, 0)+"report:nps", "2026-W09|passives", 2)
		for _, dry := range []bool{true, false} {
			_, err := Migrate(ctx, rdb, p, MigrateOptions{DryRun: dry})
			if !errors.Is(err, ErrMigrateConflict) || !strings.Contains(err.Error(), "2 keys") {
				t.Fatalf("dry run %v: %v, want ErrMigrateConflict for 2 keys", dry, err)
			}
		}
		if rdb.HGet(ctx, p+"report:stages", "active").Val() != "5" || rdb.HGet(ctx, ShardPrefix(p, 0)+"report:stages", "active").Val() != "1" {
			t.Error("the counters were moved or merged")
		}
		if rdb.HLen(ctx, p+"report:nps:2026-W09").Val() != 2 || rdb.HLen(ctx, ShardPrefix(p, 0)+"report:nps").Val() != 1 {
			t.Error("the NPS counts were moved or merged")
		}
		if v := rdb.Get(ctx, p+"layout").Val(); v != "1" {
			t.Errorf("layout %q, want 1", v)
		}
	})
	t.Run("a scheduler ticked", func(t *testing.T) {
		rdb, p := redistest.New(t)
		rdb.Set(ctx, p+"c:ann", "{}", 0)
		rdb.Set(ctx, p+"scheduler:tick", time.Now().Add(-5*time.Second).UnixMilli(), 0)
		if _, err := Migrate(ctx, rdb, p, MigrateOptions{}); !errors.Is(err, ErrProcessesRunning) {
			t.Fatalf("got %v, want ErrProcessesRunning", err)
		}
		if rdb.Exists(ctx, p+"c:ann").Val() != 1 {
			t.Fatal("a key moved")
		}
		if _, err := Migrate(ctx, rdb, p, MigrateOptions{Force: true}); err != nil {
			t.Fatalf("forced: %v", err)
		}
		if rdb.Exists(ctx, CustomerPrefix(p, "ann")+"c:ann").Val() != 1 {
			t.Error("forced: the customer did not move")
		}
	})
	t.Run("a Redis Cluster", func(t *testing.T) {
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}) // never dialed
		defer rdb.Close()
		if _, err := Migrate(ctx, rdb, "", MigrateOptions{}); !errors.Is(err, ErrMigrateCluster) {
			t.Fatalf("got %v, want ErrMigrateCluster", err)
		}
	})
	t.Run("a later layout", func(t *testing.T) {
		rdb, p := redistest.New(t)
		rdb.Set(ctx, p+"layout", "3", 0)
		if _, err := Migrate(ctx, rdb, p, MigrateOptions{}); !errors.Is(err, ErrLayout) {
			t.Fatalf("got %v, want ErrLayout", err)
		}
	})
}

func TestMigrateClassifiesLedgerKeysByTheirLastThreeParts(t *testing.T) {
	p := "retain:"
	for key, want := range map[string]string{
		"retain:ledger:a:b:c:onboarding:2:welcome": CustomerPrefix(p, "a:b:c") + "ledger:a:b:c:onboarding:2:welcome",
		"retain:ledger::onboarding:2:welcome":      CustomerPrefix(p, "") + "ledger::onboarding:2:welcome",
		"retain:ledger:onboarding:2":               "", // not a ledger entry: left alone
		"retain:lease-fresh:t":                     "",
		"retain:email:a@b.c":                       "",
	} {
		if got := classify(p, key).to; got != want {
			t.Errorf("classify(%q) = %q, want %q", key, got, want)
		}
	}
}
