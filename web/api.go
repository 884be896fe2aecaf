package web

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/plan"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// The JSON API, documented for its users in docs/api.md (whose curl examples
// apidoc_test.go runs). Every endpoint needs the API token; every error is an apiError
// ({"error": "why, and what to do", "field": "events[2].at"}):
//
//	POST /api/events                   202 queued; 400 invalid; 404 unknown customer;
//	                                   409 email of another customer; 413 too large;
//	                                   415 not JSON; 503 Redis unavailable
//	PUT  /api/customers/{id}           201 created, 200 updated; 400, 409, 413, 415, 503
//	GET  /api/customers/{id}           200; 404 unknown; 503
//	GET  /api/customers/{id}/timeline  200; 400 bad horizon; 404; 503
//	PUT  /api/customers/{id}/subscription, GET /api/customers/{id}/consent: subscription.go
//	GET  /api/customers, GET /api/customers/{id}/emails: customers.go
//	/api/suppressions...               the suppression list: suppress.go
//
// A validation error names the first field at fault, in the request's own terms
// (customer, events[2].at, attributes.seats); a request with any invalid part
// changes nothing.

// MaxBatch is the most events one POST /api/events may carry.
const MaxBatch = 1000

// maxHorizon bounds a timeline: the simulation is cheap, but not free.
const maxHorizon = 730 * 24 * time.Hour

// writeTimeout bounds the writes of a request that passed validation. They run
// on even when the client goes away, so that a batch is not cut in half by a
// client timeout.
const writeTimeout = 30 * time.Second

func (s *Server) apiRoutes() {
	s.mux.Handle("POST /api/events", s.requireToken(s.requireCampaigns(s.postEvents)))
	s.mux.Handle("PUT /api/customers/{id}", s.requireToken(s.requireCampaigns(s.putCustomer)))
	s.mux.Handle("GET /api/customers/{id}", s.requireToken(s.requireCampaigns(s.getCustomer)))
	s.mux.Handle("GET /api/customers/{id}/timeline", s.requireToken(s.requireCampaigns(s.getTimeline)))
	// subscription.go: needs the campaigns' topics and schedule; the consent
	// history does not.
	s.mux.Handle("PUT /api/customers/{id}/subscription", s.requireToken(s.requireCampaigns(s.putSubscription)))
	s.mux.Handle("GET /api/customers/{id}/consent", s.requireToken(http.HandlerFunc(s.getConsent)))
	// suppress.go: about addresses, not rules, so served while campaigns do not lint.
	s.mux.Handle("GET /api/suppressions", s.requireToken(http.HandlerFunc(s.listSuppressions)))
	s.mux.Handle("POST /api/suppressions/import", s.requireToken(http.HandlerFunc(s.importSuppressions)))
	s.mux.Handle("GET /api/suppressions/{email}", s.requireToken(http.HandlerFunc(s.getSuppression)))
	s.mux.Handle("PUT /api/suppressions/{email}", s.requireToken(http.HandlerFunc(s.putSuppression)))
	s.mux.Handle("DELETE /api/suppressions/{email}", s.requireToken(http.HandlerFunc(s.deleteSuppression)))
}

// requireCampaigns answers 503 while the loaded campaigns have lint problems:
// nothing is accepted under rules that do not lint (the preview pages show why).
func (s *Server) requireCampaigns(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := s.campaignsRefused(); reason != "" {
			w.Header().Set("Retry-After", "60")
			writeError(w, http.StatusServiceUnavailable, "", reason)
			return
		}
		h(w, r)
	})
}

// campaignsRefused is why the API refuses every request (503), empty when it
// does not: the campaigns have lint problems, or none were loaded. /healthz
// reports it too.
func (s *Server) campaignsRefused() string {
	switch {
	case len(s.d.Problems) > 0:
		return fmt.Sprintf("the campaigns have %d lint problems; fix them (retain lint) and restart retain web", len(s.d.Problems))
	case s.d.Engine == nil:
		return "no campaigns are loaded; start retain web in a project folder (retain lint tells what is wrong)"
	}
	return ""
}

