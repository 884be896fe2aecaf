package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster a test started for itself on free ports: three
// masters with one replica each, with a short node timeout.
//
// Masters and Replicas are the servers as started, Masters in the order of
// the slots they were given and Replicas[i] the replica of Masters[i]; after a
// failover roles may differ (MasterOf says who serves a key now). Kill and
// Restart work on them as on any Server. All are stopped at cleanup.
type Cluster struct {
	Masters, Replicas []*Server // as started; after a failover roles may differ

	// clients are clients of each node, by address, that neither retry a
	// command nor a dial: a node the test killed refuses at once.
	clients map[string]*redis.Client
}

// The cluster's settings: a node that does not answer for clusterNodeTimeout
// is failing, and a replica of a failed master is promoted soon after.
const (
	clusterMasters     = 3
	clusterNodes       = 2 * clusterMasters // a replica each
	clusterSlots       = 16384
	clusterNodeTimeout = 1000 // milliseconds
	// clusterBusOffset: a node listens for the other nodes on its port plus
	// this offset, which is fixed.
	clusterBusOffset = 10000
)

// clusterNodeArgs are the redis.conf directives of a cluster node, after
// StartServer's own. nodes.conf is written in the node's directory. A master
// sends its replica the initial sync at once, not after the default 5 seconds.
var clusterNodeArgs = []string{
	"--cluster-enabled", "yes",
	"--cluster-config-file", "nodes.conf",
	"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
	"--appendonly", "no",
	"--repl-diskless-sync-delay", "0",
}

// StartCluster starts six cluster nodes, makes a cluster of them with
// redis-cli --cluster create (three masters sharing the 16384 slots, a
// replica each), and returns once every node reports the cluster ok with
// every slot assigned, knows every node and every replica, and every replica
// has its link to its master up. It skips the test when redis-server or
// redis-cli is not installed.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	redisServerPath(tb)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Skip("redis-cli is not installed (scripts/test installs it)")
	}

	nodes := make([]*Server, clusterNodes)
	for i := range nodes {
		nodes[i] = startClusterNode(tb)
	}
	c := &Cluster{clients: map[string]*redis.Client{}}
	for _, s := range nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
		tb.Cleanup(func() { cl.Close() })
		c.clients[s.Addr] = cl
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrsOf(nodes)...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	c.waitReady(tb, nodes, 30*time.Second)
	c.assignRoles(tb, nodes)
	return c
}

// clusterPortMu makes the nodes of the package's tests start one after the
// other: a port found free stays so until its node has taken it.
var clusterPortMu sync.Mutex

// startClusterNode starts a cluster node on a port that is free and whose
// cluster bus port is free too, trying again on another port when the node
// does not start there (another process took either port meanwhile).
func startClusterNode(tb testing.TB) *Server {
	tb.Helper()
	clusterPortMu.Lock()
	defer clusterPortMu.Unlock()
	var errs []error
	for range 3 {
		port, err := FreeClusterPort()
		if err != nil {
			tb.Fatal(err)
		}
		s, err := launchAt(tb, port, serverArgv(clusterNodeArgs))
		if err == nil {
			err = checkOwnProcess(s)
		}
		if err == nil {
			return s
		}
		s.Kill()
		errs = append(errs, err)
		tb.Logf("cluster node on port %d: %v; trying another port", port, err)
	}
	tb.Fatalf("could not start a cluster node: %v", errors.Join(errs...))
	return nil
}

// checkOwnProcess makes sure the server answering on s.Addr is the process s
// started, not another one that had taken the port (s's own then exited).
func checkOwnProcess(s *Server) error {
	cl := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer cl.Close()
	info, err := cl.Info(context.Background(), "server").Result()
	if err != nil {
		return fmt.Errorf("INFO server on %s: %w", s.Addr, err)
	}
	if pid := infoFields(info)["process_id"]; pid != strconv.Itoa(s.cmd.Process.Pid) {
		return fmt.Errorf("the redis-server answering on %s is process %s, not the one started (%d)", s.Addr, pid, s.cmd.Process.Pid)
	}
	return nil
}

