package schedules_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/transform"
)

// testStream is a stream whose Run the test controls; it writes one
// account row per run and returns the cursor "done".
func testStream(name string, run func(ctx context.Context) error) extract.Stream {
	return extract.Stream{Name: name, Provider: "test", Tables: []transform.Table{transform.Accounts},
		Run: func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
			w := transform.NewRowWriter(memory.DefaultAllocator, transform.Accounts)
			defer w.Release()
			vals := make([]any, len(transform.Accounts.Schema.Fields()))
			for i, f := range transform.Accounts.Schema.Fields() {
				switch f.Name {
				case "provider":
					vals[i] = "test"
				case "tenant":
					vals[i] = req.Tenant
				case "account_id":
					vals[i] = name
				case "run_id":
					vals[i] = req.Lineage.RunID
				case "extracted_at":
					vals[i] = req.Lineage.ExtractedAt
				case "_version":
					vals[i] = req.Lineage.Version
				default:
					if f.Type.ID() == arrow.STRING {
						vals[i] = ""
					}
				}
			}
			if err := w.Append(vals...); err != nil {
				return "", err
			}
			rec := w.Record()
			defer rec.Release()
			if err := out.Records(transform.Accounts, rec); err != nil {
				return "", err
			}
			if err := run(ctx); err != nil {
				return "", err
			}
			return "done", nil
		}}
}

func newDaemon(t *testing.T, streams ...extract.Stream) (*schedules.Daemon, *clickhouse.State, *clickhouse.DB) {
	t.Helper()
	db := chtest.NewDB(t)
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{})
	state := clickhouse.NewState(db, loader)
	d := &schedules.Daemon{Runner: &schedules.Runner{Loader: loader, State: state}, Metrics: schedules.NewMetrics()}
	for _, s := range streams {
		d.Jobs = append(d.Jobs, schedules.Job{Stream: s, Tenants: []string{"t1"},
			Schedule: schedules.Schedule{Stream: s.Name, Timeout: time.Minute}}) // not enabled: ticks come from the test
	}
	d.Start()
	return d, state, db
}

func TestOverlappingTicksAreSkipped(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int32
	d, state, _ := newDaemon(t, testStream("slow", func(ctx context.Context) error {
		runs.Add(1)
		<-release
		return nil
	}))
	if !d.Tick("slow", "") {
		t.Fatal("first tick did not start")
	}
	for runs.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if d.Tick("slow", "") || d.Tick("slow", "") {
		t.Fatal("a tick started a second run while the first was going")
	}
	close(release)
	d.Stop(time.Minute)
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
	if c, _ := state.Cursor(context.Background(), "slow", "t1"); c != "done" {
		t.Errorf("cursor %q", c)
	}
}

