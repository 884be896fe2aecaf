package redistest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCluster: a cluster client of the cluster spreads keys over the three
// masters, refuses a transaction across slots and runs one inside a hash tag,
// and reads what it wrote (and the replica had) again once the cluster has
// promoted the replica of a master that crashed.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := StartCluster(t)
	t.Logf("StartCluster took %.1fs: masters %v, replicas %v", time.Since(start).Seconds(), addrsOf(c.Masters), addrsOf(c.Replicas))
	ctx := context.Background()

	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("ParseClusterURL(%q): %v", c.URL(), err)
	}
	if !slices.Equal(opt.Addrs, c.Addrs()) || len(opt.Addrs) != 6 {
		t.Fatalf("URL %q parses to the seeds %v, want the six nodes %v", c.URL(), opt.Addrs, c.Addrs())
	}

	cc := c.Client(t)
	for i := range 100 {
		if err := cc.Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i), 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	count := map[*Server]int{}
	byMaster := map[*Server][]string{}
	for i := range 100 {
		key := fmt.Sprintf("k%d", i)
		if got, err := cc.Get(ctx, key).Result(); err != nil || got != fmt.Sprintf("v%d", i) {
			t.Fatalf("GET %s = %q, %v; want %q", key, got, err, fmt.Sprintf("v%d", i))
		}
		m, err := c.MasterOf(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(c.Masters, m) {
			t.Fatalf("MasterOf(%s) = %s, not one of the masters %v", key, m.Addr, addrsOf(c.Masters))
		}
		count[m]++
		byMaster[m] = append(byMaster[m], key)
	}
	for i, m := range c.Masters {
		t.Logf("master %d (%s): %d of the 100 keys", i, m.Addr, count[m])
		if count[m] == 0 {
			t.Errorf("the master %s serves none of the 100 keys", m.Addr)
		}
	}

	// A transaction across slots: go-redis refuses it before sending it.
	_, err = cc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		p.Set(ctx, "b", "2", 0)
		return nil
	})
	if !isCrossSlot(err) {
		t.Errorf("MULTI SET a SET b through the cluster client: %v, want CROSSSLOT", err)
	}
	if n, err := cc.Exists(ctx, "a").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS a = %d, %v after the refused transaction, want 0", n, err)
	}
	// The server refuses it too, when both keys are on the node it is sent
	// to: two keys of one master in different slots.
	m := c.Masters[0]
	k1, k2 := twoSlots(t, cc, byMaster[m])
	_, err = m.Client(t).TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, k1, "x", 0)
		p.Set(ctx, k2, "x", 0)
		return nil
	})
	if !isCrossSlot(err) {
		t.Errorf("MULTI SET %s SET %s on %s: %v, want CROSSSLOT", k1, k2, m.Addr, err)
	}

	// A transaction inside a hash tag.
	if _, err := cc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{t}a", "va", 0)
		p.Set(ctx, "{t}b", "vb", 0)
		return nil
	}); err != nil {
		t.Fatalf("MULTI SET {t}a SET {t}b: %v", err)
	}
	if got, err := cc.MGet(ctx, "{t}a", "{t}b").Result(); err != nil || len(got) != 2 || got[0] != "va" || got[1] != "vb" {
		t.Fatalf("MGET {t}a {t}b = %q, %v; want [va vb]", got, err)
	}

	// A failover.
	from, err := c.MasterOf(ctx, "{t}a")
	if err != nil {
		t.Fatal(err)
	}
	replica := c.Replicas[slices.Index(c.Masters, from)]
	waitReplicaCaughtUp(t, from, replica)
	from.Kill()
	killed := time.Now()
	for deadline := killed.Add(15 * time.Second); ; {
		now, err := c.MasterOf(ctx, "{t}a")
		if err == nil && now == replica {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not promote the replica %s of the killed master %s within 15s: MasterOf({t}a) = %v, %v", replica.Addr, from.Addr, now, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the cluster promoted the replica %s of the killed master %s %.1fs after the kill", replica.Addr, from.Addr, time.Since(killed).Seconds())
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if got, err = cc.Get(ctx, "{t}a").Result(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET {t}a through the cluster client after the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != "va" {
		t.Errorf("GET {t}a = %q after the failover, want %q", got, "va")
	}
	t.Logf("the cluster client read {t}a %.1fs after the kill", time.Since(killed).Seconds())
}

// isCrossSlot tells whether err is go-redis's or the server's refusal of
// keys of several slots in one command or transaction.
func isCrossSlot(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrCrossSlot) || strings.Contains(err.Error(), "CROSSSLOT"))
}

// twoSlots returns two of keys in different slots.
func twoSlots(t *testing.T, cc *redis.ClusterClient, keys []string) (string, string) {
	t.Helper()
	seen := map[int64]string{}
	for _, k := range keys {
		slot, err := cc.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for s, other := range seen {
			if s != slot {
				return other, k
			}
		}
		seen[slot] = k
	}
	t.Fatalf("the keys %v are all in one slot", keys)
	return "", ""
}

// waitReplicaCaughtUp waits until the replica has processed everything the
// master has written to its replication stream.
func waitReplicaCaughtUp(t *testing.T, master, replica *Server) {
	t.Helper()
	ctx := context.Background()
	mc, rc := master.Client(t), replica.Client(t)
	for deadline := time.Now().Add(5 * time.Second); ; {
		m, merr := mc.Info(ctx, "replication").Result()
		r, rerr := rc.Info(ctx, "replication").Result()
		mo, _ := strconv.ParseInt(infoFields(m)["master_repl_offset"], 10, 64)
		ro, _ := strconv.ParseInt(infoFields(r)["slave_repl_offset"], 10, 64)
		if merr == nil && rerr == nil && mo > 0 && ro >= mo {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica %s did not catch up with the master %s (%v, %v):\nmaster:\n%s\nreplica:\n%s", replica.Addr, master.Addr, merr, rerr, m, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeysAndDeleteOnCluster: Keys, deleteWhere, Delete and checkOwned read
// every master of a cluster, and delete keys of different slots.
func TestKeysAndDeleteOnCluster(t *testing.T) {
	c := StartCluster(t)
	cc := c.Client(t)
	ctx := t.Context()
	prefix := Prefix()
	for i := range 100 {
		if err := cc.Set(ctx, fmt.Sprintf("%sk%d", prefix, i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkOwned(ctx, cc); err != nil {
		t.Errorf("checkOwned with only the tests' keys: %v", err)
	}
	keys, err := Keys(ctx, cc, prefix)
	if err != nil || len(keys) != 100 {
		t.Fatalf("Keys = %d keys, %v; want the 100 written", len(keys), err)
	}
	if err := deleteWhere(ctx, cc, prefix, func(k string) bool { return !strings.HasSuffix(k, "7") }); err != nil {
		t.Fatalf("deleteWhere: %v", err)
	}
	if keys, err := Keys(ctx, cc, prefix); err != nil || len(keys) != 10 {
		t.Errorf("after deleting all but the keys ending in 7: %q, %v", keys, err)
	}
	if err := Delete(ctx, cc, prefix); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if keys, err := Keys(ctx, cc, prefix); err != nil || len(keys) != 0 {
		t.Errorf("after Delete: %q, %v", keys, err)
	}

	// Another application's keys: checkOwned names one.
	for i := range 30 {
		cc.Set(ctx, fmt.Sprintf("myapp:%d", i), "v", 0)
	}
	if err := checkOwned(ctx, cc); err == nil || !strings.Contains(err.Error(), `"myapp:`) {
		t.Errorf("checkOwned with another application's keys: %v", err)
	}
}
