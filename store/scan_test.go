package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
)

// TestScanCustomersReadsEveryCustomerOnceAndWritesNothing stores customers
// (one with glob characters in its ID) next to the store's other keys, and
// scans them with three workers: each customer comes back once, whole, and the
// scan sends only read commands.
func TestScanCustomersReadsEveryCustomerOnceAndWritesNothing(t *testing.T) {
	b := setup(t)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	want := []string{"a*b[1]?"}
	for i := range 1234 {
		want = append(want, fmt.Sprintf("cus_%04d", i))
	}
	for _, id := range want {
		c := &lifecycle.Customer{ID: id, Email: id + "@example.com", Stage: "onboarding", StageSince: at, CreatedAt: at,
			Attributes: map[string]any{"plan": "team", "seats": 3}}
		err := b.store.Update(b.ctx, id, "", func(*lifecycle.Customer) (*Change, error) {
			return &Change{Customer: c, Wake: at.Add(time.Hour), Event: &lifecycle.Event{Name: "signed_up", At: at}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Another store whose prefix starts like this one's: never read.
	otherPrefix := strings.TrimSuffix(b.prefix, ":") + "x:"
	t.Cleanup(func() { redistest.Delete(context.Background(), b.rdb, otherPrefix) })
	other := New(b.rdb, otherPrefix)
	if err := other.Update(b.ctx, "intruder", "", func(*lifecycle.Customer) (*Change, error) {
		return &Change{Customer: &lifecycle.Customer{ID: "intruder", Email: "i@example.com", Stage: "lead"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	before := b.dump(t)
	b.cmds.reset()

	got, workers := scanAll(t, b.store, 100, 3, func(c *lifecycle.Customer) bool {
		return c.Attributes["seats"] == 3 && c.Email == c.ID+"@example.com"
	})
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("scan returned %d customers, want %d; first: %v", len(got), len(want), got[:min(5, len(got))])
	}
	for _, name := range b.cmds.names() {
		if name != "scan" && name != "mget" {
			t.Errorf("the scan sent %s: it may only read", name)
		}
	}
	if len(workers) < 2 {
		t.Errorf("batches went to workers %v, want them shared", workers)
	}
	if after := b.dump(t); len(after) != len(before) {
		t.Errorf("the scan changed the keys: %d before, %d after", len(before), len(after))
	}
}

// scanAll scans s's customers with ScanCustomers, count at a time with
// workers workers, and returns their IDs, sorted, and the workers that got a
// batch. ok tells whether a customer was read back whole.
func scanAll(t *testing.T, s *Store, count, workers int, ok func(*lifecycle.Customer) bool) ([]string, map[int]bool) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	used := map[int]bool{}
	err := s.ScanCustomers(t.Context(), count, workers, func(w int, batch []*lifecycle.Customer) error {
		mu.Lock()
		defer mu.Unlock()
		used[w] = true
		for _, c := range batch {
			if !ok(c) {
				t.Errorf("customer %s read back as %+v", c.ID, c)
			}
			got = append(got, c.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got, used
}

// TestScanCustomersStopsOnError: an error from fn ends the scan and is
// returned.
func TestScanCustomersStopsOnError(t *testing.T) {
	b := setup(t)
	for i := range 50 {
		id := fmt.Sprint("c", i)
		b.store.Update(b.ctx, id, "", func(*lifecycle.Customer) (*Change, error) {
			return &Change{Customer: &lifecycle.Customer{ID: id, Email: id + "@example.com", Stage: "lead"}}, nil
		})
	}
	stop := errors.New("enough")
	calls := 0
	err := b.store.ScanCustomers(b.ctx, 10, 1, func(int, []*lifecycle.Customer) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("scan returned %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// clusterStore gives the test a Store on a Redis Cluster of its own, under a
// key prefix, with n customers cus_000… written as the store encodes them,
// with plain SETs: Update's transaction is not Cluster-safe yet. It returns
// the customers' IDs.
func clusterStore(t *testing.T, n int) (*redistest.Cluster, *redis.ClusterClient, *Store, []string) {
	t.Helper()
	c := redistest.StartCluster(t)
	cc := c.Client(t)
	s := New(cc, redistest.Prefix())
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("cus_%03d", i)
		b, err := encodeCustomer(&lifecycle.Customer{ID: ids[i], Email: ids[i] + "@example.com", Stage: "lead", CreatedAt: t0,
			Attributes: map[string]any{"n": i}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cc.Set(t.Context(), s.customerKey(ids[i]), b, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return c, cc, s, ids
}

// TestScanCustomersOnCluster: on Redis Cluster the scan reads the customers
// of every master, each once, read with one MGET per shard of each batch.
func TestScanCustomersOnCluster(t *testing.T) {
	_, cc, s, want := clusterStore(t, 200)
	rec := &recorder{}
	cc.AddHook(rec)
	got, _ := scanAll(t, s, 30, 3, func(c *lifecycle.Customer) bool { return c.Email == c.ID+"@example.com" })
	if !slices.Equal(got, want) {
		t.Errorf("scan returned %d customers, want the %d stored", len(got), len(want))
	}
	// The hook sees the commands sent through the cluster client, not the
	// SCANs sent to each master's own.
	mgets := 0
	for _, name := range rec.names() {
		switch name {
		case "mget":
			mgets++
		case "scan":
		default:
			t.Errorf("the scan sent %s: it may only read", name)
		}
	}
	if mgets == 0 || mgets > len(want) {
		t.Errorf("the scan sent %d MGETs for %d customers", mgets, len(want))
	}
}

// TestScanProfilesReadsWhoACustomerIs: ScanProfiles gives each customer's
// profile, typed attributes, counters and subscription as stored, and the
// campaigns it has enrollments in, without their details or the customer's
// times.
func TestScanProfilesReadsWhoACustomerIs(t *testing.T) {
	b := setup(t)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	trial := at.Add(14 * 24 * time.Hour)
	stored := &lifecycle.Customer{ID: "c1", Email: "c1@example.com", FirstName: "Kim", Name: "Kim de Vries", Locale: "nl", Timezone: "Europe/Amsterdam",
		Stage: "active", StageSince: at, CreatedAt: at, LastActivity: at, LastEvent: at, LastSent: at,
		Attributes:   map[string]any{"plan": "business", "seats": 3, "trial_ends": trial},
		Counters:     map[string]int{"orders": 2},
		Unsubscribed: true, OptedOut: []string{"news"},
		Enrollments: map[string]*lifecycle.Enrollment{
			"onboarding": {Campaign: "onboarding", Number: 1, Started: at, Status: lifecycle.Completed, Last: at, Passed: []string{"welcome"}},
			"education":  {Campaign: "education", Number: 2, Started: at, Status: lifecycle.Active, Last: at, Next: "tips", Due: trial},
		}}
	if err := b.store.Update(b.ctx, "c1", "", func(*lifecycle.Customer) (*Change, error) { return &Change{Customer: stored}, nil }); err != nil {
		t.Fatal(err)
	}
	var got []*lifecycle.Customer
	err := b.store.ScanProfiles(b.ctx, 10, 1, func(_ int, batch []*lifecycle.Customer) error {
		got = append(got, batch...)
		return nil
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("scan: %d customers, %v", len(got), err)
	}
	want := &lifecycle.Customer{ID: "c1", Email: "c1@example.com", FirstName: "Kim", Name: "Kim de Vries", Locale: "nl", Timezone: "Europe/Amsterdam",
		Stage: "active", Attributes: stored.Attributes, Counters: stored.Counters, Unsubscribed: true, OptedOut: []string{"news"},
		Enrollments: map[string]*lifecycle.Enrollment{"onboarding": {Campaign: "onboarding"}, "education": {Campaign: "education"}}}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("profile (-want +got):\n%s", diff)
	}
}
