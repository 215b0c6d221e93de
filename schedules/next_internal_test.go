package schedules

import (
	"testing"
	"time"
)

// Schedule.Next (finsync streams, the status page, the next-run metric)
// says exactly when the daemon's cron starts the stream, also in the
// minutes between a spec's time and its jittered start.
func TestNextIsWhenTheCronStarts(t *testing.T) {
	known := map[string]ParamsCheck{"a.one": nil, "a.two": nil}
	ss, err := Parse("t.yaml", []byte("defaults:\n  jitter: 30m\nstreams:\n  a.one:\n    schedule: \"0 * * * *\"\n  a.two:\n    schedule: \"*/20 * * * *\"\n"), known)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss.Streams {
		delay := s.Delay()
		if delay == 0 {
			t.Fatalf("%s: no delay to test with", s.Stream)
		}
		base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		// Just after the spec's 10:00, before the jittered start.
		if got, want := s.Next(base.Add(time.Second)), base.Add(delay); s.Stream == "a.one" && got != want {
			t.Errorf("%s at 10:00:01: next %s, want %s", s.Stream, got, want)
		}
		period := map[string]time.Duration{"a.one": time.Hour, "a.two": 20 * time.Minute}[s.Stream]
		for at := base; at.Before(base.Add(3 * time.Hour)); at = at.Add(7 * time.Minute) {
			// The starts are the spec's times shifted by the delay: the
			// first of them after at.
			want := base.Add(-2 * time.Hour).Add(delay)
			for !want.After(at) {
				want = want.Add(period)
			}
			if next := s.Next(at); next != want {
				t.Errorf("%s at %s: Next %s, want %s", s.Stream, at.Format(time.TimeOnly), next, want)
			}
			if cronNext := (jittered{s}).Next(at); cronNext != want {
				t.Errorf("%s at %s: the cron starts at %s, want %s", s.Stream, at.Format(time.TimeOnly), cronNext, want)
			}
		}
	}
}
