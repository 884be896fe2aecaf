package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology is the kind of Redis deployment a URL names.
type Topology int

const (
	Single   Topology = iota // one server, perhaps with replicas nobody fails over to
	Sentinel                 // a master found through Sentinel, which promotes a replica when it fails
	Cluster                  // Redis Cluster: keys spread over masters by hash slot
)

func (t Topology) String() string {
	switch t {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "single"
}

// URLForms shows the three forms of URL ParseURL reads; errors about a URL end
// with it.
const URLForms = `REDIS_URL takes one of three forms:
  one server  redis://[:PASSWORD@]HOST:6379[/DB]               (rediss:// for TLS)
  Sentinel    redis://[:SENTINEL_PASSWORD@]SENTINEL:26379[/DB]?master_name=NAME[&addr=SENTINEL2:26379...][&password=MASTER_PASSWORD]
  Cluster     redis://[:PASSWORD@]NODE:6379?addr=NODE2:6379[&addr=...]   (seed nodes; DB 0 only)`

// Options is a parsed Redis URL: exactly one of its fields is set, by Topology.
type Options struct {
	Topology Topology
	Single   *redis.Options
	Failover *redis.FailoverOptions
	Cluster  *redis.ClusterOptions
}

// ParseURL reads raw in one of the forms of URLForms, with go-redis's own URL
// parsers: a master_name parameter makes it Sentinel (the host and each addr
// parameter are sentinels), addr parameters without it make it Cluster (seed
// nodes), and anything else is one server. Errors never show a password.
//
// retain reads and writes the master only: a URL asking to read from replicas
// (replica_only, route_by_latency, route_randomly, read_only) is refused, as a
// replica's copy lags behind the writes the ledger and the customers depend on.
func ParseURL(raw string) (*Options, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" && u.Scheme != "unix" {
		return nil, fmt.Errorf("%s is not a Redis URL.\n%s", RedactURL(raw), URLForms)
	}
	q := u.Query()
	for _, k := range []string{"replica_only", "route_by_latency", "route_randomly", "read_only"} {
		if q.Has(k) {
			return nil, fmt.Errorf("%s: %s: retain reads and writes the master only (a replica lags behind the writes it depends on); remove the parameter", RedactURL(raw), k)
		}
	}
	var o Options
	switch {
	case q.Has("master_name"):
		o.Topology = Sentinel
		o.Failover, err = redis.ParseFailoverURL(raw)
		if err == nil && o.Failover.MasterName == "" {
			err = errors.New("master_name is empty")
		}
	case q.Has("addr"):
		o.Topology = Cluster
		o.Cluster, err = redis.ParseClusterURL(raw)
	default:
		o.Single, err = redis.ParseURL(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v.\n%s", RedactURL(raw), redactErr(err, raw), URLForms)
	}
	return &o, nil
}

// NewClient returns the go-redis client for o. Asynq takes the same client
// (asynq.NewServerFromRedisClient and friends work with all three kinds).
func (o *Options) NewClient() redis.UniversalClient {
	switch o.Topology {
	case Sentinel:
		return redis.NewFailoverClient(o.Failover)
	case Cluster:
		if o.Cluster.ClusterStateReloadInterval == 0 {
			// go-redis reloads the slot map after a redirect or every 60 s, not
			// when a master stops answering (redis/go-redis#3979): after a
			// failover its slots would fail for up to a minute.
			o.Cluster.ClusterStateReloadInterval = 2 * time.Second
		}
		return redis.NewClusterClient(o.Cluster)
	}
	return redis.NewClient(o.Single)
}

// Connect parses raw (ParseURL), connects and checks that Redis answers within
// timeout. A single-server URL that reaches a node of a Cluster is told so: it
// must list the seed nodes with addr parameters.
func Connect(ctx context.Context, raw string, timeout time.Duration) (redis.UniversalClient, Topology, error) {
	o, err := ParseURL(raw)
	if err != nil {
		return nil, 0, err
	}
	rdb := o.NewClient()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, 0, fmt.Errorf("cannot reach Redis (%s) at %s: %v", o.Topology, RedactURL(raw), redactErr(err, raw))
	}
	if o.Topology == Single {
		if info, err := rdb.Info(ctx, "cluster").Result(); err == nil && strings.Contains(info, "cluster_enabled:1") {
			rdb.Close()
			return nil, 0, fmt.Errorf("%s is a node of a Redis Cluster: name the cluster's seed nodes, as in redis://%s?addr=OTHER_NODE:PORT.\n%s", RedactURL(raw), o.Single.Addr, URLForms)
		}
	}
	return rdb, o.Topology, nil
}

// RedactURL hides the passwords of a Redis URL (its user info, and the
// password and sentinel_password parameters) for messages and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// redactErr returns err's message with any password of raw in it hidden:
// go-redis's parsers quote a bad parameter's value.
func redactErr(err error, raw string) string {
	msg := err.Error()
	u, perr := url.Parse(raw)
	if perr != nil {
		return msg
	}
	var secrets []string
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, p)
	}
	for k, vs := range u.Query() {
		if strings.Contains(strings.ToLower(k), "password") {
			secrets = append(secrets, vs...)
		}
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}
