package schedules_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/finsync/finsync/extract/fingoal"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
	"github.com/finsync/finsync/transform"
)

// testStream is a stream whose Run the test controls; it writes one
// account row per run and returns the cursor "done".
func testStream(name string, run func(ctx context.Context) error) extract.Stream {
	return providerStream("test", name, func(ctx context.Context, _ string) error { return run(ctx) })
}

// providerStream is testStream of provider; run learns the tenant.
func providerStream(provider, name string, run func(ctx context.Context, tenant string) error) extract.Stream {
	return extract.Stream{Name: name, Provider: provider, Tables: []transform.Table{transform.Accounts},
		Run: func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
			if err := writeAccount(out, req, name); err != nil {
				return "", err
			}
			if err := run(ctx, req.Tenant); err != nil {
				return "", err
			}
			return "done", nil
		}}
}

// writeAccount hands out one accounts row of req's tenant and lineage,
// account_id id, the rest empty.
func writeAccount(out extract.Output, req extract.Request, id string) error {
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
			vals[i] = id
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
		return err
	}
	rec := w.Record()
	defer rec.Release()
	return out.Records(transform.Accounts, rec)
}

// waitFinished waits until each stream has n finished runs.
func waitFinished(t *testing.T, state *clickhouse.State, n int, streams ...string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		recent, err := state.RecentRuns(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, s := range streams {
			finished := 0
			for _, r := range recent[s] {
				if r.Status != clickhouse.RunRunning {
					finished++
				}
			}
			if finished >= n {
				done++
			}
		}
		if done == len(streams) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runs of %v did not finish in 30 s: %+v", streams, recent)
		}
	}
}

func newDaemon(t *testing.T, streams ...extract.Stream) (*schedules.Daemon, *clickhouse.State, *clickhouse.DB) {
	return newDaemonWith(t, func(*schedules.Daemon) {}, []string{"t1"}, streams...)
}

// newDaemonWith is newDaemon with every stream run for tenants, and
// configure called before the daemon starts.
func newDaemonWith(t *testing.T, configure func(*schedules.Daemon), tenants []string, streams ...extract.Stream) (*schedules.Daemon, *clickhouse.State, *clickhouse.DB) {
	t.Helper()
	w := schedulestest.NewWorld(t, time.Time{})
	d := &schedules.Daemon{Runner: w.Runner, Metrics: schedules.NewMetrics()}
	for _, s := range streams {
		d.Jobs = append(d.Jobs, schedules.Job{Stream: s, Tenants: tenants,
			Schedule: schedules.Schedule{Stream: s.Name, Timeout: time.Minute}}) // not enabled: ticks come from the test
	}
	configure(d)
	d.Start()
	t.Cleanup(func() { d.Stop(time.Minute) })
	return d, w.State, w.DB
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
	d = &schedules.Daemon{Runner: d.Runner, Jobs: []schedules.Job{{Stream: s, Tenants: []string{"t1"}, Schedule: schedulestest.Yearly(t, s.Name)}}}
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

// Records a stream reports stalled (Ledger.Stalled) are in the run's
// etl_runs.error and in finsync_stalled_records, per stream and tenant; a
// stream that reports none has no such series.
func TestStalledRecordsAreReported(t *testing.T) {
	stalled := testStream("stuck-records", func(ctx context.Context) error { return nil })
	// Its ledger (never read here) is FinGoal's, the stream that stalls.
	stalled.Reads = fingoal.EnrichmentReads()
	inner := stalled.Run
	stalled.Run = func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
		req.Ledger.Stalled(ctx, 3, "3 records wait on an answer that was lost")
		return inner(ctx, req, out)
	}
	d, state, _ := newDaemon(t, stalled, testStream("quiet", func(ctx context.Context) error { return nil }))
	d.Tick("stuck-records", "")
	d.Tick("quiet", "")
	// Stop starts nothing more: let both runs end first.
	var runs map[string][]clickhouse.Run
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		runs, _ = state.RecentRuns(context.Background(), 1)
		if r, q := runs["stuck-records"], runs["quiet"]; len(r) == 1 && len(q) == 1 && r[0].Status != clickhouse.RunRunning && q[0].Status != clickhouse.RunRunning {
			break
		}
	}
	d.Stop(time.Minute)
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

