package schedulestest

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/finsync/finsync/schedules"
)

// SyncBuffer is a bytes.Buffer for concurrent log writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Yearly is an enabled schedule of stream that does not fire during a test.
func Yearly(t testing.TB, stream string) schedules.Schedule {
	t.Helper()
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\n  timeout: 1m\nstreams:\n  "+stream+":\n    schedule: \"@yearly\"\n"),
		map[string]schedules.ParamsCheck{stream: nil})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ss.Find(stream)
	return s
}

// RawCheck is one expectation on the raw payloads of some rows: the value
// at Path (object keys from the top) satisfies OK.
type RawCheck struct {
	Path []string
	OK   func(v any) bool
}

// IsString is a RawCheck's OK for a non-empty string.
func IsString(v any) bool { s, _ := v.(string); return s != "" }

// Equals is a RawCheck's OK for the value want (nil: absent).
func Equals(want any) func(any) bool { return func(v any) bool { return v == want } }

// CheckRaws asserts that there are rows and every raw payload passes every
// check (ClickHouse 18.16 has no JSON functions: raw is read back as text).
func CheckRaws(t testing.TB, what string, raws []string, checks ...RawCheck) {
	t.Helper()
	if len(raws) == 0 {
		t.Fatalf("%s: no rows", what)
	}
	for _, raw := range raws {
		var v any
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("%s: raw is not JSON: %v: %s", what, err, raw)
		}
		for _, c := range checks {
			got := v
			for _, key := range c.Path {
				m, _ := got.(map[string]any)
				got = m[key]
			}
			if !c.OK(got) {
				t.Fatalf("%s: raw at %v is %v (%d rows): %s", what, c.Path, got, len(raws), raw)
			}
		}
	}
}