// requestError is a request the API refuses: its status, the field at fault
// (empty when the request as a whole is) and the reason.
type requestError struct {
	status int
	field  string
	reason string
}

func invalid(field, format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, field, fmt.Sprintf(format, args...)}
}

func (e *requestError) write(w http.ResponseWriter) { writeError(w, e.status, e.field, e.reason) }

// unavailable answers a failed read or write of Redis (store or queue): 503,
// never a success, and the request may be sent again.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error, reason string) {
	s.cfg.Log.Error("api: redis unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "", reason)
}

// readBody returns the request's JSON body: 415 unless it is declared
// application/json, 413 when it is over MaxBody, 400 when it is empty.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, &requestError{http.StatusUnsupportedMediaType, "",
			fmt.Sprintf("the body must be JSON sent as Content-Type: application/json, not %q", ct)}
	}
	tooLarge := &requestError{http.StatusRequestEntityTooLarge, "",
		fmt.Sprintf("the body is larger than %d bytes: send fewer events per request", s.cfg.MaxBody)}
	if r.ContentLength > s.cfg.MaxBody {
		return nil, tooLarge
	}
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge
	case err != nil:
		return nil, invalid("", "reading the body: %v", err)
	case len(bytes.TrimSpace(src)) == 0:
		return nil, invalid("", "the body is empty: send a JSON object")
	case !utf8.Valid(src):
		// encoding/json would store U+FFFD in its place, silently.
		line, col := lineCol(src, int64(invalidAt(src)))
		return nil, invalid("", "the body is not valid UTF-8 at line %d, column %d (byte %d): JSON is UTF-8", line, col, invalidAt(src))
	}
	return src, nil
}

// decode decodes src, one JSON value, into v, refusing fields v does not have.
// prefix is put before the names of fields at fault ("events[2].").
func decode(src []byte, v any, prefix string, fields []string) *requestError {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		off := dec.InputOffset()
		if rest := bytes.TrimSpace(src[off:]); len(rest) > 0 {
			off += int64(bytes.Index(src[off:], rest[:1]))
			line, col := lineCol(src, off)
			return invalid("", "malformed JSON at line %d, column %d (byte %d): one JSON object per request; remove what follows it", line, col, off)
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off := max(syn.Offset-1, 0) // Offset is just past the bad byte
		line, col := lineCol(src, off)
		return invalid("", "malformed JSON at line %d, column %d (byte %d): %s", line, col, off, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := lineCol(src, int64(len(src)))
		return invalid("", "malformed JSON at line %d, column %d (byte %d): the body ends before the JSON value does", line, col, len(src))
	case errors.As(err, &typ):
		field := prefix + typ.Field
		if typ.Field == "" {
			field = strings.TrimSuffix(prefix, ".")
		}
		return invalid(field, "must be %s, not %s", jsonType(typ.Type.Kind().String()), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return invalid(prefix+name, "unknown field %q%s: the fields are %s", name, campaign.DidYouMean(name, fields), strings.Join(fields, ", "))
	}
	return invalid("", "malformed JSON: %v", err)
}

// invalidAt is the offset of the first byte of src that is not valid UTF-8.
func invalidAt(src []byte) int {
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(src)
}

// jsonType names a Go kind as JSON calls it.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "a list"
	case "bool":
		return "true or false"
	}
	return "a number"
}

// lineCol converts a byte offset of src to a 1-based line and column.
func lineCol(src []byte, off int64) (line, col int) {
	off = min(off, int64(len(src)))
	before := src[:off]
	return bytes.Count(before, []byte("\n")) + 1, int(off) - bytes.LastIndexByte(before, '\n')
}

