package lifecycle

import (
	"time"

	"github.com/retainmail/retain/campaign"
)

const day = 24 * time.Hour

// addDelay adds d to t: whole days as calendar days in loc, so "2d" after 09:30 is
// 09:30 local two days later even across a DST change; the rest as exact time.
func addDelay(t time.Time, d time.Duration, loc *time.Location) time.Time {
	days := int(d / day)
	rest := d % day
	if days > 0 {
		l := t.In(loc)
		y, m, dd := l.Date()
		hh, mm, ss := l.Clock()
		t = localTime(y, m, dd+days, hh, mm, ss, l.Nanosecond(), loc)
	}
	return t.Add(rest)
}

// atLocal returns the instant of clock time c on the local date of t.
func atLocal(t time.Time, c campaign.Clock, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return localTime(y, m, d, c.Hour(), c.Minute(), 0, 0, loc)
}

// localTime is the instant a wall clock in loc shows the given date and time,
// as cron and systemd timers read it: a time that does not exist that day
// (02:30 when clocks spring forward from 02:00 to 03:00) moves forward by the
// gap (03:30); a time that exists twice (clocks falling back) is its first
// occurrence. time.Date leaves both cases unspecified.
func localTime(y int, m time.Month, d, hh, mm, ss, ns int, loc *time.Location) time.Time {
	wall := time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
	// The offsets in force a little before and a little after: around a
	// transition they differ, elsewhere they are the same.
	_, before := wall.Add(-26 * time.Hour).In(loc).Zone()
	_, after := wall.Add(26 * time.Hour).In(loc).Zone()
	first := wall.Add(-time.Duration(max(before, after)) * time.Second) // the earlier instant
	second := wall.Add(-time.Duration(min(before, after)) * time.Second)
	shows := func(t time.Time) bool {
		l := t.In(loc)
		ly, lm, ld := l.Date()
		lh, lmin, ls := l.Clock()
		return ly == wall.Year() && lm == wall.Month() && ld == wall.Day() && lh == wall.Hour() && lmin == wall.Minute() && ls == wall.Second()
	}
	switch {
	case shows(first):
		return first
	case shows(second):
		return second
	}
	// In a gap: read the wall clock with the offset before it, which lands
	// the same distance past the gap's end.
	return wall.Add(-time.Duration(before) * time.Second)
}

// nextDay returns local midnight of the day after t's local date.
func nextDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

// sendTime is when step st of camp is due after base: the delay, then the step's
// local time of day, then the campaign's send window, all in loc. A
// broadcast's step is due at its send_at (BroadcastAt), whatever base.
func sendTime(camp *campaign.Campaign, st *campaign.Step, base time.Time, loc *time.Location) time.Time {
	if camp.IsBroadcast() {
		return BroadcastAt(camp, loc)
	}
	t := addDelay(base, st.Delay, loc)
	if st.At != nil {
		at := atLocal(t, *st.At, loc)
		if at.Before(t) {
			at = atLocal(nextDay(t, loc), *st.At, loc)
		}
		t = at
	}
	return inWindow(camp.SendWindow, st.At, t, loc)
}

// inWindow moves t to the first moment at or after it that the window allows. A step
// with its own time of day keeps it when the window allows that time.
func inWindow(w *campaign.Window, at *campaign.Clock, t time.Time, loc *time.Location) time.Time {
	if w == nil {
		return t
	}
	start := w.Start
	if at != nil && *at >= w.Start && *at < w.End {
		start = *at
	}
	for range 8 {
		l := t.In(loc)
		if w.Days[l.Weekday()] {
			clock := campaign.Clock(l.Hour()*60 + l.Minute())
			switch {
			case clock < w.Start:
				return atLocal(t, start, loc)
			case clock < w.End:
				return t
			}
		}
		t = atLocal(nextDay(t, loc), start, loc)
		if l := t.In(loc); w.Days[l.Weekday()] {
			return t
		}
	}
	return t // a window without days never opens; the loader rejects it
}

// Allowed reports whether the window allows sending at t.
func allowed(w *campaign.Window, t time.Time, loc *time.Location) bool {
	return w == nil || inWindow(w, nil, t, loc).Equal(t)
}
