package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// realisticCustomer has 4 attributes, 3 counters and n enrollments, each two
// steps in, as a customer looks mid-sequence.
func realisticCustomer(id string, n int) *lifecycle.Customer {
	c := &lifecycle.Customer{
		ID: id, Email: "ann.smith." + id + "@example.com", FirstName: "Ann", Name: "Ann Smith",
		Locale: "en", Timezone: "Europe/Amsterdam",
		Attributes: map[string]any{
			"plan": "team", "seats": 12, "mrr": 49.5,
			"trial_ends": time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		},
		Counters:     map[string]int{"orders": 2, "logins": 37, "projects": 4},
		Stage:        "active",
		StageSince:   t0,
		CreatedAt:    t0.Add(-30 * 24 * time.Hour),
		LastActivity: t0.Add(time.Hour),
		LastEvent:    t0.Add(time.Hour),
	}
	campaigns := []string{"education", "second-order", "nps"}
	for i := range n {
		name := campaigns[i]
		if c.Enrollments == nil {
			c.Enrollments = map[string]*lifecycle.Enrollment{}
		}
		c.Enrollments[name] = &lifecycle.Enrollment{
			Campaign: name, Number: 1, Started: t0, Status: lifecycle.Active,
			Passed: []string{name + "/welcome", name + "/first-tips"},
			Last:   t0.Add(48 * time.Hour), Next: name + "/webinar", Due: t0.Add(96 * time.Hour),
		}
	}
	return c
}

// TestMemoryUsage logs what a customer costs in Redis memory (go test -run
// TestMemoryUsage -v ./store); the figures are in doc.go. It fails only when a
// customer with one enrollment outgrows 1 KiB.
func TestMemoryUsage(t *testing.T) {
	b := setup(t)
	usage := func(key string) int64 {
		t.Helper()
		n, err := b.rdb.MemoryUsage(b.ctx, b.prefix+key, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return n
	}
	id := func(i int) string { return fmt.Sprintf("cus_%016d", i) }

	var blob [4]int64
	for _, n := range []int{0, 1, 3} {
		c := realisticCustomer(id(n), n)
		b.put(t, c, t0)
		raw, _ := encodeCustomer(c)
		blob[n] = usage(strings.TrimPrefix(b.store.customerKey(c.ID), b.prefix))
		t.Logf("customer key, %d enrollments: %d bytes (JSON %d bytes)", n, blob[n], len(raw))
	}
	t.Logf("per enrollment: %d bytes (0->1), %d bytes (1->3, each)", blob[1]-blob[0], (blob[3]-blob[1])/2)
	if blob[1] > 1024 {
		t.Errorf("a customer with one enrollment takes %d bytes, over 1 KiB", blob[1])
	}

	// Index entries: the wake zset, measured over 1,000 customers so its per-key
	// overhead is spread out, and one email key per customer.
	const many = 1000
	p := b.rdb.Pipeline()
	for i := range many {
		p.ZAdd(b.ctx, b.prefix+"m:wake", redis.Z{Score: float64(t0.UnixMilli() + int64(i)), Member: id(i)})
		p.Set(b.ctx, b.prefix+"m:email:"+realisticCustomer(id(i), 0).Email, id(i), 0)
	}
	if _, err := p.Exec(b.ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("wake index: %d bytes per customer; email index: %d bytes per customer",
		usage("m:wake")/many, usage("m:email:"+realisticCustomer(id(0), 0).Email))

	// Per event: recent events (list, capped at 50), seen IDs (zset, as stored;
	// a set for comparison), stage history (list).
	ev := &lifecycle.Event{ID: "evt_0000000000000000", Name: "order_placed", At: t0, Data: map[string]any{"total": 19.5, "items": 3}}
	evJSON, _ := encodeEvent(ev)
	for _, n := range []int{1, 10, 50} {
		key := fmt.Sprintf("m:events:%d", n)
		for range n {
			b.rdb.LPush(b.ctx, b.prefix+key, evJSON)
		}
		t.Logf("recent events, %2d events: %5d bytes (%d per event, event JSON %d bytes)", n, usage(key), usage(key)/int64(n), len(evJSON))
	}
	for _, n := range []int{1, 10, 100, 128, 129, 1000} {
		zkey, skey := fmt.Sprintf("m:seen:z%d", n), fmt.Sprintf("m:seen:s%d", n)
		for i := range n {
			eid := fmt.Sprintf("evt_%016d", i)
			b.rdb.ZAdd(b.ctx, b.prefix+zkey, redis.Z{Score: float64(t0.UnixMilli() + int64(i)), Member: eid})
			b.rdb.SAdd(b.ctx, b.prefix+skey, eid)
		}
		t.Logf("seen IDs, %4d events: zset %6d bytes (%3d per event), set %6d bytes (%3d per event)",
			n, usage(zkey), usage(zkey)/int64(n), usage(skey), usage(skey)/int64(n))
	}
	sc, _ := encodeJSONStage(lifecycle.StageChange{From: "onboarding", To: "active", At: t0, Cause: "event onboarding_completed"})
	for _, n := range []int{1, 4, 10} {
		key := fmt.Sprintf("m:stages:%d", n)
		for range n {
			b.rdb.RPush(b.ctx, b.prefix+key, sc)
		}
		t.Logf("stage history, %2d changes: %4d bytes (%d per change)", n, usage(key), usage(key)/int64(n))
	}
}

func encodeJSONStage(sc lifecycle.StageChange) ([]byte, error) { return json.Marshal(sc) }