// check runs ingest.Check on r, first on one field at a time in the order a
// request lists them, so that a refusal names its field: id, email, timezone,
// stage or attributes.<name>. On success r is checked as a whole, which types
// its attributes and gives its events their IDs.
func check(r *ingest.Record, l *campaign.Lifecycle) (field string, err error) {
	type part struct {
		field string
		r     ingest.Record
	}
	parts := []part{
		{"id", ingest.Record{ID: r.ID}},
		{"email", ingest.Record{ID: r.ID, Email: r.Email}},
		{"first_name", ingest.Record{ID: r.ID, FirstName: r.FirstName}},
		{"name", ingest.Record{ID: r.ID, Name: r.Name}},
		{"locale", ingest.Record{ID: r.ID, Locale: r.Locale}},
		{"timezone", ingest.Record{ID: r.ID, Timezone: r.Timezone}},
		{"stage", ingest.Record{ID: r.ID, Stage: r.Stage}},
	}
	for _, k := range slices.Sorted(maps.Keys(r.Attributes)) {
		parts = append(parts, part{"attributes." + k, ingest.Record{ID: r.ID, Attributes: map[string]any{k: r.Attributes[k]}}})
	}
	for _, p := range parts {
		if err := ingest.Check(&p.r, l); err != nil {
			return p.field, err
		}
	}
	return "", ingest.Check(r, l)
}

// oneLine reports whether s is one line of at most 200 bytes, like a customer ID.
func oneLine(s string) bool { return len(s) <= 200 && !strings.ContainsAny(s, "\x00\r\n") }

// eventIn is one event of POST /api/events.
type eventIn struct {
	// Customer is the customer's ID.
	Customer string `json:"customer"`
	Name     string `json:"name"`
	// At is when it happened: RFC 3339, or a local time in the lifecycle's time
	// zone ("2026-03-02 10:00"); default: when the request arrives.
	At string `json:"at"`
	// ID is the idempotency key; default ingest.EventID of the event.
	ID   string         `json:"id"`
	Data map[string]any `json:"data"`
	// Email creates the customer when retain does not know it yet; it is ignored
	// for a known customer (PUT /api/customers/{id} changes an address).
	Email string `json:"email"`
}

var eventFields = []string{"customer", "name", "at", "id", "data", "email"}

// eventsAccepted is the answer to POST /api/events.
type eventsAccepted struct {
	// IDs are the events' IDs, in request order.
	IDs []string `json:"ids"`
	// Created lists the customers the request created, from the events' email.
	Created []string `json:"created,omitempty"`
}

