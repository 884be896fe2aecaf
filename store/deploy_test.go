package store

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRecordDeployReturnsThePreviousManifest(t *testing.T) {
	b := setup(t)
	prev, err := b.store.RecordDeploy(b.ctx, []byte(`{"hash":"a"}`))
	if err != nil || prev != nil {
		t.Fatalf("first RecordDeploy = %q, %v; want nil, nil", prev, err)
	}
	prev, err = b.store.RecordDeploy(b.ctx, []byte(`{"hash":"b"}`))
	if err != nil || string(prev) != `{"hash":"a"}` {
		t.Fatalf("second RecordDeploy = %q, %v; want the first manifest", prev, err)
	}
	if got, _ := b.rdb.Get(b.ctx, b.prefix+"campaigns:deployed").Result(); got != `{"hash":"b"}` {
		t.Errorf("stored manifest %q, want the second", got)
	}
	// One command per record: the read and the write cannot be split by another process.
	b.cmds.reset()
	b.store.RecordDeploy(b.ctx, []byte(`{"hash":"c"}`))
	if diff := cmp.Diff([]string{"set"}, b.cmds.names()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"campaigns:deployed"}, b.keys(t)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

func TestRecordDeployHandsTheOldManifestToOneOfTwoStarts(t *testing.T) {
	b := setup(t)
	if _, err := b.store.RecordDeploy(b.ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	prevs := make([]string, 8)
	for i := range prevs {
		wg.Go(func() {
			prev, err := b.store.RecordDeploy(b.ctx, []byte("new"))
			if err != nil {
				t.Error(err)
			}
			prevs[i] = string(prev)
		})
	}
	wg.Wait()
	old := 0
	for _, p := range prevs {
		if p == "old" {
			old++
		}
	}
	if old != 1 {
		t.Errorf("previous manifests %q: want the old one exactly once", prevs)
	}
}
