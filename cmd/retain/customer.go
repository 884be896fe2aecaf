package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/render"
)

// customerFile is the customer file of `retain preview --customer` (and, later, one
// line of `retain import`): a customer with attributes and their event history.
type customerFile struct {
	ID         string         `json:"id"`
	Email      string         `json:"email"`
	FirstName  string         `json:"first_name"`
	Name       string         `json:"name"`
	Locale     string         `json:"locale"`
	Timezone   string         `json:"timezone"`
	Stage      string         `json:"stage"`
	Attributes map[string]any `json:"attributes"`
	Events     []struct {
		Name string         `json:"name"`
		At   time.Time      `json:"at"`
		Data map[string]any `json:"data"`
	} `json:"events"`
}

// readCustomer reads a customer file and checks it against the lifecycle: known
// stage, valid time zone, declared and well-typed attributes.
func readCustomer(path string, l *campaign.Lifecycle) (render.Customer, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return render.Customer{}, fmt.Errorf("read customer: %w", err)
	}
	var cf customerFile
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&cf); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line, col := lineCol(src, max(syn.Offset-1, 0)) // Offset is just past the bad byte
			return render.Customer{}, fmt.Errorf("%s:%d:%d: %v", path, line, col, syn)
		case errors.As(err, &typ):
			line, col := lineCol(src, typ.Offset)
			return render.Customer{}, fmt.Errorf("%s:%d:%d: %s must be %s", path, line, col, typ.Field, typ.Type)
		}
		return render.Customer{}, fmt.Errorf("%s: %v", path, err)
	}
	if dec.More() {
		off := dec.InputOffset()
		off += int64(len(src[off:]) - len(bytes.TrimLeft(src[off:], " \t\r\n")))
		line, col := lineCol(src, off)
		return render.Customer{}, fmt.Errorf("%s:%d:%d: one customer per file: remove what follows the first object", path, line, col)
	}
	c := render.Customer{ID: cf.ID, Email: cf.Email, FirstName: cf.FirstName, Name: cf.Name,
		Locale: cf.Locale, Timezone: cf.Timezone, Stage: cf.Stage, Attributes: render.Attributes{}}
	if c.ID == "" {
		c.ID = c.Email
	}
	if c.Email == "" {
		return c, fmt.Errorf("%s: email is missing", path)
	}
	if c.Locale == "" {
		c.Locale = l.Locale
	}
	if c.Timezone == "" {
		c.Timezone = l.Timezone.String()
	} else if _, err := time.LoadLocation(c.Timezone); err != nil {
		return c, fmt.Errorf("%s: timezone %q is not an IANA time zone such as Europe/Amsterdam", path, c.Timezone)
	}
	if c.Stage != "" && !l.HasStage(c.Stage) {
		return c, fmt.Errorf("%s: stage %q is not declared in %s", path, c.Stage, l.Path)
	}
	names := make([]string, 0, len(cf.Attributes))
	for k := range cf.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, err := l.CoerceAttribute(k, cf.Attributes[k])
		if err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
		c.Attributes[k] = v
	}
	return c, nil
}

// lineCol converts a byte offset of src to a 1-based line and column.
func lineCol(src []byte, off int64) (line, col int) {
	off = min(off, int64(len(src)))
	before := src[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}
