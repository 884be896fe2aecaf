package campaign

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// durationHelp ends every duration error with the accepted forms.
const durationHelp = "use a whole number and a unit: 0, 30m, 36h, 2d, 1w (combined as 1d12h)"

// ParseDuration parses a campaign duration: 0, or whole numbers each followed by a
// unit m (minutes), h (hours), d (days of 24h) or w (weeks), as in 1d12h.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration: %s", durationHelp)
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("bad duration %q: %s", s, durationHelp)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %s", s, durationHelp)
		}
		var unit time.Duration
		switch rest[i] {
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			if r := rest[i]; r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return 0, fmt.Errorf("bad duration %q: unknown unit %q, %s", s, r, durationHelp)
			}
			return 0, fmt.Errorf("bad duration %q: %s", s, durationHelp)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// FormatDuration writes d the way campaign files do (2d, 21d, 1d12h, 30m), in days
// rather than weeks, as rules like "21d without activity" are usually written.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range []struct {
		d time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.s)
			d -= n * u.d
		}
	}
	if d > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%s", d)
	}
	return b.String()
}

// ParseClock parses a 24-hour local time of day, "09:30".
func ParseClock(s string) (Clock, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) < 1 || len(h) > 2 || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("bad time of day %q: use 24-hour HH:MM, as in 09:30 or 17:00", s)
	}
	return Clock(hh*60 + mm), nil
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// Hour and Minute split the clock time.
func (c Clock) Hour() int   { return int(c) / 60 }
func (c Clock) Minute() int { return int(c) % 60 }

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// parseDays parses weekdays as "mon-fri", "mon,wed,fri", "sat-sun" or "daily".
func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	help := `use weekdays like "mon-fri", "mon,wed,fri" or "daily"`
	if s = strings.ToLower(strings.TrimSpace(s)); s == "daily" {
		return [7]bool{true, true, true, true, true, true, true}, nil
	}
	day := func(name string) (int, error) {
		name = strings.TrimSpace(name)
		for i, d := range weekdays {
			if name == d {
				return i, nil
			}
		}
		return 0, fmt.Errorf("bad weekday %q%s: %s", name, DidYouMean(name, weekdays), help)
	}
	for part := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, err := day(from)
		if err != nil {
			return days, err
		}
		b := a
		if isRange {
			if b, err = day(to); err != nil {
				return days, err
			}
		}
		for i := a; ; i = (i + 1) % 7 {
			days[i] = true
			if i == b {
				break
			}
		}
	}
	return days, nil
}

// parseHours parses a local clock range "09:00-17:00".
func parseHours(s string) (start, end Clock, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad hours %q: use a range of 24-hour times, as in \"09:00-17:00\"", s)
	}
	var err1, err2 error
	start, err1 = ParseClock(strings.TrimSpace(a))
	end, err2 = ParseClock(strings.TrimSpace(b))
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad hours %q: use a range of 24-hour times, as in \"09:00-17:00\"", s)
	}
	if end <= start {
		return 0, 0, fmt.Errorf("bad hours %q: the window must end after it starts on the same day", s)
	}
	return start, end, nil
}
