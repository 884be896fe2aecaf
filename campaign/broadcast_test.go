package campaign

import (
	"testing"
	"time"
)

// ParseSendAt reads each form of send_at; a time that a zone's clocks skip
// moves forward by the gap, as a local send_at does.
func TestParseSendAt(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	for _, tc := range []struct {
		in    string
		want  time.Time
		local bool
	}{
		{"2027-01-12 09:00 local", time.Date(2027, 1, 12, 9, 0, 0, 0, time.UTC), true},
		{"2027-01-12 09:00 America/New_York", time.Date(2027, 1, 12, 9, 0, 0, 0, ny), false},
		{"2027-03-14 02:30 America/New_York", time.Date(2027, 3, 14, 3, 30, 0, 0, ny), false},
		{"2027-01-12T09:00:00+01:00", time.Date(2027, 1, 12, 8, 0, 0, 0, time.UTC), false},
	} {
		got, err := ParseSendAt(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		at := got.Instant
		if tc.local {
			at = got.Date
		}
		if got.Local != tc.local || !at.Equal(tc.want) {
			t.Errorf("%s: local %v at %s, want local %v at %s", tc.in, got.Local, at, tc.local, tc.want)
		}
	}
}
