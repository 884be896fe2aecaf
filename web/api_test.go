package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/plan"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

const ada = `{"email": "ada@example.com", "first_name": "Ada", "stage": "onboarding"}`

func TestAPIRefusesRequestsWithoutTheToken(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	unauthorized := gotError{http.StatusUnauthorized, "", "a valid bearer token is required: Authorization: Bearer $RETAIN_API_TOKEN"}
	for _, ep := range []struct{ method, path, body string }{
		{"POST", "/api/events", `{"customer": "c1", "name": "logged_in"}`},
		{"PUT", "/api/customers/c1", `{"first_name": "Eve"}`},
		{"GET", "/api/customers/c1", ""},
		{"GET", "/api/customers/c1/timeline", ""},
	} {
		for _, tc := range []struct {
			name string
			opt  option
		}{
			{"no token", withToken("")},
			{"wrong token", withToken("test-token-0123456788")},
			{"token as basic auth", func(r *http.Request) { r.SetBasicAuth("api", testToken) }},
		} {
			resp, body := b.do(t, ep.method, ep.path, ep.body, tc.opt)
			if diff := cmp.Diff(unauthorized, errorOf(t, resp, body)); diff != "" {
				t.Errorf("%s %s with %s (-want +got):\n%s", ep.method, ep.path, tc.name, diff)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="retain"` {
				t.Errorf("%s %s with %s: WWW-Authenticate %q", ep.method, ep.path, tc.name, got)
			}
		}
		if resp, body := b.do(t, ep.method, ep.path, ep.body); resp.StatusCode/100 != 2 {
			t.Errorf("%s %s with the token: %d %s", ep.method, ep.path, resp.StatusCode, body)
		}
	}
	if p := b.pending(t); len(p) != 1 {
		t.Errorf("%d events queued, want the one sent with the token", len(p))
	}
	if c, _ := b.store.Customer(b.ctx, "c1"); c.FirstName != "Eve" {
		t.Errorf("first name %q, want Eve: only the PUT with the token changes it", c.FirstName)
	}
}

func TestPostEventRefusesInvalidEventsNamingTheField(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	for _, tc := range []struct {
		name, body string
		want       gotError
	}{
		{"no customer", `{"name": "logged_in"}`,
			gotError{400, "customer", "customer is missing: give the customer's id"}},
		{"no name", `{"customer": "c1"}`,
			gotError{400, "name", "name is missing: give the event's name, such as order_placed"}},
		{"bad time", `{"customer": "c1", "name": "logged_in", "at": "yesterday"}`,
			gotError{400, "at", `time "yesterday": use RFC 3339 (2026-03-14T09:30:00Z), 2026-03-14 09:30 or 2026-03-14`}},
		{"time in the future", `{"customer": "c1", "name": "logged_in", "at": "2026-03-02T09:16:00Z"}`,
			gotError{400, "at", "at 2026-03-02T09:16:00Z is in the future (now is 2026-03-02T09:00:00Z): events are what already happened"}},
		{"zero time", `{"customer": "c1", "name": "logged_in", "at": "0001-01-01T00:00:00Z"}`,
			gotError{400, "at", "at 0001-01-01T00:00:00Z is before 1970: give the time the event happened"}},
		{"time as a number", `{"customer": "c1", "name": "logged_in", "at": 1772442000}`,
			gotError{400, "at", "must be a string, not number"}},
		{"data as a list", `{"customer": "c1", "name": "logged_in", "data": [1, 2]}`,
			gotError{400, "data", "must be an object, not array"}},
		{"bad email", `{"customer": "c9", "name": "signed_up", "email": "ada at example.com"}`,
			gotError{400, "email", `email "ada at example.com" is not an email address`}},
		{"customer id of two lines", `{"customer": "c1\nc2", "name": "logged_in"}`,
			gotError{400, "customer", `id "c1\nc2" must be one line of at most 200 bytes`}},
		{"event id of two lines", `{"customer": "c1", "name": "logged_in", "id": "a\nb"}`,
			gotError{400, "id", `id "a\nb" must be one line of at most 200 bytes`}},
		{"unknown field", `{"customer": "c1", "name": "logged_in", "colour": "red"}`,
			gotError{400, "colour", `unknown field "colour": the fields are customer, name, at, id, data, email, events`}},
		{"misspelt field", `{"customer": "c1", "name": "logged_in", "dat": {}}`,
			gotError{400, "dat", `unknown field "dat" (did you mean "at"?): the fields are customer, name, at, id, data, email, events`}},
		{"batch: bad time in the third event", `{"events": [
			{"customer": "c1", "name": "logged_in"},
			{"customer": "c1", "name": "logged_in"},
			{"customer": "c1", "name": "logged_in", "at": "2026-02-30"}]}`,
			gotError{400, "events[2].at", `time "2026-02-30": use RFC 3339 (2026-03-14T09:30:00Z), 2026-03-14 09:30 or 2026-03-14`}},
		{"batch: unknown field in the second event", `{"events": [{"customer": "c1", "name": "a"}, {"customer": "c1", "name": "b", "colour": 1}]}`,
			gotError{400, "events[1].colour", `unknown field "colour": the fields are customer, name, at, id, data, email`}},
		{"batch: wrong type in the first event", `{"events": [{"customer": 42, "name": "a"}]}`,
			gotError{400, "events[0].customer", "must be a string, not number"}},
		{"batch: null event", `{"events": [null]}`,
			gotError{400, "events[0]", "must be an event object, not null"}},
		{"batch: event that is not an object", `{"events": ["logged_in"]}`,
			gotError{400, "events[0]", "must be an object, not string"}},
		{"batch with more than events", `{"customer": "c1", "events": [{"customer": "c1", "name": "a"}]}`,
			gotError{400, "customer", `a batch is {"events": [...]} and nothing else: put "customer" inside each event`}},
		{"empty batch", `{"events": []}`,
			gotError{400, "events", "the batch is empty: give at least one event"}},
		{"events not a list", `{"events": {"customer": "c1"}}`,
			gotError{400, "events", "must be a list, not object"}},
		{"body not an object", `[{"customer": "c1", "name": "a"}]`,
			gotError{400, "", "must be an object, not array"}},
		{"body null", `null`,
			gotError{400, "", `the body must be a JSON object: one event, or {"events": [...]}`}},
		{"malformed JSON", "{\n  \"customer\": \"c1\",\n  \"name\": \"logged_in\"\n  \"at\": \"2026-03-02\"\n}",
			gotError{400, "", "malformed JSON at line 4, column 3 (byte 46): invalid character '\"' after object key:value pair"}},
		{"truncated JSON", "{\"customer\": \"c1\", \"name\": \"logged_",
			gotError{400, "", "malformed JSON at line 1, column 36 (byte 35): the body ends before the JSON value does"}},
		{"two objects", "{\"customer\": \"c1\", \"name\": \"a\"}\n{\"customer\": \"c1\", \"name\": \"b\"}",
			gotError{400, "", "malformed JSON at line 2, column 1 (byte 32): one JSON object per request; remove what follows it"}},
		{"empty body", "  \n",
			gotError{400, "", "the body is empty: send a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.do(t, "POST", "/api/events", tc.body)
			if diff := cmp.Diff(tc.want, errorOf(t, resp, body)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("refused requests queued %v", p)
	}
	if _, err := b.store.Customer(b.ctx, "c9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused event created customer c9: %v", err)
	}
}

func TestPostEventNeedsJSONContentType(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	event := `{"customer": "c1", "name": "logged_in"}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx"} {
		resp, body := b.do(t, "POST", "/api/events", event, withContentType(ct))
		want := gotError{415, "", fmt.Sprintf("the body must be JSON sent as Content-Type: application/json, not %q", ct)}
		if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
			t.Errorf("Content-Type %q (-want +got):\n%s", ct, diff)
		}
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("refused requests queued %v", p)
	}
	resp, body := b.do(t, "POST", "/api/events", event, withContentType("application/json; charset=utf-8"))
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("application/json; charset=utf-8: %d %s", resp.StatusCode, body)
	}
}

