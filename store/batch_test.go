package store

import (
	"fmt"
	"testing"

	"github.com/retainmail/retain/internal/redistest"
)

// TestCustomersOnCluster: Customers and CustomersRead read customers whose
// keys are on different masters of a Redis Cluster, nil for one missing.
func TestCustomersOnCluster(t *testing.T) {
	c, _, s, ids := clusterStore(t, 50)
	masters := map[*redistest.Server]bool{}
	for _, id := range ids {
		m, err := c.MasterOf(t.Context(), s.customerKey(id))
		if err != nil {
			t.Fatal(err)
		}
		masters[m] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the 50 customers are on %d master, want them spread", len(masters))
	}
	ask := append([]string{"missing"}, ids...)
	got, err := s.Customers(t.Context(), ask)
	if err != nil {
		t.Fatalf("Customers: %v", err)
	}
	got2, rd, err := s.CustomersRead(t.Context(), ask)
	if err != nil {
		t.Fatalf("CustomersRead: %v", err)
	}
	if len(got) != len(ask) || len(got2) != len(ask) || got[0] != nil || got2[0] != nil {
		t.Fatalf("read %d and %d customers for %d IDs, the first (missing) %v and %v; want %d, nil", len(got), len(got2), len(ask), got[0], got2[0], len(ask))
	}
	for i, id := range ids {
		if got[i+1] == nil || got[i+1].ID != id || got2[i+1] == nil || got2[i+1].ID != id || fmt.Sprint(got[i+1].Attributes["n"]) != fmt.Sprint(i) {
			t.Errorf("customer %s read as %+v and %+v", id, got[i+1], got2[i+1])
		}
		if _, ok := rd.known(id, rd.raw[id]); !ok {
			t.Errorf("CustomersRead kept no copy of %s", id)
		}
	}
}
