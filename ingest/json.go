package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// jsonCustomer is the customer file format, also one line of a JSONL import:
//
//	{"id","email","first_name","name","locale","timezone","stage",
//	 "attributes":{},"events":[{"id","name","at","data":{}}]}
type jsonCustomer struct {
	Profile
	Events []struct {
		ID   string         `json:"id"`
		Name string         `json:"name"`
		At   string         `json:"at"`
		Data map[string]any `json:"data"`
	} `json:"events"`
}

// Profile is a customer as JSON gives it, without events: the customer file's
// fields, and the body of retain web's PUT /api/customers/{id}.
type Profile struct {
	ID         string         `json:"id"`
	Email      string         `json:"email"`
	FirstName  string         `json:"first_name"`
	Name       string         `json:"name"`
	Locale     string         `json:"locale"`
	Timezone   string         `json:"timezone"`
	Stage      string         `json:"stage"`
	Attributes map[string]any `json:"attributes"`
}

// ReadCustomerFile reads a customer file: one JSON object.
func ReadCustomerFile(path string, l *campaign.Lifecycle) (*Record, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read customer: %w", err)
	}
	src = bytes.TrimPrefix(src, []byte("\ufeff")) // a UTF-8 byte-order mark
	if line, col, b, bad := invalidUTF8(string(src), 1); bad {
		return nil, notUTF8(path, line, col, b)
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	r, err := decodeCustomer(dec, src, path, 1, l, nil)
	if err != nil {
		return nil, err
	}
	if dec.More() {
		off := dec.InputOffset()
		off += int64(len(src[off:]) - len(bytes.TrimLeft(src[off:], " \t\r\n")))
		line, col := lineCol(src, off)
		return nil, &Error{path, line, col, "one customer per file: remove what follows the first object (JSONL with one customer per line is for retain import)"}
	}
	return r, nil
}

// decodeCustomer decodes and checks one customer object from dec, which reads src;
// line is the line src starts on in path.
// With now set, events more than MaxSkew after it are refused (CheckTime).
func decodeCustomer(dec *json.Decoder, src []byte, path string, line int, l *campaign.Lifecycle, now func() time.Time) (*Record, error) {
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var jc jsonCustomer
	if err := dec.Decode(&jc); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			ln, col := lineCol(src, max(syn.Offset-1, 0)) // Offset is just past the bad byte
			return nil, &Error{path, line + ln - 1, col, syn.Error()}
		case errors.As(err, &typ):
			ln, col := lineCol(src, typ.Offset)
			return nil, &Error{path, line + ln - 1, col, fmt.Sprintf("%s must be %s", typ.Field, typ.Type)}
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, &Error{path, line, 0, "the customer object is incomplete"}
		}
		return nil, &Error{path, line, 0, err.Error()}
	}
	r := &Record{ID: jc.ID, Email: jc.Email, FirstName: jc.FirstName, Name: jc.Name, Locale: jc.Locale,
		Timezone: jc.Timezone, Stage: jc.Stage, Attributes: jc.Attributes, Line: line}
	loc := l.Timezone
	if r.Timezone != "" {
		if z, err := time.LoadLocation(r.Timezone); err == nil {
			loc = z
		}
	}
	for _, je := range jc.Events {
		ev := lifecycle.Event{ID: je.ID, Name: je.Name, Data: je.Data}
		if je.At != "" {
			at, err := parseTime(je.At, loc)
			if err != nil {
				return nil, &Error{path, line, 0, fmt.Sprintf("event %s: %v", je.Name, err)}
			}
			ev.At = at
		}
		r.Events = append(r.Events, ev)
	}
	if err := checkRecord(r, l, now); err != nil {
		return nil, &Error{path, line, 0, err.Error()}
	}
	// Event data is decoded with UseNumber; the engine's conditions compare
	// ints and float64s, as the store gives them back. Converted after Check,
	// so event IDs are derived from the numbers as the file writes them, as
	// they always were.
	for i := range r.Events {
		for k, v := range r.Events[i].Data {
			r.Events[i].Data[k] = Number(v)
		}
	}
	return r, nil
}

// Number turns json.Numbers in v (nested maps and lists too) into the types
// the engine and the store use: an int when the number is whole and written
// without a fraction or exponent, a float64 otherwise. Anything else is
// returned as it is.
func Number(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.Atoi(s); err == nil {
				return i
			}
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return s
	case map[string]any:
		for k, e := range x {
			x[k] = Number(e)
		}
	case []any:
		for i, e := range x {
			x[i] = Number(e)
		}
	}
	return v
}

// jsonlReader reads one customer per line.
type jsonlReader struct {
	path string
	src  *lineSource
	l    *campaign.Lifecycle
	now  func() time.Time
}

func (r *jsonlReader) Next() (*Record, error) {
	for {
		ln, err := r.src.next()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", r.path, r.src.n+1, err)
		}
		if line, col, ch, bad := invalidUTF8(ln.text, ln.n); bad {
			return nil, notUTF8(r.path, line, col, ch)
		}
		b := bytes.TrimSpace([]byte(ln.text))
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		rec, err := decodeCustomer(dec, b, r.path, ln.n, r.l, r.now)
		if err == nil && dec.More() {
			_, col := lineCol(b, dec.InputOffset())
			return nil, &Error{r.path, ln.n, col, "one customer per line: remove what follows the object"}
		}
		return rec, err
	}
}

// lineCol converts a byte offset of src to a 1-based line and column.
func lineCol(src []byte, off int64) (line, col int) {
	off = min(off, int64(len(src)))
	before := src[:off]
	return bytes.Count(before, []byte("\n")) + 1, int(off) - bytes.LastIndexByte(before, '\n')
}
