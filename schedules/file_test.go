package schedules_test

import (
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/schedules"
)

// known are the streams of the per-tenant tests: s.a takes a numeric
// param n, s.b none.
var known = map[string]schedules.ParamsCheck{
	"s.a": func(p map[string]string) []error {
		if _, err := strconv.Atoi(p["n"]); p["n"] != "" && err != nil {
			return []error{errors.New("n: not a number")}
		}
		return nil
	},
	"s.b": nil,
}

// A tenant's override (per_tenant) starts from the stream's effective
// settings over every layer and changes only what it names; its mistakes
// are reported at their file and line.
func TestPerTenantSchedules(t *testing.T) {
	base := "streams:\n  s.a:\n    schedule: \"0 * * * *\"\n    timeout: 5m\n    params: {n: 1, m: x}\n  s.b:\n    schedule: \"@daily\"\n"
	type want struct {
		spec     string
		enabled  bool
		timeout  time.Duration
		params   map[string]string
		file     string
		line     int
		override bool
	}
	tests := []struct {
		name, file string
		want       map[string]want // tenant of s.a → its schedule
		errs       []string
	}{
		{"overrides inherit the rest", "streams:\n  s.a:\n    per_tenant:\n      acme: {schedule: \"*/15 * * * *\", params: {n: 2}}\n      slow: {enabled: false}\n",
			map[string]want{
				"acme":  {"*/15 * * * *", true, 5 * time.Minute, map[string]string{"n": "2", "m": "x"}, "op.yaml", 4, true},
				"slow":  {"0 * * * *", false, 5 * time.Minute, map[string]string{"n": "1", "m": "x"}, "op.yaml", 5, true},
				"other": {"0 * * * *", true, 5 * time.Minute, map[string]string{"n": "1", "m": "x"}, "op.yaml", 2, false},
			}, nil},
		{"the stream's later settings reach the override", "streams:\n  s.a:\n    timeout: 9m\n    per_tenant:\n      acme:\n        lookback: 1h\n",
			map[string]want{"acme": {"0 * * * *", true, 9 * time.Minute, map[string]string{"n": "1", "m": "x"}, "op.yaml", 5, true}}, nil},
		{"a bad cron for a tenant", "streams:\n  s.a:\n    per_tenant:\n      acme:\n        schedule: \"61 * * * *\"\n", nil,
			[]string{`op.yaml:5: s.a for acme: schedule "61 * * * *": end of range (61) above maximum (59): 61`}},
		{"bad params for a tenant", "streams:\n  s.a:\n    per_tenant:\n      acme:\n        params:\n          n: lots\n", nil,
			[]string{"op.yaml:6: s.a for acme: n: not a number"}},
		{"params for a stream that takes none", "streams:\n  s.b:\n    per_tenant:\n      acme: {params: {n: 1}}\n", nil,
			[]string{"op.yaml:4: s.b for acme takes no params"}},
		{"a stream's setting in a tenant", "streams:\n  s.a:\n    per_tenant:\n      acme:\n        window: 1d\n        jitter: 0s\n        shedule: x\n", nil,
			[]string{"op.yaml:5: window belongs to the stream, not to a tenant", "op.yaml:6: jitter belongs to the stream",
				`op.yaml:7: unknown setting "shedule"`}},
		{"a tenant the stream does not run for", "streams:\n  s.a:\n    tenants: [acme]\n    per_tenant:\n      acme: {enabled: false}\n      nope: {enabled: false}\n", nil,
			[]string{`op.yaml:6: s.a: per_tenant "nope" is not one of the stream's tenants [acme]`}},
		{"per_tenant not a mapping", "streams:\n  s.a:\n    per_tenant: [acme]\n", nil,
			[]string{"op.yaml:3: per_tenant: want a mapping of tenant names"}},
		{"per_tenant in defaults", "defaults:\n  per_tenant: {}\n", nil,
			[]string{"op.yaml:2: per_tenant belongs to a stream"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss, err := schedules.ParseLayers([]schedules.Layer{{Name: "base.yaml", Data: []byte(base)}, {Name: "op.yaml", Data: []byte(tc.file)}}, known)
			for _, e := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), e) {
					t.Errorf("error\n%v\ndoes not contain %q", err, e)
				}
			}
			if len(tc.errs) > 0 {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, _ := ss.Find("s.a")
			for tenant, w := range tc.want {
				got := s.For(tenant)
				_, override := s.PerTenant[tenant]
				if got.Spec != w.spec || got.Enabled != w.enabled || got.Timeout != w.timeout || !maps.Equal(got.Params, w.params) ||
					got.File != w.file || got.Line != w.line || override != w.override {
					t.Errorf("%s: got %s %v %s %v %s:%d override %v, want %+v", tenant, got.Spec, got.Enabled, got.Timeout, got.Params,
						got.File, got.Line, override, w)
				}
				if w.enabled && got.Next(time.Now()).IsZero() {
					t.Errorf("%s: no next run", tenant)
				}
			}
			if s.Params["n"] != "1" {
				t.Errorf("a tenant's params changed the stream's: %v", s.Params)
			}
		})
	}
}
