package ingest

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// readmeCustomer is the customer file the README asks readers to save as
// ada.json, as one JSONL line.
func readmeCustomer(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)Save `ada.json`:\\s*```json\\n(.*?)```").FindSubmatch(src)
	if m == nil {
		t.Fatal("README.md no longer shows ada.json: update this test")
	}
	return strings.ReplaceAll(strings.TrimSpace(string(m[1])), "\n", " ")
}

// TestReimportingEveryExampleFileChangesNothing: issue 13, defect 1. Every
// customer file the repository ships, imported twice (an hour apart): the
// second import changes no key and no value.
func TestReimportingEveryExampleFileChangesNothing(t *testing.T) {
	ada := filepath.Join(t.TempDir(), "ada.jsonl")
	if err := os.WriteFile(ada, []byte(readmeCustomer(t)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, campaigns string }{
		{"testdata/customers.csv", "testdata/campaigns"},
		{ada, "../campaigns"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			b := setup(t)
			set, err := campaign.Load(tc.campaigns)
			if err != nil {
				t.Fatal(err)
			}
			b.l = set.Lifecycle
			b.applier.Engine = lifecycle.New(set)
			b.importFile(t, tc.file)
			before := b.dump(t)
			if len(before) == 0 {
				t.Fatal("the first import wrote nothing")
			}
			later := b.now.Add(time.Hour)
			b.applier.Now = func() time.Time { return later }
			results, _ := b.importFile(t, tc.file)
			for _, r := range results {
				if r.Created || r.Changed || r.Events > 0 || len(r.Changes) > 0 {
					t.Errorf("the second import did something: %+v", r)
				}
			}
			if diff := cmp.Diff(before, b.dump(t)); diff != "" {
				t.Errorf("the second import changed keys (-first +second):\n%s", diff)
			}
		})
	}
}

func readWith(t *testing.T, name, src string, o Options) ([]*Record, []string) {
	t.Helper()
	r, err := NewReaderWith(name, strings.NewReader(src), lifecycleFor(t), o)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*Record
	var bad []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, bad
		}
		var ie *Error
		if !errors.As(err, &ie) {
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
			continue
		}
		bad = append(bad, ie.Error())
	}
}

// TestCSVUnclosedQuoteCostsOneRow: issue 13, defect 6. The quote is reported
// where it opens, and the rows after it are read.
func TestCSVUnclosedQuoteCostsOneRow(t *testing.T) {
	src := "id,email,plan\n" +
		"c1,a@example.com,Ada\n" +
		"c2,b@example.com,\"Bob\n" +
		"c3,c@example.com,Cy\n" +
		"c4,d@example.com,\"Dee\nDee\"\n" + // a quoted field may span lines
		"c5,e@example.com,Eve\n"
	recs, bad := readWith(t, "q.csv", src, Options{})
	want := []string{`q.csv:3:18: the quoted field that opens here is never closed: close it with " (a quote inside a quoted field is written "")`}
	if diff := cmp.Diff(want, bad); diff != "" {
		t.Errorf("bad rows (-want +got):\n%s", diff)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"c1", "c3", "c4", "c5"}, ids); diff != "" {
		t.Errorf("rows read (-want +got):\n%s", diff)
	}
	if recs[2].Attributes["plan"] != "Dee\nDee" || recs[2].Line != 5 || recs[3].Line != 7 {
		t.Errorf("multi-line field: %+v, %+v", recs[2], recs[3])
	}
}

// TestCSVEncodings: issue 13, defect 6. Windows-1252 text is a bad row with its
// line unless --encoding says what it is; a UTF-8 BOM is fine.
func TestCSVEncodings(t *testing.T) {
	src := "id,email,first_name\nc1,a@example.com,Ada\nc2,j@example.com,J\xf6rg\n"
	recs, bad := readWith(t, "l.csv", src, Options{})
	if len(recs) != 1 || len(bad) != 1 || !strings.HasPrefix(bad[0], "l.csv:3:19: byte 0xF6 is not valid UTF-8") {
		t.Errorf("UTF-8: %d good, bad %q", len(recs), bad)
	}
	for _, enc := range []string{"windows-1252", "latin1"} {
		recs, bad = readWith(t, "l.csv", src, Options{Encoding: enc})
		if len(bad) != 0 || len(recs) != 2 || recs[1].FirstName != "Jörg" {
			t.Errorf("%s: %+v, bad %q", enc, recs, bad)
		}
	}
	recs, bad = readWith(t, "b.csv", "\ufeff\"id\",email\nc1,a@example.com\n", Options{})
	if len(bad) != 0 || len(recs) != 1 {
		t.Errorf("BOM: %+v, bad %q", recs, bad)
	}
	recs, bad = readWith(t, "b.jsonl", "\ufeff{\"id\": \"c1\", \"email\": \"a@example.com\"}\n{\"id\": \"c2\", \"first_name\": \"J\xf6rg\"}\n", Options{})
	if len(recs) != 1 || len(bad) != 1 || !strings.HasPrefix(bad[0], "b.jsonl:2:30: byte 0xF6") {
		t.Errorf("JSONL: %+v, bad %q", recs, bad)
	}
}

