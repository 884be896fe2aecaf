package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// Record is one customer upsert with the events that came with it. Empty profile
// fields leave what is stored unchanged.
type Record struct {
	ID        string
	Email     string
	FirstName string
	Name      string
	Locale    string
	Timezone  string
	Stage     string
	// Attributes are converted to their declared Go types.
	Attributes map[string]any
	Events     []lifecycle.Event
	// Line is the line the record starts on (1 for a customer file).
	Line int
}

// Error is a record that cannot be used, with where it is.
type Error struct {
	Path      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
}

// Check validates r against l, converting its attributes to their declared types
// and giving events without an ID their content-derived one.
func Check(r *Record, l *campaign.Lifecycle) error {
	if r.ID == "" {
		r.ID = r.Email
	}
	if r.ID == "" {
		return fmt.Errorf("id is missing: give the customer's id (or an email)")
	}
	if strings.ContainsAny(r.ID, "\x00\r\n") || len(r.ID) > 200 || !utf8.ValidString(r.ID) {
		return fmt.Errorf("id %q must be one line of at most 200 bytes", r.ID)
	}
	if r.Email != "" {
		if err := CheckEmail(r.Email); err != nil {
			return err
		}
	}
	for _, f := range []struct{ field, v string }{{"first_name", r.FirstName}, {"name", r.Name}} {
		if err := checkText(f.field, f.v, MaxNameLen); err != nil {
			return err
		}
	}
	if r.Locale != "" {
		if err := checkLocale(r.Locale); err != nil {
			return err
		}
	}
	if r.Timezone != "" {
		if _, err := time.LoadLocation(r.Timezone); err != nil || r.Timezone == "Local" {
			return fmt.Errorf("timezone %q is not an IANA time zone such as Europe/Amsterdam", r.Timezone)
		}
	}
	if r.Stage != "" && !l.HasStage(r.Stage) {
		return fmt.Errorf("stage %q is not declared in %s%s", r.Stage, campaign.LifecycleFile, campaign.DidYouMean(r.Stage, l.StageNames()))
	}
	if err := checkStrings("attributes", r.Attributes); err != nil {
		return err
	}
	names := make([]string, 0, len(r.Attributes))
	for k := range r.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, err := l.CoerceAttribute(k, r.Attributes[k])
		if err != nil {
			return err
		}
		r.Attributes[k] = v
	}
	for i := range r.Events {
		ev := &r.Events[i]
		if ev.Name == "" {
			return fmt.Errorf("event %d has no name", i+1)
		}
		if err := checkText("event name", ev.Name, 200); err != nil {
			return err
		}
		if err := checkText("event id", ev.ID, 200); err != nil {
			return err
		}
		if err := checkStrings("event "+ev.Name+" data", ev.Data); err != nil {
			return err
		}
		if ev.At.IsZero() {
			return fmt.Errorf("event %s has no time (at)", ev.Name)
		}
		if ev.ID == "" {
			ev.ID = EventID(r.ID, *ev)
		}
	}
	return nil
}

// EventID is the idempotency key of an event that came without one: the same
// customer, name, time and data always give the same ID, so importing a file twice
// applies each event once.
func EventID(customerID string, ev lifecycle.Event) string {
	data, _ := json.Marshal(ev.Data) // map keys are sorted: the encoding is canonical
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", customerID, ev.Name, ev.At.UnixNano(), data)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// parseTime accepts RFC 3339, "2006-01-02 15:04[:05]" and "2006-01-02"; times
// without an offset are in loc.
func parseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-03-14T09:30:00Z), 2026-03-14 09:30 or 2026-03-14", s)
}

// ParseTime parses a time as import files and the command line give it; times
// without an offset are in loc.
func ParseTime(s string, loc *time.Location) (time.Time, error) { return parseTime(s, loc) }