// FreeClusterPort returns a port of 127.0.0.1 that is free and whose cluster
// bus port (port+10000) is free too (the bench starts its Cluster with it). It chooses both below the ephemeral port
// range, where the kernel gives no port to other listeners on port 0 (such as
// StartServer's) or to outgoing connections; where that leaves too little
// room it chooses among every port whose bus port exists.
func FreeClusterPort() (int, error) {
	lo, hi := 10000, ephemeralPortsStart()-clusterBusOffset
	if hi-lo < 1000 {
		lo, hi = 1024, 65535-clusterBusOffset
	}
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if portFree(p) && portFree(p+clusterBusOffset) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("found no free port in [%d, %d) whose port+%d is free too", lo, hi, clusterBusOffset)
}

// ephemeralPortsStart returns the first port of the kernel's ephemeral range
// (Linux's, or its default where it cannot be read).
func ephemeralPortsStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

// portFree tells whether a listener can take port of 127.0.0.1.
func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// waitReady waits until every node reports the cluster ok, with every slot
// assigned and every node known, sees the three masters with slots and the
// three replicas, and every replica has its link to its master up.
func (c *Cluster) waitReady(tb testing.TB, nodes []*Server, timeout time.Duration) {
	tb.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(timeout); ; {
		missing := c.notReady(ctx, nodes)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the cluster of %s was not ready within %v:\n%s", strings.Join(addrsOf(nodes), " "), timeout, strings.Join(missing, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notReady lists what waitReady still waits for.
func (c *Cluster) notReady(ctx context.Context, nodes []*Server) []string {
	var missing []string
	replicas := 0
	for _, s := range nodes {
		cl := c.clients[s.Addr]
		text, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: CLUSTER INFO: %v", s.Addr, err))
			continue
		}
		info := infoFields(text)
		for k, want := range map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": strconv.Itoa(clusterSlots),
			"cluster_known_nodes":    strconv.Itoa(clusterNodes),
		} {
			if info[k] != want {
				missing = append(missing, fmt.Sprintf("%s: %s:%s, want %s", s.Addr, k, info[k], want))
			}
		}

		text, err = cl.ClusterNodes(ctx).Result()
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: CLUSTER NODES: %v", s.Addr, err))
			continue
		}
		masters, slaves := 0, 0
		for _, n := range parseClusterNodes(text) {
			switch {
			case n.has("master") && len(n.slots) > 0:
				masters++
			case n.has("slave"):
				slaves++
			}
		}
		if masters != clusterMasters || slaves != clusterNodes-clusterMasters {
			missing = append(missing, fmt.Sprintf("%s: CLUSTER NODES shows %d masters with slots and %d replicas, want %d and %d", s.Addr, masters, slaves, clusterMasters, clusterNodes-clusterMasters))
		}

		text, err = cl.Info(ctx, "replication").Result()
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: INFO replication: %v", s.Addr, err))
			continue
		}
		if repl := infoFields(text); repl["role"] == "slave" {
			replicas++
			if repl["master_link_status"] != "up" {
				missing = append(missing, fmt.Sprintf("%s: replica of %s:%s with master_link_status:%s, want up", s.Addr, repl["master_host"], repl["master_port"], repl["master_link_status"]))
			}
		}
	}
	if replicas != clusterNodes-clusterMasters {
		missing = append(missing, fmt.Sprintf("%d nodes report role:slave, want %d", replicas, clusterNodes-clusterMasters))
	}
	return missing
}

// assignRoles fills Masters, in the order of their first slot, and Replicas,
// each at its master's index, from the first node's CLUSTER NODES.
func (c *Cluster) assignRoles(tb testing.TB, nodes []*Server) {
	tb.Helper()
	text, err := c.clients[nodes[0].Addr].ClusterNodes(context.Background()).Result()
	if err != nil {
		tb.Fatalf("CLUSTER NODES on %s: %v", nodes[0].Addr, err)
	}
	byAddr := map[string]*Server{}
	for _, s := range nodes {
		byAddr[s.Addr] = s
	}
	var masters []clusterNode
	replicaOf := map[string]*Server{} // by master ID
	for _, n := range parseClusterNodes(text) {
		if byAddr[n.addr] == nil {
			tb.Fatalf("CLUSTER NODES on %s lists %s, not one of the cluster's nodes %v:\n%s", nodes[0].Addr, n.addr, addrsOf(nodes), text)
		}
		switch {
		case n.has("master") && len(n.slots) > 0:
			masters = append(masters, n)
		case n.has("slave"):
			replicaOf[n.master] = byAddr[n.addr]
		}
	}
	slices.SortFunc(masters, func(a, b clusterNode) int { return a.slots[0][0] - b.slots[0][0] })
	for _, m := range masters {
		r := replicaOf[m.id]
		if r == nil {
			tb.Fatalf("CLUSTER NODES on %s shows no replica of the master %s:\n%s", nodes[0].Addr, m.addr, text)
		}
		c.Masters = append(c.Masters, byAddr[m.addr])
		c.Replicas = append(c.Replicas, r)
	}
}

