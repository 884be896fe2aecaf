package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// Looking customers up: the list behind GET /api/customers and the people page
// (people.go), and every email a customer was sent, from the send ledger.
//
//	GET /api/customers?stage=&q=&where=&limit=&cursor=  a page of customers; 400 bad
//	                                                    parameter; 503
//	GET /api/customers/{id}/emails                      the customer's emails, step by
//	                                                    step, with their ledger state;
//	                                                    404; 503

func (s *Server) customerRoutes() {
	s.mux.Handle("GET /api/customers", s.requireToken(s.requireCampaigns(s.listCustomers)))
	s.mux.Handle("GET /api/customers/{id}/emails", s.requireToken(s.requireCampaigns(s.getEmails)))
}

// customerSearch is a search for customers, as GET /api/customers and the
// people page take it from their query strings.
type customerSearch struct {
	Stage, Q, Where, Cursor string
	Limit                   int
}

// searchOf reads the search in query, checking every parameter.
func (s *Server) searchOf(query map[string][]string) (customerSearch, *requestError) {
	get := func(k string) string {
		if v := query[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	cs := customerSearch{Stage: get("stage"), Q: get("q"), Where: get("where"), Cursor: get("cursor"), Limit: store.DefaultListLimit}
	if raw := get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return cs, invalid("limit", "limit %q must be a number from 1 to %d", raw, store.MaxListLimit)
		}
		cs.Limit = n
	}
	if set := s.set(); cs.Stage != "" && set != nil && set.Lifecycle != nil && !set.Lifecycle.HasStage(cs.Stage) {
		return cs, invalid("stage", "stage %q is not declared in %s%s", cs.Stage, campaign.LifecycleFile, campaign.DidYouMean(cs.Stage, set.Lifecycle.StageNames()))
	}
	return cs, nil
}

// whereErrors counts the customers a where condition failed on while running
// (an error is not a match), with the first error.
type whereErrors struct {
	Count int    `json:"count"`
	First string `json:"first"`
}

// customerPage is a page of a search, as GET /api/customers answers it.
type customerPage struct {
	Customers []customerSummary `json:"customers"`
	// NextCursor is the cursor of the next page; "" after the last.
	NextCursor string `json:"next_cursor"`
	// Scanned is how many customers the page read.
	Scanned int `json:"scanned"`
	// StoppedEarly: the page read store.ListBudget customers before it
	// found limit; more may follow from NextCursor.
	StoppedEarly bool `json:"stopped_early"`
	// Exact: q was a customer's ID or email, found without a scan.
	Exact       bool         `json:"exact,omitempty"`
	WhereErrors *whereErrors `json:"where_errors,omitempty"`
}

// customerSummary is a customer in a list.
type customerSummary struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"`
	FirstName    string    `json:"first_name,omitempty"`
	Name         string    `json:"name,omitempty"`
	Stage        string    `json:"stage"`
	StageSince   time.Time `json:"stage_since"`
	Locale       string    `json:"locale,omitempty"`
	Timezone     string    `json:"timezone,omitempty"`
	Unsubscribed bool      `json:"unsubscribed"`
	// Enrollments are the active ones, by campaign.
	Enrollments []activeEnrollment `json:"enrollments"`
}

type activeEnrollment struct {
	Campaign string    `json:"campaign"`
	Number   int       `json:"n"`
	NextStep string    `json:"next_step,omitempty"`
	Due      time.Time `json:"due,omitzero"`
}

