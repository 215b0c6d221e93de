package transform

import (
	"testing"
	"time"
)

// The day of a timestamp is the date written in it, whatever its offset:
// the cases sit on both sides of midnight UTC.
func TestParseDayKeepsTheTimestampsOwnDate(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" = refused
	}{
		{"2026-11-03T00:00:00+01:00", "2026-11-03"}, // 2026-11-02 23:00 UTC
		{"2026-07-03T00:00:00+02:00", "2026-07-03"}, // 2026-07-02 22:00 UTC
		{"2026-11-03T00:00:00-05:00", "2026-11-03"}, // 05:00 UTC, same day
		{"2026-11-03T00:00:00Z", "2026-11-03"},
		{"2026-11-03T23:30:00-01:00", "2026-11-03"}, // 2026-11-04 00:30 UTC
		{"2026-11-03T00:30:00+02:00", "2026-11-03"}, // 2026-11-02 22:30 UTC
		{"2026-11-03T23:59:59.999999999+14:00", "2026-11-03"},
		{"2026-11-03T00:00:00-12:00", "2026-11-03"},
		{"2026-01-25T00:30:00+05:30", "2026-01-25"},
		{"1970-01-01T00:30:00+02:00", "1970-01-01"}, // 1969 in UTC, yet its own day is in range
		{"2149-06-06T23:00:00-05:00", "2149-06-06"}, // 2149-06-07 in UTC
		{"2026-11-03", "2026-11-03"},                // a date stays as it is
		{"2024-02-29", "2024-02-29"},
		{"1969-12-31T23:30:00-01:00", ""}, // its own day is before 1970
		{"2149-06-07", ""},
		{"2025-02-29", ""},
		{"2026-11-03T00:00:00", ""}, // no offset: whose midnight?
		{"2026-11-03 00:00:00+01:00", ""},
		{"1793660400", ""},
		{"", ""},
	} {
		got, err := ParseDay(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseDay(%q) = %s, want an error", tc.in, got.Format(time.DateOnly))
		case tc.want != "" && err != nil:
			t.Errorf("ParseDay(%q): %v, want %s", tc.in, err, tc.want)
		case tc.want != "" && (got.Format(time.DateOnly) != tc.want || got.Location() != time.UTC || !got.Equal(got.Truncate(24*time.Hour))):
			t.Errorf("ParseDay(%q) = %s, want %s at midnight UTC", tc.in, got, tc.want)
		}
	}
}
