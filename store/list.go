package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/lifecycle"
)

// Paging through customers (GET /api/customers, the people page): a page is
// read with SCAN over the customer keys, never by loading every customer.

// Limits of ListCustomers.
const (
	// DefaultListLimit is the page size when ListQuery.Limit is 0.
	DefaultListLimit = 50
	// MaxListLimit is the largest page.
	MaxListLimit = 500
	// ListBudget is how many customers one page reads at most (ListQuery.Budget's
	// default): a page whose filters match few customers stops there, with
	// fewer than Limit and a cursor to go on from.
	ListBudget = 5000
)

// listScanCount is the COUNT of each SCAN: a page that fills up inside a
// batch carries the batch's rest in its cursor, at most this many IDs.
const listScanCount = 200

// listReadChunk is how many customers of a SCAN batch one MGET reads.
const listReadChunk = 100

// ErrBadListCursor means a ListCustomers cursor is not one it returned, or was
// made on a Redis Cluster master that is no longer one.
var ErrBadListCursor = errors.New("not a cursor of the customer list")

// ListQuery is what ListCustomers lists: customers in Stage (any when empty)
// found by Q and kept by Match, Limit of them, from Cursor.
type ListQuery struct {
	Stage string
	// Q, when not empty, is a search. A Q that is exactly a customer's ID or
	// email address (without case) finds that customer alone, with two reads
	// and no scan; any other Q lists the customers whose ID or email holds it,
	// without case.
	Q string
	// Match, when set, keeps the customers it returns true for (a condition
	// in the campaigns' expression language, say). It must not keep c.
	Match func(c *lifecycle.Customer) bool
	// Limit is the most customers on the page: DefaultListLimit when 0, at
	// most MaxListLimit.
	Limit int
	// Cursor is where the page starts: "" for the first page, else a
	// ListPage.Next.
	Cursor string
	// Budget is how many customers the page reads at most; ListBudget when 0.
	Budget int
}

// ListPage is one page of customers.
type ListPage struct {
	Customers []*lifecycle.Customer
	// Next is the cursor of the next page; "" after the last.
	Next string
	// Scanned is how many customers the page read to find its own.
	Scanned int
	// StoppedEarly is true when the page stopped at the budget before it
	// found Limit customers: more may follow from Next.
	StoppedEarly bool
	// Exact is true when Q was a customer's ID or email and the page holds
	// that customer alone (or nobody, when Stage or Match left it out).
	Exact bool
}

// ListCustomers returns a page of the customers q asks for.
//
// The order is Redis SCAN's: no particular order, but stable while the
// customers are (on Redis Cluster, master by master, sorted by address). As
// with any SCAN, a customer created or deleted while a client pages through
// may be listed or not, and a customer may come twice, on two pages, when
// Redis resizes its key table meanwhile; within a page it comes once. Every
// customer stored throughout is listed, whatever else changes in Redis. A page reads at most Budget
// customers (one SCAN batch more, at most listScanCount) and holds at most
// Limit: a filter that matches few customers gives short pages, each with a
// Next, until the last.
func (s *Store) ListCustomers(ctx context.Context, q ListQuery) (*ListPage, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, fmt.Errorf("store: list customers: limit %d must be 1 to %d", limit, MaxListLimit)
	}
	budget := q.Budget
	if budget <= 0 {
		budget = ListBudget
	}
	pos, err := decodeListCursor(q.Cursor)
	if err != nil {
		return nil, fmt.Errorf("store: list customers: cursor %q: %w", q.Cursor, err)
	}
	search := strings.ToLower(strings.TrimSpace(q.Q))
	keep := func(c *lifecycle.Customer) bool {
		if q.Stage != "" && c.Stage != q.Stage {
			return false
		}
		if search != "" && !strings.Contains(strings.ToLower(c.ID), search) && !strings.Contains(strings.ToLower(c.Email), search) {
			return false
		}
		return q.Match == nil || q.Match(c)
	}
	page := &ListPage{Customers: []*lifecycle.Customer{}}
	if search != "" && q.Cursor == "" {
		found, err := s.exact(ctx, strings.TrimSpace(q.Q))
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			page.Exact, page.Scanned = true, len(found)
			for _, c := range found {
				if keep(c) {
					page.Customers = append(page.Customers, c)
				}
			}
			return page, nil
		}
	}

	nodes, err := s.masters(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: list customers: %w", err)
	}
	if len(nodes) == 0 {
		return nil, errors.New("store: list customers: no Redis master to read")
	}
	start := slices.IndexFunc(nodes, func(n master) bool { return n.addr == pos.node })
	if start < 0 {
		if q.Cursor != "" {
			return nil, fmt.Errorf("store: list customers: cursor %q: %w", q.Cursor, ErrBadListCursor)
		}
		start, pos = 0, listPos{node: nodes[0].addr}
	}
	const mark = "}:c:"
	match := globEscape(s.prefix) + "{*" + mark + "*"
	seen := map[string]bool{}
	// read reads keys in order until the page is full, and returns the IDs
	// of those it did not read: the next page starts with them.
	read := func(keys []string) ([]string, error) {
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), listReadChunk)]
			vals, err := s.getMany(ctx, chunk)
			if err != nil {
				return nil, fmt.Errorf("store: list customers: get %d customers: %w", len(chunk), err)
			}
			for k, v := range vals {
				if len(page.Customers) == limit {
					var rest []string
					for _, key := range keys[k:] {
						_, id, _ := strings.Cut(key[len(s.prefix):], mark)
						rest = append(rest, id)
					}
					return rest, nil
				}
				raw, ok := v.(string)
				if !ok {
					continue // deleted since SCAN saw it
				}
				page.Scanned++
				c, err := decodeCustomer([]byte(raw))
				if err != nil {
					_, id, _ := strings.Cut(chunk[k][len(s.prefix):], mark)
					return nil, fmt.Errorf("store: decode customer %s: %w", id, err)
				}
				if !seen[c.ID] && keep(c) {
					seen[c.ID] = true
					page.Customers = append(page.Customers, c)
				}
			}
			keys = keys[len(chunk):]
		}
		return nil, nil
	}
	for i := start; i < len(nodes); i++ {
		if i > start {
			pos = listPos{node: nodes[i].addr}
		}
		for {
			var keys []string
			if len(pos.pending) > 0 {
				// The rest of the SCAN batch the page before stopped in.
				for _, id := range pos.pending {
					keys = append(keys, s.customerKey(id))
				}
				pos.pending = nil
			} else {
				if pos.end {
					break
				}
				if page.Scanned >= budget {
					page.StoppedEarly = true
					page.Next = pos.encode()
					return page, nil
				}
				var next uint64
				var err error
				keys, next, err = nodes[i].c.Scan(ctx, pos.scan, match, listScanCount).Result()
				if err != nil {
					return nil, fmt.Errorf("store: list customers: scan: %w", err)
				}
				slices.Sort(keys)
				pos.scan, pos.end = next, next == 0
			}
			rest, err := read(keys)
			if err != nil {
				return nil, err
			}
			if len(rest) > 0 {
				pos.pending = rest
				page.Next = pos.encode()
				return page, nil
			}
			if pos.end {
				break
			}
			if len(page.Customers) == limit {
				page.Next = pos.encode()
				return page, nil
			}
		}
		if len(page.Customers) == limit && i+1 < len(nodes) {
			page.Next = listPos{node: nodes[i+1].addr}.encode()
			return page, nil
		}
	}
	return page, nil
}

