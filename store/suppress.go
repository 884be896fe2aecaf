package store

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// The suppression list ({p}suppressed, one hash: address → {"reason","at"})
// beyond Suppress and Suppressions (store.go): paging through it, removing an
// address, adding many at once, and reading the suppression export of another
// email service provider to import.

// ErrBadCursor means a ListSuppressions cursor is not one it returned.
var ErrBadCursor = errors.New("not a cursor of the suppression list")

// MaxReason is the longest reason kept, in bytes: an import cuts longer ones
// (a bounce's whole diagnostic, say) at a character boundary.
const MaxReason = 500

// SuppressBatch is how many addresses one round trip of SuppressionImport writes.
const SuppressBatch = 1000

// CountSuppressions is how many addresses are on the suppression list.
func (s *Store) CountSuppressions(ctx context.Context) (int64, error) {
	n, err := s.rdb.HLen(ctx, s.suppressedKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: count suppressions: %w", err)
	}
	return n, nil
}

// Unsuppress takes the address off the suppression list, so that it may be
// mailed again; removed is false when it was not on it.
func (s *Store) Unsuppress(ctx context.Context, email string) (removed bool, err error) {
	n, err := s.rdb.HDel(ctx, s.suppressedKey(), normEmail(email)).Result()
	if err != nil {
		return false, fmt.Errorf("store: unsuppress %s: %w", email, err)
	}
	return n == 1, nil
}

// ListSuppressions returns a page of at most limit suppressions, from cursor
// ("" for the first page), and the cursor of the next page ("" after the
// last). Pages come in no particular order (Redis HSCAN); within one HSCAN
// batch they are sorted by address, and the cursor remembers the last address
// given, so a page holds at most limit however Redis batches. As with any
// Redis SCAN, an address added or removed while a client pages through may be
// listed or not, and an address may be listed twice when the hash is resized
// meanwhile; every address on the list throughout is listed.
func (s *Store) ListSuppressions(ctx context.Context, cursor string, limit int) (page []Suppression, next string, err error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("store: list suppressions: limit %d must be at least 1", limit)
	}
	pos, after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", fmt.Errorf("store: list suppressions: cursor %q: %w", cursor, err)
	}
	page = make([]Suppression, 0, min(limit, 1000))
	for {
		kv, nextPos, err := s.rdb.HScan(ctx, s.suppressedKey(), pos, "", int64(max(limit, 10))).Result()
		if err != nil {
			return nil, "", fmt.Errorf("store: list suppressions: %w", err)
		}
		batch := make([]Suppression, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			sup := Suppression{Email: kv[i]}
			if err := json.Unmarshal([]byte(kv[i+1]), &sup); err != nil {
				return nil, "", fmt.Errorf("store: decode suppression %s: %w", kv[i], err)
			}
			batch = append(batch, sup)
		}
		slices.SortFunc(batch, func(a, b Suppression) int { return strings.Compare(a.Email, b.Email) })
		for _, sup := range batch {
			if after != "" && sup.Email <= after {
				continue // given on an earlier page
			}
			if len(page) == limit {
				return page, encodeCursor(pos, page[len(page)-1].Email), nil
			}
			page = append(page, sup)
		}
		after, pos = "", nextPos
		switch {
		case pos == 0:
			return page, "", nil
		case len(page) == limit:
			return page, encodeCursor(pos, ""), nil
		}
	}
}

// A cursor is the HSCAN cursor and the last address given from its batch,
// base64url so that it goes in a query string as it is.
func encodeCursor(pos uint64, after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(pos, 10) + "\n" + after))
}

func decodeCursor(c string) (pos uint64, after string, err error) {
	if c == "" {
		return 0, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	num, after, ok := strings.Cut(string(b), "\n")
	if pos, err = strconv.ParseUint(num, 10, 64); !ok || err != nil {
		return 0, "", ErrBadCursor
	}
	return pos, after, nil
}

// SuppressionImport adds suppressions batch by batch and counts what it did:
// an address not on the list is added (HSETNX, SuppressBatch a round trip);
// one already on it keeps its entry — the earlier reason and time, which tell
// when and why the address first had to stop — and counts as Already, as
// does an address listed a second time. With DryRun it writes nothing and
// counts what it would do.
type SuppressionImport struct {
	Store  *Store
	DryRun bool
	// Added and Already count the addresses given to Add so far.
	Added, Already int
	// seen are the addresses a dry run would have added.
	seen map[string]bool
}

// Add adds sups (their Email, Reason and At). After an error, the counts say
// what was written before it.
func (im *SuppressionImport) Add(ctx context.Context, sups []Suppression) error {
	s := im.Store
	for batch := range slices.Chunk(sups, SuppressBatch) {
		if im.DryRun {
			if err := im.count(ctx, batch); err != nil {
				return err
			}
			continue
		}
		cmds := make([]*redis.BoolCmd, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, sup := range batch {
				b, err := json.Marshal(Suppression{Reason: sup.Reason, At: sup.At})
				if err != nil {
					return err
				}
				cmds[i] = p.HSetNX(ctx, s.suppressedKey(), normEmail(sup.Email), b)
			}
			return nil
		})
		if err != nil {
			for _, c := range cmds { // what went through before the error
				if c != nil && c.Err() == nil && c.Val() {
					im.Added++
				}
			}
			return fmt.Errorf("store: suppress %d addresses: %w", len(batch), err)
		}
		for _, c := range cmds {
			if c.Val() {
				im.Added++
			} else {
				im.Already++
			}
		}
	}
	return nil
}

