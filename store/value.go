package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/lifecycle"
)

// Plain JSON turns an int into a float64 and a time.Time into a string, so the
// customer's attributes (and event data) are written with a small typed encoding
// that a read turns back into the same Go types, whatever lifecycle.yaml says
// today. That keeps a stored customer readable after its attribute types change:
//
//	string, bool, nil   as JSON
//	int                 a JSON number without '.' or exponent: 3
//	float64             a JSON number that always has one:     3.0, 1e+21
//	time.Time           {"$t":"2026-03-14T09:30:00.123Z"} (RFC 3339, nanoseconds)
//
// Attributes accept only these types; event data may also hold nested maps and
// slices of them, and any other value, which comes back as plain JSON would.

const timeTag = "$t"

// attrs is Customer.Attributes as stored.
type attrs map[string]any

func (a attrs) MarshalJSON() ([]byte, error) { return marshalTyped(map[string]any(a), true) }

func (a *attrs) UnmarshalJSON(b []byte) error {
	m, err := unmarshalTyped(b)
	*a = m
	return err
}

// data is Event.Data as stored.
type data map[string]any

func (d data) MarshalJSON() ([]byte, error) { return marshalTyped(map[string]any(d), false) }

func (d *data) UnmarshalJSON(b []byte) error {
	m, err := unmarshalTyped(b)
	*d = m
	return err
}

func marshalTyped(m map[string]any, strict bool) ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		e, err := encodeValue(v, strict)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		out[k] = e
	}
	return json.Marshal(out)
}

func encodeValue(v any, strict bool) (any, error) {
	switch x := v.(type) {
	case nil, string, bool:
		return x, nil
	case int:
		return json.Number(strconv.Itoa(x)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v cannot be stored", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return json.Number(s), nil
	case time.Time:
		return map[string]string{timeTag: x.Format(time.RFC3339Nano)}, nil
	}
	if strict {
		return nil, fmt.Errorf("%T cannot be stored (want string, int, float64, bool or time.Time)", v)
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := encodeValue(e, false)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", k, err)
			}
			out[k] = ev
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ev, err := encodeValue(e, false)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = ev
		}
		return out, nil
	}
	return v, nil
}

func unmarshalTyped(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for k, v := range m {
		d, err := decodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		m[k] = d
	}
	return m, nil
}

func decodeValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.Atoi(s); err == nil {
				return i, nil
			}
		}
		return strconv.ParseFloat(s, 64)
	case map[string]any:
		if s, ok := x[timeTag].(string); ok && len(x) == 1 {
			return time.Parse(time.RFC3339Nano, s)
		}
		for k, e := range x {
			d, err := decodeValue(e)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", k, err)
			}
			x[k] = d
		}
		return x, nil
	case []any:
		for i, e := range x {
			d, err := decodeValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			x[i] = d
		}
		return x, nil
	}
	return v, nil
}

// customerRecord is a Customer as stored: its Attributes field shadows the
// embedded one (encoding/json picks the shallower field) to apply the typed
// encoding.
type customerRecord struct {
	*lifecycle.Customer
	Attributes attrs `json:"attributes,omitempty"`
}

func encodeCustomer(c *lifecycle.Customer) ([]byte, error) {
	return json.Marshal(customerRecord{Customer: c, Attributes: c.Attributes})
}

func decodeCustomer(b []byte) (*lifecycle.Customer, error) {
	c := new(lifecycle.Customer)
	r := customerRecord{Customer: c}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	c.Attributes = r.Attributes
	return c, nil
}

// profileRecord is what decodeProfile reads of a stored customer: the
// fields it shadows are skipped, or (Enrollments) read for their keys only.
type profileRecord struct {
	*lifecycle.Customer
	Attributes   attrs               `json:"attributes,omitempty"`
	Enrollments  map[string]skipJSON `json:"enrollments,omitempty"`
	StageSince   skipJSON            `json:"stage_since"`
	CreatedAt    skipJSON            `json:"created_at"`
	LastActivity skipJSON            `json:"last_activity"`
	LastEvent    skipJSON            `json:"last_event"`
	LastSent     skipJSON            `json:"last_sent"`
}

// skipJSON is a JSON value read past and not decoded.
type skipJSON struct{}

func (skipJSON) UnmarshalJSON([]byte) error { return nil }

// decodeProfile decodes a stored customer for Store.ScanProfiles.
func decodeProfile(b []byte) (*lifecycle.Customer, error) {
	c := new(lifecycle.Customer)
	r := profileRecord{Customer: c}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	c.Attributes = r.Attributes
	if len(r.Enrollments) > 0 {
		c.Enrollments = make(map[string]*lifecycle.Enrollment, len(r.Enrollments))
		for id := range r.Enrollments {
			c.Enrollments[id] = &lifecycle.Enrollment{Campaign: id}
		}
	}
	return c, nil
}

type eventRecord struct {
	*lifecycle.Event
	Data data `json:"data,omitempty"`
}

func encodeEvent(e *lifecycle.Event) ([]byte, error) {
	return json.Marshal(eventRecord{Event: e, Data: e.Data})
}

func decodeEvent(b []byte) (lifecycle.Event, error) {
	var e lifecycle.Event
	r := eventRecord{Event: &e}
	if err := json.Unmarshal(b, &r); err != nil {
		return e, err
	}
	e.Data = r.Data
	return e, nil
}
