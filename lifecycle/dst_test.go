package lifecycle

import (
	"testing"
	"time"

	"github.com/retainmail/retain/campaign"
)

// TestLocalTimesAcrossDaylightSavingChanges: a local time that does not exist
// (clocks spring forward) moves forward by the gap, as cron does; one that
// exists twice (clocks fall back) is its first occurrence; others are as
// written. Both transitions, in three zones (north, west, south).
func TestLocalTimesAcrossDaylightSavingChanges(t *testing.T) {
	for _, tc := range []struct {
		zone, date, clock string
		want              string // UTC
	}{
		// Amsterdam: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
		{"Europe/Amsterdam", "2026-03-29", "02:30", "2026-03-29T01:30:00Z"}, // 03:30 CEST
		{"Europe/Amsterdam", "2026-03-29", "01:59", "2026-03-29T00:59:00Z"}, // just before: CET
		{"Europe/Amsterdam", "2026-03-29", "03:00", "2026-03-29T01:00:00Z"}, // the gap's end: CEST
		{"Europe/Amsterdam", "2026-10-25", "02:30", "2026-10-25T00:30:00Z"}, // first: 02:30 CEST
		{"Europe/Amsterdam", "2026-10-25", "03:30", "2026-10-25T02:30:00Z"}, // after: CET
		{"Europe/Amsterdam", "2026-06-01", "02:30", "2026-06-01T00:30:00Z"},
		// New York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
		{"America/New_York", "2026-03-08", "02:30", "2026-03-08T07:30:00Z"}, // 03:30 EDT
		{"America/New_York", "2026-11-01", "01:30", "2026-11-01T05:30:00Z"}, // first: 01:30 EDT
		{"America/New_York", "2026-11-01", "02:30", "2026-11-01T07:30:00Z"}, // after: EST
		// Sydney: 2026-10-04 02:00 AEST → 03:00 AEDT; 2026-04-05 03:00 AEDT → 02:00 AEST.
		{"Australia/Sydney", "2026-10-04", "02:30", "2026-10-03T16:30:00Z"}, // 03:30 AEDT
		{"Australia/Sydney", "2026-04-05", "02:30", "2026-04-04T15:30:00Z"}, // first: 02:30 AEDT
	} {
		loc := mustLoc(tc.zone)
		day, err := time.ParseInLocation("2006-01-02", tc.date, loc)
		if err != nil {
			t.Fatal(err)
		}
		clock, err := time.Parse("15:04", tc.clock)
		if err != nil {
			t.Fatal(err)
		}
		got := atLocal(day.Add(12*time.Hour), campaign.Clock(clock.Hour()*60+clock.Minute()), loc)
		if want, _ := time.Parse(time.RFC3339, tc.want); !got.Equal(want) {
			t.Errorf("%s %s %s = %s (%s), want %s", tc.zone, tc.date, tc.clock, got.UTC().Format(time.RFC3339), got.In(loc).Format("15:04 MST"), tc.want)
		}
	}
}

// TestWholeDayDelaysKeepTheirWallClockAcrossTheGap: "1d" after 02:30 the day
// before clocks spring forward is 03:30 on the day (02:30 does not exist), and
// 02:30 again the day after; never 01:30.
func TestWholeDayDelaysKeepTheirWallClockAcrossTheGap(t *testing.T) {
	loc := mustLoc("Europe/Amsterdam")
	base := time.Date(2026, 3, 28, 2, 30, 0, 0, loc)
	if got := addDelay(base, 24*time.Hour, loc); got.In(loc).Format("2006-01-02 15:04") != "2026-03-29 03:30" {
		t.Errorf("1d after %s = %s, want 2026-03-29 03:30", base, got.In(loc))
	}
	if got := addDelay(base, 48*time.Hour, loc); got.In(loc).Format("2006-01-02 15:04") != "2026-03-30 02:30" {
		t.Errorf("2d after %s = %s, want 2026-03-30 02:30", base, got.In(loc))
	}
}