func TestPostEventOverTheSizeLimitIs413(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	big := `{"customer": "c1", "name": "logged_in", "data": {"note": "` + strings.Repeat("x", 1<<20) + `"}}`
	want := gotError{413, "", "the body is larger than 1048576 bytes: send fewer events per request"}
	for _, tc := range []struct {
		name string
		opts []option
	}{
		{"with Content-Length", nil},
		{"chunked", []option{chunked}},
	} {
		resp, body := b.do(t, "POST", "/api/events", big, tc.opts...)
		if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	events := make([]string, MaxBatch+1)
	for i := range events {
		events[i] = fmt.Sprintf(`{"customer":"c1","name":"logged_in","id":"e%d"}`, i)
	}
	resp, body := b.do(t, "POST", "/api/events", `{"events":[`+strings.Join(events, ",")+`]}`)
	want = gotError{413, "events", "1001 events in one request; the most is 1000: split the batch"}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("batch of 1001 (-want +got):\n%s", diff)
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("refused requests queued %d events", len(p))
	}
	resp, body = b.do(t, "POST", "/api/events", `{"events":[`+strings.Join(events[:MaxBatch], ",")+`]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("batch of 1000: %d %s", resp.StatusCode, body)
	}
	if p := b.pending(t); len(p) != MaxBatch {
		t.Errorf("batch of 1000 queued %d events", len(p))
	}
}

func TestPostEventForUnknownCustomerWithoutEmailIs404(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	resp, body := b.do(t, "POST", "/api/events", `{"customer": "c7", "name": "logged_in"}`)
	want := gotError{404, "customer", `customer "c7" is unknown: give its email to create it with the event, or create it first with PUT /api/customers/c7`}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("single event (-want +got):\n%s", diff)
	}
	// c9 could be created, c7 cannot: neither is, and nothing is queued.
	resp, body = b.do(t, "POST", "/api/events", `{"events": [
		{"customer": "c1", "name": "logged_in"},
		{"customer": "c9", "name": "signed_up", "email": "c9@example.com"},
		{"customer": "c7", "name": "logged_in"},
		{"customer": "c7", "name": "logged_out"}]}`)
	want.Field = "events[2].customer"
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("refused requests queued %v", p)
	}
	if _, err := b.store.Customer(b.ctx, "c9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused batch created customer c9: %v", err)
	}
}

func TestPostEventWithTheEmailOfAnotherCustomerIs409(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	resp, body := b.do(t, "POST", "/api/events", `{"events": [
		{"customer": "c9", "name": "logged_in"},
		{"customer": "c9", "name": "signed_up", "email": "Ada@Example.com"}]}`)
	want := gotError{409, "events[1].email", "Ada@Example.com belongs to another customer: nothing was queued"}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("refused request queued %v", p)
	}
}

func TestBatchWithOneBadEventQueuesNothing(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	resp, body := b.do(t, "POST", "/api/events", `{"events": [
		{"customer": "c1", "name": "logged_in"},
		{"customer": "c9", "name": "signed_up", "email": "c9@example.com"},
		{"customer": "c1", "name": "order_placed", "data": {"total": 59.9}},
		{"customer": "c1", "name": ""}]}`)
	want := gotError{400, "events[3].name", "name is missing: give the event's name, such as order_placed"}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if p := b.pending(t); len(p) != 0 {
		t.Errorf("a refused batch queued %v", p)
	}
	if _, err := b.store.Customer(b.ctx, "c9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused batch created customer c9: %v", err)
	}
}

func TestAcceptedEventIsInTheQueueWhenTheAnswerComes(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	resp, body := b.do(t, "POST", "/api/events", `{"events": [
		{"customer": "c1", "name": "order_placed", "at": "2026-03-02T10:00:00+01:00", "id": "order-1", "data": {"total": 59.9, "sku": "T-100", "gift": false}},
		{"customer": "c9", "name": "signed_up", "email": "c9@example.com"},
		{"customer": "c1", "name": "logged_in", "at": "2026-03-01 18:30"}]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// Without an id, an event's ID is derived from customer, name, time and data;
	// a time without an offset is in the lifecycle's zone, Europe/Amsterdam.
	signedUp := lifecycle.Event{Name: "signed_up", At: b.now}
	signedUp.ID = ingest.EventID("c9", signedUp)
	loggedIn := lifecycle.Event{Name: "logged_in", At: time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC)}
	loggedIn.ID = ingest.EventID("c1", loggedIn)
	var got eventsAccepted
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := eventsAccepted{IDs: []string{"order-1", signedUp.ID, loggedIn.ID}, Created: []string{"c9"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}

	wantTasks := []queue.EventPayload{
		{Customer: "c1", Event: lifecycle.Event{ID: "order-1", Name: "order_placed", At: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
			Data: map[string]any{"total": 59.9, "sku": "T-100", "gift": false}}},
		{Customer: "c9", Event: signedUp},
		{Customer: "c1", Event: loggedIn},
	}
	if diff := cmp.Diff(wantTasks, b.pending(t), cmp.Comparer(time.Time.Equal)); diff != "" {
		t.Errorf("queued (-want +got):\n%s", diff)
	}
	c9, err := b.store.Customer(b.ctx, "c9")
	if err != nil || c9.Email != "c9@example.com" || c9.Stage != "lead" {
		t.Errorf("c9 = %+v, %v; want it created in the first stage, its event still queued", c9, err)
	}
}

func TestSameEventTwiceIsQueuedOnceAndAppliedOnce(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	post := func(event string) string {
		t.Helper()
		resp, body := b.do(t, "POST", "/api/events", event)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var got eventsAccepted
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		return got.IDs[0]
	}
	withID := `{"customer": "c1", "name": "order_placed", "id": "order-1", "data": {"total": 10}}`
	// A second request with the same id adds no task while the first waits,
	// whatever else it says: the id names the event.
	for _, ev := range []string{withID, withID, `{"customer": "c1", "name": "order_placed", "id": "order-1", "data": {"total": 99}}`} {
		if id := post(ev); id != "order-1" {
			t.Errorf("ID %q, want order-1", id)
		}
	}
	// Without an id, the same name, time and data give the same ID.
	noID := `{"customer": "c1", "name": "logged_in", "at": "2026-03-02T08:00:00Z"}`
	if first, second := post(noID), post(noID); first != second {
		t.Errorf("the same event without id got IDs %s and %s", first, second)
	}
	tasks := b.pending(t)
	if len(tasks) != 2 || tasks[0].Event.ID != "order-1" || tasks[0].Event.Data["total"] != 10.0 {
		t.Fatalf("queued %+v; want order-1 (the first one sent) and logged_in, once each", tasks)
	}

	// The worker applies the task and Asynq deletes it. The same event sent again
	// is queued anew, and the worker finds its ID among the customer's applied
	// events and changes nothing.
	if _, err := b.applier.Event(b.ctx, "c1", tasks[0].Event); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(b.rdb)
	infos, err := insp.ListPendingTasks(queue.QueueEvents)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if err := insp.DeleteTask(queue.QueueEvents, info.ID); err != nil {
			t.Fatal(err)
		}
	}
	post(withID)
	again := b.pending(t)
	if len(again) != 1 || again[0].Event.ID != "order-1" {
		t.Fatalf("queued %+v after the first was applied; want order-1 again", again)
	}
	if _, err := b.applier.Event(b.ctx, "c1", again[0].Event); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("applying it again: %v, want store.ErrDuplicate", err)
	}
	if c, _ := b.store.Customer(b.ctx, "c1"); c.Counters["orders"] > 1 {
		t.Errorf("orders = %d after one order sent three times", c.Counters["orders"])
	}
}