// TestFutureEventsAreBadRows: issue 13, defect 5. The rule the API has, for
// files too: more than 15 minutes ahead is refused.
func TestFutureEventsAreBadRows(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	src := "id,email,event,at\nc1,a@example.com,signed_up,2030-01-01\nc2,b@example.com,signed_up,2026-03-10T12:10:00Z\n"
	recs, bad := readWith(t, "f.csv", src, Options{Now: func() time.Time { return now }})
	want := []string{"f.csv:2: event signed_up: at 2030-01-01T00:00:00+01:00 is in the future (now is 2026-03-10T12:00:00Z): events are what already happened"}
	if diff := cmp.Diff(want, bad); diff != "" || len(recs) != 1 {
		t.Errorf("bad rows (-want +got):\n%s", diff)
	}
	if err := CheckTime(now.Add(MaxSkew), now); err != nil {
		t.Errorf("15 minutes ahead: %v", err)
	}
	if err := CheckTime(now.Add(MaxSkew+time.Second), now); err == nil {
		t.Error("15 minutes and a second ahead was accepted")
	}
}

// TestCheckRefusesWhatCanNeverBeMailed: issue 13, defect 4.
func TestCheckRefusesWhatCanNeverBeMailed(t *testing.T) {
	l := lifecycleFor(t)
	for _, r := range []Record{
		{ID: "c1", Email: "@"},
		{ID: "c1", Email: "a@b@c"},
		{ID: "c1", Email: "q3@"},
		{ID: "c1", Email: "q4;x@example.com"},
		{ID: "c1", Email: "a@[127.0.0.1]"},
		{ID: "c1", Email: strings.Repeat("a", 65) + "@example.com"},
		{ID: "c1", Email: "a@example.com", FirstName: "Ada\r\nBcc: x@example.com"},
		{ID: "c1", Email: "a@example.com", FirstName: "Ada\x00"},
		{ID: "c1", Email: "a@example.com", Name: strings.Repeat("x", 100_000)},
		{ID: "c1", Email: "a@example.com", Events: []lifecycle.Event{{Name: "signed\nup", At: time.Now()}}},
		// Domains that are no host names: a symbol, an underscore, and a
		// label that starts with a combining mark, which IDNA refuses.
		{ID: "c1", Email: "a@☃.example"},
		{ID: "c1", Email: "a@exa_mple.com"},
		{ID: "c1", Email: "a@\u0301bad.example"},
	} {
		if err := Check(&r, l); err == nil {
			t.Errorf("accepted %+v", r)
		}
	}
	for _, email := range []string{"ada@example.com", "ada.lovelace+news@mail.example.co.uk", "jörg@bücher.example", "o'brien@example.ie", "ana@xn--bcher-kva.example"} {
		if err := Check(&Record{ID: "c1", Email: email}, l); err != nil {
			t.Errorf("%s: %v", email, err)
		}
	}
}

// TestJSONLNumbersReachTheEngineAsNumbers: issue 13, defect 7. A numeric
// condition on event data works on imported events, and a row the engine
// refuses writes nothing.
func TestJSONLNumbersReachTheEngineAsNumbers(t *testing.T) {
	recs, bad := readWith(t, "n.jsonl", `{"id": "c1", "email": "a@example.com", "events": [{"name": "order_placed", "at": "2026-03-02T10:00:00Z", "data": {"total": 59.90, "items": 3, "lines": [{"qty": 2}]}}]}`+"\n", Options{})
	if len(bad) != 0 {
		t.Fatal(bad)
	}
	data := recs[0].Events[0].Data
	want := map[string]any{"total": 59.9, "items": 3, "lines": []any{map[string]any{"qty": 2}}}
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
}

// TestImportedNumbersHoldInConditions: issue 13, defect 7, through import
// --apply: "event.data.total > 50" holds for a total of 59.90 from a file.
func TestImportedNumbersHoldInConditions(t *testing.T) {
	b := setup(t)
	dir := t.TempDir()
	lc := `timezone: Europe/Amsterdam
stages: [lead, active]
transitions:
  - {on: order_placed, from: [lead], to: active, where: 'event.data.total > 50 && event.data.items >= 2'}
`
	if err := os.WriteFile(filepath.Join(dir, "lifecycle.yaml"), []byte(lc), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := campaign.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.l, b.applier.Engine = set.Lifecycle, lifecycle.New(set)
	file := filepath.Join(dir, "orders.jsonl")
	line := `{"id": "c1", "email": "a@example.com", "events": [{"name": "order_placed", "at": "2026-03-02T10:00:00Z", "data": {"total": 59.90, "items": 3}}]}`
	if err := os.WriteFile(file, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results, bad := b.importFile(t, file)
	if len(bad) != 0 || len(results) != 1 {
		t.Fatalf("bad rows %q", bad)
	}
	for _, ch := range results[0].Changes {
		if ch.Kind == lifecycle.KindConditionError {
			t.Errorf("condition error: %s", ch.Reason)
		}
	}
	if c, err := b.store.Customer(b.ctx, "c1"); err != nil || c.Stage != "active" {
		t.Errorf("total 59.90 > 50 did not hold: %+v, %v", c, err)
	}
}
