package store

import (
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
)

// TestShardTagsSpreadOverSlots: shard i's tag hashes into the i-th sixteenth
// of Redis Cluster's 16384 slots, as Redis computes them.
func TestShardTagsSpreadOverSlots(t *testing.T) {
	rdb := redistest.StartCluster(t).Client(t)
	for i := range Shards {
		slot, err := rdb.ClusterKeySlot(t.Context(), ShardPrefix("retain:", i)+"due").Result()
		if err != nil {
			t.Fatal(err)
		}
		if lo, hi := int64(i*16384/Shards), int64((i+1)*16384/Shards); slot < lo || slot >= hi {
			t.Errorf("shard %d (tag %q) hashes to slot %d, want [%d, %d)", i, shardTags[i], slot, lo, hi)
		}
	}
}

// TestStoreOnCluster runs the store's writes on Redis Cluster, where a
// transaction or script may only touch keys of one hash slot: customers
// created and updated (their email addresses too), claimed, held, released
// and written back in batches, swept by time rules, and deleted.
func TestStoreOnCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	rdb := c.Client(t)
	ctx := t.Context()
	st := New(rdb, "t:")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	const n = 64
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("cus_%d", i)
		err := st.Update(ctx, ids[i], "ev-"+ids[i], func(*lifecycle.Customer) (*Change, error) {
			return &Change{Customer: &lifecycle.Customer{ID: ids[i], Email: ids[i] + "@example.com", Stage: "lead"},
				Event: &lifecycle.Event{ID: "ev-" + ids[i], Name: "signed_up", At: now},
				Wake:  now.Add(-time.Minute), Due: now.Add(-time.Duration(i) * time.Second)}, nil
		})
		if err != nil {
			t.Fatalf("create %s: %v", ids[i], err)
		}
	}
	masters := map[string]bool{}
	for _, id := range ids {
		m, err := c.MasterOf(ctx, st.customerKey(id))
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("the customers are on %d masters, want all 3", len(masters))
	}
	if err := st.Update(ctx, ids[1], "", func(c *lifecycle.Customer) (*Change, error) {
		c.Email = ids[0] + "@example.com"
		return &Change{Customer: c}, nil
	}); err == nil {
		t.Error("a second customer took an address in use")
	}

	// Every due customer is claimed once, a shard per lease, and written back.
	claimed := map[string]bool{}
	for {
		l, err := st.ClaimDue(ctx, now, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			break
		}
		if l, err = st.TakeLease(ctx, l); err != nil || l == nil {
			t.Fatalf("take lease: %v %v", l, err)
		}
		if l, err = st.HoldLease(ctx, l); err != nil || l == nil {
			t.Fatalf("hold lease: %v %v", l, err)
		}
		for _, id := range l.IDs {
			if claimed[id] {
				t.Errorf("%s claimed twice", id)
			}
			claimed[id] = true
		}
		err = st.UpdateMany(ctx, l.IDs, func(c *lifecycle.Customer) (*Change, error) {
			c.Stage = "onboarding"
			return &Change{Customer: c, Wake: now.Add(-time.Minute), Due: now.Add(24 * time.Hour)}, nil
		})
		if err != nil {
			t.Fatalf("write back: %v", err)
		}
		if err := st.EndLease(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if len(claimed) != n {
		t.Errorf("claimed %d customers, want %d", len(claimed), n)
	}
	if next, err := st.NextDueAt(ctx); err != nil || !next.Equal(now.Add(24*time.Hour)) {
		t.Errorf("NextDueAt = %v, %v; want a day later", next, err)
	}
	if k, err := st.RequeueLost(ctx, time.Millisecond); err != nil || k != 0 {
		t.Errorf("RequeueLost = %d, %v; want 0", k, err)
	}

	// A sweep of every wake time; a delete.
	swept, err := st.Sweep(ctx, now, 0, func(c *lifecycle.Customer) (*Change, error) {
		c.Stage = "active"
		return &Change{Customer: c, Due: now.Add(24 * time.Hour)}, nil
	})
	if err != nil || swept != n {
		t.Errorf("Sweep = %d, %v; want %d", swept, err, n)
	}
	if err := st.Delete(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.CountCustomers(ctx); got != 0 {
		t.Errorf("CountCustomers after the sweep cleared every wake = %d, want 0", got)
	}
	c1, err := st.CustomerByEmail(ctx, ids[1]+"@example.com")
	if err != nil || c1.Stage != "active" {
		t.Errorf("customer 1 by email: %+v, %v; want active", c1, err)
	}
}

// TestShardOfIsFNV1a: ShardOf is hash/fnv's 32-bit FNV-1a modulo Shards; the
// shard of every stored customer depends on it never changing.
func TestShardOfIsFNV1a(t *testing.T) {
	for _, id := range []string{"", "c1", "cus_42", "cus:1", "ünïcode", strings.Repeat("x", 300)} {
		h := fnv.New32a()
		h.Write([]byte(id))
		if got, want := ShardOf(id), int(h.Sum32()%Shards); got != want {
			t.Errorf("ShardOf(%q) = %d, want %d", id, got, want)
		}
	}
	if ShardOf("c2") != 0 || ShardOf("c1") != 9 {
		t.Errorf("ShardOf(c2), ShardOf(c1) = %d, %d; want 0, 9 as in layout 2's first data", ShardOf("c2"), ShardOf("c1"))
	}
}
