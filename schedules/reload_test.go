package schedules_test

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

// ranLog records which tenants' runs a stream saw, with the params each
// run was handed.
type ranLog struct {
	mu   sync.Mutex
	runs map[string][]string // stream/tenant → params["n"] of each run
}

func (l *ranLog) stream(name string, block func(tenant string)) extract.Stream {
	s := providerStream("test", name, func(context.Context, string) error { return nil })
	base := s.Run
	s.Run = func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
		l.mu.Lock()
		if l.runs == nil {
			l.runs = map[string][]string{}
		}
		l.runs[name+"/"+req.Tenant] = append(l.runs[name+"/"+req.Tenant], req.Params["n"])
		l.mu.Unlock()
		if block != nil {
			block(req.Tenant)
		}
		return base(ctx, req, out)
	}
	return s
}

func (l *ranLog) get(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs[key])
}

// waitRuns waits until key has at least n runs.
func (l *ranLog) waitRuns(t *testing.T, key string, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); len(l.get(key)) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d runs in 20 s, want %d", key, len(l.get(key)), n)
		}
	}
}

// parseSchedules parses file with every stream of names taking any params.
func parseSchedules(t *testing.T, file string, names ...string) *schedules.Schedules {
	t.Helper()
	known := map[string]schedules.ParamsCheck{}
	for _, n := range names {
		known[n] = func(map[string]string) []error { return nil }
	}
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\n  timeout: 1m\n"+file), known)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func jobsOf(ss *schedules.Schedules, tenants []string, streams ...extract.Stream) []schedules.Job {
	var jobs []schedules.Job
	for _, s := range streams {
		if sched, ok := ss.Find(s.Name); ok {
			jobs = append(jobs, schedules.Job{Stream: s, Schedule: sched, Tenants: tenants})
		}
	}
	return jobs
}

// A tenant's own schedule is the one the daemon keeps for it: a tenant
// disabled never runs (not on the schedule, not on a trigger) while the
// others do, a tenant on a schedule of its own is not run on the stream's,
// and each run gets its tenant's params.
func TestTenantSchedulesInTheDaemon(t *testing.T) {
	var l ranLog
	s := l.stream("t.a", nil)
	ss := parseSchedules(t, "streams:\n  t.a:\n    schedule: \"@every 1s\"\n    params: {n: 1}\n    per_tenant:\n"+
		"      t2: {enabled: false}\n      t3: {schedule: \"@yearly\", params: {n: 7}}\n", "t.a")
	w := schedulestest.NewWorld(t, time.Time{})
	d := &schedules.Daemon{Runner: w.Runner, Jobs: jobsOf(ss, []string{"t1", "t2", "t3"}, s)}
	d.Start()
	defer d.Stop(time.Minute)
	l.waitRuns(t, "t.a/t1", 2)
	if got := l.get("t.a/t2"); len(got) > 0 {
		t.Errorf("the disabled tenant ran %d times", len(got))
	}
	if got := l.get("t.a/t3"); len(got) > 0 {
		t.Errorf("the yearly tenant ran on the stream's schedule %d times", len(got))
	}
	if got := l.get("t.a/t1"); got[0] != "1" {
		t.Errorf("t1's params: n=%v, want the stream's 1", got)
	}
	if d.Trigger("t.a", "t2") {
		t.Error("a trigger started the disabled tenant")
	}
	for !d.Tick("t.a", "t3") { // the stream's own runs may hold it
		time.Sleep(10 * time.Millisecond)
	}
	l.waitRuns(t, "t.a/t3", 1)
	if got := l.get("t.a/t3"); got[0] != "7" {
		t.Errorf("t3's params: n=%v, want its own 7", got)
	}
	if next := d.Next()["t.a"]; next.After(time.Now().Add(2 * time.Second)) {
		t.Errorf("next run %v: not the earliest of the tenants'", next)
	}
	runs := w.Query(t, "SELECT DISTINCT tenant FROM etl_runs ORDER BY tenant")
	if !slices.Equal(runs, []string{"t1", "t3"}) {
		t.Errorf("etl_runs tenants %v, want t1 t3", runs)
	}
}

