package web

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// The people pages: the view a support person opens when someone asks "why
// did I get this?", behind the same Basic auth as the preview pages.
//
//	GET /people?q=&where=&stage=&limit=&cursor=  search: an email or ID (or part of
//	                                             one), a where condition, a stage
//	GET /people/{id}                             one customer: profile, subscription,
//	                                             every email (from the send ledger),
//	                                             enrollments, stage history, events
//
// Both read what GET /api/customers and /api/customers/{id}/emails answer
// (customers.go); times are shown in the customer's time zone.
func (s *Server) peopleRoutes() {
	s.mux.Handle("GET /people", s.requireBasic(http.HandlerFunc(s.peoplePage)))
	s.mux.Handle("GET /people/{id}", s.requireBasic(http.HandlerFunc(s.personPage)))
}

// peopleView is what people.html shows.
type peopleView struct {
	page
	Search customerSearch
	Stages []string
	// Error says why the search was refused; Unavailable why nothing could be read.
	Error, Unavailable string
	Result             *customerPage
	Rows               []personRow
	// NextURL leads to the next page, FirstURL back to the first; empty
	// when there is none or this is the first.
	NextURL, FirstURL string
}

type personRow struct {
	ID, URL, Email, Name, Stage, Since string
	Unsubscribed                       bool
	Enrollments                        []string
}

// personURL is the page of customer id.
func personURL(id string) string { return "/people/" + url.PathEscape(id) }

// searchURL is the people page for cs, from cursor.
func searchURL(cs customerSearch, cursor string) string {
	v := url.Values{}
	for k, val := range map[string]string{"q": cs.Q, "where": cs.Where, "stage": cs.Stage, "cursor": cursor} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if cs.Limit != store.DefaultListLimit {
		v.Set("limit", strconv.Itoa(cs.Limit))
	}
	if len(v) == 0 {
		return "/people"
	}
	return "/people?" + v.Encode()
}

func (s *Server) peoplePage(w http.ResponseWriter, r *http.Request) {
	v := &peopleView{page: page{Title: "People", Problems: s.d.Problems, Note: s.d.ProblemsNote}}
	if set := s.set(); set != nil && set.Lifecycle != nil {
		v.Stages = set.Lifecycle.StageNames()
	}
	cs, rerr := s.searchOf(r.URL.Query())
	v.Search = cs
	if rerr != nil {
		v.Error = fieldReason(rerr)
		s.render(w, rerr.status, "people.html", v)
		return
	}
	if s.d.Store == nil {
		v.Unavailable = "No customer store: retain web was started without Redis."
		s.render(w, http.StatusServiceUnavailable, "people.html", v)
		return
	}
	p, rerr, err := s.search(r.Context(), cs)
	switch {
	case rerr != nil:
		v.Error = fieldReason(rerr)
		s.render(w, rerr.status, "people.html", v)
		return
	case err != nil:
		s.cfg.Log.Error("ui: list customers", "error", err)
		v.Unavailable = "The customers could not be read from Redis: " + err.Error()
		s.render(w, http.StatusServiceUnavailable, "people.html", v)
		return
	}
	v.Result = p
	for _, c := range p.Customers {
		row := personRow{ID: c.ID, URL: personURL(c.ID), Email: c.Email, Name: cmpName(c.Name, c.FirstName), Stage: c.Stage,
			Since: s.showTime(c.StageSince, s.zoneOf(c.Timezone)), Unsubscribed: c.Unsubscribed}
		for _, e := range c.Enrollments {
			row.Enrollments = append(row.Enrollments, e.Campaign)
		}
		v.Rows = append(v.Rows, row)
	}
	if p.NextCursor != "" {
		v.NextURL = searchURL(cs, p.NextCursor)
	}
	if cs.Cursor != "" {
		v.FirstURL = searchURL(cs, "")
	}
	s.render(w, http.StatusOK, "people.html", v)
}

// fieldReason is a refused search's reason, naming the form field at fault.
func fieldReason(e *requestError) string {
	if e.field == "" {
		return e.reason
	}
	return e.field + ": " + e.reason
}

func cmpName(name, first string) string {
	if name != "" {
		return name
	}
	return first
}

// zoneOf is the time zone named tz, or the lifecycle's default (UTC without
// campaigns) when tz is empty or unknown.
func (s *Server) zoneOf(tz string) *time.Location {
	if s.d.Engine != nil {
		return s.d.Engine.Location(&lifecycle.Customer{Timezone: tz})
	}
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		return loc
	}
	return time.UTC
}

// showTime writes t in loc for the pages; "" for the zero time.
func (s *Server) showTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format("Mon 2 Jan 2006 15:04 MST")
}

// personView is what person.html shows.
type personView struct {
	page
	C    *lifecycle.Customer
	Name string
	// Zone is the time zone the page's times are in.
	Zone                                                   string
	StageSince, Created, LastActivity, LastEvent, LastSent string
	Attributes, Counters                                   []fact
	Suppression                                            *store.Suppression
	SuppressedAt                                           string
	Emails                                                 []emailRow
	Enrollments                                            []enrollmentRow
	History                                                []historyRow
	Events                                                 []eventRow
}

type fact struct{ Key, Value string }

type emailRow struct {
	Campaign, Step, StepURL, State, Class, Variant, Group, When, Reason string
	Enrollment                                                          int
	Current                                                             bool
}

