package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestSentinelFailover: a failover client of the deployment keeps what it
// wrote (and the replica acknowledged) across a crash of the master, once the
// sentinels have promoted the replica.
func TestSentinelFailover(t *testing.T) {
	start := time.Now()
	s := StartSentinel(t)
	t.Logf("StartSentinel took %.1fs", time.Since(start).Seconds())
	ctx := context.Background()

	opt, err := redis.ParseFailoverURL(s.URL(0))
	if err != nil {
		t.Fatalf("ParseFailoverURL(%q): %v", s.URL(0), err)
	}
	if opt.MasterName != s.MasterName || len(opt.SentinelAddrs) != len(s.Sentinels) {
		t.Fatalf("URL %q parses to master %q, sentinels %v; want %q, %v", s.URL(0), opt.MasterName, opt.SentinelAddrs, s.MasterName, s.Addrs())
	}

	from, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if from != s.Master.Addr {
		t.Fatalf("the sentinels report the master at %s, want %s", from, s.Master.Addr)
	}

	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs()})
	defer c.Close()
	// WAIT counts the acknowledgements of the connection's own writes: the
	// pipeline sends SET and WAIT on one connection.
	var wait *redis.Cmd
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k", "v", 0)
		wait = p.Do(ctx, "WAIT", 1, 5000) // milliseconds
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := wait.Int64(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas acknowledged the write (%v), want 1", n, err)
	}

	s.KillMaster(t)
	killed := time.Now()
	to := s.WaitFailover(t, from, 15*time.Second)
	t.Logf("failover from %s to %s took %.1fs", from, to, time.Since(killed).Seconds())
	if to != s.Replica.Addr {
		t.Fatalf("the sentinels promoted %s, want the replica %s", to, s.Replica.Addr)
	}

	var got string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if got, err = c.Get(ctx, "k").Result(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET through the failover client after the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != "v" {
		t.Errorf("GET k = %q after the failover, want %q", got, "v")
	}
	t.Logf("the failover client read the key %.1fs after the kill", time.Since(killed).Seconds())
}
