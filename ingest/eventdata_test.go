package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

func TestCheckEventData(t *testing.T) {
	set := &campaign.Set{Campaigns: []*campaign.Campaign{{ID: "shop", Trigger: campaign.Trigger{Event: "order_placed"},
		EventData: map[string]campaign.AttrType{"total": campaign.AttrFloat, "product": campaign.AttrString}}}}
	for _, tc := range []struct {
		name, event string
		data        map[string]any
		field, err  string
	}{
		{"declared and right", "order_placed", map[string]any{"total": json.Number("12.5"), "product": "Lamp"}, "", ""},
		{"declared, wrong type", "order_placed", map[string]any{"total": "a lot"}, "data.total", `data.total must be a number, got a lot (string) (campaign shop declares it in event_data)`},
		{"another event's data is not checked", "logged_in", map[string]any{"total": "a lot"}, "", ""},
		{"declared fields too large", "order_placed", map[string]any{"product": strings.Repeat("x", 1100)}, "data", "the most is 1024"},
		{"undeclared data is not limited", "order_placed", map[string]any{"note": strings.Repeat("x", 5000)}, "", ""},
	} {
		field, err := CheckEventData(set, lifecycle.Event{Name: tc.event, At: time.Now(), Data: tc.data})
		if field != tc.field || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: field %q, error %v; want %q, %q", tc.name, field, err, tc.field, tc.err)
		}
	}
}
