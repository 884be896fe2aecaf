package web

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// TestPutCustomerRefusesWhatCanNeverBeMailed: issue 13, defect 4. Each of these
// was answered 201, and the customer then missed every email.
func TestPutCustomerRefusesWhatCanNeverBeMailed(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		name, body, field string
	}{
		{"CRLF in first_name", `{"email": "x1@example.com", "first_name": "Ada\r\nBcc: all@example.com"}`, "first_name"},
		{"NUL in name", `{"email": "x2@example.com", "name": "Ada\u0000"}`, "name"},
		{"100 KB name", `{"email": "x3@example.com", "first_name": "` + strings.Repeat("a", 100_000) + `"}`, "first_name"},
		{"email @", `{"email": "@"}`, "email"},
		{"email a@b@c", `{"email": "a@b@c"}`, "email"},
		{"email without domain", `{"email": "q3@"}`, "email"},
		{"email with ;", `{"email": "q4;x@example.com"}`, "email"},
		{"email with display name", `{"email": "Ada <ada@example.com>"}`, "email"},
		{"email with bad domain", `{"email": "ada@-example.com"}`, "email"},
		{"locale with spaces", `{"email": "x4@example.com", "locale": "nl NL"}`, "locale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.do(t, "PUT", "/api/customers/bad", tc.body)
			got := errorOf(t, resp, body)
			if got.Status != http.StatusBadRequest || got.Field != tc.field {
				t.Errorf("got %+v; want 400 on %s", got, tc.field)
			}
		})
	}
	resp, body := b.do(t, "PUT", "/api/customers/bad", "{\"email\": \"j\xf6rg@example.com\"}")
	if got := errorOf(t, resp, body); got.Status != http.StatusBadRequest || !strings.Contains(got.Error, "not valid UTF-8") {
		t.Errorf("Latin-1 body: %+v", got)
	}
	// Addresses that are fine, internationalised ones included.
	b.putCustomer(t, "ok1", `{"email": "jörg.müller+news@bücher.example", "first_name": "Jörg"}`)
	b.putCustomer(t, "ok2", `{"email": "o'brien@example.co.uk"}`)
}

// TestPostEventRefusesUndeliverableEmail: the same rules at
// POST /api/events.
func TestPostEventRefusesUndeliverableEmail(t *testing.T) {
	b := setup(t)
	resp, body := b.do(t, "POST", "/api/events", `{"customer": "c9", "name": "signed_up", "email": "a@b@c"}`)
	if got := errorOf(t, resp, body); got.Status != http.StatusBadRequest || got.Field != "email" {
		t.Errorf("got %+v", got)
	}
	resp, body = b.do(t, "POST", "/api/events", `{"customer": "c9", "name": "signed\r\nup", "email": "c9@example.com"}`)
	if got := errorOf(t, resp, body); got.Status != http.StatusBadRequest || got.Field != "name" {
		t.Errorf("got %+v", got)
	}
}

