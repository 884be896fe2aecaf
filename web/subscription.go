package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// A customer's subscription through the API (docs/api.md):
//
//	PUT /api/customers/{id}/subscription  200; 400 unknown topic, bad field; 404 unknown customer
//	GET /api/customers/{id}/consent       200 the consent history (?format=csv: as CSV); 404
//
// The PUT lets a product sync the choices its users make in its own settings:
// it changes the customer as the link pages do (store.Update, the schedule
// kept), and records a store.EventSubscriptionChanged event with the source
// and what changed, which store.Update also appends to the consent log. The
// consent history is that log: every unsubscribe, preference change,
// subscription sync and complaint, oldest first, for a user who asks what
// they agreed to (GDPR).

// subscriptionIn is the body of PUT /api/customers/{id}/subscription.
type subscriptionIn struct {
	// Unsubscribed unsubscribes from every email (true) or lifts that (false);
	// left out, it stays as it is.
	Unsubscribed *bool `json:"unsubscribed"`
	// Topics subscribes to (true) or opts out of (false) topics of the loaded
	// campaigns; topics left out stay as they are. Each value is read apart,
	// so that a wrong one is named: topics.education.
	Topics map[string]json.RawMessage `json:"topics"`
	// Source says where the choice was made, for the consent history;
	// default "api".
	Source string `json:"source"`
}

var subscriptionFields = []string{"unsubscribed", "topics", "source"}

// subscriptionState is the answer to the PUT: the subscription as it is now.
type subscriptionState struct {
	ID           string `json:"id"`
	Unsubscribed bool   `json:"unsubscribed"`
	// Topics are the topics of the loaded campaigns: subscribed or not.
	Topics map[string]bool `json:"topics"`
	// OptedOut are every topic opted out of, those of no loaded campaign too.
	OptedOut []string `json:"opted_out"`
	// Changed is false when the request changed nothing (and recorded nothing).
	Changed bool `json:"changed"`
}

// topicNames are the topics of the loaded campaigns, sorted.
func (s *Server) topicNames() []string {
	var names []string
	for _, camp := range s.d.Engine.Set().Campaigns {
		if camp.Topic != "" && !slices.Contains(names, camp.Topic) {
			names = append(names, camp.Topic)
		}
	}
	slices.Sort(names)
	return names
}

func (s *Server) putSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	src, rerr := s.readBody(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	var in subscriptionIn
	if rerr := decode(src, &in, "", subscriptionFields); rerr != nil {
		rerr.write(w)
		return
	}
	in.Source = strings.TrimSpace(in.Source)
	if !oneLine(in.Source) || !utf8.ValidString(in.Source) {
		invalid("source", "source must be one line of at most 200 bytes, such as \"product settings\"").write(w)
		return
	}
	if in.Source == "" {
		in.Source = "api"
	}
	if in.Unsubscribed == nil && len(in.Topics) == 0 {
		invalid("", "nothing to change: give unsubscribed, topics or both, such as {\"topics\": {\"education\": false}}").write(w)
		return
	}
	known := s.topicNames()
	topics := make(map[string]bool, len(in.Topics))
	for _, t := range slices.Sorted(maps.Keys(in.Topics)) {
		switch {
		case len(known) == 0:
			invalid("topics."+t, "unknown topic %q: no loaded campaign has a topic", t).write(w)
			return
		case !slices.Contains(known, t):
			invalid("topics."+t, "unknown topic %q%s: the topics are %s", t, campaign.DidYouMean(t, known), strings.Join(known, ", ")).write(w)
			return
		}
		var subscribe bool
		if err := json.Unmarshal(in.Topics[t], &subscribe); err != nil || string(in.Topics[t]) == "null" {
			invalid("topics."+t, "must be true or false, not %s", rawKind(in.Topics[t])).write(w)
			return
		}
		topics[t] = subscribe
	}

	now := s.cfg.Now()
	var after *lifecycle.Customer
	var changed bool
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	err := s.d.Store.Update(ctx, id, "", func(c *lifecycle.Customer) (*store.Change, error) {
		if c == nil {
			return nil, store.ErrNotFound
		}
		after, changed = c, false
		data := map[string]any{"source": in.Source}
		if u := in.Unsubscribed; u != nil && *u != c.Unsubscribed {
			c.Unsubscribed, data["unsubscribed"] = *u, *u
		}
		changedTopics := map[string]any{}
		for t, subscribe := range topics {
			out := slices.Contains(c.OptedOut, t)
			switch {
			case subscribe && out:
				c.OptedOut = slices.DeleteFunc(c.OptedOut, func(o string) bool { return o == t })
			case !subscribe && !out:
				c.OptedOut = append(c.OptedOut, t)
			default:
				continue
			}
			changedTopics[t] = subscribe
		}
		slices.Sort(c.OptedOut)
		if len(changedTopics) > 0 {
			data["topics"] = changedTopics
		}
		if len(data) == 1 { // the source alone: nothing changed
			return nil, nil
		}
		changed = true
		return s.keepSchedule(c, &lifecycle.Event{Name: store.EventSubscriptionChanged, At: now, Data: data}), nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("customer %q is unknown", id))
		return
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: the subscription may not have changed; send the request again")
		return
	}
	if changed {
		s.cfg.Log.Info("api: subscription changed", "customer", id, "source", in.Source, "unsubscribed", after.Unsubscribed, "opted_out", strings.Join(after.OptedOut, ","))
	}
	out := subscriptionState{ID: id, Unsubscribed: after.Unsubscribed, Topics: map[string]bool{}, OptedOut: orEmpty(after.OptedOut), Changed: changed}
	for _, t := range known {
		out.Topics[t] = !slices.Contains(after.OptedOut, t)
	}
	writeJSON(w, http.StatusOK, out)
}

