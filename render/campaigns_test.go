package render

import (
	"path/filepath"
	"testing"

	"github.com/retainmail/retain/campaign"
)

// TestExampleCampaignsCompile compiles the example campaigns in ../campaigns with the
// real layouts and renders every step and variant with the sample customer.
func TestExampleCampaignsCompile(t *testing.T) {
	set, err := campaign.Load(filepath.Join("..", "campaigns"))
	if err != nil {
		t.Fatalf("example campaigns do not load (run retain lint ../campaigns): %v", err)
	}
	r := compile(t, set)
	d := SampleData(set, "https://example.com")
	for _, c := range set.Campaigns {
		for _, st := range c.Steps {
			for _, ct := range append([]*campaign.Content{st.Content}, values(st.Variants)...) {
				e, err := r.RenderContent(ct, d)
				if err != nil {
					t.Errorf("%s: %v", ct.Path, err)
					continue
				}
				if err := checkNesting(e.HTML); err != nil {
					t.Errorf("%s: %v", ct.Path, err)
				}
			}
		}
	}
}

func values[V any](m map[string]V) []V {
	var out []V
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