// A tenant can fail alone (its credentials, its data): runs, rejects,
// retries, durations and the last success are per tenant, at zero from
// Start for every tenant of every job, and a restart seeds the last
// success of the tenants still configured only.
func TestMetricsArePerTenant(t *testing.T) {
	d, state, _ := newDaemonWith(t, func(d *schedules.Daemon) {
		d.Metrics.Start("test", d.Jobs)
	}, []string{"t1", "t2"}, providerStream("test", "mixed", func(ctx context.Context, tenant string) error {
		if tenant == "t2" {
			return errors.New("t2's credentials were revoked")
		}
		return nil
	}))
	scrape := func() string {
		rec := httptest.NewRecorder()
		d.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	for _, zero := range []string{`finsync_runs_total{status="failed",stream="mixed",tenant="t1"} 0`,
		`finsync_runs_total{status="success",stream="mixed",tenant="t2"} 0`, `finsync_rejects_total{stream="mixed",tenant="t2"} 0`,
		`finsync_rate_limit_wait_seconds_total{provider="test"} 0`, `finsync_clickhouse_insert_retries_total{table="accounts"} 0`} {
		if m := scrape(); !strings.Contains(m, zero) {
			t.Errorf("/metrics at start-up lacks %s:\n%s", zero, m)
		}
	}
	d.Tick("mixed", "")
	waitFinished(t, state, 2, "mixed")
	// The runs are recorded before they are counted.
	var m string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// observeRun counts the run before its duration: wait for both.
		if m = scrape(); strings.Contains(m, `finsync_runs_total{status="failed",stream="mixed",tenant="t2"} 1`) &&
			strings.Contains(m, `finsync_runs_total{status="success",stream="mixed",tenant="t1"} 1`) &&
			strings.Contains(m, `finsync_run_duration_seconds_count{stream="mixed",tenant="t2"} 1`) {
			break
		}
	}
	for _, want := range []string{`finsync_runs_total{status="failed",stream="mixed",tenant="t2"} 1`,
		`finsync_runs_total{status="success",stream="mixed",tenant="t1"} 1`, `finsync_runs_total{status="failed",stream="mixed",tenant="t1"} 0`,
		`finsync_last_success_timestamp_seconds{stream="mixed",tenant="t1"}`, `finsync_run_duration_seconds_count{stream="mixed",tenant="t2"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(m, "mixed"))
		}
	}
	if strings.Contains(m, `finsync_last_success_timestamp_seconds{stream="mixed",tenant="t2"}`) {
		t.Errorf("t2 never succeeded, yet:\n%s", grepLines(m, "finsync_last_success"))
	}

	restarted := schedules.NewMetrics()
	at := time.Unix(1_700_000_000, 0)
	restarted.SeedLastSuccess(map[string]map[string]time.Time{"mixed": {"t2": at, "gone": at}, "removed-stream": {"t1": at}}, d.Jobs)
	rec := httptest.NewRecorder()
	restarted.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if got := grepLines(rec.Body.String(), "finsync_last_success_timestamp_seconds{"); got != `finsync_last_success_timestamp_seconds{stream="mixed",tenant="t2"} 1.7e+09` {
		t.Errorf("seeded: %s", got)
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

func TestAPanickingStreamDoesNotStopTheOthers(t *testing.T) {
	d, state, _ := newDaemon(t,
		testStream("broken", func(ctx context.Context) error { panic("extractor bug") }),
		testStream("fine", func(ctx context.Context) error { return nil }))
	d.Tick("broken", "")
	d.Tick("fine", "")
	waitFinished(t, state, 1, "broken", "fine")
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

// On Stop no run starts any more: not a tick (a webhook's trigger), not the
// remaining tenants of a stream whose run is going, not a run waiting for a
// concurrency slot. The run going finishes, is loaded and checkpointed.
func TestStopStartsNothingMore(t *testing.T) {
	started := make(chan string, 10)
	release := make(chan struct{})
	var d *schedules.Daemon
	d, state, _ := newDaemonWith(t, func(d *schedules.Daemon) { d.PerProvider = map[string]int{"test": 1} },
		[]string{"t1", "t2", "t3"},
		testStream("long", func(ctx context.Context) error {
			started <- "long"
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}),
		testStream("queued", func(ctx context.Context) error {
			started <- "queued"
			return nil
		}))
	if !d.Tick("long", "") {
		t.Fatal("the tick did not start")
	}
	<-started
	if !d.Tick("queued", "") { // waits for the provider's slot
		t.Fatal("the second stream's tick did not start")
	}
	stopped := make(chan bool)
	go func() { stopped <- d.Stop(time.Minute) }()
	for deadline := time.Now().Add(10 * time.Second); !d.Stopping(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("Stop did not say it is stopping")
		}
	}
	if d.Tick("queued", "t2") || d.Tick("long", "t3") {
		t.Error("a tick started a run while the daemon was stopping")
	}
	close(release)
	if !<-stopped {
		t.Error("Stop says the run did not finish within the grace period")
	}
	close(started)
	var runs []string
	for s := range started {
		runs = append(runs, s)
	}
	if len(runs) != 0 {
		t.Errorf("runs started after Stop began: %v", runs)
	}
	ctx := context.Background()
	recent, err := state.RecentRuns(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if r := recent["long"]; len(r) != 1 || r[0].Tenant != "t1" || r[0].Status != clickhouse.RunSuccess {
		t.Errorf("runs of long: %+v, want one successful run of t1", r)
	}
	if r := recent["queued"]; len(r) != 0 {
		t.Errorf("runs of queued: %+v, want none", r)
	}
	for _, tenant := range []string{"t1", "t2", "t3"} {
		want := ""
		if tenant == "t1" {
			want = "done"
		}
		if c, _ := state.Cursor(ctx, "long", tenant); c != want {
			t.Errorf("long/%s: cursor %q, want %q", tenant, c, want)
		}
	}
}

// Ticks racing with Stop (webhooks arriving during shutdown) neither start
// runs after Stop returned nor misuse its WaitGroup (run with -race).
func TestTicksRacingWithStop(t *testing.T) {
	var after atomic.Int32
	var stopped atomic.Bool
	d, _, _ := newDaemon(t, testStream("quick", func(ctx context.Context) error {
		if stopped.Load() {
			after.Add(1)
		}
		return nil
	}))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				d.Tick("quick", "")
			}
			d.Tick("quick", "")
		}()
	}
	time.Sleep(200 * time.Millisecond)
	d.Stop(time.Minute)
	stopped.Store(true)
	wg.Wait()
	if n := after.Load(); n != 0 {
		t.Errorf("%d runs started after Stop returned", n)
	}
}

// The concurrency limits: never more runs in flight than the global and
// per-provider limits, and a provider at its limit does not stall another
// provider (its queued runs hold no global slot).
func TestConcurrencyLimits(t *testing.T) {
	var mu sync.Mutex
	inFlight, most := map[string]int{}, map[string]int{}
	enter := func(provider string) {
		mu.Lock()
		defer mu.Unlock()
		inFlight[provider]++
		inFlight[""]++
		most[provider] = max(most[provider], inFlight[provider])
		most[""] = max(most[""], inFlight[""])
	}
	leave := func(provider string) {
		mu.Lock()
		defer mu.Unlock()
		inFlight[provider]--
		inFlight[""]--
	}
	release := make(chan struct{})
	bRan := make(chan struct{}, 10)
	var streams []extract.Stream
	for _, name := range []string{"a.one", "a.two", "a.three"} {
		streams = append(streams, providerStream("a", name, func(ctx context.Context, _ string) error {
			enter("a")
			defer leave("a")
			<-release
			return nil
		}))
	}
	for _, name := range []string{"b.one", "b.two"} {
		streams = append(streams, providerStream("b", name, func(ctx context.Context, _ string) error {
			enter("b")
			defer leave("b")
			bRan <- struct{}{}
			return nil
		}))
	}
	d, state, _ := newDaemonWith(t, func(d *schedules.Daemon) {
		d.Global, d.PerProvider = 2, map[string]int{"a": 1, "b": 1}
	}, []string{"t1"}, streams...)
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before the daemon's Stop
	for _, s := range []string{"a.one", "a.two", "a.three"} {
		d.Tick(s, "")
	}
	time.Sleep(300 * time.Millisecond) // a.two and a.three queue behind a.one
	d.Tick("b.one", "")
	d.Tick("b.two", "")
	for range 2 {
		select {
		case <-bRan:
		case <-time.After(20 * time.Second):
			t.Fatal("provider b's runs stalled behind provider a's, which is at its limit")
		}
	}
	free()
	waitFinished(t, state, 1, "a.one", "a.two", "a.three", "b.one", "b.two")
	d.Stop(time.Minute)
	if most["a"] != 1 || most["b"] != 1 || most[""] != 2 {
		t.Errorf("most runs in flight: a %d (limit 1), b %d (limit 1), all %d (limit 2)", most["a"], most["b"], most[""])
	}
	recent, _ := state.RecentRuns(context.Background(), 5)
	for _, s := range []string{"a.one", "a.two", "a.three", "b.one", "b.two"} {
		if r := recent[s]; len(r) != 1 || r[0].Status != clickhouse.RunSuccess {
			t.Errorf("%s: %+v, want one successful run", s, r)
		}
	}
}

// A failed run is logged once, at ERROR, by the runner's last line (with
// its error); the daemon does not say it again.
func TestAFailedRunIsLoggedOnce(t *testing.T) {
	var logs schedulestest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d, _, _ := newDaemonWith(t, func(d *schedules.Daemon) { d.Log, d.Runner.Log = log, log }, []string{"t1"},
		testStream("broken", func(context.Context) error { return errors.New("the provider is down") }))
	if !d.Tick("broken", "") {
		t.Fatal("the tick did not start")
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "run finished"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no run finished:\n%s", logs.String())
		}
	}
	d.Stop(time.Minute)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), `level=ERROR msg="run finished" status=failed`) {
		t.Errorf("%d ERROR lines, want the run's last line only:\n%s", n, logs.String())
	}
}

// At start, a stream whose tick fell while no daemon ran runs at once, when
// its schedule says catchup; one whose last run is after its last due
// time, or that says catchup: false, waits for its next tick.
func TestMissedTicksAreCaughtUp(t *testing.T) {
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\nstreams:\n  t.missed:\n    schedule: \"0 * * * *\"\n"+
		"  t.recent:\n    schedule: \"0 * * * *\"\n  t.billed:\n    schedule: \"0 * * * *\"\n    catchup: false\n"),
		map[string]schedules.ParamsCheck{"t.missed": nil, "t.recent": nil, "t.billed": nil})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[string]int{}
	w := schedulestest.NewWorld(t, time.Time{})
	d := &schedules.Daemon{Runner: w.Runner, LastStarts: map[string]time.Time{}}
	for _, name := range []string{"t.missed", "t.recent", "t.billed"} {
		sched, _ := ss.Find(name)
		d.Jobs = append(d.Jobs, schedules.Job{Schedule: sched, Tenants: []string{"t1"}, Stream: testStream(name, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			ran[name]++
			return nil
		})})
		next := sched.Next(time.Now())
		d.LastStarts[name] = next.Add(-90 * time.Minute) // an hourly tick fell since
		if name == "t.recent" {
			d.LastStarts[name] = next.Add(-30 * time.Minute) // after the last due time
		}
	}
	d.Start()
	defer d.Stop(time.Minute)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := ran["t.missed"]
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the missed tick was not caught up")
		}
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if ran["t.recent"] != 0 || ran["t.billed"] != 0 {
		t.Errorf("caught up what it should not: %v", ran)
	}
}
