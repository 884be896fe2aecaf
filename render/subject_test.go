package render

import (
	"strings"
	"testing"

	"github.com/retainmail/retain/campaign"
)

// TestSubjectThatCannotFitOneHeaderLineIsALintError: issue 13, defect 4. A
// subject whose text plus 256 octets per printed field exceeds the 998 octets
// of a header line could never be sent.
func TestSubjectThatCannotFitOneHeaderLineIsALintError(t *testing.T) {
	for _, tc := range []struct {
		subject string
		bad     bool
	}{
		{"Welcome, {{ .Customer.FirstName }}", false},
		{strings.Repeat("x", 989), false},
		{strings.Repeat("x", 990), true},
		{strings.Repeat("x", 700) + " {{ .Customer.FirstName }}", false},
		{strings.Repeat("x", 700) + " {{ .Customer.FirstName }} {{ .Customer.Name }}", true},
		{strings.Repeat("x", 900) + "{{ if .Customer.FirstName }}!{{ end }}", false},
	} {
		var probs campaign.Problems
		c := newChecker(nil, &probs)
		c.subjectLength(&source{path: "s.md", text: tc.subject, line: 2, col: 10})
		if got := len(probs) > 0; got != tc.bad {
			t.Errorf("%d octets: problem %v, want %v (%v)", len(tc.subject), got, tc.bad, probs)
		}
	}
}