func summaryOf(c *lifecycle.Customer) customerSummary {
	out := customerSummary{ID: c.ID, Email: c.Email, FirstName: c.FirstName, Name: c.Name, Stage: c.Stage,
		StageSince: utc(c.StageSince), Locale: c.Locale, Timezone: c.Timezone, Unsubscribed: c.Unsubscribed,
		Enrollments: []activeEnrollment{}}
	for _, camp := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[camp]
		if enr.Status != lifecycle.Active {
			continue
		}
		e := activeEnrollment{Campaign: camp, Number: enr.Number, Due: utc(enr.Due)}
		if enr.Next != "" {
			e.NextStep = camp + "/" + enr.Next
		}
		out.Enrollments = append(out.Enrollments, e)
	}
	return out
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// search runs cs: a page of customers, or the request's error (400 for a
// parameter, 503 when Redis fails: err is set then).
func (s *Server) search(ctx context.Context, cs customerSearch) (*customerPage, *requestError, error) {
	q := store.ListQuery{Stage: cs.Stage, Q: cs.Q, Limit: cs.Limit, Cursor: cs.Cursor}
	var werr *whereErrors
	if cs.Where != "" {
		if s.d.Engine == nil {
			return nil, &requestError{http.StatusServiceUnavailable, "where", "the campaigns could not be loaded, so where cannot be evaluated: fix them (retain lint) and restart retain web"}, nil
		}
		x, err := s.d.Engine.Set().Lifecycle.CompileCondition(cs.Where)
		if err != nil {
			return nil, invalid("where", "%v", err), nil
		}
		now := s.cfg.Now()
		q.Match = func(c *lifecycle.Customer) bool {
			ok, err := s.d.Engine.Matches(c, x, now)
			if err != nil {
				if werr == nil {
					werr = &whereErrors{First: fmt.Sprintf("customer %s: %v", c.ID, err)}
				}
				werr.Count++
				return false
			}
			return ok
		}
	}
	p, err := s.d.Store.ListCustomers(ctx, q)
	switch {
	case errors.Is(err, store.ErrBadListCursor):
		return nil, invalid("cursor", "the cursor is not one this list gave (or Redis Cluster's masters changed since): start again from the first page, without cursor"), nil
	case err != nil:
		return nil, nil, err
	}
	out := &customerPage{Customers: make([]customerSummary, len(p.Customers)), NextCursor: p.Next, Scanned: p.Scanned,
		StoppedEarly: p.StoppedEarly, Exact: p.Exact, WhereErrors: werr}
	for i, c := range p.Customers {
		out.Customers[i] = summaryOf(c)
	}
	return out, nil, nil
}

