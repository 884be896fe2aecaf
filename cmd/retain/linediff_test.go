package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLineDiffKeepsCommonLinesAndMarksTheRest checks the text-part diff of
// retain preview --against, written as the compare page shows it.
func TestLineDiffKeepsCommonLinesAndMarksTheRest(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		want       []string
	}{
		{"same", "a\nb\n", "a\nb\n", []string{"  a", "  b"}},
		{"empty before", "", "a\n", []string{"+ a"}},
		{"empty after", "a\n", "", []string{"- a"}},
		{"one line changed", "Hi Ada,\nbody\nbye\n", "Hello Ada,\nbody\nbye\n", []string{"- Hi Ada,", "+ Hello Ada,", "  body", "  bye"}},
		{"line added in the middle", "a\nc\n", "a\nb\nc\n", []string{"  a", "+ b", "  c"}},
		{"lines moved", "a\nb\nc\nd\n", "c\na\nb\nd\n", []string{"+ c", "  a", "  b", "- c", "  d"}},
		{"blank lines count", "a\n\nb", "a\nb", []string{"  a", "- ", "  b"}},
		{"CRLF is a line end", "a\r\nb\r\n", "a\nb\n", []string{"  a", "  b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range lineDiff(tc.a, tc.b) {
				got = append(got, string(l.Op)+" "+l.Text)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lineDiff(%q, %q) (-want +got):\n%s", tc.a, tc.b, diff)
			}
		})
	}
}

// TestLineDiffOfLongTextsStaysWithinItsTable checks that texts too long for
// the LCS table still diff: the differing middle shows as removed, then added.
func TestLineDiffOfLongTextsStaysWithinItsTable(t *testing.T) {
	a := strings.Repeat("old line\n", 3000)
	b := strings.Repeat("new line\n", 3000)
	d := lineDiff("top\n"+a+"end\n", "top\n"+b+"end\n")
	if len(d) != 6002 || d[0] != (diffLine{' ', "top"}) || d[1].Op != '-' || d[3001].Op != '+' || d[6001] != (diffLine{' ', "end"}) {
		t.Errorf("lineDiff of 3000 changed lines: %d lines, first %v, last %v", len(d), d[:2], d[len(d)-1])
	}
}
