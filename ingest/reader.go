package ingest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// Reader yields the records of an import file one at a time. Next returns io.EOF at
// the end; an *Error is one bad record, after which reading goes on; any other error
// ends the file.
type Reader interface {
	Next() (*Record, error)
}

// Options change how NewReaderWith reads a file.
type Options struct {
	// Encoding is the file's character encoding: "" or "utf-8" (the default;
	// a byte-order mark is skipped), "latin1" (ISO 8859-1) or "windows-1252".
	// Text that is not valid in it is a bad row, never stored as U+FFFD.
	Encoding string
	// Now, when set, is the clock of CheckTime: a row with an event more than
	// MaxSkew after it is bad. retain import sets it; plan and impact, which
	// simulate, do not.
	Now func() time.Time
}

// Encodings are the names Options.Encoding accepts.
var Encodings = []string{"utf-8", "latin1", "windows-1252"}

// decoder returns r converted to UTF-8 from enc.
func decoder(r io.Reader, enc string) (io.Reader, error) {
	switch strings.ToLower(strings.ReplaceAll(enc, "_", "-")) {
	case "", "utf-8", "utf8":
		return r, nil
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
		return charmap.ISO8859_1.NewDecoder().Reader(r), nil
	case "windows-1252", "cp1252":
		return charmap.Windows1252.NewDecoder().Reader(r), nil
	}
	return nil, fmt.Errorf("unknown encoding %q: use %s", enc, strings.Join(Encodings, ", "))
}

// NewReader returns the reader for path's format: .csv, or .jsonl/.ndjson (one
// customer object per line), for a UTF-8 file.
func NewReader(path string, r io.Reader, l *campaign.Lifecycle) (Reader, error) {
	return NewReaderWith(path, r, l, Options{})
}

// NewReaderWith is NewReader with options.
func NewReaderWith(path string, r io.Reader, l *campaign.Lifecycle, o Options) (Reader, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".csv" && ext != ".jsonl" && ext != ".ndjson" {
		return nil, fmt.Errorf("%s: unknown format: import .csv or .jsonl files", path)
	}
	r, err := decoder(r, o.Encoding)
	if err != nil {
		return nil, err
	}
	src := &lineSource{br: bufio.NewReaderSize(r, 64*1024)}
	if ext == ".csv" {
		return newCSVReader(path, src, l, o.Now)
	}
	return &jsonlReader{path: path, src: src, l: l, now: o.Now}, nil
}

// lineSource hands out the lines of a file with their numbers, and takes lines
// back to hand them out again (after a quote that never closed).
type lineSource struct {
	br   *bufio.Reader
	n    int // the number of the last line read from br
	back []srcLine
}

type srcLine struct {
	n    int
	text string // with its line ending
}

func (s *lineSource) next() (srcLine, error) {
	if len(s.back) > 0 {
		l := s.back[0]
		s.back = s.back[1:]
		return l, nil
	}
	t, err := s.br.ReadString('\n')
	if t == "" {
		if err == nil {
			err = io.EOF
		}
		return srcLine{}, err
	}
	s.n++
	if s.n == 1 {
		t = strings.TrimPrefix(t, "\ufeff") // a UTF-8 byte-order mark
	}
	return srcLine{s.n, t}, nil
}

// unread puts lines back in front of what next returns.
func (s *lineSource) unread(lines []srcLine) {
	s.back = append(slices.Clone(lines), s.back...)
}

// invalidUTF8 reports where text is not valid UTF-8, as line (counted from
// first) and column, and the offending byte.
func invalidUTF8(text string, first int) (line, col int, b byte, ok bool) {
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size == 1 {
			ln := first + strings.Count(text[:i], "\n")
			return ln, i - strings.LastIndexByte(text[:i], '\n'), text[i], true
		}
		i += size
	}
	return 0, 0, 0, false
}