// Reload swaps the schedules while the daemon runs: a stream added runs on
// its schedule, one removed stops, one changed with a run in flight lets
// that run finish (no second run beside it) and then runs on its new
// schedule.
func TestReload(t *testing.T) {
	var l ranLog
	release := make(chan struct{})
	first := true
	var firstMu sync.Mutex
	slow := l.stream("r.slow", func(string) {
		firstMu.Lock()
		wait := first
		first = false
		firstMu.Unlock()
		if wait {
			<-release
		}
	})
	keep, gone, added := l.stream("r.keep", nil), l.stream("r.gone", nil), l.stream("r.new", nil)
	tenants := []string{"t1"}
	before := parseSchedules(t, "streams:\n  r.keep:\n    schedule: \"@yearly\"\n  r.gone:\n    schedule: \"@every 1s\"\n"+
		"  r.slow:\n    schedule: \"@yearly\"\n", "r.keep", "r.gone", "r.slow", "r.new")
	w := schedulestest.NewWorld(t, time.Time{})
	d := &schedules.Daemon{Runner: w.Runner, Jobs: jobsOf(before, tenants, keep, gone, slow), Metrics: schedules.NewMetrics()}
	d.Start()
	defer d.Stop(time.Minute)
	keepNext := d.Next()["r.keep"]
	l.waitRuns(t, "r.gone/t1", 1)
	if !d.Tick("r.slow", "") {
		t.Fatal("the slow run did not start")
	}
	l.waitRuns(t, "r.slow/t1", 1) // in flight, blocked

	after := parseSchedules(t, "streams:\n  r.keep:\n    schedule: \"@yearly\"\n  r.slow:\n    schedule: \"@every 1s\"\n"+
		"  r.new:\n    schedule: \"@every 1s\"\n", "r.keep", "r.gone", "r.slow", "r.new")
	ch, err := d.Reload(jobsOf(after, tenants, keep, slow, added))
	if err != nil {
		t.Fatal(err)
	}
	if want := (schedules.Changes{Added: []string{"r.new"}, Removed: []string{"r.gone"}, Changed: []string{"r.slow"}}); !slices.Equal(ch.Added, want.Added) ||
		!slices.Equal(ch.Removed, want.Removed) || !slices.Equal(ch.Changed, want.Changed) {
		t.Errorf("changes %+v, want %+v", ch, want)
	}
	next := d.Next()
	if _, ok := next["r.gone"]; ok || !next["r.keep"].Equal(keepNext) || next["r.slow"].After(time.Now().Add(2*time.Second)) {
		t.Errorf("next runs after the reload: %v (r.keep was %v)", next, keepNext)
	}
	gone0 := len(l.get("r.gone/t1"))
	l.waitRuns(t, "r.new/t1", 2)
	if n := len(l.get("r.gone/t1")); n > gone0+1 { // one tick may have been under way
		t.Errorf("the removed stream ran %d more times", n-gone0)
	}
	if n := len(l.get("r.slow/t1")); n != 1 {
		t.Errorf("the changed stream ran %d times beside its run in flight", n)
	}
	if d.Trigger("r.gone", "") {
		t.Error("a trigger started the removed stream")
	}
	close(release)
	l.waitRuns(t, "r.slow/t1", 3) // the run in flight ended; then the new schedule
	status := w.Query(t, "SELECT status FROM etl_runs FINAL WHERE stream = 'r.slow' ORDER BY started_at LIMIT 1")
	if len(status) != 1 || status[0] != "success" {
		t.Errorf("the run in flight during the reload: %v", status)
	}
	if !maps.Equal(map[string]bool{"r.keep": true, "r.slow": true, "r.new": true}, streamsOf(d.Current())) {
		t.Errorf("current jobs %v", streamsOf(d.Current()))
	}
	d.Stop(time.Minute)
	if _, err := d.Reload(nil); err == nil {
		t.Error("a reload after Stop was taken")
	}
}

func streamsOf(jobs []schedules.Job) map[string]bool {
	out := map[string]bool{}
	for _, j := range jobs {
		out[j.Stream.Name] = true
	}
	return out
}
