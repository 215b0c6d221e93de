package schedules_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

// A run finds the claims other processes left on its stream and tenant:
// a live one keeps it from starting (with who runs it, and no etl_runs
// row); one that lapsed after a kill, one released, one of a process of
// this host that is gone, or one on another shard's work lets it run.
func TestALeaseKeepsOtherProcessesOut(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	// A pid of this host no process has any more.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	me := schedules.NewOwner()
	tests := []struct {
		name  string
		shard string // the runner's and the claim's, "" for both unsharded
		claim clickhouse.Lease
		want  string // the refusal, "" when the run goes
	}{
		{"a live claim of another process", "", clickhouse.Lease{Host: "far-away", PID: 4242, Claimed: now.Add(-time.Minute), Until: now.Add(time.Minute)},
			"s/t1 is being run by host far-away pid 4242 since " + now.Add(-time.Minute).UTC().Format(time.DateTime) +
				" (lease until " + now.Add(time.Minute).UTC().Format(time.DateTime) + "); not started"},
		{"a claim of the same shard", "0/2", clickhouse.Lease{Shard: "0/2", Host: "far-away", PID: 4242, Claimed: now, Until: now.Add(time.Minute)},
			"by host far-away pid 4242 (shard 0/2) since"},
		{"an unsharded claim over a shard's", "0/2", clickhouse.Lease{Host: "far-away", PID: 4242, Claimed: now, Until: now.Add(time.Minute)},
			"by host far-away pid 4242 since"},
		{"a claim that lapsed after a kill", "", clickhouse.Lease{Host: "far-away", PID: 4242, Claimed: now.Add(-time.Hour), Until: now.Add(-time.Second)}, ""},
		{"a claim of a process of this host that is gone", "", clickhouse.Lease{Host: me.Host, PID: dead.Process.Pid, Claimed: now, Until: now.Add(time.Minute)}, ""},
		{"another shard's claim", "0/2", clickhouse.Lease{Shard: "1/2", Host: "far-away", PID: 4242, Claimed: now, Until: now.Add(time.Minute)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := schedulestest.NewWorld(t, time.Time{})
			w.Runner.Owner = me
			// A tenant whose stream is shard 0/2's work.
			tenant := "t1"
			if tc.shard != "" {
				w.Runner.Shard, _ = schedules.ParseShard(tc.shard)
				for i := 2; !w.Runner.Shard.OwnsTenant("s", tenant); i++ {
					tenant = "t" + string(rune('0'+i))
				}
			}
			claim := tc.claim
			claim.Stream, claim.Tenant, claim.ID = "s", tenant, "someone-else"
			if err := w.State.PutLease(ctx, claim); err != nil {
				t.Fatal(err)
			}
			var ran atomic.Bool
			run, err := w.Runner.Run(ctx, testStream("s", func(context.Context) error { ran.Store(true); return nil }), tenant)
			runs, rerr := w.State.RecentRuns(ctx, 10)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if tc.want == "" {
				if err != nil || !ran.Load() || run.Status != clickhouse.RunSuccess || len(runs["s"]) != 1 {
					t.Fatalf("the run did not go: %+v %v (ran %v, rows %+v)", run, err, ran.Load(), runs["s"])
				}
				return
			}
			var busy *schedules.Busy
			if !errors.As(err, &busy) || !strings.Contains(err.Error(), tc.want) || run.Status != schedules.RunNotStarted {
				t.Fatalf("got %+v, %v; want a refusal saying %q", run, err, tc.want)
			}
			if ran.Load() || len(runs["s"]) != 0 {
				t.Errorf("the refused run ran (%v) or was recorded: %+v", ran.Load(), runs["s"])
			}
		})
	}
}