// count is Add of a dry run: one HMGET for the batch.
func (im *SuppressionImport) count(ctx context.Context, batch []Suppression) error {
	if im.seen == nil {
		im.seen = make(map[string]bool)
	}
	emails := make([]string, len(batch))
	for i, sup := range batch {
		emails[i] = sup.Email
	}
	have, err := im.Store.Suppressions(ctx, emails)
	if err != nil {
		return err
	}
	for i, h := range have {
		addr := normEmail(emails[i])
		if h != nil || im.seen[addr] {
			im.Already++
			continue
		}
		im.seen[addr] = true
		im.Added++
	}
	return nil
}

// SuppressionRow is one address of a suppression file, with the line it is on.
type SuppressionRow struct {
	Line int
	Suppression
}

// RowError is a row of a suppression file that cannot be imported, or (Line
// 1) a header that cannot be read.
type RowError struct {
	Line int
	Msg  string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// SuppressionCSV configures a SuppressionReader.
type SuppressionCSV struct {
	// CheckEmail refuses an address that cannot be mailed (retain passes
	// ingest.CheckEmail, the rule every way in shares); default: what
	// net/mail parses as a bare address.
	CheckEmail func(string) error
	// Reason is the reason of a row without one; default "imported".
	Reason string
	// Now is the time of a row without a date, and the clock that dates more
	// than a day ahead of are refused by; default time.Now().
	Now time.Time
}

// The header names a SuppressionReader knows, compared without case, with
// spaces and hyphens read as underscores; the first one a header has wins.
var (
	emailColumns  = []string{"email", "email_address", "emailaddress", "e_mail", "address", "recipient"}
	reasonColumns = []string{"reason", "type", "status"}
	dateColumns   = []string{"date", "created", "created_at", "timestamp", "suppressed_at"}
)

// DateFormats lists, for messages and help, the dates a suppression file may hold.
const DateFormats = "RFC 3339 (2026-03-02T09:00:00Z), 2026-03-02 09:00:00 (UTC), 2026-03-02 (UTC) or Unix seconds (1772442000)"

// SuppressionReader reads the suppression export of another email service
// provider: CSV separated by commas or semicolons (whichever the header row
// holds more of), UTF-8 (a byte-order mark is skipped), with a header row
// naming the columns — the address (email, email_address, "Email Address",
// address or recipient), and optionally the reason (reason, type or status:
// the first of them a row fills) and the date (date, created, created_at,
// timestamp or suppressed_at) —
// in any order, beside any others, which are ignored. A file with no header,
// whose first row starts with an address, is a list of addresses, one a row.
type SuppressionReader struct {
	r          *csv.Reader
	o          SuppressionCSV
	email, day int // column indexes; -1 when absent
	// reasons are the indexes of the reason columns, the first first: a
	// row's reason is the first of them it fills.
	reasons []int
	// pending is a headerless file's first row, not yet returned.
	pending []string
	comma   rune
}

// NewSuppressionReader reads the header of r. An error is a *RowError (line
// 1) when the header names no address column, else a read error.
func NewSuppressionReader(r io.Reader, o SuppressionCSV) (*SuppressionReader, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Reason == "" {
		o.Reason = "imported"
	}
	if o.CheckEmail == nil {
		o.CheckEmail = func(s string) error {
			if a, err := mail.ParseAddress(s); err != nil || a.Name != "" || a.Address != s {
				return fmt.Errorf("%q is not an email address", s)
			}
			return nil
		}
	}
	br := bufio.NewReaderSize(r, 64*1024)
	first, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, err
	}
	first = strings.TrimPrefix(first, "\ufeff")
	if strings.TrimSpace(first) == "" {
		return nil, &RowError{1, "the file is empty: it needs a header row naming the columns, such as email,reason,date"}
	}
	sr := &SuppressionReader{o: o, comma: separator(first)}
	sr.r = csv.NewReader(io.MultiReader(strings.NewReader(first), br))
	sr.r.Comma = sr.comma
	sr.r.FieldsPerRecord = -1
	header, err := sr.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &RowError{1, "the header row is malformed CSV: " + pe.Err.Error()}
		}
		return nil, err
	}
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(h)))
	}
	column := func(known []string) int {
		for _, k := range known {
			if i := slices.Index(names, k); i >= 0 {
				return i
			}
		}
		return -1
	}
	sr.email, sr.day = column(emailColumns), column(dateColumns)
	for _, k := range reasonColumns {
		if i := slices.Index(names, k); i >= 0 {
			sr.reasons = append(sr.reasons, i)
		}
	}
	if sr.email < 0 {
		// No header: a list of addresses, when the first cell is one.
		if cell := strings.TrimSpace(header[0]); strings.Contains(cell, "@") && o.CheckEmail(cell) == nil {
			sr.email, sr.day, sr.reasons, sr.pending = 0, -1, nil, header
			return sr, nil
		}
		return nil, &RowError{1, fmt.Sprintf("the header row names no address column (it has %s): name it email, email_address, \"Email Address\", address or recipient",
			quoteAll(header))}
	}
	return sr, nil
}

