package campaign

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong in a campaign file, with where it is.
type Problem struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	Msg  string `json:"message"`
	// Warning marks something risky rather than wrong, such as an edit that
	// changes what customers in flight get (retain lint --against).
	Warning bool `json:"warning,omitempty"`
}

func (p Problem) String() string {
	if p.Warning {
		return fmt.Sprintf("%s:%d:%d: warning: %s", p.Path, p.Line, p.Col, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.Path, p.Line, p.Col, p.Msg)
}

// Problems is every problem found in one load or compile. As an error it prints one
// problem per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Add records a problem at path and pos.
func (ps *Problems) Add(path string, pos Pos, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf(format, args...)})
}

// Sort orders problems by path, line and column, and drops exact duplicates.
func (ps Problems) Sort() Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return slices.Compact(ps)
}

// Err returns ps as an error, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps.Sort()
}
