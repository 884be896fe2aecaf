package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/store"
)

func TestParseURLForms(t *testing.T) {
	o, err := store.ParseURL("rediss://:s3cret@redis.example:6380/2")
	if err != nil || o.Topology != store.Single || o.Single.Addr != "redis.example:6380" || o.Single.DB != 2 || o.Single.Password != "s3cret" || o.Single.TLSConfig == nil {
		t.Fatalf("single: %+v, %v", o, err)
	}
	o, err = store.ParseURL("redis://:sentpw@s1:26379/3?master_name=mymaster&addr=s2:26379&addr=s3:26379&password=masterpw")
	if err != nil || o.Topology != store.Sentinel {
		t.Fatalf("sentinel: %+v, %v", o, err)
	}
	if f := o.Failover; f.MasterName != "mymaster" || strings.Join(f.SentinelAddrs, ",") != "s1:26379,s2:26379,s3:26379" || f.DB != 3 || f.Password != "masterpw" || f.SentinelPassword != "sentpw" {
		t.Errorf("sentinel options: %+v", f)
	}
	o, err = store.ParseURL("redis://:pw@n1:7000?addr=n2:7001&addr=n3:7002")
	if err != nil || o.Topology != store.Cluster {
		t.Fatalf("cluster: %+v, %v", o, err)
	}
	if c := o.Cluster; strings.Join(c.Addrs, ",") != "n1:7000,n2:7001,n3:7002" || c.Password != "pw" {
		t.Errorf("cluster options: %+v", c)
	}
}

func TestParseURLRefuses(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"127.0.0.1:6379", "not a Redis URL"},
		{"http://:hunter2@h:6379", "invalid URL scheme"},
		{"redis://:hunter2@s1:26379?master_name=", "master_name is empty"},
		{"redis://s1:26379?master_name=m&replica_only=true&password=hunter2", "replica_only: retain reads and writes the master only"},
		{"redis://n1:7000?addr=n2:7000&route_randomly=true", "route_randomly"},
		{"redis://:hunter2@n1:7000?addr=n2:7000&pool_size=many", "pool_size"},
		{"redis://:hunter2@h:6379/zero", "invalid database number"},
	} {
		_, err := store.ParseURL(tc.url)
		if err == nil {
			t.Errorf("%s: accepted", tc.url)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %q does not say %q", tc.url, msg, tc.want)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("%s: the error shows the password: %s", tc.url, msg)
		}
		if tc.want != "replica_only: retain reads and writes the master only" && tc.want != "route_randomly" && !strings.Contains(msg, "master_name=NAME") {
			t.Errorf("%s: the error does not show the three forms: %s", tc.url, msg)
		}
	}
}

func TestRedactURL(t *testing.T) {
	got := store.RedactURL("redis://user:hunter2@s1:26379/0?master_name=m&password=swordfish&sentinel_password=x1")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "swordfish") || strings.Contains(got, "x1") || !strings.Contains(got, "master_name=m") {
		t.Errorf("RedactURL = %s", got)
	}
}

func TestConnect(t *testing.T) {
	ctx := context.Background()
	rdb, topo, err := store.Connect(ctx, redistest.URL(), 5*time.Second)
	if err != nil || topo != store.Single {
		t.Fatalf("Connect: %v, %v", topo, err)
	}
	rdb.Close()

	node := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	_, _, err = store.Connect(ctx, "redis://"+node.Addr, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "is a node of a Redis Cluster") || !strings.Contains(err.Error(), "?addr=") {
		t.Errorf("Connect to a cluster node as one server: %v", err)
	}

	down := redistest.StartServer(t)
	addr := down.Addr
	down.Kill()
	_, _, err = store.Connect(ctx, "redis://:hunter2@"+addr+"/0", 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Redis (single)") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Connect to nothing: %v", err)
	}
}

func TestCheckLayoutRecordsItsVersionAndRefusesAnother(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	st := store.New(rdb, prefix)
	if err := st.CheckLayout(ctx); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if v, _ := rdb.Get(ctx, prefix+"layout").Int(); v != store.Layout {
		t.Errorf("%slayout = %d, want %d", prefix, v, store.Layout)
	}
	if err := st.CheckLayout(ctx); err != nil {
		t.Errorf("second start: %v", err)
	}
	rdb.Set(ctx, prefix+"layout", store.Layout+1, 0)
	if err := st.CheckLayout(ctx); !errors.Is(err, store.ErrLayout) || !strings.Contains(err.Error(), "written by a later retain") {
		t.Errorf("a later layout: %v", err)
	}
	if v, _ := rdb.Get(ctx, prefix+"layout").Int(); v != store.Layout+1 {
		t.Errorf("CheckLayout overwrote the later layout: %d", v)
	}
}

func TestCheckPrefix(t *testing.T) {
	if err := store.CheckPrefix("retain:staging:"); err != nil {
		t.Error(err)
	}
	if err := store.CheckPrefix("retain:{eu}:"); err == nil || !strings.Contains(err.Error(), "hash tags") {
		t.Errorf("a prefix with braces: %v", err)
	}
}
