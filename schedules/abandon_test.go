package schedules_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// A run a dead process left `running` becomes abandoned, with its reason,
// when the daemon takes the stream's lock; a run of a stream whose timeout
// has not passed stays running; the metric counts the abandoned one, and a
// real end recorded later still wins over the mark.
func TestRunsLeftRunningPastTheTimeoutAreAbandoned(t *testing.T) {
	d, state, _ := newDaemonWith(t, func(d *schedules.Daemon) {
		d.Jobs[0].Schedule.Timeout = time.Second // room for a loaded machine: the run itself must finish within it
	}, []string{"t1"}, testStream("dies", func(ctx context.Context) error { return nil }),
		testStream("slow", func(ctx context.Context) error { return nil }))
	ctx := context.Background()
	started := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	dead := clickhouse.Run{Stream: "dies", ID: "dead-run", Tenant: "t1", Status: clickhouse.RunRunning, StartedAt: started,
		Rows: map[string]uint64{"accounts": 7}}
	// "slow" has a one-minute timeout: its running row is not stale yet.
	live := clickhouse.Run{Stream: "slow", ID: "live-run", Tenant: "t1", Status: clickhouse.RunRunning, StartedAt: started}
	for _, r := range []clickhouse.Run{dead, live} {
		if err := state.RecordRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past "dies"'s timeout since its row was written
	d.Tick("dies", "")
	d.Tick("slow", "")
	waitFinished(t, state, 2, "dies")
	waitFinished(t, state, 1, "slow")
	runs, err := state.RecentRuns(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]clickhouse.Run{}
	for _, rs := range runs {
		for _, r := range rs {
			byID[r.ID] = r
		}
	}
	got := byID["dead-run"]
	if got.Status != clickhouse.RunAbandoned || !strings.Contains(got.Error, "timeout (1s)") || !strings.Contains(got.Error, "last seen") ||
		got.Rows["accounts"] != 7 || !got.StartedAt.Equal(started) || !got.FinishedAt.IsZero() {
		t.Errorf("the dead run: %+v", got)
	}
	if got := byID["live-run"]; got.Status != clickhouse.RunRunning {
		t.Errorf("the run within its timeout: %+v", got)
	}
	rec := httptest.NewRecorder()
	d.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if m := rec.Body.String(); !strings.Contains(m, `finsync_runs_total{status="abandoned",stream="dies",tenant="t1"} 1`) ||
		strings.Contains(m, `finsync_runs_total{status="abandoned",stream="slow"`) {
		t.Errorf("/metrics:\n%s", grepLines(m, "finsync_runs_total"))
	}
	// Marking again finds nothing; a real end recorded after the mark wins.
	if again, err := d.Runner.AbandonStale(ctx, "dies", time.Second); err != nil || len(again) != 0 {
		t.Errorf("abandoning twice: %v %v", again, err)
	}
	dead.Status, dead.FinishedAt = clickhouse.RunSuccess, started.Add(time.Minute)
	if err := state.RecordRun(ctx, dead); err != nil {
		t.Fatal(err)
	}
	runs, _ = state.RecentRuns(ctx, 10)
	for _, r := range runs["dies"] {
		if r.ID == "dead-run" && r.Status != clickhouse.RunSuccess {
			t.Errorf("the run's real end did not replace the mark: %+v", r)
		}
	}
	// The tick's own run of "dies" has the same 300 ms timeout: on a busy
	// machine it may fail; the dead run's real end counts as a success.
	wantSuccess := uint64(1)
	for _, r := range runs["dies"] {
		if r.ID != "dead-run" && r.Status == clickhouse.RunSuccess {
			wantSuccess++
		}
	}
	counts, err := state.RunCounts(ctx, time.Now().Add(-2*time.Hour))
	if err != nil || counts["dies"][clickhouse.RunSuccess] != wantSuccess || counts["slow"][clickhouse.RunRunning] != 1 {
		t.Errorf("run counts: %v %v", counts, err)
	}
}

// A live run rewrites its row while it runs, so that a process looking
// for dead runs (another replica, a restarted daemon) never takes it for
// one, however long it runs within its timeout.
func TestALiveRunIsNeverAbandoned(t *testing.T) {
	release := make(chan struct{})
	d, state, _ := newDaemonWith(t, func(d *schedules.Daemon) {
		d.Jobs[0].Schedule.Timeout = 8 * time.Second // heartbeats every 2 s
	}, []string{"t1"}, testStream("long", func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	d.Tick("long", "")
	time.Sleep(5 * time.Second)
	// Silent for 3.5 s: without heartbeats the row is 5 s old.
	abandoned, err := d.Runner.AbandonStale(context.Background(), "long", 3500*time.Millisecond)
	close(release)
	if err != nil || len(abandoned) != 0 {
		t.Errorf("a live run was abandoned: %+v %v", abandoned, err)
	}
	waitFinished(t, state, 1, "long")
	runs, _ := state.RecentRuns(context.Background(), 1)
	if r := runs["long"]; len(r) != 1 || r[0].Status != clickhouse.RunSuccess {
		t.Errorf("the live run: %+v", r)
	}
}
