package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/store"
)

// The suppression list through the API (docs/api.md): addresses never to mail
// again, whichever customer has them. These routes need the API token but not
// campaigns that lint: the list is about addresses, not rules, and a product
// must be able to sync it while a campaign is being fixed.
//
//	GET    /api/suppressions?limit=&cursor=  200 a page; 400 bad limit or cursor
//	GET    /api/suppressions/{email}         200; 404 not on the list
//	PUT    /api/suppressions/{email}         201 added; 200 on it already (entry kept); 400
//	DELETE /api/suppressions/{email}         204 removed; 404 not on the list
//	POST   /api/suppressions/import          200 imported (or counted: dry_run); 400 bad
//	                                         rows, each by line; 413; 415 not text/csv

// Page sizes of GET /api/suppressions.
const (
	defaultSuppressionPage = 100
	maxSuppressionPage     = 1000
)

// maxImportBody is the largest CSV POST /api/suppressions/import takes, beyond
// Config.MaxBody: about 500,000 addresses. retain suppress import takes any size.
const maxImportBody = 32 << 20

// maxBadRowsShown bounds the bad rows an import answer lists.
const maxBadRowsShown = 1000

// suppressionOut is one address of the suppression list as the API shows it.
type suppressionOut struct {
	Email  string    `json:"email"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func suppressionView(s store.Suppression) suppressionOut {
	return suppressionOut{Email: s.Email, Reason: s.Reason, At: s.At.UTC()}
}

// suppressionPage is the answer to GET /api/suppressions. NextCursor is empty
// after the last page.
type suppressionPage struct {
	Suppressions []suppressionOut `json:"suppressions"`
	NextCursor   string           `json:"next_cursor"`
	Total        int64            `json:"total"`
}

func (s *Server) listSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultSuppressionPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSuppressionPage {
			invalid("limit", "limit %q must be a number from 1 to %d", v, maxSuppressionPage).write(w)
			return
		}
		limit = n
	}
	page, next, err := s.d.Store.ListSuppressions(r.Context(), q.Get("cursor"), limit)
	if errors.Is(err, store.ErrBadCursor) {
		invalid("cursor", "cursor %q is not one this list gave: pass next_cursor as it is, or leave cursor out to start again", q.Get("cursor")).write(w)
		return
	}
	if err != nil {
		s.unavailable(w, r, err, "Redis is unavailable: try again")
		return
	}
	total, err := s.d.Store.CountSuppressions(r.Context())
	if err != nil {
		s.unavailable(w, r, err, "Redis is unavailable: try again")
		return
	}
	out := suppressionPage{Suppressions: make([]suppressionOut, len(page)), NextCursor: next, Total: total}
	for i, sup := range page {
		out.Suppressions[i] = suppressionView(sup)
	}
	writeJSON(w, http.StatusOK, out)
}

// suppressionEmail is the {email} of the path, lower-cased and checked as
// every way in checks an address; false, with the answer written, when it is
// not one.
func suppressionEmail(w http.ResponseWriter, r *http.Request) (string, bool) {
	email := strings.TrimSpace(r.PathValue("email"))
	if err := ingest.CheckEmail(email); err != nil {
		invalid("email", "%v", err).write(w)
		return "", false
	}
	return strings.ToLower(email), true
}

func (s *Server) getSuppression(w http.ResponseWriter, r *http.Request) {
	email, ok := suppressionEmail(w, r)
	if !ok {
		return
	}
	sup, err := s.d.Store.Suppression(r.Context(), email)
	switch {
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: try again")
	case sup == nil:
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("%s is not on the suppression list", email))
	default:
		writeJSON(w, http.StatusOK, suppressionView(*sup))
	}
}

// suppressionIn is the body of PUT /api/suppressions/{email}.
type suppressionIn struct {
	// Reason says why the address must not be mailed; default "api".
	Reason string `json:"reason"`
}

// checkReason refuses a reason that is not one line of at most
// store.MaxReason bytes of UTF-8 text.
func checkReason(reason string) error {
	switch {
	case !utf8.ValidString(reason):
		return errors.New("reason is not valid UTF-8")
	case len(reason) > store.MaxReason:
		return fmt.Errorf("reason is %d bytes long; the most is %d", len(reason), store.MaxReason)
	case strings.ContainsFunc(reason, unicode.IsControl):
		return errors.New("reason must be one line, without control characters")
	}
	return nil
}

// putSuppression adds the address to the suppression list (201). An address
// on it already keeps its entry — its first reason and date — and the answer
// is 200 with that entry: to change a reason, DELETE the address and PUT it.
func (s *Server) putSuppression(w http.ResponseWriter, r *http.Request) {
	email, ok := suppressionEmail(w, r)
	if !ok {
		return
	}
	src, rerr := s.readBody(w, r)
	if rerr != nil {
		rerr.write(w)
		return
	}
	var in suppressionIn
	if rerr := decode(src, &in, "", []string{"reason"}); rerr != nil {
		rerr.write(w)
		return
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if err := checkReason(in.Reason); err != nil {
		invalid("reason", "%v", err).write(w)
		return
	}
	if in.Reason == "" {
		in.Reason = "api"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	im := &store.SuppressionImport{Store: s.d.Store}
	if err := im.Add(ctx, []store.Suppression{{Email: email, Reason: in.Reason, At: s.cfg.Now()}}); err != nil {
		s.unavailable(w, r, err, "Redis is unavailable: the address may not be suppressed; send the request again")
		return
	}
	sup, err := s.d.Store.Suppression(ctx, email)
	if err != nil || sup == nil {
		s.unavailable(w, r, err, "the address is suppressed, but reading it back failed: GET it")
		return
	}
	status := http.StatusOK
	if im.Added == 1 {
		status = http.StatusCreated
		s.cfg.Log.Info("api: address suppressed", "reason", in.Reason)
	}
	writeJSON(w, status, suppressionView(*sup))
}

func (s *Server) deleteSuppression(w http.ResponseWriter, r *http.Request) {
	// Not checked as an address: whatever is on the list may be taken off.
	email := strings.ToLower(strings.TrimSpace(r.PathValue("email")))
	if email == "" {
		invalid("email", "the address is missing: DELETE /api/suppressions/{email}").write(w)
		return
	}
	removed, err := s.d.Store.Unsuppress(r.Context(), email)
	switch {
	case err != nil:
		s.unavailable(w, r, err, "Redis is unavailable: the address may still be suppressed; send the request again")
	case !removed:
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("%s is not on the suppression list", email))
	default:
		s.cfg.Log.Info("api: address unsuppressed")
		w.WriteHeader(http.StatusNoContent)
	}
}

// badRow is a row of an import that cannot be imported.
type badRow struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// importRefused is the answer to an import with bad rows and no skip_invalid.
type importRefused struct {
	Error   string   `json:"error"`
	Bad     int      `json:"bad"`
	BadRows []badRow `json:"bad_rows"`
}

// importDone is the answer to an import that went through.
type importDone struct {
	// Rows are the rows read, bad ones included (not empty ones).
	Rows    int  `json:"rows"`
	Added   int  `json:"added"`
	Already int  `json:"already_suppressed"`
	Skipped int  `json:"skipped"`
	DryRun  bool `json:"dry_run"`
	// BadRows are the rows skipped (the first maxBadRowsShown).
	BadRows []badRow `json:"bad_rows"`
}

// importSuppressions handles POST /api/suppressions/import: the suppression
// export of another provider as the body (text/csv), read as retain suppress
// import reads it (store.SuppressionReader). Every row is checked first; with
// any bad row nothing is imported (400, each bad row by line) unless
// skip_invalid=true. dry_run=true counts without writing; reason= is the
// reason of rows without one.
func (s *Server) importSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	flag := func(name string) (bool, bool) {
		v := q.Get(name)
		if v == "" {
			return false, true
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			invalid(name, "%s %q must be true or false", name, v).write(w)
			return false, false
		}
		return b, true
	}
	dryRun, ok := flag("dry_run")
	if !ok {
		return
	}
	skip, ok := flag("skip_invalid")
	if !ok {
		return
	}
	reason := strings.TrimSpace(q.Get("reason"))
	if err := checkReason(reason); err != nil {
		invalid("reason", "%v", err).write(w)
		return
	}
	if reason == "" {
		reason = "imported through the API"
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/csv" && mt != "application/csv" {
		writeError(w, http.StatusUnsupportedMediaType, "", fmt.Sprintf("the body must be CSV sent as Content-Type: text/csv, not %q", ct))
		return
	}
	tooLarge := func() {
		writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("the body is larger than %d bytes: split the file, or import it with retain suppress import", maxImportBody))
	}
	if r.ContentLength > maxImportBody {
		tooLarge()
		return
	}
	src, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooLarge()
		return
	case err != nil:
		invalid("", "reading the body: %v", err).write(w)
		return
	}

	now := s.cfg.Now()
	rd, err := store.NewSuppressionReader(bytes.NewReader(src), store.SuppressionCSV{CheckEmail: ingest.CheckEmail, Reason: reason, Now: now})
	var re *store.RowError
	if errors.As(err, &re) {
		writeJSON(w, http.StatusBadRequest, importRefused{Error: re.Error() + ": nothing was imported", Bad: 1, BadRows: []badRow{{re.Line, re.Msg}}})
		return
	}
	if err != nil {
		invalid("", "reading the body: %v", err).write(w)
		return
	}
	var rows []store.Suppression
	bad := []badRow{}
	nbad := 0
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if errors.As(err, &re) {
			if nbad++; len(bad) < maxBadRowsShown {
				bad = append(bad, badRow{re.Line, re.Msg})
			}
			continue
		}
		if err != nil {
			invalid("", "reading the body: %v", err).write(w)
			return
		}
		rows = append(rows, row.Suppression)
	}
	if nbad > 0 && !skip {
		writeJSON(w, http.StatusBadRequest, importRefused{
			Error: fmt.Sprintf("%d of %d rows are invalid (bad_rows lists them by line): nothing was imported; fix them, or send skip_invalid=true to import the other rows", nbad, nbad+len(rows)),
			Bad:   nbad, BadRows: bad})
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	im := &store.SuppressionImport{Store: s.d.Store, DryRun: dryRun}
	if err := im.Add(ctx, rows); err != nil {
		s.unavailable(w, r, err, fmt.Sprintf("Redis is unavailable: %d of %d addresses were added; send the file again (addresses on the list keep their entry)", im.Added, len(rows)))
		return
	}
	if !dryRun {
		s.cfg.Log.Info("api: suppressions imported", "rows", len(rows)+nbad, "added", im.Added, "already", im.Already, "skipped", nbad)
	}
	writeJSON(w, http.StatusOK, importDone{Rows: len(rows) + nbad, Added: im.Added, Already: im.Already, Skipped: nbad, DryRun: dryRun, BadRows: bad})
}
