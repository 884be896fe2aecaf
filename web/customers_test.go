package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// listPage is a GET /api/customers answer.
type listPage struct {
	Customers []struct {
		ID           string `json:"id"`
		Email        string `json:"email"`
		Stage        string `json:"stage"`
		StageSince   string `json:"stage_since"`
		Unsubscribed bool   `json:"unsubscribed"`
		Enrollments  []struct {
			Campaign string `json:"campaign"`
			NextStep string `json:"next_step"`
			Due      string `json:"due"`
		} `json:"enrollments"`
	} `json:"customers"`
	NextCursor   string `json:"next_cursor"`
	Scanned      int    `json:"scanned"`
	StoppedEarly bool   `json:"stopped_early"`
	Exact        bool   `json:"exact"`
}

// list pages through GET /api/customers with query, from the first page, and
// returns the IDs listed, sorted, and the pages.
func (b *testBundle) list(t *testing.T, query url.Values) ([]string, []listPage) {
	t.Helper()
	var ids []string
	var pages []listPage
	for range 1000 {
		resp, body := b.do(t, "GET", "/api/customers?"+query.Encode(), "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/customers?%s: %d %s", query.Encode(), resp.StatusCode, body)
		}
		var p listPage
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		for _, c := range p.Customers {
			ids = append(ids, c.ID)
		}
		pages = append(pages, p)
		if p.NextCursor == "" {
			slices.Sort(ids)
			return ids, pages
		}
		query.Set("cursor", p.NextCursor)
	}
	t.Fatal("the pages never end")
	return nil, nil
}

// TestListCustomersAPISearchesFiltersAndPages: GET /api/customers pages
// through every customer 2 at a time, finds one by exact email, others by part
// of their ID, by stage and by a where condition, summarises each with its
// active enrollments, and refuses bad parameters with the field at fault.
func TestListCustomersAPISearchesFiltersAndPages(t *testing.T) {
	b := setup(t)
	var all []string
	for i, plan := range []string{"team", "free", "team", "free", "free"} {
		id := fmt.Sprintf("c%d", i)
		all = append(all, id)
		b.putCustomer(t, id, fmt.Sprintf(`{"email": "Person%d@Example.com", "first_name": "P%d", "stage": "lead", "attributes": {"plan": %q, "seats": %d}}`, i, i, plan, i))
	}
	b.putCustomer(t, "c1", `{"move_to_stage": {"stage": "onboarding", "cause": "sales call"}}`)

	got, pages := b.list(t, url.Values{"limit": {"2"}})
	if !slices.Equal(got, all) {
		t.Errorf("paging 2 at a time listed %v, want %v", got, all)
	}
	for i, p := range pages {
		if len(p.Customers) > 2 {
			t.Errorf("page %d has %d customers", i, len(p.Customers))
		}
	}

	for _, tc := range []struct {
		query url.Values
		want  []string
	}{
		{url.Values{"q": {"PERSON3@example.com"}}, []string{"c3"}},
		{url.Values{"q": {"son4@"}}, []string{"c4"}},
		{url.Values{"stage": {"onboarding"}}, []string{"c1"}},
		{url.Values{"where": {`customer.plan == "team"`}}, []string{"c0", "c2"}},
		{url.Values{"where": {`customer.seats >= 2`}, "q": {"example.com"}, "stage": {"lead"}}, []string{"c2", "c3", "c4"}},
	} {
		if got, _ := b.list(t, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("?%s listed %v, want %v", tc.query.Encode(), got, tc.want)
		}
	}

	_, pages = b.list(t, url.Values{"q": {"c1"}})
	p := pages[0]
	if !p.Exact || len(p.Customers) != 1 {
		t.Fatalf("q=c1: %+v, want c1 found exactly", p)
	}
	c := p.Customers[0]
	if c.Email != "Person1@Example.com" || c.Stage != "onboarding" || c.StageSince != "2026-03-02T09:00:00Z" ||
		len(c.Enrollments) != 1 || c.Enrollments[0].Campaign != "onboarding" || c.Enrollments[0].NextStep != "onboarding/welcome" || c.Enrollments[0].Due == "" {
		t.Errorf("c1 summarised as %+v", c)
	}

	for _, tc := range []struct {
		query, field, reason string
	}{
		{"limit=0", "limit", `limit "0" must be a number from 1 to 500`},
		{"limit=501", "limit", `limit "501" must be a number from 1 to 500`},
		{"stage=actve", "stage", `stage "actve" is not declared in lifecycle.yaml (did you mean "active"?)`},
		{"cursor=xyz", "cursor", "the cursor is not one this list gave (or Redis Cluster's masters changed since): start again from the first page, without cursor"},
		{"where=" + url.QueryEscape("customer.plna == 1"), "where", ""},
		{"where=" + url.QueryEscape(`customer.plan +`), "where", ""},
	} {
		resp, body := b.do(t, "GET", "/api/customers?"+tc.query, "")
		e := errorOf(t, resp, body)
		if e.Status != http.StatusBadRequest || e.Field != tc.field || tc.reason != "" && e.Error != tc.reason || e.Error == "" {
			t.Errorf("?%s: %+v, want 400 on %s: %s", tc.query, e, tc.field, tc.reason)
		}
		if tc.field == "where" && !strings.Contains(e.Error, "column") {
			t.Errorf("?%s: %q does not say where in the condition", tc.query, e.Error)
		}
	}
	resp, body := b.do(t, "GET", "/api/customers?where="+url.QueryEscape("customer.plna == 1"), "")
	if e := errorOf(t, resp, body); !strings.Contains(e.Error, `did you mean "plan"`) {
		t.Errorf("a misspelt field: %q, want the compiler's suggestion", e.Error)
	}
	resp, _ = b.do(t, "GET", "/api/customers", "", withToken(""))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}
}
