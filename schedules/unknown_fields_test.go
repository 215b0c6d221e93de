package schedules_test

import (
	"encoding/json"
	"testing"
)

// rawCheck is one expectation on the raw payloads of some rows: the value
// at path (object keys from the top) satisfies ok.
type rawCheck struct {
	path []string
	ok   func(v any) bool
}

func isString(v any) bool { s, _ := v.(string); return s != "" }

func equals(want any) func(any) bool { return func(v any) bool { return v == want } }

// checkRaws asserts that there are rows and every raw payload passes every
// check (ClickHouse 18.16 has no JSON functions: raw is read back as text).
func checkRaws(t *testing.T, what string, raws []string, checks ...rawCheck) {
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
			for _, key := range c.path {
				m, _ := got.(map[string]any)
				got = m[key]
			}
			if !c.ok(got) {
				t.Fatalf("%s: raw at %v is %v (%d rows): %s", what, c.path, got, len(raws), raw)
			}
		}
	}
}