// Addrs returns every node's address, host:port: the masters', then the
// replicas'.
func (c *Cluster) Addrs() []string {
	return addrsOf(slices.Concat(c.Masters, c.Replicas))
}

// URL returns the go-redis cluster URL of the cluster (redis.ParseClusterURL),
// every node a seed: redis://<first>?addr=<second>&addr=<third>...
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		if i == 0 {
			u += "?addr=" + a
		} else {
			u += "&addr=" + a
		}
	}
	return u
}

// clusterClientReload is how often Client's cluster client reloads the
// slots' masters while it is used.
const clusterClientReload = clusterNodeTimeout * time.Millisecond

// Client returns a cluster client seeded with every node, closed at cleanup.
//
// It reloads the slots' masters every second while it is used, where go-redis
// v9.23 does every 60 seconds by default: it reloads them at once after a
// MOVED or ASK, but not when the master of a slot no longer answers, so after
// a master's crash a client of the default options (redis.ParseClusterURL's,
// which cannot set the interval) keeps dialling the dead master for up to a
// minute after its replica was promoted (redis/go-redis#3979).
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: clusterClientReload})
	tb.Cleanup(func() { cl.Close() })
	return cl
}

// MasterOf returns the master serving key's slot now, as the cluster decides
// it: of the masters that the nodes answering list with the slot in CLUSTER
// NODES, the one with the highest configuration epoch. Between a master's
// failure and its replica's promotion that is still the failed master.
func (c *Cluster) MasterOf(ctx context.Context, key string) (*Server, error) {
	nodes := slices.Concat(c.Masters, c.Replicas)
	slot, answered := -1, 0
	var best *clusterNode
	var errs []error
	for _, s := range nodes {
		cl := c.clients[s.Addr]
		if slot < 0 {
			n, err := cl.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				errs = append(errs, fmt.Errorf("CLUSTER KEYSLOT on %s: %w", s.Addr, err))
				continue
			}
			slot = int(n)
		}
		text, err := cl.ClusterNodes(ctx).Result()
		if err != nil {
			errs = append(errs, fmt.Errorf("CLUSTER NODES on %s: %w", s.Addr, err))
			continue
		}
		answered++
		for _, n := range parseClusterNodes(text) {
			if n.has("master") && n.serves(slot) && (best == nil || n.epoch > best.epoch) {
				best = &n
			}
		}
	}
	if best == nil {
		if answered == 0 {
			return nil, fmt.Errorf("no node of the cluster answered: %w", errors.Join(errs...))
		}
		return nil, fmt.Errorf("no node lists a master serving the slot %d of %q", slot, key)
	}
	for _, s := range nodes {
		if s.Addr == best.addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("the slot %d of %q is served by %s, not a node of the cluster %v", slot, key, best.addr, addrsOf(nodes))
}

// clusterNode is a line of CLUSTER NODES: a node as the node asked sees it.
type clusterNode struct {
	id, addr string
	flags    []string
	master   string // the ID of its master, for a replica
	epoch    int64
	slots    [][2]int // ranges, both ends included
}

// parseClusterNodes parses the reply of CLUSTER NODES:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
// <config-epoch> <link-state> <slot> <slot> ...
// Slots being imported or migrated ([slot-<-id], [slot->-id]) are left out.
func parseClusterNodes(text string) []clusterNode {
	var nodes []clusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		epoch, _ := strconv.ParseInt(f[6], 10, 64)
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3], epoch: epoch}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			from, to, ok := strings.Cut(s, "-")
			if !ok {
				to = from
			}
			a, err1 := strconv.Atoi(from)
			b, err2 := strconv.Atoi(to)
			if err1 == nil && err2 == nil {
				n.slots = append(n.slots, [2]int{a, b})
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

func (n clusterNode) serves(slot int) bool {
	for _, r := range n.slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// infoFields parses the fields of an INFO or CLUSTER INFO reply, name:value
// lines.
func infoFields(text string) map[string]string {
	fields := map[string]string{}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

func addrsOf(servers []*Server) []string {
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr
	}
	return addrs
}
