package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Sentinel deployment a test started for itself on free ports: a
// master, one replica and three sentinels watching them under MasterName, each
// a redis-server of the test's own, all stopped at cleanup.
//
// Master and Replica are the servers as started: after a failover the replica
// is the master (MasterAddr says which one is now). Sentinels are the three
// sentinel processes (Kill and Restart work on them as on any Server); Addrs
// lists their addresses.
type Sentinel struct {
	MasterName      string
	Master, Replica *Server
	Sentinels       []*Server
}

// The sentinels' settings: a master that does not answer for downAfter is
// down, and quorum of the sentinels must agree before one fails it over.
const (
	sentinelDownAfter       = 1000 // milliseconds
	sentinelFailoverTimeout = 5000 // milliseconds
	sentinelQuorum          = 2
	sentinelCount           = 3
)

// StartSentinel starts a master, a replica of it and three sentinels
// monitoring them, and returns once the replica is in sync and every sentinel
// knows the replica and the two other sentinels, so that a failover can
// happen. It skips the test when redis-server is not installed.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	master := StartServer(tb, "--repl-diskless-sync-delay", "0")
	host, port, _ := strings.Cut(master.Addr, ":")
	replica := StartServer(tb, "--replicaof", host, port)
	waitReplicaOnline(tb, master, replica)

	s := &Sentinel{MasterName: "retain-test-" + port, Master: master, Replica: replica}
	for range sentinelCount {
		s.Sentinels = append(s.Sentinels, startSentinelProcess(tb, s.MasterName, host, port))
	}
	s.waitDiscovered(tb, 20*time.Second)
	return s
}

// startSentinelProcess starts redis-server in sentinel mode monitoring the
// master at host:port under name. A sentinel rewrites its configuration file
// as it learns the deployment, so the file is written in its directory.
func startSentinelProcess(tb testing.TB, name, host, port string) *Server {
	tb.Helper()
	return launch(tb, func(p int, dir string) []string {
		conf := filepath.Join(dir, "sentinel.conf")
		lines := []string{
			fmt.Sprintf("port %d", p),
			"bind 127.0.0.1",
			fmt.Sprintf("dir %s", dir),
			`logfile ""`,
			fmt.Sprintf("sentinel monitor %s %s %s %d", name, host, port, sentinelQuorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", name, sentinelDownAfter),
			fmt.Sprintf("sentinel failover-timeout %s %d", name, sentinelFailoverTimeout),
			fmt.Sprintf("sentinel parallel-syncs %s 1", name),
		}
		// The sentinels find each other through the hello messages they
		// publish on the master (and replicas) they monitor, each announcing
		// the address it reaches them from: 127.0.0.1.
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
		return []string{conf, "--sentinel"}
	})
}

// waitReplicaOnline waits until the master counts the replica as connected and
// the replica has its link to the master up (its initial sync done).
func waitReplicaOnline(tb testing.TB, master, replica *Server) {
	tb.Helper()
	ctx := context.Background()
	mc, rc := master.Client(tb), replica.Client(tb)
	for deadline := time.Now().Add(10 * time.Second); ; {
		m, _ := mc.Info(ctx, "replication").Result()
		r, _ := rc.Info(ctx, "replication").Result()
		if strings.Contains(m, "connected_slaves:1") && strings.Contains(r, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the replica %s did not come online on the master %s:\nmaster:\n%s\nreplica:\n%s", replica.Addr, master.Addr, m, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDiscovered waits until every sentinel knows the replica and the other
// sentinels.
func (s *Sentinel) waitDiscovered(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	ctx := context.Background()
	clients := make([]*redis.SentinelClient, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		clients[i] = redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
		defer clients[i].Close()
	}
	for deadline := time.Now().Add(timeout); ; {
		var missing []string
		for i, c := range clients {
			replicas, err := c.Replicas(ctx, s.MasterName).Result()
			if err != nil || len(replicas) < 1 {
				missing = append(missing, fmt.Sprintf("sentinel %s knows %d replicas (%v), want 1", s.Sentinels[i].Addr, len(replicas), err))
			}
			others, err := c.Sentinels(ctx, s.MasterName).Result()
			if err != nil || len(others) < len(s.Sentinels)-1 {
				missing = append(missing, fmt.Sprintf("sentinel %s knows %d other sentinels (%v), want %d", s.Sentinels[i].Addr, len(others), err, len(s.Sentinels)-1))
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the sentinels watching %s (master %s, replica %s) did not discover the deployment within %v:\n%s",
				s.MasterName, s.Master.Addr, s.Replica.Addr, timeout, strings.Join(missing, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addrs returns the sentinels' addresses, host:port.
func (s *Sentinel) Addrs() []string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr
	}
	return addrs
}

// URL returns the go-redis failover URL of the deployment's database db
// (redis.ParseFailoverURL):
// redis://<first sentinel>/<db>?master_name=<name>&addr=<second>&addr=<third>.
func (s *Sentinel) URL(db int) string {
	addrs := s.Addrs()
	u := fmt.Sprintf("redis://%s/%d?master_name=%s", addrs[0], db, s.MasterName)
	for _, a := range addrs[1:] {
		u += "&addr=" + a
	}
	return u
}

// MasterAddr asks the sentinels, in turn until one answers, for the address
// of the current master (SENTINEL get-master-addr-by-name).
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, sn := range s.Sentinels {
		addr, err := sentinelMasterAddr(ctx, sn.Addr, s.MasterName)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel gave the address of %s: %w", s.MasterName, errors.Join(errs...))
}

// sentinelMasterAddr asks the sentinel at addr for the address of the master
// it monitors under name.
func sentinelMasterAddr(ctx context.Context, addr, name string) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", addr, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: get-master-addr-by-name %s gave %q", addr, name, hp)
	}
	return hp[0] + ":" + hp[1], nil
}

// KillMaster stops the current master at once (SIGKILL), as a crash would:
// whichever of Master and Replica the sentinels report as the master now.
func (s *Sentinel) KillMaster(tb testing.TB) {
	tb.Helper()
	addr, err := s.MasterAddr(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, srv := range []*Server{s.Master, s.Replica} {
		if srv.Addr == addr {
			srv.Kill()
			return
		}
	}
	tb.Fatalf("the sentinels report the master of %s at %s, neither the first master %s nor the replica %s", s.MasterName, addr, s.Master.Addr, s.Replica.Addr)
}

// WaitFailover waits until every sentinel that answers reports the same
// master address, other than from, and returns it. It fails the test when
// that has not happened within timeout.
func (s *Sentinel) WaitFailover(tb testing.TB, from string, timeout time.Duration) string {
	tb.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(timeout); ; {
		seen := map[string]int{}
		var report []string
		for _, sn := range s.Sentinels {
			addr, err := sentinelMasterAddr(ctx, sn.Addr, s.MasterName)
			if err != nil {
				report = append(report, err.Error())
				continue
			}
			seen[addr]++
			report = append(report, fmt.Sprintf("sentinel %s: master %s", sn.Addr, addr))
		}
		if len(seen) == 1 {
			for addr := range seen {
				if addr != from {
					return addr
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the sentinels did not fail %s over from %s within %v:\n%s", s.MasterName, from, timeout, strings.Join(report, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
