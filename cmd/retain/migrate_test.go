package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// TestMigrateMovesLayout1DataTheCLIWrote makes customers and report counters
// with the CLI, turns its keys back into layout 1 (toLayout1), and checks that
// retain migrate brings them back: the customers read the same, the report is
// the same, and this version writes the migrated customers.
func TestMigrateMovesLayout1DataTheCLIWrote(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := t.Context()
	vars := map[string]string{"REDIS_URL": redistest.URL(), "RETAIN_REDIS_PREFIX": prefix, "RETAIN_TEMPLATES": "../../templates"}
	retain := func(wantCode int, args ...string) (stdout, stderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		e := &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }}
		if code := run(args, e); code != wantCode {
			t.Fatalf("retain %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}
	const campaigns = "../../report/testdata/campaigns"
	ids := []string{"ann", "bob", "cus:3", "dan", "eve"}
	for i, id := range ids {
		day := "2026-01-0" + strconv.Itoa(i+1) + "T09:00:00Z"
		retain(exitOK, "event", "--apply", "--campaigns", campaigns, "--email", strings.ReplaceAll(id, ":", "")+"@example.com", "--at", day, id, "signed_up")
		retain(exitOK, "event", "--apply", "--campaigns", campaigns, "--at", "2026-01-12T09:00:00Z", id, "order_placed")
		retain(exitOK, "event", "--apply", "--campaigns", campaigns, "--at", "2026-01-13T09:00:00Z", id, "nps_submitted", "score="+strconv.Itoa(5+i), "campaign=welcome")
	}
	st := store.New(rdb, prefix)
	customers := func() map[string]*lifecycle.Customer {
		t.Helper()
		out := map[string]*lifecycle.Customer{}
		for _, id := range ids {
			c, err := st.Customer(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = c
		}
		return out
	}
	wantCustomers := customers()
	report := func() string {
		t.Helper()
		out, _ := retain(exitOK, "report", "--json", "--campaigns", campaigns, "--since", "2026-01-01")
		return generatedRE.ReplaceAllString(out, "")
	}
	wantReport := report()
	if !strings.Contains(wantReport, `"promoters": 1`) || !strings.Contains(wantReport, `"detractors": 2`) {
		t.Fatalf("the report counts no NPS answers:\n%s", wantReport)
	}

	toLayout1(t, rdb, prefix)
	_, stderr := retain(exitProblems, "report", "--campaigns", campaigns)
	if !strings.Contains(stderr, "retain migrate") {
		t.Errorf("retain report on layout 1 does not say to migrate:\n%s", stderr)
	}

	out, _ := retain(exitOK, "migrate", "--dry-run")
	if !strings.Contains(out, "Would move") || !strings.Contains(out, "nothing changed") {
		t.Errorf("retain migrate --dry-run:\n%s", out)
	}
	if rdb.Exists(ctx, prefix+"wake").Val() != 1 {
		t.Fatal("the dry run changed the keys")
	}

	rdb.Set(ctx, prefix+"scheduler:tick", "9999999999999", 0) // a scheduler ticks (from a clock ahead)
	_, stderr = retain(exitProblems, "migrate")
	if !strings.Contains(stderr, "stop every retain worker, scheduler and web process") || !strings.Contains(stderr, "--force") {
		t.Errorf("retain migrate with a scheduler ticking:\n%s", stderr)
	}
	out, _ = retain(exitOK, "migrate", "--force")
	for _, want := range []string{"Moved under", "c:", "5 keys into their shards", "wake", "members into the 16 shards' indexes", "report:", "Recorded layout 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("retain migrate prints no %q:\n%s", want, out)
		}
	}
	rdb.Del(ctx, prefix+"scheduler:tick")

	if diff := cmp.Diff(wantCustomers, customers()); diff != "" {
		t.Errorf("customers after the migration (-before +after):\n%s", diff)
	}
	if got := report(); got != wantReport {
		t.Errorf("report after the migration differs:\n%s", cmp.Diff(wantReport, got))
	}
	retain(exitOK, "customer", "set-stage", "--campaigns", campaigns, "cus:3", "at_risk")
	if c, err := st.Customer(ctx, "cus:3"); err != nil || c.Stage != "at_risk" {
		t.Errorf("migrated customer cus:3 after set-stage: %+v, %v", c, err)
	}

	out, _ = retain(exitOK, "migrate")
	if !strings.Contains(out, "layout 2") || !strings.Contains(out, "nothing to do") {
		t.Errorf("retain migrate run again:\n%s", out)
	}
}

// generatedRE matches the time a JSON report was made.
var generatedRE = regexp.MustCompile(`"generated": "[^"]*"`)

// toLayout1 rewrites the keys under p as a retain of layout 1 kept them: the
// shard's tag taken out of each name, the shards' indexes and report counters
// merged into one key each, the NPS counts a hash a week, and no layout key.
func toLayout1(t *testing.T, rdb *redis.Client, p string) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := rdb.Scan(ctx, 0, p+"{*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		rest := k[strings.Index(k, "}:")+2:]
		old := p + rest
		var err error
		switch typ := rdb.Type(ctx, k).Val(); {
		case rest == "report:nps":
			for f, n := range rdb.HGetAll(ctx, k).Val() {
				week, bucket, _ := strings.Cut(f, "|")
				v, _ := strconv.ParseInt(n, 10, 64)
				rdb.HIncrBy(ctx, p+"report:nps:"+week, bucket, v)
			}
			err = rdb.Del(ctx, k).Err()
		case rest == "due" || rest == "wake" || strings.HasPrefix(rest, "report:") && typ == "zset":
			err = rdb.ZUnionStore(ctx, old, &redis.ZStore{Keys: []string{old, k}, Aggregate: "MAX"}).Err()
			rdb.Del(ctx, k)
		case strings.HasPrefix(rest, "report:") && typ == "hash":
			for f, n := range rdb.HGetAll(ctx, k).Val() {
				v, _ := strconv.ParseInt(n, 10, 64)
				rdb.HIncrBy(ctx, old, f, v)
			}
			err = rdb.Del(ctx, k).Err()
		case strings.HasPrefix(rest, "report:") && typ == "set":
			err = rdb.SUnionStore(ctx, old, old, k).Err()
			rdb.Del(ctx, k)
		default: // a customer's key, or a report string named by a hash
			err = rdb.Rename(ctx, k, old).Err()
		}
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	rdb.Del(ctx, p+"layout")
	if rdb.Exists(ctx, p+"wake", p+"report:stages").Val() != 2 {
		t.Fatal("toLayout1 made no wake index or report counters")
	}
}