// postEvents handles POST /api/events. The body is one event or a batch:
//
//	{"customer": "c42", "name": "order_placed", "at": "2026-03-02T10:00:00Z",
//	 "id": "order-9912", "data": {"total": 59.9}, "email": "ada@example.com"}
//	{"events": [{...}, {...}]}
//
// customer and name are required. Every event is checked before any is queued:
// one bad event (400, field "events[2].at") or one unknown customer without an
// email (404, field "events[2].customer") refuses the whole request. Unknown
// customers with an email are created, then every event is queued for the
// workers, and only then does the answer come: 202 {"ids": [...], "created":
// [...]}. A Redis failure answers 503, never 202.
//
// Idempotency: an event is known by its ID within its customer. An event sent
// again with the same ID while its task waits in the queue adds no task (the
// task ID is derived from it); once applied, a new task is queued, and the worker
// finds the ID in the customer's seen set and changes nothing. Without an id the
// ID is derived from customer, name, at and data, so the same event with the same
// at is applied once too; an event without at is taken to happen now, so sending
// it twice records two events. Two events of one customer with one ID that
// differ in name, at or data refuse the batch (400, field "events[1].id").
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	src, rerr := s.readBody(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	ins, batch, rerr := decodeEvents(src)
	if rerr != nil {
		rerr.write(w)
		return
	}
	where := func(i int, field string) string {
		if batch {
			return fmt.Sprintf("events[%d].%s", i, field)
		}
		return field
	}
	now := s.cfg.Now()
	recs := make([]*ingest.Record, len(ins))
	for i, in := range ins {
		rec, field, err := s.checkEvent(in, now)
		if err != nil {
			invalid(where(i, field), "%v", err).write(w)
			return
		}
		recs[i] = rec
	}
	if i, j, ok := sameIDOtherEvent(recs); ok {
		invalid(where(i, "id"), "id %q is the id of events[%d] of customer %q, a different event: the second would be dropped as already seen; give each event its own id",
			recs[i].Events[0].ID, j, recs[i].ID).write(w)
		return
	}

	// Which customers exist, and which can be created: all before any write.
	var ids []string
	events := map[string][]int{} // customer → indexes of its events
	for i, rec := range recs {
		if _, ok := events[rec.ID]; !ok {
			ids = append(ids, rec.ID)
		}
		events[rec.ID] = append(events[rec.ID], i)
	}
	custs, err := s.d.Store.Customers(r.Context(), ids)
	if err != nil {
		s.unavailable(w, r, err, "Redis is unavailable: nothing was queued; send the request again")
		return
	}
	var create []*ingest.Record
	emailAt := map[string]int{} // customer to create → index of the event giving its email
	for j, c := range custs {
		if c != nil {
			continue
		}
		id := ids[j]
		nc := &ingest.Record{ID: id}
		for _, i := range events[id] {
			nc.Events = append(nc.Events, recs[i].Events[0]) // the earliest is when it was created
			if nc.Email == "" && recs[i].Email != "" {
				nc.Email, emailAt[id] = recs[i].Email, i
			}
		}
		if nc.Email == "" {
			writeError(w, http.StatusNotFound, where(events[id][0], "customer"), fmt.Sprintf(
				"customer %q is unknown: give its email to create it with the event, or create it first with PUT /api/customers/%s", id, url.PathEscape(id)))
			return
		}
		create = append(create, nc)
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	var res eventsAccepted
	for _, nc := range create {
		out, err := s.d.Applier.Upsert(ctx, nc)
		switch {
		case errors.Is(err, store.ErrEmailTaken):
			writeError(w, http.StatusConflict, where(emailAt[nc.ID], "email"), fmt.Sprintf(
				"%s belongs to another customer: nothing was queued", nc.Email))
			return
		case err != nil:
			s.unavailable(w, r, err, "Redis is unavailable: nothing was queued; send the request again")
			return
		}
		if out.Created {
			res.Created = append(res.Created, nc.ID)
		}
	}
	for i, rec := range recs {
		if err := s.d.Queue.EnqueueEvent(ctx, rec.ID, rec.Events[0]); err != nil {
			s.unavailable(w, r, err, fmt.Sprintf(
				"Redis is unavailable: %d of %d events were queued; send the request again (an event sent again with the same id, or the same at, is applied once)", i, len(recs)))
			return
		}
		res.IDs = append(res.IDs, rec.Events[0].ID)
	}
	s.cfg.Log.Info("api: events queued", "events", len(res.IDs), "customers", len(ids), "created", len(res.Created))
	writeJSON(w, http.StatusAccepted, res)
}

// sameIDOtherEvent finds the first event i of recs whose customer and ID are
// those of an earlier event j with another name, time or data. The worker keeps
// the first event of an ID and skips the rest, so such a batch would lose event
// i silently; the same event sent twice is fine (it is applied once).
func sameIDOtherEvent(recs []*ingest.Record) (i, j int, ok bool) {
	type key struct{ customer, id string }
	first := map[key]int{}
	for i, rec := range recs {
		e := rec.Events[0]
		k := key{rec.ID, e.ID}
		j, seen := first[k]
		if !seen {
			first[k] = i
			continue
		}
		if f := recs[j].Events[0]; f.Name != e.Name || !f.At.Equal(e.At) || !sameData(f.Data, e.Data) {
			return i, j, true
		}
	}
	return 0, 0, false
}

// sameData reports whether two events' data are the same JSON.
func sameData(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// decodeEvents decodes the body of POST /api/events: one event, or a batch
// {"events": [...]} of at most MaxBatch.
func decodeEvents(src []byte) (ins []eventIn, batch bool, rerr *requestError) {
	var top map[string]json.RawMessage
	if rerr := decode(src, &top, "", nil); rerr != nil {
		return nil, false, rerr
	}
	if top == nil {
		return nil, false, invalid("", "the body must be a JSON object: one event, or {\"events\": [...]}")
	}
	raw, batch := top["events"]
	if !batch {
		var in eventIn
		if rerr := decode(src, &in, "", append(slices.Clone(eventFields), "events")); rerr != nil {
			return nil, false, rerr
		}
		return []eventIn{in}, false, nil
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if k != "events" {
			return nil, true, invalid(k, "a batch is {\"events\": [...]} and nothing else: put %q inside each event", k)
		}
	}
	var raws []json.RawMessage
	if rerr := decode(raw, &raws, "events.", nil); rerr != nil {
		return nil, true, rerr
	}
	switch {
	case len(raws) == 0:
		return nil, true, invalid("events", "the batch is empty: give at least one event")
	case len(raws) > MaxBatch:
		return nil, true, &requestError{http.StatusRequestEntityTooLarge, "events",
			fmt.Sprintf("%d events in one request; the most is %d: split the batch", len(raws), MaxBatch)}
	}
	ins = make([]eventIn, len(raws))
	for i, raw := range raws {
		prefix := fmt.Sprintf("events[%d].", i)
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return nil, true, invalid(strings.TrimSuffix(prefix, "."), "must be an event object, not null")
		}
		if rerr := decode(raw, &ins[i], prefix, eventFields); rerr != nil {
			return nil, true, rerr
		}
	}
	return ins, true, nil
}

// checkEvent checks one event and returns it as a record of its customer, with
// its time (now when it has none) and its ID. field is in the request's terms.
func (s *Server) checkEvent(in eventIn, now time.Time) (rec *ingest.Record, field string, err error) {
	l := s.d.Engine.Set().Lifecycle
	switch {
	case in.Customer == "":
		return nil, "customer", errors.New("customer is missing: give the customer's id")
	case in.Name == "":
		return nil, "name", errors.New("name is missing: give the event's name, such as order_placed")
	case !oneLine(in.Name):
		return nil, "name", fmt.Errorf("name %q must be one line of at most 200 bytes", in.Name)
	case !oneLine(in.ID):
		return nil, "id", fmt.Errorf("id %q must be one line of at most 200 bytes", in.ID)
	}
	at := now
	if in.At != "" {
		if at, err = ingest.ParseTime(in.At, l.Timezone); err != nil {
			return nil, "at", err
		}
		// The same rule as retain import and retain event.
		if err := ingest.CheckTime(at, now); err != nil {
			return nil, "at", err
		}
	}
	rec = &ingest.Record{ID: in.Customer, Email: in.Email,
		Events: []lifecycle.Event{{ID: in.ID, Name: in.Name, At: at, Data: in.Data}}}
	if field, err := ingest.CheckEventData(s.d.Engine.Set(), rec.Events[0]); err != nil {
		return nil, field, err
	}
	if field, err := check(rec, l); err != nil {
		if field == "id" {
			field = "customer"
		}
		return nil, field, err
	}
	return rec, "", nil
}

// customerIn is the body of PUT /api/customers/{id}: the fields of a customer
// file, without events (POST them to /api/events), and move_to_stage. ID, when
// given, must be the one in the path.
type customerIn struct {
	ID         string         `json:"id"`
	Email      string         `json:"email"`
	FirstName  string         `json:"first_name"`
	Name       string         `json:"name"`
	Locale     string         `json:"locale"`
	Timezone   string         `json:"timezone"`
	Stage      string         `json:"stage"`
	Attributes map[string]any `json:"attributes"`
	// MoveToStage moves an existing customer to another stage, with the cause
	// recorded in its stage history (default "api"): stage only says where a
	// new customer starts.
	MoveToStage *stageMove `json:"move_to_stage"`
}

type stageMove struct {
	Stage string `json:"stage"`
	Cause string `json:"cause"`
}

var customerFields = []string{"id", "email", "first_name", "name", "locale", "timezone", "stage", "attributes", "move_to_stage"}

// putCustomer handles PUT /api/customers/{id}: it creates the customer (email
// required) or updates the fields the body sets, checked against lifecycle.yaml
// as an import checks them. Fields left out or empty keep their stored value,
// and attributes are merged into the stored ones. stage is where a new
// customer starts and is ignored for an existing one, so that sending the same
// customer again changes nothing; {"move_to_stage": {"stage": "active",
// "cause": "sales call"}} moves a customer (new or existing) to a stage now,
// with the enrollments it starts, and records the cause. It answers 201
// (created) or 200 with the customer as GET returns it.
func (s *Server) putCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	src, rerr := s.readBody(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	var in customerIn
	if rerr := decode(src, &in, "", customerFields); rerr != nil {
		if rerr.field == "events" {
			rerr.reason = "events are not part of a customer update: POST them to /api/events"
		}
		rerr.write(w)
		return
	}
	if in.ID != "" && in.ID != id {
		invalid("id", "id %q is not the %q of the path: leave it out, or PUT to /api/customers/%s", in.ID, id, url.PathEscape(in.ID)).write(w)
		return
	}
	rec := &ingest.Record{ID: id, Email: in.Email, FirstName: in.FirstName, Name: in.Name, Locale: in.Locale,
		Timezone: in.Timezone, Stage: in.Stage, Attributes: in.Attributes}
	if field, err := check(rec, s.d.Engine.Set().Lifecycle); err != nil {
		invalid(field, "%v", err).write(w)
		return
	}
	if mv := in.MoveToStage; mv != nil {
		l := s.d.Engine.Set().Lifecycle
		switch {
		case mv.Stage == "":
			invalid("move_to_stage.stage", "stage is missing: give the stage to move the customer to").write(w)
			return
		case !l.HasStage(mv.Stage):
			invalid("move_to_stage.stage", "stage %q is not declared in %s%s", mv.Stage, campaign.LifecycleFile, campaign.DidYouMean(mv.Stage, l.StageNames())).write(w)
			return
		case !oneLine(mv.Cause) || !utf8.ValidString(mv.Cause):
			invalid("move_to_stage.cause", "cause must be one line of at most 200 bytes").write(w)
			return
		}
	}
	if rec.Email == "" {
		_, err := s.d.Store.Customer(r.Context(), id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			invalid("email", "customer %q is new and needs an email", id).write(w)
			return
		case err != nil:
			s.unavailable(w, r, err, "Redis is unavailable: nothing was changed; send the request again")
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	res, err := s.d.Applier.Upsert(ctx, rec)
	switch {
	case errors.Is(err, store.ErrEmailTaken):
		writeError(w, http.StatusConflict, "email", fmt.Sprintf("%s belongs to another customer", rec.Email))
		return
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: the customer may not have been saved; send the request again")
		return
	}
	if mv := in.MoveToStage; mv != nil {
		if _, err := s.d.Applier.MoveStage(ctx, id, mv.Stage, cmp.Or(mv.Cause, "api")); err != nil {
			s.unavailable(w, r, err, "Redis is unavailable: the customer was saved but not moved; send the request again")
			return
		}
	}
	view, err := s.customer(ctx, id)
	if err != nil {
		s.unavailable(w, r, err, "the customer was saved, but reading it back failed: GET it")
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/customers/"+url.PathEscape(id))
	}
	writeJSON(w, status, view)
}

// getCustomer handles GET /api/customers/{id}.
func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	view, err := s.customer(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("customer %q is unknown", r.PathValue("id")))
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: try again")
	default:
		writeJSON(w, http.StatusOK, view)
	}
}

// customerOut is a customer as GET and PUT /api/customers/{id} return it. Times
// are RFC 3339 in UTC; attributes keep their declared types (a time attribute is
// an RFC 3339 string).
//
//	{"id": "c42", "email": "ada@example.com", "first_name": "Ada", "name": "Ada Lovelace",
//	 "locale": "nl", "timezone": "Europe/Amsterdam",
//	 "attributes": {"plan": "team", "seats": 5},
//	 "counters": {"orders": 2},
//	 "stage": "active", "stage_since": "…", "created_at": "…",
//	 "last_activity": "…", "last_event": "…", "last_sent": "…",
//	 "stage_history": [{"from": "lead", "to": "onboarding", "at": "…", "cause": "event signed_up"}],
//	 "enrollments": [{"campaign": "onboarding", "n": 1, "status": "active", "started": "…",
//	   "passed": ["welcome"], "next_step": "onboarding/first-project", "due": "…"}],
//	 "subscription": {"unsubscribed": false, "opted_out": ["education"],
//	   "suppressed": {"reason": "…", "at": "…"}}}
//
// Empty profile fields, counters, last_* times that never happened, an
// enrollment's ended/reason/next_step/due/attempts when they do not apply, and
// suppressed when the address may be mailed are left out. stage_history (oldest
// first), enrollments (by campaign) and opted_out are always lists.
type customerOut struct {
	ID           string                  `json:"id"`
	Email        string                  `json:"email"`
	FirstName    string                  `json:"first_name,omitempty"`
	Name         string                  `json:"name,omitempty"`
	Locale       string                  `json:"locale,omitempty"`
	Timezone     string                  `json:"timezone,omitempty"`
	Attributes   map[string]any          `json:"attributes"`
	Counters     map[string]int          `json:"counters,omitempty"`
	Stage        string                  `json:"stage"`
	StageSince   time.Time               `json:"stage_since"`
	CreatedAt    time.Time               `json:"created_at"`
	LastActivity time.Time               `json:"last_activity,omitzero"`
	LastEvent    time.Time               `json:"last_event,omitzero"`
	LastSent     time.Time               `json:"last_sent,omitzero"`
	History      []lifecycle.StageChange `json:"stage_history"`
	Enrollments  []enrollmentOut         `json:"enrollments"`
	Subscription subscriptionOut         `json:"subscription"`
}

type enrollmentOut struct {
	Campaign string           `json:"campaign"`
	Number   int              `json:"n"`
	Status   lifecycle.Status `json:"status"`
	Started  time.Time        `json:"started"`
	Ended    time.Time        `json:"ended,omitzero"`
	Reason   string           `json:"reason,omitempty"`
	Passed   []string         `json:"passed"`
	// NextStep is the step ID of the next email and Due its send time.
	NextStep string    `json:"next_step,omitempty"`
	Due      time.Time `json:"due,omitzero"`
	// Attempts counts temporary delivery failures of the next step.
	Attempts int `json:"attempts,omitempty"`
	// Edits are the steps skipped because the campaign was edited.
	Edits []lifecycle.Edit `json:"edits,omitempty"`
	// Group is "control" for an enrollment in the campaign's holdout.
	Group string `json:"group,omitempty"`
	// Variants are the A/B variants the customer was given, by step slug.
	Variants map[string]string `json:"variants,omitempty"`
}

type subscriptionOut struct {
	Unsubscribed bool               `json:"unsubscribed"`
	OptedOut     []string           `json:"opted_out"`
	Suppressed   *store.Suppression `json:"suppressed,omitempty"`
}

// customer reads the customer with its history and subscription state.
func (s *Server) customer(ctx context.Context, id string) (*customerOut, error) {
	c, err := s.d.Store.Customer(ctx, id)
	if err != nil {
		return nil, err
	}
	history, err := s.d.Store.History(ctx, id)
	if err != nil {
		return nil, err
	}
	sup, err := s.d.Store.Suppression(ctx, c.Email)
	if err != nil {
		return nil, err
	}
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	out := &customerOut{ID: c.ID, Email: c.Email, FirstName: c.FirstName, Name: c.Name, Locale: c.Locale,
		Timezone: c.Timezone, Attributes: c.Attributes, Counters: c.Counters, Stage: c.Stage,
		StageSince: utc(c.StageSince), CreatedAt: utc(c.CreatedAt), LastActivity: utc(c.LastActivity),
		LastEvent: utc(c.LastEvent), LastSent: utc(c.LastSent), History: history, Enrollments: []enrollmentOut{},
		Subscription: subscriptionOut{Unsubscribed: c.Unsubscribed, OptedOut: orEmpty(c.OptedOut), Suppressed: sup}}
	if out.Attributes == nil {
		out.Attributes = map[string]any{}
	}
	for k, v := range out.Attributes {
		if t, ok := v.(time.Time); ok {
			out.Attributes[k] = t.UTC()
		}
	}
	for i := range out.History {
		out.History[i].At = out.History[i].At.UTC()
	}
	if sup != nil {
		sup.At = sup.At.UTC()
	}
	for _, camp := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[camp]
		e := enrollmentOut{Campaign: camp, Number: enr.Number, Status: enr.Status, Started: utc(enr.Started),
			Ended: utc(enr.Ended), Reason: enr.Reason, Passed: orEmpty(enr.Passed), Due: utc(enr.Due), Attempts: enr.Attempts, Edits: enr.Edits,
			Group: enr.Group, Variants: enr.AB}
		if enr.Next != "" {
			e.NextStep = camp + "/" + enr.Next
		}
		for i := range e.Edits {
			e.Edits[i].At = utc(e.Edits[i].At)
		}
		out.Enrollments = append(out.Enrollments, e)
	}
	return out, nil
}

