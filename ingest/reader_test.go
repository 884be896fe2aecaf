package ingest

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/retainmail/retain/campaign"
)

func lifecycleFor(t *testing.T) *campaign.Lifecycle {
	t.Helper()
	set, err := campaign.Load("testdata/campaigns")
	if err != nil {
		t.Fatalf("test campaigns: %v", err)
	}
	return set.Lifecycle
}

// readAll reads every record of src, collecting good records and error lines.
func readAll(t *testing.T, name, src string) ([]*Record, []string) {
	t.Helper()
	r, err := NewReader(name, strings.NewReader(src), lifecycleFor(t))
	if err != nil {
		return nil, []string{err.Error()}
	}
	var recs []*Record
	var bad []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, bad
		}
		var ie *Error
		if errors.As(err, &ie) {
			bad = append(bad, ie.Error())
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

func TestCSVKeepsGoodRowsAndReportsBadOnes(t *testing.T) {
	src := `id,email,first_name,stage,plan,seats,event,at,data.total
c1,ada@example.com,Ada,lead,team,5,,,
c2,bob@example.com,Bob,,free,,order_placed,2026-03-02 10:00,59.90
c3,not-an-email,Cy,,,,,,
c4,dee@example.com,Dee,leed,,,,,
c5,eve@example.com,Eve,,,lots,,,
c6,fay@example.com,Fay,,,,order_placed,,
c7,gus@example.com,"Gus ""the"" Great",,,,signed_up,2026-03-02T09:00:00Z,
c8,hal@example.com
`
	recs, bad := readAll(t, "customers.csv", src)
	wantBad := []string{
		`customers.csv:4: email "not-an-email" is not an email address`,
		`customers.csv:5: stage "leed" is not declared in lifecycle.yaml (did you mean "lead"?)`,
		`customers.csv:6: attribute "seats" must be a whole number, got lots (string)`,
		`customers.csv:7: event order_placed has no time: fill the at column`,
		`customers.csv:9: 2 cells, the header has 9 columns`,
	}
	if diff := cmp.Diff(wantBad, bad); diff != "" {
		t.Errorf("bad rows (-want +got):\n%s", diff)
	}
	if len(recs) != 3 {
		t.Fatalf("good rows = %d, want 3", len(recs))
	}
	if r := recs[0]; r.ID != "c1" || r.Stage != "lead" || r.Attributes["plan"] != "team" || r.Attributes["seats"] != 5 || len(r.Events) != 0 || r.Line != 2 {
		t.Errorf("row 2 = %+v", r)
	}
	ev := recs[1].Events[0]
	ams, _ := time.LoadLocation("Europe/Amsterdam")
	if ev.Name != "order_placed" || !ev.At.Equal(time.Date(2026, 3, 2, 10, 0, 0, 0, ams)) || ev.Data["total"] != 59.9 || ev.ID == "" {
		t.Errorf("row 3 event = %+v (times without offset are in the lifecycle timezone)", ev)
	}
	if recs[2].FirstName != `Gus "the" Great` {
		t.Errorf("quoted cell = %q", recs[2].FirstName)
	}
}

func TestCSVHeaderProblemsStopTheFile(t *testing.T) {
	_, bad := readAll(t, "c.csv", "id,email,plna\n")
	if len(bad) != 1 || !strings.HasPrefix(bad[0], `c.csv:1:3: unknown column "plna" (did you mean "plan"?)`) {
		t.Errorf("header error = %q", bad)
	}
	_, bad = readAll(t, "c.csv", "first_name,plan\n")
	if len(bad) != 1 || bad[0] != "c.csv:1: no id or email column: every row must say which customer it is about" {
		t.Errorf("header error = %q", bad)
	}
	_, bad = readAll(t, "c.txt", "x")
	if len(bad) != 1 || bad[0] != "c.txt: unknown format: import .csv or .jsonl files" {
		t.Errorf("format error = %q", bad)
	}
}

func TestJSONLReportsLineAndColumn(t *testing.T) {
	src := `{"id": "c1", "email": "ada@example.com", "attributes": {"plan": "team"}, "events": [{"name": "signed_up", "at": "2026-03-02T14:10:00+01:00", "data": {"source": "ads"}}]}

{"id": "c2", "email": "bob@example.com", "frist_name": "Bob"}
{"id": "c3", "email": "cy@example.com",}
{"id": "c4", "email": "dee@example.com", "events": [{"name": "signed_up"}]}
{"id": "c5", "email": "eve@example.com"} {"id": "c6"}
{"id": "c7", "email": "fay@example.com", "events": [{"name": "signed_up", "at": "yesterday"}]}
{"email": "gus@example.com"}
`
	recs, bad := readAll(t, "customers.jsonl", src)
	wantBad := []string{
		`customers.jsonl:3: json: unknown field "frist_name"`,
		`customers.jsonl:4:40: invalid character '}' looking for beginning of object key string`,
		`customers.jsonl:5: event signed_up has no time (at)`,
		`customers.jsonl:6:42: one customer per line: remove what follows the object`,
		`customers.jsonl:7: event signed_up: time "yesterday": use RFC 3339 (2026-03-14T09:30:00Z), 2026-03-14 09:30 or 2026-03-14`,
	}
	if diff := cmp.Diff(wantBad, bad); diff != "" {
		t.Errorf("bad lines (-want +got):\n%s", diff)
	}
	if len(recs) != 2 || recs[0].Events[0].Data["source"] != "ads" || recs[1].ID != "gus@example.com" {
		t.Errorf("good lines = %+v", recs)
	}
}

func TestEventIDIsStableAndDistinct(t *testing.T) {
	r1, _ := readAll(t, "a.jsonl", `{"id": "c1", "events": [{"name": "order_placed", "at": "2026-03-02T10:00:00Z", "data": {"total": 10, "sku": "A"}}]}`)
	r2, _ := readAll(t, "b.jsonl", `{"id": "c1", "events": [{"name": "order_placed", "at": "2026-03-02T11:00:00+01:00", "data": {"sku": "A", "total": 10}}]}`)
	r3, _ := readAll(t, "c.jsonl", `{"id": "c1", "events": [{"name": "order_placed", "at": "2026-03-02T10:00:00Z", "data": {"total": 11, "sku": "A"}}]}`)
	a, b, c := r1[0].Events[0].ID, r2[0].Events[0].ID, r3[0].Events[0].ID
	if a != b {
		t.Errorf("the same event written two ways got IDs %s and %s", a, b)
	}
	if a == c {
		t.Errorf("different events share ID %s", a)
	}
}