func notUTF8(path string, line, col int, b byte) *Error {
	return &Error{path, line, col, fmt.Sprintf("byte 0x%02X is not valid UTF-8: save the file as UTF-8, or give its encoding (--encoding windows-1252 or latin1)", b)}
}

// Columns a CSV file may have besides the declared attributes and data.<key>.
var csvColumns = []string{"id", "email", "first_name", "name", "locale", "timezone", "stage", "event", "event_id", "at"}

// A quoted CSV field may span lines, up to these limits; past them, or at the
// end of the file, its opening quote is reported as never closed and the lines
// after it are read as rows of their own.
const (
	maxRecordLines = 1000
	maxRecordBytes = 1 << 20
)

// csvReader reads a CSV file with a header row. Each row is a customer upsert (empty
// cells change nothing) and, when its event column is set, one event at its at time
// with the data.<key> columns as data.
//
// It splits the file into records itself rather than leaving it to
// encoding/csv, so that a quote left open costs one row, reported at the line
// where it opens, instead of swallowing the rest of the file.
type csvReader struct {
	path string
	src  *lineSource
	cols []string
	l    *campaign.Lifecycle
	now  func() time.Time
}

func newCSVReader(path string, src *lineSource, l *campaign.Lifecycle, now func() time.Time) (*csvReader, error) {
	c := &csvReader{path: path, src: src, l: l, now: now}
	_, head, err := c.read()
	if err == io.EOF {
		return nil, &Error{path, 1, 0, "the file is empty: the first row names the columns"}
	}
	if err != nil {
		return nil, err
	}
	known := append(slices.Clone(csvColumns), l.AttributeNames()...)
	cols := make([]string, len(head))
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !slices.Contains(known, h) && !strings.HasPrefix(h, "data.") {
			return nil, &Error{path, 1, i + 1, fmt.Sprintf("unknown column %q%s: columns are %s, the attributes declared in %s, and data.<key> for event data",
				h, campaign.DidYouMean(h, known), strings.Join(csvColumns, ", "), campaign.LifecycleFile)}
		}
		if slices.Contains(cols[:i], h) {
			return nil, &Error{path, 1, i + 1, fmt.Sprintf("column %q appears twice", h)}
		}
		cols[i] = h
	}
	if !slices.Contains(cols, "id") && !slices.Contains(cols, "email") {
		return nil, &Error{path, 1, 0, "no id or email column: every row must say which customer it is about"}
	}
	c.cols = cols
	return c, nil
}

// quotes follows CSV quoting through a record's lines.
type quotes struct {
	in, fieldStart bool
	// line and col of the quote that opened the field still open.
	line, col int
}

func (q *quotes) scan(l srcLine) {
	text := l.text
	for i := 0; i < len(text); i++ {
		ch := text[i]
		if q.in {
			if ch == '"' {
				if i+1 < len(text) && text[i+1] == '"' {
					i++ // an escaped quote
					continue
				}
				q.in = false
			}
			continue
		}
		switch ch {
		case '"':
			// A quote opens a field only at its start; a bare quote inside
			// a field is encoding/csv's to report.
			if q.fieldStart {
				q.in, q.line, q.col = true, l.n, i+1
			}
			q.fieldStart = false
		case ',', '\n':
			q.fieldStart = true
		case ' ', '\t', '\r':
		default:
			q.fieldStart = false
		}
	}
}