// Separator is the file's separator, ',' or ';'.
func (sr *SuppressionReader) Separator() rune { return sr.comma }

// separator is ';' when the line holds more semicolons than commas outside
// quotes, else ','.
func separator(line string) rune {
	commas, semis, quoted := 0, 0, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == ',':
			commas++
		case r == ';':
			semis++
		}
	}
	if semis > commas {
		return ';'
	}
	return ','
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Next returns the next row: io.EOF after the last, a *RowError for a row
// that cannot be imported (reading goes on after it), any other error when
// the file cannot be read on. Rows whose cells are all empty are skipped.
func (sr *SuppressionReader) Next() (SuppressionRow, error) {
	for {
		var rec []string
		line := 1
		if sr.pending != nil {
			rec, sr.pending = sr.pending, nil
		} else {
			var err error
			rec, err = sr.r.Read()
			var pe *csv.ParseError
			switch {
			case errors.As(err, &pe):
				return SuppressionRow{}, &RowError{pe.StartLine, "malformed CSV: " + pe.Err.Error() + ` (a cell holding quotes or the separator is quoted, its quotes doubled: "a ""b"" c")`}
			case err != nil:
				return SuppressionRow{}, err
			}
			line, _ = sr.r.FieldPos(0)
		}
		if !slices.ContainsFunc(rec, func(s string) bool { return strings.TrimSpace(s) != "" }) {
			continue
		}
		row, msg := sr.row(rec)
		if msg != "" {
			return SuppressionRow{}, &RowError{line, msg}
		}
		row.Line = line
		return row, nil
	}
}

// row checks one record; msg says why it cannot be imported.
func (sr *SuppressionReader) row(rec []string) (row SuppressionRow, msg string) {
	cell := func(i int) string {
		if i < 0 || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	addr := cell(sr.email)
	if addr == "" {
		return row, "the address is missing"
	}
	if err := sr.o.CheckEmail(addr); err != nil {
		return row, err.Error()
	}
	row.Email = normEmail(addr)
	for _, i := range sr.reasons {
		if row.Reason = cleanReason(cell(i)); row.Reason != "" {
			break
		}
	}
	if row.Reason == "" {
		row.Reason = sr.o.Reason
	}
	row.At = sr.o.Now
	if d := cell(sr.day); d != "" {
		at, err := ParseSuppressionDate(d)
		switch {
		case err != nil:
			return row, err.Error()
		case at.After(sr.o.Now.Add(24 * time.Hour)):
			return row, fmt.Sprintf("date %q is in the future", d)
		}
		row.At = at
	}
	return row, ""
}

// cleanReason makes a reason one line of valid UTF-8 of at most MaxReason
// bytes: control characters and runs of white space become one space.
func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// ParseSuppressionDate reads a date of a suppression file: see DateFormats;
// also 2026-03-02T09:00:00 (UTC) and Unix milliseconds (13 digits). Dates
// without a zone are UTC.
func ParseSuppressionDate(s string) (time.Time, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err == nil && len(s) <= 11 {
			return time.Unix(n, 0).UTC(), nil
		}
		if err == nil && len(s) <= 14 {
			return time.UnixMilli(n).UTC(), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q is not a date: use %s", s, DateFormats)
}