// exact returns the customers whose ID or email is q: none, one, or two (one
// by ID, another by email).
func (s *Store) exact(ctx context.Context, q string) ([]*lifecycle.Customer, error) {
	var out []*lifecycle.Customer
	c, err := s.Customer(ctx, q)
	switch {
	case err == nil:
		out = append(out, c)
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("store: list customers: %w", err)
	}
	if !strings.Contains(q, "@") {
		return out, nil
	}
	c, err = s.CustomerByEmail(ctx, q)
	switch {
	case err == nil:
		if len(out) == 0 || out[0].ID != c.ID {
			out = append(out, c)
		}
	case !errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("store: list customers: %w", err)
	}
	return out, nil
}

// master is one server holding customer keys: addr is "" on a single Redis.
type master struct {
	addr string
	c    redis.UniversalClient
}

// masters are the servers holding the store's keys, sorted by address (one,
// with address "", on a single Redis or Sentinel).
func (s *Store) masters(ctx context.Context) ([]master, error) {
	var (
		mu  sync.Mutex
		out []master
	)
	err := ForEachMaster(ctx, s.rdb, func(_ context.Context, addr string, m redis.UniversalClient) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, master{addr, m})
		return nil
	})
	slices.SortFunc(out, func(a, b master) int { return strings.Compare(a.addr, b.addr) })
	return out, err
}

// listPos is where a page of ListCustomers starts: the master (its address,
// "" on a single Redis), its SCAN cursor, whether that SCAN is at its end, and
// the IDs of the customers of the last SCAN batch the page before did not
// read (a page that fills up inside a batch hands the rest of it on, so no
// SCAN is ever replayed: a replay covers other keys when the keyspace
// changed meanwhile).
type listPos struct {
	node    string
	scan    uint64
	end     bool
	pending []string
}

// listCursor is a listPos as a cursor holds it.
type listCursor struct {
	V       int      `json:"v"`
	Node    string   `json:"n,omitempty"`
	Scan    uint64   `json:"s,omitempty"`
	End     bool     `json:"e,omitempty"`
	Pending []string `json:"p,omitempty"`
}

// encode writes the position as a cursor: JSON in base64url, so that it goes
// in a query string as it is. With a batch's rest it holds up to
// listScanCount IDs.
func (p listPos) encode() string {
	b, _ := json.Marshal(listCursor{V: 2, Node: p.node, Scan: p.scan, End: p.end, Pending: p.pending})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeListCursor(c string) (listPos, error) {
	if c == "" {
		return listPos{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return listPos{}, ErrBadListCursor
	}
	var lc listCursor
	if err := json.Unmarshal(b, &lc); err != nil || lc.V != 2 || len(lc.Pending) > listScanCount {
		return listPos{}, ErrBadListCursor
	}
	return listPos{node: lc.Node, scan: lc.Scan, end: lc.End, pending: lc.Pending}, nil
}