// consentEntry is one entry of the consent history as the API shows it.
type consentEntry struct {
	Event string    `json:"event"`
	At    time.Time `json:"at"`
	// Source is how the change was made: the data's "source", or the link
	// pages' "how".
	Source string         `json:"source"`
	Data   map[string]any `json:"data"`
}

// consentHistory is the answer to GET /api/customers/{id}/consent.
type consentHistory struct {
	Customer string         `json:"customer"`
	Email    string         `json:"email"`
	Consent  []consentEntry `json:"consent"`
}

// getConsent handles GET /api/customers/{id}/consent?format=json|csv: the
// customer's consent log, oldest first. CSV has the columns at, event, source
// and data (the entry's data as JSON).
func (s *Server) getConsent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		invalid("format", "format %q is not json or csv", format).write(w)
		return
	}
	c := s.customerOr404(w, r, id)
	if c == nil {
		return
	}
	evs, err := s.d.Store.ConsentHistory(r.Context(), id)
	if err != nil {
		s.unavailable(w, r, err, "Redis is unavailable: try again")
		return
	}
	out := consentHistory{Customer: c.ID, Email: c.Email, Consent: make([]consentEntry, len(evs))}
	for i, ev := range evs {
		e := consentEntry{Event: ev.Name, At: ev.At.UTC(), Data: ev.Data}
		if e.Data == nil {
			e.Data = map[string]any{}
		}
		for _, k := range []string{"source", "how"} {
			if v, ok := e.Data[k].(string); ok && e.Source == "" {
				e.Source = v
			}
		}
		out.Consent[i] = e
	}
	if format != "csv" {
		writeJSON(w, http.StatusOK, out)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": "consent-" + id + ".csv"})
	if disp == "" { // an ID no header can carry
		disp = "attachment; filename=consent.csv"
	}
	w.Header().Set("Content-Disposition", disp)
	cw := csv.NewWriter(w)
	cw.Write([]string{"at", "event", "source", "data"})
	for _, e := range out.Consent {
		data, _ := json.Marshal(e.Data)
		cw.Write([]string{e.At.Format(time.RFC3339Nano), e.Event, spreadsheetSafe(e.Source), string(data)})
	}
	cw.Flush()
}

// rawKind names the JSON type of a raw value, as decode's messages do.
func rawKind(raw json.RawMessage) string {
	switch b := bytes.TrimSpace(raw); {
	case len(b) == 0:
		return "nothing"
	case b[0] == '"':
		return "string"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == 'n':
		return "null"
	}
	return "number"
}

// spreadsheetSafe puts a quote before text a spreadsheet would run as a
// formula (=, +, -, @ first): the source is what a product sent.
func spreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
