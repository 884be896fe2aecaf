package store

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/retainmail/retain/internal/redistest"
)

// TestCheckServerOnCluster: on Redis Cluster CheckServer reads the settings
// of every master: appendonly off is a warning naming each master, and an
// evicting policy on one master is ErrEvicting naming that master alone.
func TestCheckServerOnCluster(t *testing.T) {
	c := redistest.StartCluster(t) // appendonly no on every node
	cc := c.Client(t)
	warnings, err := CheckServer(t.Context(), cc)
	if err != nil {
		t.Fatalf("CheckServer: %v", err)
	}
	if len(warnings) != len(c.Masters) {
		t.Errorf("warnings = %q, want one for each of the %d masters", warnings, len(c.Masters))
	}
	for _, m := range c.Masters {
		if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, m.Addr+" runs with appendonly no") }) {
			t.Errorf("warnings = %q, want one saying the master %s runs with appendonly no", warnings, m.Addr)
		}
	}

	evicting := c.Masters[1]
	if err := evicting.Client(t).ConfigSet(t.Context(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = CheckServer(t.Context(), cc)
	if !errors.Is(err, ErrEvicting) || !strings.Contains(err.Error(), "allkeys-lru on the master "+evicting.Addr) {
		t.Fatalf("CheckServer with allkeys-lru on %s = %v, want ErrEvicting naming that master", evicting.Addr, err)
	}
	for _, m := range c.Masters {
		if m != evicting && strings.Contains(err.Error(), m.Addr) {
			t.Errorf("CheckServer = %v, names the master %s, which does not evict", err, m.Addr)
		}
	}
}