// orEmpty is s, or an empty list instead of nil, so that JSON has [] and not null.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// getTimeline handles GET /api/customers/{id}/timeline?horizon=90d: the customer's
// coming timeline as `retain plan --json` prints it (see package plan), from the
// stored customer, without replaying its past events. horizon is a duration such
// as 90d or 26w, at most 730d; default 90d.
//
// from is now, or earlier when something is overdue: a step or a time rule that
// was due before now and that the worker or scheduler has not yet taken is
// listed at the time it was due, since it is about to happen.
func (s *Server) getTimeline(w http.ResponseWriter, r *http.Request) {
	horizon := 90 * 24 * time.Hour
	if h := r.URL.Query().Get("horizon"); h != "" {
		d, err := campaign.ParseDuration(h)
		switch {
		case err != nil:
			invalid("horizon", "%v", err).write(w)
			return
		case d <= 0 || d > maxHorizon:
			invalid("horizon", "horizon %s must be longer than 0 and at most %s", h, campaign.FormatDuration(maxHorizon)).write(w)
			return
		}
		horizon = d
	}
	id := r.PathValue("id")
	c := s.customerOr404(w, r, id)
	if c == nil {
		return
	}
	eng := s.d.Engine
	set := eng.Set()
	now := s.cfg.Now()
	from := now
	for _, t := range []time.Time{eng.NextWake(c), eng.NextDue(c)} {
		if !t.IsZero() && t.Before(from) {
			from = t
		}
	}
	// The timeline shows subjects only: the sample links and From address
	// stand in for the signed ones of each campaign.
	sample := render.SampleData(set, "")
	data := render.NewData(eng, c, sample.Links, sample.Sender.Email)
	// c was decoded for this request: plan.Build may change it.
	t, err := plan.Build(eng, s.d.Renderer, c, nil, data, from, now.Add(horizon))
	if err != nil {
		s.cfg.Log.Error("api: timeline", "customer", id, "err", err)
		writeError(w, http.StatusInternalServerError, "", fmt.Sprintf("planning the timeline failed: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, t)
}
