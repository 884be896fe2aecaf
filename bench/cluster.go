package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/store"
)

// backend is a Redis the pipeline runs against: the URL the retain processes
// get, the harness's client, and each master's own client and process, whose
// INFO counts and CPU the figures sum.
type backend struct {
	url     string
	rdb     redis.UniversalClient
	masters []*redis.Client // the single server: rdb itself
	pids    []int
	scope   string // how its server-wide figures are taken, for the labels
}

// cpu is the CPU the backend's redis-server processes have used so far.
func (b *backend) cpu() time.Duration {
	var t time.Duration
	for _, pid := range b.pids {
		t += pidCPU(pid)
	}
	return t
}

// clusterMasters is how many masters the cluster phase starts: no replicas, so
// that the machine runs as many Redis processes' worth of work as with one
// Redis, only spread over three.
const clusterMasters = 3

// clusterBusOffset: a cluster node listens for the other nodes on its port
// plus this, a fixed offset.
const clusterBusOffset = 10000

// cluster is a Redis Cluster the harness started in bench/out/cluster.
type cluster struct {
	backend
	nodes []*proc
	dir   string
}

// startCluster starts clusterMasters redis-server nodes on free ports (whose
// bus ports are free too), in dir, saving nothing as the single Redis does,
// makes them one cluster with redis-cli --cluster create (no replicas), and
// returns once every node reports the cluster ok. Logs go to logs.
func startCluster(ctx context.Context, dir, logs string) (c *cluster, err error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("the cluster phase needs redis-cli")
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("the cluster phase needs redis-server")
	}
	c = &cluster{dir: dir}
	c.scope = fmt.Sprintf("summed over the %d masters", clusterMasters)
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	var addrs []string
	for i := range clusterMasters {
		p, err := c.startNode(server, i, logs)
		if err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, p)
		c.pids = append(c.pids, p.cmd.Process.Pid)
		addrs = append(addrs, p.name)
		c.masters = append(c.masters, redis.NewClient(&redis.Options{Addr: p.name, MaxRetries: -1}))
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		return c, fmt.Errorf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := c.waitOK(cctx); err != nil {
		return c, err
	}
	c.url = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	o, err := store.ParseURL(c.url) // as retain reads REDIS_URL
	if err != nil {
		return c, err
	}
	o.Cluster.PoolSize = 2 * seedWorkers
	c.rdb = o.NewClient()
	return c, c.rdb.Ping(cctx).Err()
}