func TestPostEventWhenRedisIsDownIs503(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { dead.Close() })
	deps := b.deps
	deps.Queue = queue.NewClient(dead)
	base := b.start(t, b.cfg, deps)
	resp, body := b.doAt(t, base, "POST", "/api/events", `{"events": [{"customer": "c1", "name": "logged_in"}, {"customer": "c1", "name": "order_placed"}]}`)
	want := gotError{503, "", "Redis is unavailable: 0 of 2 events were queued; send the request again (an event sent again with the same id, or the same at, is applied once)"}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("queue down (-want +got):\n%s", diff)
	}
	if got := resp.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q", got)
	}

	deps = b.deps
	deps.Store = store.New(dead, "")
	base = b.start(t, b.cfg, deps)
	resp, body = b.doAt(t, base, "POST", "/api/events", `{"customer": "c1", "name": "logged_in"}`)
	want = gotError{503, "", "Redis is unavailable: nothing was queued; send the request again"}
	if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
		t.Errorf("store down (-want +got):\n%s", diff)
	}
}

func TestPutThenGetRoundTripKeepsAttributeTypes(t *testing.T) {
	b := setup(t)
	resp, body := b.do(t, "PUT", "/api/customers/c1", `{
		"email": "ada@example.com", "first_name": "Ada", "name": "Ada Lovelace", "locale": "nl",
		"timezone": "America/New_York", "stage": "onboarding",
		"attributes": {"plan": "team", "seats": 5, "mrr": 49.5, "trial": true, "renews_at": "2027-01-01"}}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT new: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Location"); got != "/api/customers/c1" {
		t.Errorf("Location %q", got)
	}
	now := b.now.Format(time.RFC3339)
	want := `{
  "id": "c1",
  "email": "ada@example.com",
  "first_name": "Ada",
  "name": "Ada Lovelace",
  "locale": "nl",
  "timezone": "America/New_York",
  "attributes": {
    "mrr": 49.5,
    "plan": "team",
    "renews_at": "2027-01-01T00:00:00Z",
    "seats": 5,
    "trial": true
  },
  "stage": "onboarding",
  "stage_since": "` + now + `",
  "created_at": "` + now + `",
  "last_event": "` + now + `",
  "stage_history": [],
  "enrollments": [
    {
      "campaign": "onboarding",
      "n": 1,
      "status": "active",
      "started": "` + now + `",
      "passed": [],
      "next_step": "onboarding/welcome",
      "due": "` + now + `"
    }
  ],
  "subscription": {
    "unsubscribed": false,
    "opted_out": []
  }
}
`
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("PUT answer (-want +got):\n%s", diff)
	}
	resp, got := b.do(t, "GET", "/api/customers/c1", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %s", resp.StatusCode, got)
	}
	if diff := cmp.Diff(body, got); diff != "" {
		t.Errorf("GET differs from the PUT answer (-put +get):\n%s", diff)
	}
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs := map[string]any{"plan": "team", "seats": 5, "mrr": 49.5, "trial": true, "renews_at": time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(wantAttrs, c.Attributes); diff != "" {
		t.Errorf("stored attributes (-want +got):\n%s", diff)
	}

	// An update sets what it gives and keeps the rest; attributes are merged.
	resp, body = b.do(t, "PUT", "/api/customers/c1", `{"id": "c1", "first_name": "Augusta", "move_to_stage": {"stage": "active"}, "attributes": {"seats": "7"}}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT update: %d %s", resp.StatusCode, body)
	}
	var out customerOut
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	wantAttrsJSON := map[string]any{"plan": "team", "seats": 7.0, "mrr": 49.5, "trial": true, "renews_at": "2027-01-01T00:00:00Z"}
	if out.FirstName != "Augusta" || out.Name != "Ada Lovelace" || out.Email != "ada@example.com" || out.Stage != "active" || !cmp.Equal(wantAttrsJSON, out.Attributes) {
		t.Errorf("after update: %s", body)
	}
	wantHistory := []lifecycle.StageChange{{From: "onboarding", To: "active", At: b.now, Cause: "api"}}
	if diff := cmp.Diff(wantHistory, out.History); diff != "" {
		t.Errorf("stage history (-want +got):\n%s", diff)
	}
}

