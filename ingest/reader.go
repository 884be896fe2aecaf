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

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// Reader yields the records of an import file one at a time. Next returns io.EOF at
// the end; an *Error is one bad record, after which reading goes on; any other error
// ends the file.
type Reader interface {
	Next() (*Record, error)
}

// NewReader returns the reader for path's format: .csv, or .jsonl/.ndjson (one
// customer object per line).
func NewReader(path string, r io.Reader, l *campaign.Lifecycle) (Reader, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return newCSVReader(path, r, l)
	case ".jsonl", ".ndjson":
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		return &jsonlReader{path: path, sc: sc, l: l}, nil
	}
	return nil, fmt.Errorf("%s: unknown format: import .csv or .jsonl files", path)
}

// Columns a CSV file may have besides the declared attributes and data.<key>.
var csvColumns = []string{"id", "email", "first_name", "name", "locale", "timezone", "stage", "event", "event_id", "at"}

// csvReader reads a CSV file with a header row. Each row is a customer upsert (empty
// cells change nothing) and, when its event column is set, one event at its at time
// with the data.<key> columns as data.
type csvReader struct {
	path string
	r    *csv.Reader
	cols []string
	l    *campaign.Lifecycle
}

func newCSVReader(path string, r io.Reader, l *campaign.Lifecycle) (*csvReader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return nil, &Error{path, 1, 0, "the file is empty: the first row names the columns"}
	}
	if err != nil {
		return nil, csvError(path, err)
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
	return &csvReader{path: path, r: cr, cols: cols, l: l}, nil
}

func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &Error{path, pe.Line, pe.Column, pe.Err.Error()}
	}
	return fmt.Errorf("%s: %w", path, err)
}

func (c *csvReader) Next() (*Record, error) {
	row, err := c.r.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	line, _ := c.r.FieldPos(0)
	if err != nil {
		return nil, csvError(c.path, err)
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
	if err := Check(r, c.l); err != nil {
		return nil, &Error{c.path, line, 0, err.Error()}
	}
	return r, nil
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