// TestPutCustomerStageOnlyStartsANewCustomer: issue 13, defect 1. Sending the
// same customer again changes nothing; move_to_stage moves it, with its cause.
func TestPutCustomerStageOnlyStartsANewCustomer(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", `{"email": "ada@example.com", "stage": "onboarding"}`)
	resp, body := b.do(t, "PUT", "/api/customers/c1", `{"email": "ada@example.com", "stage": "lead"}`)
	var out customerOut
	if err := json.Unmarshal([]byte(body), &out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT again: %d %s", resp.StatusCode, body)
	}
	if out.Stage != "onboarding" || len(out.History) != 0 {
		t.Errorf("stage on an existing customer moved it: %s, history %+v", out.Stage, out.History)
	}
	_, body = b.do(t, "PUT", "/api/customers/c1", `{"move_to_stage": {"stage": "active", "cause": "sales call"}}`)
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if out.Stage != "active" || len(out.History) != 1 || out.History[0].Cause != "sales call" {
		t.Errorf("move_to_stage: %s, history %+v", out.Stage, out.History)
	}
	resp, body = b.do(t, "PUT", "/api/customers/c1", `{"move_to_stage": {"stage": "actve"}}`)
	want := gotError{400, "move_to_stage.stage", `stage "actve" is not declared in lifecycle.yaml (did you mean "active"?)`}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestBatchWithOneIDForTwoDifferentEventsIs400: issue 13, defect 9. Two events
// of one customer with one ID and different data were answered 202 and the
// second was dropped as already seen. The same event twice is still one event.
func TestBatchWithOneIDForTwoDifferentEventsIs400(t *testing.T) {
	b := setup(t)
	resp, body := b.do(t, "POST", "/api/events", `{"events": [
		{"customer": "c1", "name": "order_placed", "id": "o-1", "email": "c1@example.com", "data": {"total": 10}},
		{"customer": "c1", "name": "order_placed", "id": "o-1", "data": {"total": 20}}]}`)
	got := errorOf(t, resp, body)
	if got.Status != http.StatusBadRequest || got.Field != "events[1].id" || !strings.Contains(got.Error, "events[0]") {
		t.Errorf("got %+v; want 400 on events[1].id naming events[0]", got)
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("%d events queued after a refused batch", len(p))
	}
	// One ID for two customers is two events; the same event twice is one.
	resp, body = b.do(t, "POST", "/api/events", `{"events": [
		{"customer": "c1", "name": "order_placed", "id": "o-1", "email": "c1@example.com", "data": {"total": 10}},
		{"customer": "c2", "name": "order_placed", "id": "o-1", "email": "c2@example.com", "data": {"total": 20}},
		{"customer": "c1", "name": "order_placed", "id": "o-1", "data": {"total": 10}}]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("distinct customers, identical repeat: %d %s", resp.StatusCode, body)
	}
}

// TestPostEventChecksDeclaredEventData: the fields of an event that a
// campaign keeps with its enrollments (event_data:) must have their declared
// type and fit in 1024 bytes; the API says so on the field and queues
// nothing. Data no campaign keeps is not limited.
func TestPostEventChecksDeclaredEventData(t *testing.T) {
	b := setup(t)
	set, err := campaign.Load(filepath.Join("testdata", "campaigns"))
	if err != nil {
		t.Fatal(err)
	}
	set.Campaigns = append(set.Campaigns, &campaign.Campaign{ID: "shop", Trigger: campaign.Trigger{Event: "order_placed"},
		EventData: map[string]campaign.AttrType{"product": campaign.AttrString, "total": campaign.AttrFloat}})
	d := b.deps
	d.Engine = lifecycle.New(set)
	url := b.start(t, b.cfg, d)
	big := strings.Repeat("x", 1100)
	for _, tc := range []struct{ data, field, err string }{
		{`{"product": "` + big + `"}`, "data", "the most is 1024"},
		{`{"total": "a lot"}`, "data.total", "data.total must be a number"},
	} {
		resp, body := b.doAt(t, url, "POST", "/api/events", `{"customer": "c1", "email": "c1@example.com", "name": "order_placed", "data": `+tc.data+`}`)
		if got := errorOf(t, resp, body); got.Status != http.StatusBadRequest || got.Field != tc.field || !strings.Contains(got.Error, tc.err) {
			t.Errorf("data %.40s: %+v, want 400 on %s", tc.data, got, tc.field)
		}
	}
	if n := len(b.pending(t)); n != 0 {
		t.Errorf("%d events queued, want none", n)
	}
	resp, body := b.doAt(t, url, "POST", "/api/events", `{"customer": "c1", "email": "c1@example.com", "name": "order_placed", "data": {"product": "Lamp", "note": "`+big+`"}}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("undeclared large data: %d %s, want 202", resp.StatusCode, body)
	}
}