func TestPutCustomerRefusesInvalidFieldsNamingTheField(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	b.putCustomer(t, "c2", `{"email": "grace@example.com"}`)
	for _, tc := range []struct {
		name, id, body string
		want           gotError
	}{
		{"attribute of the wrong type", "c1", `{"attributes": {"plan": "team", "seats": "many"}}`,
			gotError{400, "attributes.seats", `attribute "seats" must be a whole number, got many (string)`}},
		{"fraction for a whole number", "c1", `{"attributes": {"seats": 2.5}}`,
			gotError{400, "attributes.seats", `attribute "seats" must be a whole number, got 2.5 (float64)`}},
		{"bad time attribute", "c1", `{"attributes": {"renews_at": "soon"}}`,
			gotError{400, "attributes.renews_at", `attribute "renews_at" must be a time such as 2026-03-14T09:30:00Z or 2026-03-14, got "soon"`}},
		{"undeclared attribute", "c1", `{"attributes": {"sets": 5}}`,
			gotError{400, "attributes.sets", `attribute "sets" is not declared in lifecycle.yaml (did you mean "seats"?)`}},
		{"unknown stage", "c1", `{"stage": "onbording"}`,
			gotError{400, "stage", `stage "onbording" is not declared in lifecycle.yaml (did you mean "onboarding"?)`}},
		{"unknown time zone", "c1", `{"timezone": "Europe/Amsterdm"}`,
			gotError{400, "timezone", `timezone "Europe/Amsterdm" is not an IANA time zone such as Europe/Amsterdam`}},
		{"bad email", "c1", `{"email": "ada"}`,
			gotError{400, "email", `email "ada" is not an email address`}},
		{"email of another customer", "c1", `{"email": "grace@example.com"}`,
			gotError{409, "email", "grace@example.com belongs to another customer"}},
		{"new customer without email", "c3", `{"first_name": "Ada"}`,
			gotError{400, "email", `customer "c3" is new and needs an email`}},
		{"id other than the path's", "c1", `{"id": "c2", "first_name": "Ada"}`,
			gotError{400, "id", `id "c2" is not the "c1" of the path: leave it out, or PUT to /api/customers/c2`}},
		{"events", "c1", `{"events": [{"name": "signed_up"}]}`,
			gotError{400, "events", "events are not part of a customer update: POST them to /api/events"}},
		{"unknown field", "c1", `{"firstname": "Ada"}`,
			gotError{400, "firstname", `unknown field "firstname" (did you mean "first_name"?): the fields are id, email, first_name, name, locale, timezone, stage, attributes, move_to_stage`}},
		{"wrong type", "c1", `{"first_name": 5}`,
			gotError{400, "first_name", "must be a string, not number"}},
		{"attributes not an object", "c1", `{"attributes": "plan=team"}`,
			gotError{400, "attributes", "must be an object, not string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.do(t, "PUT", "/api/customers/"+tc.id, tc.body)
			if diff := cmp.Diff(tc.want, errorOf(t, resp, body)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil || c.Email != "ada@example.com" || c.Stage != "onboarding" || len(c.Attributes) != 0 {
		t.Errorf("refused updates changed c1: %+v, %v", c, err)
	}
	if _, err := b.store.Customer(b.ctx, "c3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("c3: %v", err)
	}
}

func TestUnknownCustomerIs404(t *testing.T) {
	b := setup(t)
	for _, path := range []string{"/api/customers/nobody", "/api/customers/nobody/timeline"} {
		resp, body := b.do(t, "GET", path, "")
		want := gotError{404, "", `customer "nobody" is unknown`}
		if diff := cmp.Diff(want, errorOf(t, resp, body)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
	}
}

func TestTimelineHasTheWelcomeEmail(t *testing.T) {
	b := setup(t)
	b.putCustomer(t, "c1", ada)
	resp, body := b.do(t, "GET", "/api/customers/c1/timeline?horizon=7d", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got plan.Timeline
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := plan.Timeline{Customer: "c1", Timezone: "Europe/Amsterdam", From: "2026-03-02T09:00:00Z", Until: "2026-03-09T09:00:00Z", Stage: "onboarding",
		Entries: []plan.Entry{
			{Kind: "email", At: "2026-03-02T09:00:00Z", Local: "2026-03-02T10:00:00+01:00", Campaign: "onboarding", Enrollment: 1,
				Step: "onboarding/welcome", File: "testdata/campaigns/onboarding/01-welcome.md", Subject: "Welcome, Ada"},
			{Kind: "email", At: "2026-03-04T09:00:00Z", Local: "2026-03-04T10:00:00+01:00", Campaign: "onboarding", Enrollment: 1,
				Step: "onboarding/first-project", File: "testdata/campaigns/onboarding/02-first-project.md", Subject: "Your first project"},
			{Kind: "completed", At: "2026-03-04T09:00:00Z", Local: "2026-03-04T10:00:00+01:00", Campaign: "onboarding", Enrollment: 1,
				Reason: "all steps passed"},
		}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	// The timeline is planned on a copy: the stored customer is as it was.
	if c, _ := b.store.Customer(b.ctx, "c1"); c.Enrollments["onboarding"].Next != "welcome" {
		t.Errorf("planning changed the stored customer: %+v", c.Enrollments["onboarding"])
	}

	for _, tc := range []struct{ horizon, reason string }{
		{"soon", `bad duration "soon": use a whole number and a unit`},
		{"0", "horizon 0 must be longer than 0 and at most 730d"},
		{"1000d", "horizon 1000d must be longer than 0 and at most 730d"},
	} {
		resp, body := b.do(t, "GET", "/api/customers/c1/timeline?horizon="+tc.horizon, "")
		got := errorOf(t, resp, body)
		if got.Status != 400 || got.Field != "horizon" || !strings.HasPrefix(got.Error, tc.reason) {
			t.Errorf("horizon=%s: %+v, want 400 horizon %q…", tc.horizon, got, tc.reason)
		}
	}
}