// A run longer than its lease's time renews it with each heartbeat: a
// second process is still kept out after that time, and gets in once the
// run ended and released the lease.
func TestALongRunKeepsItsLease(t *testing.T) {
	w := schedulestest.NewWorld(t, time.Time{})
	w.Runner.Owner = schedules.NewOwner()
	other := *w.Runner
	other.Owner = schedules.NewOwner()
	release, started := make(chan struct{}), make(chan struct{})
	slow := testStream("s", func(context.Context) error { close(started); <-release; return nil })
	// 2 s: a beat every 500 ms, a lease of 1.5 s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error)
	go func() {
		_, err := w.Runner.Run(ctx, slow, "t1")
		done <- err
	}()
	<-started
	time.Sleep(1700 * time.Millisecond) // past the lease's first expiry
	_, err := other.Run(context.Background(), testStream("s", func(context.Context) error { return nil }), "t1")
	var busy *schedules.Busy
	if !errors.As(err, &busy) {
		t.Errorf("a second process ran while the long run went on: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if run, err := other.Run(context.Background(), testStream("s", func(context.Context) error { return nil }), "t1"); err != nil || run.Status != clickhouse.RunSuccess {
		t.Errorf("after the run, another process's: %+v %v", run, err)
	}
}

// A tick whose stream another process runs for a tenant is skipped: a
// warning, counted in finsync_ticks_skipped_total, no run recorded, not
// a failure.
func TestATickAnotherProcessRunsIsSkipped(t *testing.T) {
	var logs schedulestest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d, state, _ := newDaemonWith(t, func(d *schedules.Daemon) { d.Log, d.Runner.Log = log, log }, []string{"t1"},
		testStream("s", func(context.Context) error { return nil }))
	now := time.Now()
	if err := state.PutLease(context.Background(), clickhouse.Lease{Stream: "s", Tenant: "t1", ID: "someone-else", Host: "far-away", PID: 4242,
		Claimed: now, Until: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if !d.Tick("s", "") {
		t.Fatal("the tick did not start")
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "tick skipped"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no skipped tick logged:\n%s", logs.String())
		}
	}
	d.Stop(time.Minute)
	if l := logs.String(); !strings.Contains(l, `level=WARN msg="tick skipped: another process runs the stream for the tenant" stream=s tenant=t1 err="s/t1 is being run by host far-away pid 4242`) ||
		strings.Contains(l, "level=ERROR") {
		t.Errorf("logs:\n%s", l)
	}
	rec := httptest.NewRecorder()
	d.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if m := rec.Body.String(); !strings.Contains(m, `finsync_ticks_skipped_total{stream="s"} 1`) || strings.Contains(m, `status="failed"`) {
		t.Errorf("/metrics:\n%s", grepLines(m, "finsync_"))
	}
	if runs, err := state.RecentRuns(context.Background(), 10); err != nil || len(runs["s"]) != 0 {
		t.Errorf("runs recorded: %+v %v", runs, err)
	}
}

// The rows of claims last written before the cut (the runner's: a day
// ago) are deleted once a stream has enough of them (each process start
// leaves one per stream and tenant); live claims, claims written after the
// cut and other streams' rows stay.
func TestLapsedLeasesAreDeleted(t *testing.T) {
	ctx := context.Background()
	w := schedulestest.NewWorld(t, time.Time{})
	now := time.Now().Truncate(time.Millisecond)
	claim := func(stream, id string, until time.Time) {
		t.Helper()
		if err := w.State.PutLease(ctx, clickhouse.Lease{Stream: stream, Tenant: "t1", ID: id, Host: "gone", PID: 1,
			Claimed: until.Add(-3 * time.Minute), Until: until}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(stream string) []string {
		t.Helper()
		leases, err := w.State.Leases(ctx, stream, "t1")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range leases {
			out = append(out, l.ID)
		}
		return out
	}
	for i := range 100 {
		claim("s", fmt.Sprintf("dead-%02d", i), now.Add(-48*time.Hour))
	}
	claim("other", "dead-other", now.Add(-48*time.Hour))
	cut := time.Now()
	claim("s", "alive", now.Add(time.Hour))
	claim("s", "lapsed-after-the-cut", now.Add(-time.Minute))
	if n, err := w.State.DeleteLapsedLeases(ctx, "s", cut, 101); err != nil || n != 0 || len(ids("s")) != 102 {
		t.Fatalf("100 rows before the cut, 101 wanted: %d deleted (%v), %d claims left; want none deleted", n, err, len(ids("s")))
	}
	if n, err := w.State.DeleteLapsedLeases(ctx, "s", cut, 100); err != nil || n != 100 {
		t.Fatalf("100 rows before the cut, 100 wanted: %d deleted (%v); want 100", n, err)
	}
	// 18.16 applies the mutation in the background.
	for deadline := time.Now().Add(30 * time.Second); len(ids("s")) != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("claims after the deletion: %d, want the two written after the cut", len(ids("s")))
		}
	}
	if got := strings.Join(ids("s"), ","); got != "alive,lapsed-after-the-cut" && got != "lapsed-after-the-cut,alive" {
		t.Errorf("claims kept: %s", got)
	}
	if got := ids("other"); len(got) != 1 {
		t.Errorf("another stream's claims: %v", got)
	}
}
