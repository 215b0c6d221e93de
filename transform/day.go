package transform

import (
	"fmt"
	"time"
)

// ParseDay reads the calendar day a provider wrote for a Date column:
// "YYYY-MM-DD" as it is, or an RFC 3339 timestamp as the date written in
// it, in its own offset, not in UTC. Banks book in local time and send
// local midnight: "2026-11-03T00:00:00+01:00" is the 3rd, although it is
// 23:00 UTC on the 2nd. The day comes back as midnight UTC, the form of
// RowWriter's date columns; a day outside ClickHouse's Date is refused.
func ParseDay(s string) (time.Time, error) {
	var t time.Time
	var err error
	// By length, so neither form pays for the other's failed parse.
	if len(s) == len(time.DateOnly) {
		t, err = time.Parse(time.DateOnly, s)
	} else {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: not YYYY-MM-DD or RFC 3339", s)
	}
	d, ok := CalendarDay(t)
	if !ok {
		return time.Time{}, fmt.Errorf("%q: outside %s..%s", s, MinDate.Format(time.DateOnly), MaxDate.Format(time.DateOnly))
	}
	return d, nil
}

// CalendarDay is the date of t in t's own location, as midnight UTC; ok is
// false when it lies outside ClickHouse's Date (it would wrap there).
func CalendarDay(t time.Time) (day time.Time, ok bool) {
	day = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return day, !day.Before(MinDate) && !day.After(MaxDate)
}