// startNode starts node i of the cluster on a free port, trying another port
// when the node does not come up there or another process answers on it.
func (c *cluster) startNode(server string, i int, logs string) (*proc, error) {
	var errs []error
	for range 3 {
		port, err := redistest.FreeClusterPort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		dir := filepath.Join(c.dir, strconv.Itoa(port))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p, err := start(addr, filepath.Join(logs, fmt.Sprintf("cluster-node%d.log", i)), os.Environ(), server,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", "",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000")
		if err != nil {
			return nil, err
		}
		if err = waitOwnServer(p); err == nil {
			return p, nil
		}
		p.stop()
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("could not start a cluster node: %w", errors.Join(errs...))
}

// waitOwnServer waits until redis-server p answers on its address, and checks
// that the server answering is p, not another that had taken the port.
func waitOwnServer(p *proc) error {
	cl := redis.NewClient(&redis.Options{Addr: p.name, MaxRetries: -1})
	defer cl.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := cl.InfoMap(context.Background(), "server").Result()
		if err == nil {
			if pid := info["Server"]["process_id"]; pid != strconv.Itoa(p.cmd.Process.Pid) {
				return fmt.Errorf("the redis-server on %s is process %s, not the one started", p.name, pid)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer: %v; see %s", p.name, err, p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOK waits until every node reports cluster_state:ok with every slot
// assigned and every node known.
func (c *cluster) waitOK(ctx context.Context) error {
	for {
		var missing []string
		for _, m := range c.masters {
			text, err := m.ClusterInfo(ctx).Result()
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v", m.Options().Addr, err))
				continue
			}
			for k, want := range map[string]string{"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_known_nodes": strconv.Itoa(clusterMasters)} {
				if !strings.Contains(text, k+":"+want+"\r\n") {
					missing = append(missing, fmt.Sprintf("%s: not %s:%s", m.Options().Addr, k, want))
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster was not ready: %s", strings.Join(missing, "; "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop closes the clients, stops every node and deletes the nodes' directories.
func (c *cluster) stop() {
	if c.rdb != nil {
		c.rdb.Close()
	}
	for _, m := range c.masters {
		m.Close()
	}
	for _, p := range c.nodes {
		p.stop()
	}
	os.RemoveAll(c.dir)
}

// spread is max/min of counts, and the counts.
func spread(counts []int64) string {
	lo, hi := counts[0], counts[0]
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	s := make([]string, len(counts))
	for i, n := range counts {
		s[i] = strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%.2f (%d–%d: %s)", float64(hi)/float64(max(lo, 1)), lo, hi, strings.Join(s, " "))
}

// phaseCluster runs the CPU-bound run of phaseCPU on a Redis Cluster of three
// masters it starts for the phase, and deletes after it.
func (h *harness) phaseCluster(ctx context.Context) error {
	t := time.Now()
	c, err := startCluster(ctx, filepath.Join(h.out, "cluster"), filepath.Join(h.out, "logs"))
	if err != nil {
		return err
	}
	defer c.stop()
	fmt.Printf("  cluster of %d masters (no replicas) at %s, ready in %s\n", clusterMasters, c.url, time.Since(t).Round(time.Millisecond))

	var perShard, perMaster, custPerMaster []int64
	afterSeed := func(ctx context.Context, prefix string) {
		perShard, perMaster, custPerMaster = nil, nil, nil
		for i := range store.Shards {
			n, _ := c.rdb.ZCard(ctx, store.ShardPrefix(prefix, i)+"due").Result()
			perShard = append(perShard, n)
		}
		for _, m := range c.masters {
			keys, _ := m.DBSize(ctx).Result()
			perMaster = append(perMaster, keys)
			var cust int64
			for i := range store.Shards {
				// A shard of another master answers MOVED: not counted here.
				if n, err := m.ZCard(ctx, store.ShardPrefix(prefix, i)+"due").Result(); err == nil {
					cust += n
				}
			}
			custPerMaster = append(custPerMaster, cust)
		}
	}
	pr, err := h.pipeline(ctx, &c.backend, "cluster", h.fast, h.cfg.nCPU, "", afterSeed)
	if err != nil {
		return err
	}
	h.add(fmt.Sprintf("retain on a %d-master Redis Cluster, immediate relay (%d customers due at once)", clusterMasters, h.cfg.nCPU), perSec(pr.st.rate()), "")
	h.add("  scheduler start → last message", perSec(float64(pr.st.Count)/pr.startToLast.Seconds()), "")
	if h.cpuRate > 0 {
		h.add("  ratio to the single Redis (phase cpu of this run)", fmt.Sprintf("%.2f", pr.st.rate()/h.cpuRate), "≥ 0.85 (on 2 cores a cluster cannot be faster)")
	}
	h.pipelineRows("cluster", &c.backend, pr)
	h.add("  customers per shard, max/min (16 shards' due indexes)", spread(perShard), "")
	h.add("  customers per master, max/min", spread(custPerMaster), "")
	h.add("  keys per master, max/min (DBSIZE after seeding)", spread(perMaster), "")
	h.note("cluster: %d redis-server masters and no replicas, so that the machine does the same Redis work as with the single Redis (which has none), spread over three processes; saving nothing, as the single Redis; --cluster-node-timeout 1000; started in %s, deleted after the phase; REDIS_URL %s; Redis CPU is the sum of the %d processes', commands and round trips are INFO stats summed over them; the phase took %s", clusterMasters, c.dir, c.url, clusterMasters, time.Since(t).Round(time.Second))
	return nil
}
