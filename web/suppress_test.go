package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
)

func withCSV(r *http.Request) { r.Header.Set("Content-Type", "text/csv") }

// suppressionCount is how many addresses are on the list.
func (b *testBundle) suppressionCount(t *testing.T) int64 {
	t.Helper()
	n, err := b.store.CountSuppressions(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSuppressionAndConsentRoutesRefuseWithoutTheToken(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", `{"email": "ann@example.com"}`)
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/api/suppressions", ""},
		{"GET", "/api/suppressions/ann@example.com", ""},
		{"PUT", "/api/suppressions/ann@example.com", `{"reason": "x"}`},
		{"DELETE", "/api/suppressions/ann@example.com", ""},
		{"POST", "/api/suppressions/import", "email\nann@example.com\n"},
		{"PUT", "/api/customers/c1/subscription", `{"unsubscribed": true}`},
		{"GET", "/api/customers/c1/consent", ""},
	} {
		for _, tok := range []string{"", "wrong"} {
			resp, body := b.do(t, rt.method, rt.path, rt.body, withToken(tok))
			if got := errorOf(t, resp, body); got.Status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %+v", rt.method, rt.path, tok, got)
			}
		}
	}
	if n := b.suppressionCount(t); n != 0 {
		t.Errorf("%d addresses suppressed without the token", n)
	}
	if c, _ := b.store.Customer(b.ctx, "c1"); c.Unsubscribed {
		t.Error("unsubscribed without the token")
	}
}

