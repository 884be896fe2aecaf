package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// replicated starts a primary and a replica of it, each a redis-server of the
// test's own, and waits until the replica is in sync.
func replicated(t *testing.T) (primary, replica *redistest.Server) {
	t.Helper()
	primary = redistest.StartServer(t, "--repl-diskless-sync-delay", "0")
	host, port, _ := strings.Cut(primary.Addr, ":")
	replica = redistest.StartServer(t, "--replicaof", host, port)
	c := primary.Client(t)
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			return primary, replica
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not come online:\n%s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDurableFenceWaitsForTheReplica: with Durability, a send passes its
// fence only once its claim is on the replica; with the replica gone it does
// not pass (nothing is sent whose claim a failover could lose), and an
// outcome written then is reported as not durable.
func TestDurableFenceWaitsForTheReplica(t *testing.T) {
	primary, replica := replicated(t)
	ctx := context.Background()
	rdb := primary.Client(t)
	l := newLedger(rdb, "t:", time.Minute, time.Hour,
		&Durability{Replicas: 1, Timeout: 5 * time.Second}) // a loaded machine acks slowly
	j := &job{ledgerKey: l.key("c1", "onboarding", 1, "welcome"), claim: claimValue("w", store.NewToken())}
	if f, err := l.peekAll(ctx, []*job{j}); err != nil || f[0].state != "" {
		t.Fatalf("peek: %+v %v", f, err)
	}
	if f, err := l.fence(ctx, j); err != nil || f != nil {
		t.Fatalf("fence with the replica up: %+v %v; want go", f, err)
	}
	if got, _ := replica.Client(t).Get(ctx, j.ledgerKey).Result(); got != j.claim {
		t.Errorf("the replica holds %q when the fence passed, want the claim", got)
	}
	j.out = &outcome{result: lifecycle.OutcomeSent}
	if err := l.record(ctx, j); err != nil {
		t.Fatalf("record with the replica up: %v", err)
	}

	replica.Kill()
	l.durable.Timeout = 300 * time.Millisecond
	k := &job{ledgerKey: l.key("c2", "onboarding", 1, "welcome"), claim: claimValue("w", store.NewToken())}
	start := time.Now()
	if f, err := l.fence(ctx, k); err == nil || f != nil || !strings.Contains(err.Error(), "not durable") {
		t.Fatalf("fence without the replica: %+v %v; want an error: not durable", f, err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the fence waited %v, want about its 300ms timeout", waited)
	}
	k.out = &outcome{result: lifecycle.OutcomeSent}
	if err := l.record(ctx, k); !errors.Is(err, errNotDurable) {
		t.Errorf("record without the replica: %v, want errNotDurable", err)
	}
}

// TestDurableFollowSendsOnWithoutAReplica: with Follow, claims wait for the
// replica while it is online; while none is (a failover promoted it), sends
// go on without a WAIT, and once one is back they wait for it again.
func TestDurableFollowSendsOnWithoutAReplica(t *testing.T) {
	primary, replica := replicated(t)
	ctx := t.Context()
	rdb := primary.Client(t)
	d := &Durability{Replicas: 1, Timeout: 5 * time.Second, Follow: true}
	changes := make(chan int, 8)
	if err := d.Watch(ctx, rdb, 20*time.Millisecond, func(n int) { changes <- n }); err != nil {
		t.Fatal(err)
	}
	l := newLedger(rdb, "t:", time.Minute, time.Hour, d)
	send := func(customer string) *job {
		t.Helper()
		j := &job{ledgerKey: l.key(customer, "onboarding", 1, "welcome"), claim: claimValue("w", store.NewToken())}
		if f, err := l.fence(ctx, j); err != nil || f != nil {
			t.Fatalf("fence of %s: %+v %v; want go", customer, f, err)
		}
		j.out = &outcome{result: lifecycle.OutcomeSent}
		if err := l.record(ctx, j); err != nil {
			t.Fatalf("record of %s: %v", customer, err)
		}
		return j
	}
	waitChange := func(want int) {
		t.Helper()
		select {
		case n := <-changes:
			if n != want {
				t.Fatalf("Watch saw %d replicas online, want %d", n, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("Watch saw no change to %d replicas", want)
		}
	}

	j := send("c1")
	if got, _ := replica.Client(t).Get(ctx, j.ledgerKey).Result(); got != "sent" {
		t.Errorf("with the replica online, it holds %q after the record, want sent", got)
	}
	replica.Kill()
	waitChange(0)
	send("c2") // no WAIT: it would fail, as in TestDurableFenceWaitsForTheReplica
	if err := replica.Restart(); err != nil {
		t.Fatal(err)
	}
	waitChange(1)
	k := send("c3")
	if got, _ := replica.Client(t).Get(ctx, k.ledgerKey).Result(); got != "sent" {
		t.Errorf("with the replica back, it holds %q after the record, want sent", got)
	}
}

// TestDurableLedgerOnCluster: on Redis Cluster the ledger's fences and
// outcomes, for keys on every master, go to the master that holds them with a
// WAIT on the same connection, so each is on that master's replica when the
// fence passes and when the outcome is written; Follow counts the replicas of
// the master that has fewest.
func TestDurableLedgerOnCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx := t.Context()
	rdb := c.Client(t)
	d := &Durability{Replicas: 1, Timeout: 5 * time.Second, Follow: true}
	if err := d.Watch(ctx, rdb, time.Hour, func(int) {}); err != nil {
		t.Fatal(err)
	}
	if d.want() != 1 {
		t.Fatalf("Follow sees %d replicas to wait for on a Cluster with one per master, want 1", d.want())
	}
	l := newLedger(rdb, "t:", time.Minute, time.Hour, d)
	jobs := make([]*job, 30)
	masters := map[string]bool{}
	for i := range jobs {
		jobs[i] = &job{ledgerKey: l.key(fmt.Sprintf("c%d", i), "onboarding", 1, "welcome"), claim: claimValue("w", store.NewToken())}
		m, err := c.MasterOf(ctx, jobs[i].ledgerKey)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("the ledger keys are on %d masters, want all 3", len(masters))
	}
	replicaOf := func(key string) *redistest.Server {
		t.Helper()
		m, err := c.MasterOf(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range c.Masters {
			if s == m {
				return c.Replicas[i]
			}
		}
		t.Fatalf("%s is served by %s, not one of the masters as started", key, m.Addr)
		return nil
	}
	var wg sync.WaitGroup
	for _, j := range jobs { // at once, so that their fences and outcomes share pipelines
		wg.Go(func() {
			if f, err := l.fence(ctx, j); err != nil || f != nil {
				t.Errorf("fence %s: %+v %v", j.ledgerKey, f, err)
				return
			}
			// READONLY: a replica answers reads of the slots it copies.
			r := redis.NewClient(&redis.Options{Addr: replicaOf(j.ledgerKey).Addr, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
				return cn.ReadOnly(ctx).Err()
			}})
			defer r.Close()
			if got, _ := r.Get(ctx, j.ledgerKey).Result(); got != j.claim {
				t.Errorf("when the fence of %s passed, its master's replica held %q, want the claim", j.ledgerKey, got)
			}
			j.out = &outcome{result: lifecycle.OutcomeSent}
			if err := l.record(ctx, j); err != nil {
				t.Errorf("record %s: %v", j.ledgerKey, err)
				return
			}
			if got, _ := r.Get(ctx, j.ledgerKey).Result(); got != "sent" {
				t.Errorf("when the outcome of %s was written, its master's replica held %q, want sent", j.ledgerKey, got)
			}
		})
	}
	wg.Wait()
}

// BenchmarkLedgerSend measures the ledger's part of one send — read, fence,
// record — on a primary with one replica (both redis-servers of the
// benchmark's own, on this machine), without and with Durability (a WAIT 1 in
// the fence's and the record's round trip).
func BenchmarkLedgerSend(b *testing.B) {
	primary := redistest.StartServer(b, "--repl-diskless-sync-delay", "0")
	host, port, _ := strings.Cut(primary.Addr, ":")
	redistest.StartServer(b, "--replicaof", host, port)
	rdb := primary.Client(b)
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, _ := rdb.Info(ctx, "replication").Result()
		if strings.Contains(info, "state=online") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the replica did not come online")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, bc := range []struct {
		name    string
		durable *Durability
	}{{"memory", nil}, {"wait-replica", &Durability{Replicas: 1, Timeout: time.Second}}} {
		b.Run(bc.name, func(b *testing.B) {
			l := newLedger(rdb, "bench:"+store.NewToken()+":", time.Minute, time.Minute, bc.durable)
			i := 0
			for b.Loop() {
				i++
				j := &job{ledgerKey: l.key("c", "onboarding", i, "welcome"), claim: claimValue("w", "t")}
				if _, err := l.peekAll(ctx, []*job{j}); err != nil {
					b.Fatal(err)
				}
				if f, err := l.fence(ctx, j); err != nil || f != nil {
					b.Fatal(f, err)
				}
				j.out = &outcome{result: lifecycle.OutcomeSent}
				if err := l.record(ctx, j); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
