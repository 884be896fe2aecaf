package campaign

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/load/*.txtar")

// loadArchive loads the campaigns directory stored in a txtar archive (every file but
// "want") under the name "campaigns".
func loadArchive(t *testing.T, ar *txtar.Archive) (*Set, Problems) {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range ar.Files {
		if f.Name != "want" {
			fsys[f.Name] = &fstest.MapFile{Data: f.Data}
		}
	}
	set, err := LoadFS(fsys, "campaigns")
	var probs Problems
	if err != nil && !errors.As(err, &probs) {
		t.Fatalf("LoadFS: %v", err)
	}
	return set, probs
}

// TestLoadReportsProblems runs every archive in testdata/load: the campaigns it holds
// must load with exactly the problems in its "want" file, one path:line:col: message
// per line.
func TestLoadReportsProblems(t *testing.T) {
	files, _ := filepath.Glob("testdata/load/*.txtar")
	if len(files) == 0 {
		t.Fatal("no testdata/load/*.txtar")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, probs := loadArchive(t, ar)
			var got strings.Builder
			for _, p := range probs {
				got.WriteString(p.String() + "\n")
			}
			for i, f := range ar.Files {
				if f.Name != "want" {
					continue
				}
				if *update {
					ar.Files[i].Data = []byte(got.String())
					if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				if diff := cmp.Diff(string(f.Data), got.String()); diff != "" {
					t.Errorf("problems differ (-want +got):\n%s", diff)
				}
				return
			}
			t.Fatalf("%s has no want file", file)
		})
	}
}
