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
		t = time.Date(y, m, dd+days, hh, mm, ss, l.Nanosecond(), loc)
	}
	return t.Add(rest)
}

// atLocal returns the instant of clock time c on the local date of t.
func atLocal(t time.Time, c campaign.Clock, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, c.Hour(), c.Minute(), 0, 0, loc)
}

// nextDay returns local midnight of the day after t's local date.
func nextDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

// sendTime is when step st of camp is due after base: the delay, then the step's
// local time of day, then the campaign's send window, all in loc.
func sendTime(camp *campaign.Campaign, st *campaign.Step, base time.Time, loc *time.Location) time.Time {
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
