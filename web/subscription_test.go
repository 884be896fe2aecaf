package web

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// consentOf reads a customer's consent history through the API.
func (b *testBundle) consentOf(t *testing.T, id string) consentHistory {
	t.Helper()
	resp, body := b.do(t, "GET", "/api/customers/"+id+"/consent", "")
	var h consentHistory
	if err := json.Unmarshal([]byte(body), &h); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET consent = %d %s", resp.StatusCode, body)
	}
	return h
}

// dueScore is the customer's score in its shard's due index, 0 when not in it.
func (b *testBundle) dueScore(t *testing.T, id string) float64 {
	t.Helper()
	return b.rdb.ZScore(b.ctx, store.CustomerPrefix(b.store.Prefix(), id)+"due", id).Val()
}

func TestPutSubscriptionChangesOnlyWhatItNamesAndRecordsItsSource(t *testing.T) {
	b := setup(t)
	cfg := b.cfg
	cfg.Now = func() time.Time { return b.now } // the test moves it
	b.url = b.start(t, cfg, b.deps)
	b.putCustomer(t, "c1", `{"email": "ann@example.com", "stage": "onboarding"}`)
	due := b.dueScore(t, "c1")
	if due == 0 {
		t.Fatal("c1 has no email due: the test cannot see the schedule kept")
	}

	resp, body := b.do(t, "PUT", "/api/customers/c1/subscription", `{"topics": {"onboarding": false}, "source": "product settings"}`)
	var got subscriptionState
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	want := subscriptionState{ID: "c1", Topics: map[string]bool{"onboarding": false}, OptedOut: []string{"onboarding"}, Changed: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	c, _ := b.store.Customer(b.ctx, "c1")
	if c.Unsubscribed || !cmp.Equal(c.OptedOut, []string{"onboarding"}) {
		t.Errorf("stored: unsubscribed %v, opted out %v", c.Unsubscribed, c.OptedOut)
	}
	if got := b.dueScore(t, "c1"); got != due {
		t.Errorf("due score %v, was %v: the change must keep the schedule (the worker ends the enrollment)", got, due)
	}

	// Unsubscribed changes; onboarding was opted out of already: only the
	// unsubscribe is recorded. The same request again changes nothing.
	b.now = b.now.Add(time.Hour)
	for i, wantChanged := range []bool{true, false} {
		resp, body = b.do(t, "PUT", "/api/customers/c1/subscription", `{"unsubscribed": true, "topics": {"onboarding": false}}`)
		if json.Unmarshal([]byte(body), &got); resp.StatusCode != http.StatusOK || got.Changed != wantChanged || !got.Unsubscribed {
			t.Errorf("PUT #%d = %d %s; want changed %v", i+2, resp.StatusCode, body, wantChanged)
		}
	}

	h := b.consentOf(t, "c1")
	wantHistory := consentHistory{Customer: "c1", Email: "ann@example.com", Consent: []consentEntry{
		{Event: "subscription_changed", At: b.now.Add(-time.Hour), Source: "product settings",
			Data: map[string]any{"source": "product settings", "topics": map[string]any{"onboarding": false}}},
		{Event: "subscription_changed", At: b.now, Source: "api",
			Data: map[string]any{"source": "api", "unsubscribed": true}},
	}}
	if diff := cmp.Diff(wantHistory, h); diff != "" {
		t.Errorf("consent history (-want +got):\n%s", diff)
	}

	// Back to everything: both lifted in one change.
	b.now = b.now.Add(time.Hour)
	resp, body = b.do(t, "PUT", "/api/customers/c1/subscription", `{"unsubscribed": false, "topics": {"onboarding": true}, "source": "support ticket 1234"}`)
	if json.Unmarshal([]byte(body), &got); resp.StatusCode != http.StatusOK || got.Unsubscribed || len(got.OptedOut) != 0 || !got.Topics["onboarding"] {
		t.Errorf("PUT = %d %s", resp.StatusCode, body)
	}
	h = b.consentOf(t, "c1")
	if last := h.Consent[len(h.Consent)-1]; len(h.Consent) != 3 || !cmp.Equal(last.Data, map[string]any{
		"source": "support ticket 1234", "unsubscribed": false, "topics": map[string]any{"onboarding": true}}) {
		t.Errorf("consent history: %+v", h.Consent)
	}
	if c, _ := b.store.Customer(b.ctx, "c1"); c.Unsubscribed || len(c.OptedOut) != 0 {
		t.Errorf("stored: unsubscribed %v, opted out %v", c.Unsubscribed, c.OptedOut)
	}
}

func TestPutSubscriptionRefusesBadInputNamingTheField(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", `{"email": "ann@example.com"}`)
	for _, tc := range []struct {
		path, body string
		want       gotError
	}{
		{"/api/customers/c1/subscription", `{"topics": {"onboarding": true, "educaton": false}}`,
			gotError{400, "topics.educaton", `unknown topic "educaton": the topics are onboarding`}},
		{"/api/customers/c1/subscription", `{"topics": {"onbording": false}}`,
			gotError{400, "topics.onbording", `unknown topic "onbording" (did you mean "onboarding"?): the topics are onboarding`}},
		{"/api/customers/c1/subscription", `{"topics": {"onboarding": "no"}}`,
			gotError{400, "topics.onboarding", "must be true or false, not string"}},
		{"/api/customers/c1/subscription", `{"unsubscribed": "yes"}`,
			gotError{400, "unsubscribed", "must be true or false, not string"}},
		{"/api/customers/c1/subscription", `{"unsubscribed": true, "source": "line one\nline two"}`,
			gotError{400, "source", `source must be one line of at most 200 bytes, such as "product settings"`}},
		{"/api/customers/c1/subscription", `{"unsubscribe": true}`,
			gotError{400, "unsubscribe", `unknown field "unsubscribe" (did you mean "unsubscribed"?): the fields are unsubscribed, topics, source`}},
		{"/api/customers/c1/subscription", `{"source": "settings"}`,
			gotError{400, "", `nothing to change: give unsubscribed, topics or both, such as {"topics": {"education": false}}`}},
		{"/api/customers/nobody/subscription", `{"unsubscribed": true}`,
			gotError{404, "", `customer "nobody" is unknown`}},
	} {
		resp, body := b.do(t, "PUT", tc.path, tc.body)
		if got := errorOf(t, resp, body); got != tc.want {
			t.Errorf("PUT %s %s:\n got %+v\nwant %+v", tc.path, tc.body, got, tc.want)
		}
	}
	if h := b.consentOf(t, "c1"); len(h.Consent) != 0 {
		t.Errorf("refused requests were recorded: %+v", h.Consent)
	}
	if _, err := b.store.Customer(b.ctx, "nobody"); err == nil {
		t.Error("a subscription change created a customer")
	}
}

func TestConsentHistoryAsCSV(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", `{"email": "ann@example.com"}`)
	for _, body := range []string{`{"unsubscribed": true, "source": "=HYPERLINK(\"x\")"}`, `{"unsubscribed": false, "source": "settings"}`} {
		if resp, got := b.do(t, "PUT", "/api/customers/c1/subscription", body); resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT = %d %s", resp.StatusCode, got)
		}
	}
	resp, body := b.do(t, "GET", "/api/customers/c1/consent?format=csv", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		resp.Header.Get("Content-Disposition") != "attachment; filename=consent-c1.csv" {
		t.Fatalf("GET = %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"at", "event", "source", "data"},
		{"2026-03-02T09:00:00Z", "subscription_changed", `'=HYPERLINK("x")`, `{"source":"=HYPERLINK(\"x\")","unsubscribed":true}`},
		{"2026-03-02T09:00:00Z", "subscription_changed", "settings", `{"source":"settings","unsubscribed":false}`},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("CSV (-want +got):\n%s", diff)
	}
	for path, want := range map[string]gotError{
		"/api/customers/c1/consent?format=xml": {400, "format", `format "xml" is not json or csv`},
		"/api/customers/nobody/consent":        {404, "", `customer "nobody" is unknown`},
	} {
		resp, body := b.do(t, "GET", path, "")
		if got := errorOf(t, resp, body); got != want {
			t.Errorf("GET %s: %+v", path, got)
		}
	}
}

// apiGet sends an API request to the links server, with its token.
func (b *linksBundle) apiGet(t *testing.T, target string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequestWithContext(b.ctx, http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer test-token")
	rec := httptest.NewRecorder()
	b.srv.ServeHTTP(rec, req)
	return rec.Result(), rec.Body.String()
}

// TestLinkPageChangesAppearInTheConsentHistory: the one-click unsubscribe of
// an email and the preference page reach the consent log, with how.
func TestLinkPageChangesAppearInTheConsentHistory(t *testing.T) {
	b := setupLinks(t)
	if res, body := b.do(t, http.MethodPost, b.path(t, b.signer.UnsubscribeURL("c1", "education")), oneClick); res.StatusCode != http.StatusOK {
		t.Fatalf("one-click = %d %s", res.StatusCode, body)
	}
	b.now = b.now.Add(time.Minute)
	form := url.Values{"action": {"save"}, "topic": {"check-ins", "education", "news", "onboarding", "shop", "surveys"}}
	if res, body := b.do(t, http.MethodPost, b.path(t, b.signer.PreferencesURL("c1")), form); res.StatusCode != http.StatusOK {
		t.Fatalf("preferences = %d %s", res.StatusCode, body)
	}
	b.now = b.now.Add(time.Minute)
	if res, body := b.do(t, http.MethodPost, b.path(t, b.signer.UnsubscribeURL("c1", "")), url.Values{"List-Unsubscribe": {"One-Click"}, "via": {"page"}}); res.StatusCode != http.StatusOK {
		t.Fatalf("unsubscribe page = %d %s", res.StatusCode, body)
	}
	// A few unrelated events: the consent log keeps the older entries anyway.
	for i := range store.RecentEvents {
		b.store.Update(b.ctx, "c1", "", func(c *lifecycle.Customer) (*store.Change, error) {
			return &store.Change{Customer: c, Event: &lifecycle.Event{Name: "logged_in", At: b.now, Data: map[string]any{"n": i}},
				Wake: b.engine.NextWake(c), Due: b.engine.NextDue(c)}, nil
		})
	}

	res, body := b.apiGet(t, "/api/customers/c1/consent")
	var h consentHistory
	if err := json.Unmarshal([]byte(body), &h); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET consent = %d %s", res.StatusCode, body)
	}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	want := consentHistory{Customer: "c1", Email: "c1@example.org", Consent: []consentEntry{
		{Event: "unsubscribed", At: start, Source: "one-click (RFC 8058 List-Unsubscribe-Post)",
			Data: map[string]any{"how": "one-click (RFC 8058 List-Unsubscribe-Post)", "topic": "education"}},
		{Event: "preferences_changed", At: start.Add(time.Minute), Source: "preference page",
			Data: map[string]any{"how": "preference page", "unsubscribed": false, "opted_out": nil}},
		{Event: "unsubscribed", At: start.Add(2 * time.Minute), Source: "unsubscribe page",
			Data: map[string]any{"how": "unsubscribe page"}},
	}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("consent history (-want +got):\n%s", diff)
	}
	if res, body := b.apiGet(t, "/api/customers/c2/consent"); res.StatusCode != http.StatusOK || !strings.Contains(body, `"consent": []`) {
		t.Errorf("c2's consent history = %d %s", res.StatusCode, body)
	}
}