// listCustomers handles GET /api/customers: a page of customers, found by
// stage, by q (an exact ID or email, else a part of either, without case) and
// by where (a condition in the campaigns' expression language, as an
// audience: is written), limit (1 to 500, default 50) at a time, from cursor.
// Pages come in Redis SCAN's order (store.ListCustomers).
func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request) {
	cs, rerr := s.searchOf(r.URL.Query())
	if rerr != nil {
		rerr.write(w)
		return
	}
	p, rerr, err := s.search(r.Context(), cs)
	switch {
	case rerr != nil:
		rerr.write(w)
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: try again")
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

// Email states, beside the ledger's (store.LedgerSent, LedgerUnknown,
// LedgerFailed).
const (
	emailSending   = "sending"   // a worker holds the send's claim now
	emailScheduled = "scheduled" // the next step, not sent yet
	emailSkipped   = "skipped"   // passed without a send: a campaign edit, or the holdout
	emailNoRecord  = "no_record" // passed, and the ledger has no entry
)

// maxLedgerReads bounds the ledger entries one customer's emails read.
const maxLedgerReads = 1000

// emailOut is one step of one of the customer's enrollments, and what the send
// ledger says of it: the answer to "why did I get this?".
type emailOut struct {
	Campaign   string `json:"campaign"`
	Enrollment int    `json:"enrollment"`
	// Step is the step ID, campaign/slug.
	Step string `json:"step"`
	slug string
	next bool // the enrollment's next step
	// State is the ledger's (sent, unknown: maybe delivered, failed), or
	// sending, scheduled (the next step), skipped (an edit or the holdout),
	// no_record (passed without a ledger entry: skipped by only_if or
	// skip_if, or sent longer ago than the workers keep the ledger).
	State string `json:"state"`
	// Variant is the A/B variant the customer was given of the step.
	Variant string `json:"variant,omitempty"`
	// Group is "control" for an enrollment in the campaign's holdout.
	Group string `json:"group,omitempty"`
	// Passed is when the enrollment's latest step went out or was skipped
	// (the time it was due when it went within the hour): the ledger keeps
	// no time, so earlier steps have none.
	Passed time.Time `json:"passed,omitzero"`
	// Due is when the next step is due.
	Due time.Time `json:"due,omitzero"`
	// Reason says why a step was skipped.
	Reason string `json:"reason,omitempty"`
	// Current is false for a step of an earlier enrollment in the campaign,
	// found in the ledger.
	Current bool `json:"current"`
}

// emails lists every step of c's enrollments — each passed step, the next
// one, and the steps of earlier enrollments the ledger still holds — with
// the ledger's state of each, read in one MGET. Enrollments come by campaign,
// the current one first, then earlier ones, newest first; steps in the order
// they passed.
func (s *Server) emails(ctx context.Context, c *lifecycle.Customer) ([]emailOut, error) {
	set := s.set()
	var rows []emailOut
	for _, camp := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[camp]
		edits := map[string]string{}
		for _, e := range enr.Edits {
			edits[e.Step] = e.Reason
		}
		row := func(slug string) emailOut {
			return emailOut{Campaign: camp, Enrollment: enr.Number, Step: camp + "/" + slug, slug: slug,
				Variant: enr.AB[slug], Group: enr.Group, Current: true}
		}
		for i, slug := range enr.Passed {
			e := row(slug)
			if i == len(enr.Passed)-1 {
				e.Passed = utc(enr.Last)
			}
			switch {
			case edits[slug] != "":
				e.State, e.Reason = emailSkipped, edits[slug]
			case enr.Group == lifecycle.GroupControl:
				e.State, e.Reason = emailSkipped, lifecycle.HoldoutReason
			}
			rows = append(rows, e)
		}
		if enr.Status == lifecycle.Active && enr.Next != "" {
			e := row(enr.Next)
			e.Due, e.next = utc(enr.Due), true
			rows = append(rows, e)
		}
	}
	// Earlier enrollments are not kept with the customer: their steps are
	// looked up in the ledger, as the campaign has them now, and listed when
	// it holds them.
	current := len(rows)
	for _, camp := range slices.Sorted(maps.Keys(c.Enrollments)) {
		enr := c.Enrollments[camp]
		slugs := slices.Clone(enr.Passed)
		if set != nil {
			if cp := set.Campaign(camp); cp != nil {
				for _, st := range cp.Steps {
					if !slices.Contains(slugs, st.Slug) {
						slugs = append(slugs, st.Slug)
					}
				}
			}
		}
		for n := enr.Number - 1; n >= 1 && len(rows)+len(slugs) <= maxLedgerReads; n-- {
			for _, slug := range slugs {
				rows = append(rows, emailOut{Campaign: camp, Enrollment: n, Step: camp + "/" + slug, slug: slug})
			}
		}
	}
	refs := make([]store.SendRef, len(rows))
	for i, e := range rows {
		refs[i] = store.SendRef{Campaign: e.Campaign, Enrollment: e.Enrollment, Slug: e.slug}
	}
	states, err := s.d.Store.LedgerStates(ctx, c.ID, refs)
	if err != nil {
		return nil, err
	}
	out := make([]emailOut, 0, len(rows))
	for i, e := range rows {
		st := states[i]
		switch {
		case st == store.LedgerClaimed:
			e.State = emailSending
		case st != "":
			e.State, e.Reason = st, ""
		case i >= current:
			continue // an earlier enrollment's step the ledger does not hold
		case e.State != "":
		case e.next:
			e.State = emailScheduled
		default:
			e.State = emailNoRecord
		}
		out = append(out, e)
	}
	return out, nil
}

// customerOr404 reads the customer id of an API request, or answers 404
// (unknown) or 503 (Redis) and returns nil.
func (s *Server) customerOr404(w http.ResponseWriter, r *http.Request, id string) *lifecycle.Customer {
	c, err := s.d.Store.Customer(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("customer %q is unknown", id))
		return nil
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: try again")
		return nil
	}
	return c
}

// getEmails handles GET /api/customers/{id}/emails: {"emails": [...]}, each
// step of the customer's enrollments with its ledger state (emailOut).
func (s *Server) getEmails(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c := s.customerOr404(w, r, id)
	if c == nil {
		return
	}
	rows, err := s.emails(r.Context(), c)
	if err != nil {
		s.unavailable(w, r, err, "Redis is unavailable: try again")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Customer string     `json:"customer"`
		Emails   []emailOut `json:"emails"`
	}{id, rows})
}