func TestSuppressionPutKeepsTheFirstEntryAndDeleteTakesItOff(t *testing.T) {
	b := setup(t)
	resp, body := b.do(t, "PUT", "/api/suppressions/Ann@Example.com", `{"reason": "asked by phone"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	want := suppressionOut{Email: "ann@example.com", Reason: "asked by phone", At: b.now}
	var got suppressionOut
	if err := json.Unmarshal([]byte(body), &got); err != nil || !cmp.Equal(want, got) {
		t.Errorf("PUT answered %s, want %+v", body, want)
	}

	// Again, with another reason: the first entry stays.
	resp, body = b.do(t, "PUT", "/api/suppressions/ann@example.com", `{"reason": "complaint"}`)
	if json.Unmarshal([]byte(body), &got); resp.StatusCode != http.StatusOK || !cmp.Equal(want, got) {
		t.Errorf("second PUT = %d %s, want 200 with the first entry", resp.StatusCode, body)
	}
	resp, body = b.do(t, "GET", "/api/suppressions/ANN@example.com", "")
	if json.Unmarshal([]byte(body), &got); resp.StatusCode != http.StatusOK || !cmp.Equal(want, got) {
		t.Errorf("GET = %d %s", resp.StatusCode, body)
	}
	if sup, _ := b.store.Suppression(b.ctx, "ann@example.com"); sup == nil {
		t.Fatal("the store has no suppression")
	}

	resp, body = b.do(t, "DELETE", "/api/suppressions/ann@example.com", "")
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Errorf("DELETE = %d %q", resp.StatusCode, body)
	}
	for _, method := range []string{"DELETE", "GET"} {
		resp, body = b.do(t, method, "/api/suppressions/ann@example.com", "")
		if got := errorOf(t, resp, body); got != (gotError{404, "", "ann@example.com is not on the suppression list"}) {
			t.Errorf("%s after DELETE: %+v", method, got)
		}
	}
	if n := b.suppressionCount(t); n != 0 {
		t.Errorf("%d addresses left", n)
	}
}

func TestSuppressionPutRefusesBadInputNamingTheField(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		path, body string
		opts       []option
		want       gotError
	}{
		{"/api/suppressions/ann@", `{"reason": "x"}`, nil,
			gotError{400, "email", `email "ann@" is not an email address`}},
		{"/api/suppressions/ann@example.com", `{"reason": "two\nlines"}`, nil,
			gotError{400, "reason", "reason must be one line, without control characters"}},
		{"/api/suppressions/ann@example.com", `{"reason": "` + strings.Repeat("x", 501) + `"}`, nil,
			gotError{400, "reason", "reason is 501 bytes long; the most is 500"}},
		{"/api/suppressions/ann@example.com", `{"reasn": "x"}`, nil,
			gotError{400, "reasn", `unknown field "reasn" (did you mean "reason"?): the fields are reason`}},
		{"/api/suppressions/ann@example.com", `{"reason": 5}`, nil,
			gotError{400, "reason", "must be a string, not number"}},
		{"/api/suppressions/ann@example.com", `reason=x`, []option{withContentType("application/x-www-form-urlencoded")},
			gotError{415, "", `the body must be JSON sent as Content-Type: application/json, not "application/x-www-form-urlencoded"`}},
	} {
		resp, body := b.do(t, "PUT", tc.path, tc.body, tc.opts...)
		if got := errorOf(t, resp, body); got != tc.want {
			t.Errorf("PUT %s %s:\n got %+v\nwant %+v", tc.path, tc.body, got, tc.want)
		}
	}
	if n := b.suppressionCount(t); n != 0 {
		t.Errorf("%d addresses suppressed by bad requests", n)
	}
}

func TestListSuppressionsPagesWithItsCursor(t *testing.T) {
	b := setup(t)
	for i := range 25 {
		if err := b.store.Suppress(b.ctx, fmt.Sprintf("u%02d@example.com", i), "bounce", b.now); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	path := "/api/suppressions?limit=10"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("no last page")
		}
		resp, body := b.do(t, "GET", path, "")
		var page suppressionPage
		if err := json.Unmarshal([]byte(body), &page); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
		}
		if len(page.Suppressions) > 10 || page.Total != 25 {
			t.Errorf("page of %d, total %d", len(page.Suppressions), page.Total)
		}
		for _, s := range page.Suppressions {
			if seen[s.Email] || s.Reason != "bounce" || !s.At.Equal(b.now) {
				t.Errorf("entry %+v (seen before: %v)", s, seen[s.Email])
			}
			seen[s.Email] = true
		}
		if page.NextCursor == "" {
			break
		}
		path = "/api/suppressions?limit=10&cursor=" + page.NextCursor
	}
	if len(seen) != 25 {
		t.Errorf("listed %d of 25", len(seen))
	}
	for path, want := range map[string]gotError{
		"/api/suppressions?limit=0":        {400, "limit", `limit "0" must be a number from 1 to 1000`},
		"/api/suppressions?limit=many":     {400, "limit", `limit "many" must be a number from 1 to 1000`},
		"/api/suppressions?cursor=garbage": {400, "cursor", `cursor "garbage" is not one this list gave: pass next_cursor as it is, or leave cursor out to start again`},
	} {
		resp, body := b.do(t, "GET", path, "")
		if got := errorOf(t, resp, body); got != want {
			t.Errorf("GET %s: %+v", path, got)
		}
	}
}

// TestImportSuppressionsChecksEveryRowFirst: one bad row refuses the file,
// each bad row named by its line; skip_invalid imports the others; an address
// on the list keeps its entry.
func TestImportSuppressionsChecksEveryRowFirst(t *testing.T) {
	b := setup(t)
	earlier := b.now.Add(-30 * 24 * time.Hour)
	if err := b.store.Suppress(b.ctx, "old@example.com", "550 5.1.1", earlier); err != nil {
		t.Fatal(err)
	}
	csv := "Email Address;Reason;Created At\n" +
		"ann@example.com;hard bounce;2026-02-01 10:00:00\n" +
		"ann@;hard bounce;2026-02-01\n" +
		"old@example.com;unsubscribed;2026-02-02\n" +
		"bob@example.com;spam;someday\n" +
		"cy@example.com;;1767225600\n"
	wantBad := []badRow{
		{3, `email "ann@" is not an email address`},
		{5, `date "someday" is not a date: use RFC 3339 (2026-03-02T09:00:00Z), 2026-03-02 09:00:00 (UTC), 2026-03-02 (UTC) or Unix seconds (1772442000)`},
	}
	resp, body := b.do(t, "POST", "/api/suppressions/import", csv, withCSV)
	var refused importRefused
	if err := json.Unmarshal([]byte(body), &refused); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("import = %d %s", resp.StatusCode, body)
	}
	want := importRefused{Error: "2 of 5 rows are invalid (bad_rows lists them by line): nothing was imported; fix them, or send skip_invalid=true to import the other rows",
		Bad: 2, BadRows: wantBad}
	if diff := cmp.Diff(want, refused); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if n := b.suppressionCount(t); n != 1 {
		t.Fatalf("%d addresses on the list after a refused import; want the 1 there before", n)
	}

	resp, body = b.do(t, "POST", "/api/suppressions/import?skip_invalid=true&dry_run=true", csv, withCSV)
	var done importDone
	if json.Unmarshal([]byte(body), &done); resp.StatusCode != http.StatusOK || !cmp.Equal(done, importDone{Rows: 5, Added: 2, Already: 1, Skipped: 2, DryRun: true, BadRows: wantBad}) {
		t.Errorf("dry run = %d %s", resp.StatusCode, body)
	}
	if n := b.suppressionCount(t); n != 1 {
		t.Fatalf("the dry run wrote: %d addresses", n)
	}

	resp, body = b.do(t, "POST", "/api/suppressions/import?skip_invalid=true&reason=from+Mailchimp", csv, withCSV)
	if json.Unmarshal([]byte(body), &done); resp.StatusCode != http.StatusOK || !cmp.Equal(done, importDone{Rows: 5, Added: 2, Already: 1, Skipped: 2, BadRows: wantBad}) {
		t.Errorf("import = %d %s", resp.StatusCode, body)
	}
	got, err := b.store.Suppressions(b.ctx, []string{"ann@example.com", "old@example.com", "cy@example.com", "bob@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Reason string
		At     time.Time
	}
	var gotEntries []*entry
	for _, s := range got {
		if s == nil {
			gotEntries = append(gotEntries, nil)
			continue
		}
		gotEntries = append(gotEntries, &entry{s.Reason, s.At})
	}
	wantEntries := []*entry{
		{"hard bounce", time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)},
		{"550 5.1.1", earlier},
		{"from Mailchimp", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		nil,
	}
	if diff := cmp.Diff(wantEntries, gotEntries); diff != "" {
		t.Errorf("suppressions (-want +got):\n%s", diff)
	}
}

func TestImportSuppressionsRefusesWhatIsNotACSVList(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		path, body string
		opts       []option
		status     int
		field, msg string
	}{
		{"/api/suppressions/import", `{"email": "ann@example.com"}`, nil,
			415, "", `the body must be CSV sent as Content-Type: text/csv, not "application/json"`},
		{"/api/suppressions/import", "name,reason\nAnn,x\n", []option{withCSV},
			400, "", `line 1: the header row names no address column (it has "name", "reason"): name it email, email_address, "Email Address", address or recipient: nothing was imported`},
		{"/api/suppressions/import?skip_invalid=maybe", "email\nann@example.com\n", []option{withCSV},
			400, "skip_invalid", `skip_invalid "maybe" must be true or false`},
	} {
		resp, body := b.do(t, "POST", tc.path, tc.body, tc.opts...)
		var e apiError
		json.Unmarshal([]byte(body), &e)
		if resp.StatusCode != tc.status || e.Field != tc.field || e.Error != tc.msg {
			t.Errorf("POST %s %q = %d %s\nwant %d %q %q", tc.path, tc.body, resp.StatusCode, body, tc.status, tc.field, tc.msg)
		}
	}
	if n := b.suppressionCount(t); n != 0 {
		t.Errorf("%d addresses imported", n)
	}
}

// TestSuppressionsAndConsentAreServedWhileCampaignsDoNotLint: the list is
// about addresses, and an export is owed whatever the campaigns are; changing
// a subscription needs the campaigns' topics, and waits.
func TestSuppressionsAndConsentAreServedWhileCampaignsDoNotLint(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", `{"email": "ann@example.com"}`)
	d := b.deps
	d.Problems = campaign.Problems{{Path: "campaigns/x/campaign.md", Line: 1, Col: 1, Msg: "broken"}}
	url := b.start(t, b.cfg, d)
	if resp, body := b.doAt(t, url, "PUT", "/api/suppressions/ann@example.com", `{"reason": "complaint"}`); resp.StatusCode != http.StatusCreated {
		t.Errorf("PUT suppression = %d %s", resp.StatusCode, body)
	}
	if resp, body := b.doAt(t, url, "GET", "/api/customers/c1/consent", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET consent = %d %s", resp.StatusCode, body)
	}
	if resp, body := b.doAt(t, url, "PUT", "/api/customers/c1/subscription", `{"unsubscribed": true}`); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("PUT subscription = %d %s, want 503", resp.StatusCode, body)
	}
}
