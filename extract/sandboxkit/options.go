package sandboxkit

import (
	"crypto/subtle"
	"log/slog"
	"time"
)

// Defaults of the sandboxes' options, and their credential check.

// OrPositive is v, or def when v is not positive: an option's default.
func OrPositive[T ~int | ~int64 | ~float64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// OrNow is now, or time.Now when now is nil: an option's default clock.
func OrNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// OrDiscard is l, or a logger that discards everything when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// OrToday is day, or 2026-02-23 when day is zero: the last day with data
// of a sandbox not told otherwise.
func OrToday(day time.Time) time.Time {
	if day.IsZero() {
		return time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC)
	}
	return day
}

// SameCredentials compares presented credentials with the expected ones
// in constant time.
func SameCredentials(id, secret, wantID, wantSecret string) bool {
	return subtle.ConstantTimeCompare([]byte(id), []byte(wantID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(wantSecret)) == 1
}
