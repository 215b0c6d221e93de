package schedules_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
	"github.com/finsync/finsync/transform"
)

// A stream's reconcile is a cron spec of its own with its lookback; a
// built-in one is turned off with "off"; its mistakes are reported at
// their file and line, and so is a reconcile on a stream that cannot
// reconcile.
func TestReconcileSchedules(t *testing.T) {
	base := "streams:\n  s.a:\n    schedule: \"0 * * * *\"\n    reconcile: \"0 3 * * 0\"\n    reconcile_lookback: 35d\n  s.b:\n    schedule: \"@daily\"\n"
	parse := func(op string) (*schedules.Schedules, error) {
		return schedules.ParseLayers([]schedules.Layer{{Name: "base.yaml", Data: []byte(base)}, {Name: "op.yaml", Data: []byte(op)}}, known)
	}
	ss, err := parse("streams:\n  s.a:\n    per_tenant:\n      acme: {schedule: \"*/5 * * * *\"}\n")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ss.Find("s.a")
	sunday := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC) // a Sunday
	if a.Reconcile != "0 3 * * 0" || a.ReconcileLookback != 35*24*time.Hour || !a.NextReconcile(sunday.Add(-time.Hour)).Equal(sunday.Add(a.Delay())) {
		t.Fatalf("s.a: reconcile %q over %s, next %s", a.Reconcile, a.ReconcileLookback, a.NextReconcile(sunday.Add(-time.Hour)))
	}
	if acme := a.For("acme"); acme.Reconcile != a.Reconcile || acme.ReconcileLookback != a.ReconcileLookback {
		t.Errorf("a tenant's override lost the stream's reconcile: %+v", acme)
	}
	if b, _ := ss.Find("s.b"); b.Reconcile != "" || !b.NextReconcile(sunday).IsZero() {
		t.Errorf("s.b has no reconcile, yet %q", b.Reconcile)
	}
	if ss, err = parse("streams:\n  s.a:\n    reconcile: \"off\"\n"); err != nil {
		t.Fatal(err)
	}
	if a, _ := ss.Find("s.a"); a.Reconcile != "" {
		t.Errorf("reconcile off, yet %q", a.Reconcile)
	}
	for op, want := range map[string]string{
		"streams:\n  s.a:\n    reconcile: \"61 3 * * 0\"\n":                        `op.yaml:3: s.a: reconcile "61 3 * * 0": end of range (61) above maximum (59): 61`,
		"streams:\n  s.a:\n    reconcile_lookback: a while\n":                      `op.yaml:3: reconcile_lookback: "a while" is not a duration`,
		"streams:\n  s.a:\n    per_tenant:\n      acme: {reconcile: \"@daily\"}\n": `op.yaml:4: reconcile belongs to the stream, not to a tenant`,
		"defaults:\n  reconcile: \"@daily\"\n":                                     `op.yaml:2: reconcile belongs to a stream, not to defaults`,
	} {
		if _, err := parse(op); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error\n%v\ndoes not contain %q", op, err, want)
		}
	}
	ss, err = parse("streams:\n  s.b:\n    reconcile: \"@weekly\"\n")
	if err != nil {
		t.Fatal(err)
	}
	err = ss.CheckReconcile(func(stream string) bool { return stream == "s.a" })
	if want := "op.yaml:3: s.b: reconcile: the stream is not incremental"; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s.a") {
		t.Errorf("CheckReconcile: %v, want only %q", err, want)
	}
}

// keysStream writes one account row per run, a new key on each
// reconciliation and the same key otherwise, and records its requests.
type keysStream struct {
	mu   sync.Mutex
	reqs []extract.Request
}

func (k *keysStream) stream(name string) extract.Stream {
	return extract.Stream{Name: name, Provider: "test", Tables: []transform.Table{transform.Accounts}, Reconciles: true,
		Run: func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
			k.mu.Lock()
			k.reqs = append(k.reqs, req)
			id := "steady"
			if req.Reconcile {
				id = fmt.Sprintf("late-%d", len(k.reqs))
			}
			k.mu.Unlock()
			return "c", writeAccount(out, req, id)
		}}
}

// The daemon runs a stream's reconcile schedule: runs asked as
// reconciliations over the schedule's reconcile_lookback, under their own
// run ids, counting the keys they added in etl_runs and the metric.
func TestTheDaemonRunsTheReconcileSchedule(t *testing.T) {
	w := schedulestest.NewWorld(t, time.Time{})
	k := &keysStream{}
	s := k.stream("t.late")
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\n  timeout: 1m\nstreams:\n  t.late:\n    schedule: \"@yearly\"\n"+
		"    reconcile: \"@every 1s\"\n    reconcile_lookback: 10d\n"), map[string]schedules.ParamsCheck{"t.late": nil})
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := ss.Find("t.late")
	d := &schedules.Daemon{Runner: w.Runner, Metrics: schedules.NewMetrics(),
		Jobs: []schedules.Job{{Stream: s, Schedule: sched, Tenants: []string{"t1"}}}}
	d.Metrics.Start("test", d.Jobs)
	scrape := func() string {
		rec := httptest.NewRecorder()
		d.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return grepLines(rec.Body.String(), "finsync_reconcile_missed_rows_total{")
	}
	if m := scrape(); m != `finsync_reconcile_missed_rows_total{stream="t.late",tenant="t1"} 0` {
		t.Errorf("at start-up: %q", m)
	}
	d.Start()
	t.Cleanup(func() { d.Stop(time.Minute) })
	waitFinished(t, w.State, 1, "t.late")
	d.Stop(time.Minute)

	k.mu.Lock()
	reqs := k.reqs
	k.mu.Unlock()
	for _, r := range reqs {
		if !r.Reconcile || r.ReconcileLookback != 10*24*time.Hour || r.Lineage.RunID == "" || !strings.HasSuffix(r.Lineage.RunID, clickhouse.ReconcileSuffix) {
			t.Errorf("a run of the reconcile schedule was asked for %+v", r)
		}
	}
	runs, err := w.State.RecentRuns(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var finished int
	for _, r := range runs["t.late"] {
		if r.Status == clickhouse.RunRunning {
			continue
		}
		finished++
		// Each reconciliation adds one key the table did not hold.
		if r.Status != clickhouse.RunSuccess || !r.Reconcile || r.Error != "reconciliation: 1 row(s) incremental runs had missed (natural keys new to accounts)" {
			t.Errorf("run %s: %s, reconcile %v, %q", r.ID, r.Status, r.Reconcile, r.Error)
		}
	}
	if want := fmt.Sprintf(`finsync_reconcile_missed_rows_total{stream="t.late",tenant="t1"} %d`, finished); finished == 0 || scrape() != want {
		t.Errorf("%d reconciliations: %q, want %q", finished, scrape(), want)
	}
}