type enrollmentRow struct {
	Campaign, CampaignURL, Status, Started, Ended, Reason, Next, NextURL, Due, Group string
	Number, Attempts                                                                 int
	Passed                                                                           []string
	Edits                                                                            []string
	Variants                                                                         []fact
}

type historyRow struct{ From, To, At, Cause string }

type eventRow struct{ Name, At, ID, Data string }

// stepPreviewURL is the preview of step campaign/slug for customer id, or ""
// when the loaded campaigns have no such step.
func (s *Server) stepPreviewURL(campaignID, slug, id string) string {
	set := s.set()
	if set == nil {
		return ""
	}
	c := set.Campaign(campaignID)
	if c == nil {
		return ""
	}
	for _, st := range c.Steps {
		if st.Slug == slug {
			return stepURL(st) + "?" + url.Values{"customer": {id}}.Encode()
		}
	}
	return ""
}

func (s *Server) personPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.d.Store == nil {
		s.errorPage(w, http.StatusServiceUnavailable, "No customer store: retain web was started without Redis.")
		return
	}
	ctx := r.Context()
	c, err := s.d.Store.Customer(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.errorPage(w, http.StatusNotFound, fmt.Sprintf("There is no customer with ID %q: search for them on the people page (/people).", id))
		return
	case err != nil:
		s.cfg.Log.Error("ui: read customer", "customer", id, "error", err)
		s.errorPage(w, http.StatusServiceUnavailable, "The customer could not be read from Redis: "+err.Error())
		return
	}
	history, err := s.d.Store.History(ctx, id)
	var events []lifecycle.Event
	if err == nil {
		events, err = s.d.Store.Events(ctx, id, 0)
	}
	var sup *store.Suppression
	if err == nil {
		sup, err = s.d.Store.Suppression(ctx, c.Email)
	}
	var emails []emailOut
	if err == nil {
		emails, err = s.emails(ctx, c)
	}
	if err != nil {
		s.cfg.Log.Error("ui: read customer", "customer", id, "error", err)
		s.errorPage(w, http.StatusServiceUnavailable, "The customer's history could not be read from Redis: "+err.Error())
		return
	}
	loc := s.zoneOf(c.Timezone)
	at := func(t time.Time) string { return s.showTime(t, loc) }
	v := &personView{page: page{Title: c.ID, Problems: s.d.Problems, Note: s.d.ProblemsNote},
		C: c, Name: cmpName(c.Name, c.FirstName), Zone: loc.String(),
		StageSince: at(c.StageSince), Created: at(c.CreatedAt), LastActivity: at(c.LastActivity),
		LastEvent: at(c.LastEvent), LastSent: at(c.LastSent), Suppression: sup}
	if sup != nil {
		v.SuppressedAt = at(sup.At)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Attributes)) {
		val := c.Attributes[k]
		if t, ok := val.(time.Time); ok {
			val = at(t)
		}
		v.Attributes = append(v.Attributes, fact{k, fmt.Sprint(val)})
	}
	for _, k := range slices.Sorted(maps.Keys(c.Counters)) {
		v.Counters = append(v.Counters, fact{k, strconv.Itoa(c.Counters[k])})
	}
	for _, e := range emails {
		row := emailRow{Campaign: e.Campaign, Step: e.Step, StepURL: s.stepPreviewURL(e.Campaign, e.slug, c.ID), State: e.State,
			Variant: e.Variant, Group: e.Group, Reason: e.Reason, Enrollment: e.Enrollment, Current: e.Current}
		switch e.State {
		case store.LedgerSent:
			row.Class = "ok"
		case store.LedgerFailed, store.LedgerUnknown:
			row.Class = "error"
		}
		switch {
		case !e.Passed.IsZero():
			row.When = "passed " + at(e.Passed)
		case !e.Due.IsZero():
			row.When = "due " + at(e.Due)
		}
		v.Emails = append(v.Emails, row)
	}
	for _, camp := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[camp]
		row := enrollmentRow{Campaign: camp, Status: string(enr.Status), Started: at(enr.Started), Ended: at(enr.Ended),
			Reason: enr.Reason, Group: enr.Group, Number: enr.Number, Attempts: enr.Attempts, Passed: enr.Passed}
		if set := s.set(); set != nil && set.Campaign(camp) != nil {
			row.CampaignURL = campaignURL(set.Campaign(camp))
		}
		if enr.Next != "" && enr.Status == lifecycle.Active {
			row.Next, row.NextURL, row.Due = camp+"/"+enr.Next, s.stepPreviewURL(camp, enr.Next, c.ID), at(enr.Due)
		}
		for _, e := range enr.Edits {
			row.Edits = append(row.Edits, fmt.Sprintf("%s skipped %s: %s", e.Step, at(e.At), e.Reason))
		}
		for _, slug := range slices.Sorted(maps.Keys(enr.AB)) {
			row.Variants = append(row.Variants, fact{slug, enr.AB[slug]})
		}
		v.Enrollments = append(v.Enrollments, row)
	}
	for _, h := range slices.Backward(history) {
		v.History = append(v.History, historyRow{h.From, h.To, at(h.At), h.Cause})
	}
	for _, e := range events {
		var data []string
		for _, k := range slices.Sorted(maps.Keys(e.Data)) {
			data = append(data, fmt.Sprintf("%s=%v", k, e.Data[k]))
		}
		v.Events = append(v.Events, eventRow{e.Name, at(e.At), e.ID, strings.Join(data, " ")})
	}
	s.render(w, http.StatusOK, "person.html", v)
}