// read returns the next record's first line and cells. An error is an *Error
// (one bad record, and reading may go on), io.EOF, or a read error.
func (c *csvReader) read() (int, []string, error) {
	var first srcLine
	for {
		l, err := c.src.next()
		if err != nil {
			return 0, nil, err
		}
		if strings.TrimRight(l.text, "\r\n") != "" {
			first = l
			break
		}
	}
	lines := []srcLine{first}
	q := quotes{fieldStart: true}
	q.scan(first)
	openLine, openCol := q.line, q.col
	unclosed := func() (int, []string, error) {
		c.src.unread(lines[1:])
		return first.n, nil, &Error{c.path, openLine, openCol, `the quoted field that opens here is never closed: close it with " (a quote inside a quoted field is written "")`}
	}
	size := len(first.text)
	for q.in {
		l, err := c.src.next()
		if err != nil && err != io.EOF {
			return 0, nil, err
		}
		if err == io.EOF || len(lines) >= maxRecordLines || size+len(l.text) > maxRecordBytes {
			if err == nil {
				lines = append(lines, l)
			}
			return unclosed()
		}
		lines = append(lines, l)
		size += len(l.text)
		q.scan(l)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
	}
	text := b.String()
	if line, col, ch, bad := invalidUTF8(text, first.n); bad {
		return first.n, nil, notUTF8(c.path, line, col, ch)
	}
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	row, err := cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if len(lines) > 1 {
			// A quote that opened a field across lines and then made no
			// sense: most likely it was never meant to be closed there.
			return unclosed()
		}
		if errors.As(err, &pe) {
			return first.n, nil, &Error{c.path, first.n + pe.Line - 1, pe.Column, pe.Err.Error()}
		}
		return first.n, nil, &Error{c.path, first.n, 0, err.Error()}
	}
	return first.n, row, nil
}

func (c *csvReader) Next() (*Record, error) {
	line, row, err := c.read()
	if err != nil {
		return nil, err
	}
	if len(row) != len(c.cols) {
		return nil, &Error{c.path, line, 0, fmt.Sprintf("%d cells, the header has %d columns", len(row), len(c.cols))}
	}
	r := &Record{Line: line, Attributes: map[string]any{}}
	var ev lifecycle.Event
	var at string
	for i, v := range row {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		switch col := c.cols[i]; col {
		case "id":
			r.ID = v
		case "email":
			r.Email = v
		case "first_name":
			r.FirstName = v
		case "name":
			r.Name = v
		case "locale":
			r.Locale = v
		case "timezone":
			r.Timezone = v
		case "stage":
			r.Stage = v
		case "event":
			ev.Name = v
		case "event_id":
			ev.ID = v
		case "at":
			at = v
		default:
			if key, ok := strings.CutPrefix(col, "data."); ok {
				if ev.Data == nil {
					ev.Data = map[string]any{}
				}
				ev.Data[key] = Value(v)
			} else {
				r.Attributes[col] = v
			}
		}
	}
	if ev.Name != "" || at != "" || ev.Data != nil {
		if ev.Name == "" {
			return nil, &Error{c.path, line, 0, "at or data.* given without an event name"}
		}
		if at == "" {
			return nil, &Error{c.path, line, 0, fmt.Sprintf("event %s has no time: fill the at column", ev.Name)}
		}
		loc := c.l.Timezone
		if z, err := time.LoadLocation(r.Timezone); err == nil && r.Timezone != "" {
			loc = z
		}
		t, err := parseTime(at, loc)
		if err != nil {
			return nil, &Error{c.path, line, 0, err.Error()}
		}
		ev.At = t
		r.Events = []lifecycle.Event{ev}
	}
	if err := checkRecord(r, c.l, c.now); err != nil {
		return nil, &Error{c.path, line, 0, err.Error()}
	}
	return r, nil
}

// checkRecord is Check, then CheckTime on every event when now is set.
func checkRecord(r *Record, l *campaign.Lifecycle, now func() time.Time) error {
	if err := Check(r, l); err != nil {
		return err
	}
	if now != nil {
		n := now()
		for _, ev := range r.Events {
			if err := CheckTime(ev.At, n); err != nil {
				return fmt.Errorf("event %s: %w", ev.Name, err)
			}
		}
	}
	return nil
}

// Value reads event data given as text (a CSV cell, a key=value argument): numbers
// and booleans as such, so conditions like event.data.total > 50 work; anything
// else as text.
func Value(s string) any {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
		return b
	}
	return s
}