// A trigger (a webhook saying data is ready) starts a run at once, marked
// Triggered; one that arrives while the stream's run is going is not lost
// but waits for it, and triggers meanwhile make one more run, not many.
func TestTriggeredRunsStartOrWaitForTheRunningOne(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	base := testStream("hooked", func(ctx context.Context) error { return nil })
	s := base
	s.Run = func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
		mu.Lock()
		seen = append(seen, fmt.Sprint(req.Triggered))
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			<-release
		}
		return base.Run(ctx, req, out)
	}
	d, _, _ := newDaemon(t, s)
	if d.Trigger("hooked", "") {
		t.Error("a trigger started a stream the schedule disables")
	}
	d.Stop(time.Minute)
	d = &schedules.Daemon{Runner: d.Runner, Jobs: []schedules.Job{{Stream: s, Tenants: []string{"t1"}, Schedule: yearly(t, s.Name)}}}
	d.Start()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	if d.Trigger("nope", "") || d.Trigger("hooked", "other-tenant") {
		t.Error("a trigger for an unknown stream or tenant was taken")
	}
	if !d.Tick("hooked", "") {
		t.Fatal("the tick did not start")
	}
	for count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// While the scheduled run goes: three triggers, queued.
	for range 3 {
		if !d.Trigger("hooked", "t1") {
			t.Fatal("a trigger during the run was refused")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := count(); n != 1 {
		t.Fatalf("%d runs while the first was going", n)
	}
	close(release)
	deadline := time.Now().Add(30 * time.Second)
	for count() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Idle: a trigger runs at once.
	for !d.Trigger("hooked", "") {
		time.Sleep(5 * time.Millisecond)
	}
	for count() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	d.Stop(time.Minute)
	if d.Trigger("hooked", "") {
		t.Error("a trigger was taken after Stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "false,true,true" {
		t.Errorf("runs (triggered?): %v, want the scheduled one, one for the queued triggers, one for the idle trigger", seen)
	}
}

// Records a stream reports stalled (Output.Stalled) are in the run's
// etl_runs.error and in finsync_stalled_records, per stream and tenant; a
// stream that reports none has no such series.
func TestStalledRecordsAreReported(t *testing.T) {
	stalled := testStream("stuck-records", func(ctx context.Context) error { return nil })
	inner := stalled.Run
	stalled.Run = func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
		out.Stalled(3, "3 records wait on an answer that was lost")
		return inner(ctx, req, out)
	}
	d, state, _ := newDaemon(t, stalled, testStream("quiet", func(ctx context.Context) error { return nil }))
	d.Tick("stuck-records", "")
	d.Tick("quiet", "")
	d.Stop(time.Minute)
	runs, _ := state.RecentRuns(context.Background(), 1)
	if r := runs["stuck-records"]; len(r) != 1 || r[0].Status != clickhouse.RunSuccess || r[0].Error != "3 records wait on an answer that was lost" {
		t.Errorf("run: %+v", r)
	}
	rec := httptest.NewRecorder()
	d.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m := rec.Body.String()
	if !strings.Contains(m, `finsync_stalled_records{stream="stuck-records",tenant="t1"} 3`) || strings.Contains(m, `finsync_stalled_records{stream="quiet"`) {
		t.Errorf("/metrics:\n%s", grepLines(m, "finsync_stalled_records"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// yearly is an enabled schedule of stream that does not fire during a test.
func yearly(t *testing.T, stream string) schedules.Schedule {
	t.Helper()
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\n  timeout: 1m\nstreams:\n  "+stream+":\n    schedule: \"@yearly\"\n"),
		map[string]schedules.ParamsCheck{stream: nil})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ss.Find(stream)
	return s
}

func TestAPanickingStreamDoesNotStopTheOthers(t *testing.T) {
	d, state, _ := newDaemon(t,
		testStream("broken", func(ctx context.Context) error { panic("extractor bug") }),
		testStream("fine", func(ctx context.Context) error { return nil }))
	d.Tick("broken", "")
	d.Tick("fine", "")
	d.Stop(time.Minute)
	runs, err := state.RecentRuns(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if b := runs["broken"]; len(b) != 1 || b[0].Status != clickhouse.RunFailed || !strings.Contains(b[0].Error, "panic in broken: extractor bug") {
		t.Errorf("broken: %+v", b)
	}
	if f := runs["fine"]; len(f) != 1 || f[0].Status != clickhouse.RunSuccess {
		t.Errorf("fine: %+v", f)
	}
	// The daemon still runs streams after the panic.
	if c, _ := state.Cursor(context.Background(), "fine", "t1"); c != "done" {
		t.Errorf("fine cursor %q", c)
	}
}

// Stopping mid-run: a run that finishes within the grace period is loaded
// and checkpointed; one that does not is cancelled and not checkpointed.
func TestStopLetsRunsFinishOrCancelsThem(t *testing.T) {
	started := make(chan struct{}, 2)
	d, state, db := newDaemon(t,
		testStream("quick", func(ctx context.Context) error {
			started <- struct{}{}
			time.Sleep(300 * time.Millisecond)
			return nil
		}),
		testStream("stuck", func(ctx context.Context) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}))
	d.Tick("quick", "")
	d.Tick("stuck", "")
	<-started
	<-started
	if finished := d.Stop(time.Second); finished {
		t.Error("Stop says every run finished within the grace period")
	}
	if d.Tick("quick", "") {
		t.Error("a tick started a run after Stop")
	}
	ctx := context.Background()
	if c, _ := state.Cursor(ctx, "quick", "t1"); c != "done" {
		t.Errorf("quick: cursor %q, want done", c)
	}
	if c, _ := state.Cursor(ctx, "stuck", "t1"); c != "" {
		t.Errorf("stuck: cursor %q, want none", c)
	}
	runs, _ := state.RecentRuns(ctx, 1)
	if r := runs["stuck"]; len(r) != 1 || r[0].Status == clickhouse.RunSuccess {
		t.Errorf("stuck run: %+v", r)
	}
	var quickRows uint64
	db.Conn().QueryRow(ctx, "SELECT count() FROM accounts FINAL WHERE account_id = 'quick'").Scan(&quickRows)
	if quickRows != 1 {
		t.Errorf("quick rows %d, want 1", quickRows)
	}
}

func TestJitterIsStableAndWithinBounds(t *testing.T) {
	known := map[string]schedules.ParamsCheck{"a.one": nil, "a.two": nil}
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 10m\nstreams:\n  a.one:\n    schedule: \"0 * * * *\"\n  a.two:\n    schedule: \"0 * * * *\"\n"), known)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := ss.Find("a.one")
	two, _ := ss.Find("a.two")
	if one.Delay() != one.Delay() || one.Delay() >= 10*time.Minute || one.Delay() == two.Delay() {
		t.Errorf("delays %s %s", one.Delay(), two.Delay())
	}
	at := time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)
	if next := one.Next(at); next != time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC).Add(one.Delay()) {
		t.Errorf("next %s", next)
	}
}
