package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/lifecycle"
)

// putCustomers stores customers with the IDs, in stage, as Update writes them.
func putCustomers(t *testing.T, s *Store, stage string, ids ...string) {
	t.Helper()
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, id := range ids {
		c := &lifecycle.Customer{ID: id, Email: id + "@Example.com", Stage: stage, StageSince: at, CreatedAt: at}
		err := s.Update(t.Context(), id, "", func(*lifecycle.Customer) (*Change, error) {
			return &Change{Customer: c}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// listAll pages through s's customers with q, from its first page, and returns
// their IDs in the order the pages gave them, and the pages' sizes. It fails
// the test when a page is larger than q.Limit or holds a customer twice.
func listAll(t *testing.T, s *Store, q ListQuery) (ids []string, sizes []int) {
	t.Helper()
	return listAllWith(t, s, q, nil)
}

// listAllWith is listAll calling between each page, when set, to change
// Redis meanwhile.
func listAllWith(t *testing.T, s *Store, q ListQuery, between func(page int)) (ids []string, sizes []int) {
	t.Helper()
	for pages := 0; ; pages++ {
		if between != nil && pages > 0 {
			between(pages)
		}
		if pages > 10000 {
			t.Fatal("the pages never end")
		}
		p, err := s.ListCustomers(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Customers) > q.Limit {
			t.Errorf("page %d has %d customers, limit %d", pages, len(p.Customers), q.Limit)
		}
		onPage := map[string]bool{}
		for _, c := range p.Customers {
			if onPage[c.ID] {
				t.Errorf("page %d lists %s twice", pages, c.ID)
			}
			onPage[c.ID] = true
			ids = append(ids, c.ID)
		}
		sizes = append(sizes, len(p.Customers))
		if p.Next == "" {
			return ids, sizes
		}
		q.Cursor = p.Next
	}
}

// onlyOnce fails the test unless got holds every ID of want once, in any order.
func onlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("%s listed %d times, want once", id, count[id])
		}
		delete(count, id)
	}
	for id := range count {
		t.Errorf("%s listed, but it was not asked for", id)
	}
}

// TestListCustomersPagesThroughEveryCustomerOnce pages through 300 customers
// 7 at a time (SCAN batches are larger: pages stop inside them and the cursor
// goes on from there), then through a stage that few customers are in, with a
// budget small enough that pages stop early, short, with a cursor. On a Redis
// of the test's own, so no other test's keys resize the key table meanwhile
// (SCAN may then repeat a key).
func TestListCustomersPagesThroughEveryCustomerOnce(t *testing.T) {
	rdb := redistest.StartServer(t).Client(t)
	s := New(rdb, "t:")
	var all, few []string
	for i := range 300 {
		all = append(all, fmt.Sprintf("cus_%03d", i))
	}
	for _, id := range all {
		if strings.HasSuffix(id, "7") {
			few = append(few, id)
		}
	}
	putCustomers(t, s, "onboarding", slices.DeleteFunc(slices.Clone(all), func(id string) bool { return strings.HasSuffix(id, "7") })...)
	putCustomers(t, s, "at_risk", few...)

	got, sizes := listAll(t, s, ListQuery{Limit: 7})
	onlyOnce(t, got, all)
	if full := slices.Index(sizes, 7); full < 0 || len(sizes) < 300/7 {
		t.Errorf("page sizes %v: want full pages of 7", sizes)
	}

	got, sizes = listAll(t, s, ListQuery{Stage: "at_risk", Limit: 4, Budget: 20})
	onlyOnce(t, got, few)
	if !slices.Contains(sizes, 0) && !slices.ContainsFunc(sizes, func(n int) bool { return n < 4 }) {
		t.Errorf("page sizes %v: want short pages, stopped by the budget", sizes)
	}
	p, err := s.ListCustomers(t.Context(), ListQuery{Stage: "at_risk", Limit: 50, Budget: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !p.StoppedEarly || p.Next == "" || len(p.Customers) >= 50 || p.Scanned < 20 || p.Scanned > 20+listScanCount {
		t.Errorf("a page with a budget of 20: %d customers, scanned %d, stopped early %v, next %q; want it stopped early with a cursor",
			len(p.Customers), p.Scanned, p.StoppedEarly, p.Next)
	}
}

// TestListCustomersListsEveryoneWhileOtherKeysComeAndGo: workers create and
// delete keys all the time (leases, ledger entries); a SCAN batch replayed
// after that covers other keys. Paging 7 at a time while 100 unrelated keys
// come or go between pages still lists each of 300 customers exactly once.
func TestListCustomersListsEveryoneWhileOtherKeysComeAndGo(t *testing.T) {
	rdb := redistest.StartServer(t).Client(t)
	s := New(rdb, "t:")
	var all []string
	for i := range 300 {
		all = append(all, fmt.Sprintf("cus_%03d", i))
	}
	putCustomers(t, s, "onboarding", all...)
	got, _ := listAllWith(t, s, ListQuery{Limit: 7}, func(page int) {
		for k := range 100 {
			key := fmt.Sprintf("t:other:%d", k)
			if page%2 == 1 {
				rdb.Set(t.Context(), key, "x", 0)
			} else {
				rdb.Del(t.Context(), key)
			}
		}
	})
	onlyOnce(t, got, all)
}

// TestListCustomersFilters: stage, a search by part of an ID or email (without
// case), an exact ID or email found without a scan, a predicate; bad limits
// and cursors are refused.
func TestListCustomersFilters(t *testing.T) {
	b := setup(t)
	putCustomers(t, b.store, "onboarding", "ann", "anna", "bob", "joanne")
	putCustomers(t, b.store, "active", "annika", "carl")
	ids := func(q ListQuery) []string {
		t.Helper()
		q.Limit = 100
		got, _ := listAll(t, b.store, q)
		slices.Sort(got)
		return got
	}
	for _, tc := range []struct {
		name string
		q    ListQuery
		want []string
	}{
		{"everyone", ListQuery{}, []string{"ann", "anna", "annika", "bob", "carl", "joanne"}},
		{"stage", ListQuery{Stage: "active"}, []string{"annika", "carl"}},
		{"part of an ID", ListQuery{Q: "NN"}, []string{"ann", "anna", "annika", "joanne"}},
		{"part of an email", ListQuery{Q: "ob@exam"}, []string{"bob"}},
		{"part of an email and a stage", ListQuery{Q: "@EXAMPLE.COM", Stage: "active"}, []string{"annika", "carl"}},
		{"exact ID", ListQuery{Q: "ann"}, []string{"ann"}},
		{"exact email, other case", ListQuery{Q: " ANNA@example.com "}, []string{"anna"}},
		{"exact ID, other stage", ListQuery{Q: "ann", Stage: "active"}, nil},
		{"predicate", ListQuery{Match: func(c *lifecycle.Customer) bool { return len(c.ID) == 3 }}, []string{"ann", "bob"}},
		{"nobody", ListQuery{Q: "zed"}, nil},
	} {
		if got := ids(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, want %v", tc.name, got, tc.want)
		}
	}

	b.cmds.reset()
	p, err := b.store.ListCustomers(b.ctx, ListQuery{Q: "joanne@example.com"})
	if err != nil || !p.Exact || len(p.Customers) != 1 || p.Customers[0].ID != "joanne" || p.Next != "" {
		t.Errorf("exact email: %+v, %v; want joanne alone", p, err)
	}
	if slices.Contains(b.cmds.names(), "scan") {
		t.Errorf("an exact email was found with a scan: %v", b.cmds.names())
	}

	for _, q := range []ListQuery{{Limit: -1}, {Limit: MaxListLimit + 1}} {
		if _, err := b.store.ListCustomers(b.ctx, q); err == nil {
			t.Errorf("limit %d accepted", q.Limit)
		}
	}
	for _, c := range []string{"garbage!", "bm9wZQ", listPos{node: "10.0.0.1:7000"}.encode()} {
		if _, err := b.store.ListCustomers(b.ctx, ListQuery{Cursor: c}); !errors.Is(err, ErrBadListCursor) {
			t.Errorf("cursor %q: %v, want ErrBadListCursor", c, err)
		}
	}
	p, err = b.store.ListCustomers(b.ctx, ListQuery{})
	if err != nil || len(p.Customers) != 6 || p.Scanned != 6 || p.StoppedEarly {
		t.Errorf("default page: %d customers, scanned %d, stopped early %v, %v", len(p.Customers), p.Scanned, p.StoppedEarly, err)
	}
}

// TestListCustomersOnCluster pages through the customers of the three masters
// of a Redis Cluster, a few at a time: the cursor carries the master and its
// SCAN cursor from one page to the next.
func TestListCustomersOnCluster(t *testing.T) {
	_, _, s, want := clusterStore(t, 90)
	got, sizes := listAll(t, s, ListQuery{Limit: 8})
	onlyOnce(t, got, want)
	if len(sizes) < 90/8 {
		t.Errorf("page sizes %v", sizes)
	}
	got, _ = listAll(t, s, ListQuery{Q: "_08", Limit: 3})
	slices.Sort(got)
	if want := []string{"cus_080", "cus_081", "cus_082", "cus_083", "cus_084", "cus_085", "cus_086", "cus_087", "cus_088", "cus_089"}; !slices.Equal(got, want) {
		t.Errorf("search _08 listed %v, want %v", got, want)
	}
}

// TestLedgerKeyAndStates: the ledger key is in the customer's hash slot, in
// the format the worker writes (queue/ledger.go) and layout 2 migrated to, and
// LedgerStates reads each send's state in one MGET, a claim as "claimed".
func TestLedgerKeyAndStates(t *testing.T) {
	b := setup(t)
	if got, want := LedgerKey("retain:", "cus:1", "onboarding", 2, "welcome"), CustomerPrefix("retain:", "cus:1")+"ledger:cus:1:onboarding:2:welcome"; got != want {
		t.Errorf("LedgerKey = %q, want %q", got, want)
	}
	for slug, v := range map[string]string{"welcome": "sent", "tips": "claimed:w1:tok", "nudge": "failed"} {
		if err := b.rdb.Set(b.ctx, LedgerKey(b.prefix, "c1", "onboarding", 1, slug), v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	b.cmds.reset()
	got, err := b.store.LedgerStates(b.ctx, "c1", []SendRef{{"onboarding", 1, "welcome"}, {"onboarding", 1, "tips"},
		{"onboarding", 1, "nudge"}, {"onboarding", 2, "welcome"}, {"winback", 1, "welcome"}})
	if want := []string{LedgerSent, LedgerClaimed, LedgerFailed, "", ""}; err != nil || !slices.Equal(got, want) {
		t.Errorf("LedgerStates = %q, %v; want %q", got, err, want)
	}
	if names := b.cmds.names(); !slices.Equal(names, []string{"mget"}) {
		t.Errorf("LedgerStates sent %v, want one MGET", names)
	}
}
