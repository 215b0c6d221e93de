package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

func TestCursorNewestWriteWins(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	st := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	if c, err := st.Cursor(ctx, "fino.transactions", "client-a"); err != nil || c != "" {
		t.Fatalf("first cursor %q, %v; want empty", c, err)
	}
	for _, c := range []string{"2026-01-01", "2026-02-01", "2026-03-01"} {
		if err := st.SetCursor(ctx, "fino.transactions", "client-a", c); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCursor(ctx, "fino.transactions", "client-b", "other"); err != nil {
		t.Fatal(err)
	}
	if c, err := st.Cursor(ctx, "fino.transactions", "client-a"); err != nil || c != "2026-03-01" {
		t.Fatalf("cursor %q, %v; want the last one written", c, err)
	}
	// A fresh State (a restarted process) reads the same.
	st2 := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	if c, _ := st2.Cursor(ctx, "fino.transactions", "client-b"); c != "other" {
		t.Fatalf("client-b cursor %q", c)
	}
}

func TestJobsLifecycle(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	st := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	created := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	for i, id := range []string{"job-b", "job-a"} {
		j := extract.Job{ID: id, Params: `{"threshold":5000}`, CreatedAt: created.Add(time.Duration(i) * time.Minute)}
		if err := st.PutJob(ctx, "finapi.segments.high_balance", "m1", j); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := st.Jobs(ctx, "finapi.segments.high_balance", "m1", extract.JobActive)
	if err != nil || len(jobs) != 2 || jobs[0].ID != "job-b" || jobs[1].ID != "job-a" || jobs[0].Params != `{"threshold":5000}` {
		t.Fatalf("active jobs %+v, %v", jobs, err)
	}
	next := created.Add(time.Hour)
	jobs[0].Status, jobs[1].NextPollAt = extract.JobDone, next
	for _, j := range jobs {
		if err := st.PutJob(ctx, "finapi.segments.high_balance", "m1", j); err != nil {
			t.Fatal(err)
		}
	}
	active, _ := st.Jobs(ctx, "finapi.segments.high_balance", "m1", extract.JobActive)
	done, _ := st.Jobs(ctx, "finapi.segments.high_balance", "m1", extract.JobDone)
	if len(active) != 1 || active[0].ID != "job-a" || !active[0].NextPollAt.Equal(next) || len(done) != 1 || done[0].ID != "job-b" {
		t.Fatalf("active %+v, done %+v", active, done)
	}
}

func TestRunRowIsReplacedWhenTheRunEnds(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	st := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	run := clickhouse.Run{Stream: "fino.transactions", ID: "r1", Tenant: "client-a", Status: clickhouse.RunRunning,
		StartedAt: start, WindowFrom: start.AddDate(0, 0, -1), WindowTo: start}
	if err := st.RecordRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	run.Status, run.FinishedAt = clickhouse.RunSuccess, start.Add(1500*time.Millisecond)
	run.Rows = map[string]uint64{"transactions": 120, "etl_rejects": 2}
	run.Rejects, run.Retries = 2, 3
	if err := st.RecordRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	var (
		n                      uint64
		status                 string
		tables                 []string
		counts                 []uint64
		total, rejects, ms     uint64
		windowFrom, finishedAt *time.Time
	)
	err := db.Conn().QueryRow(ctx, `SELECT count(), any(status), any(rows_tables), any(rows_counts), any(rows_total),
		any(rejects), any(duration_ms), any(window_from), any(finished_at) FROM etl_runs FINAL WHERE run_id = 'r1'`).
		Scan(&n, &status, &tables, &counts, &total, &rejects, &ms, &windowFrom, &finishedAt)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || status != "success" || len(tables) != 2 || tables[0] != "etl_rejects" || counts[1] != 120 ||
		total != 122 || rejects != 2 || ms != 1500 || windowFrom == nil || !windowFrom.Equal(run.WindowFrom) || finishedAt == nil {
		t.Fatalf("run row: n=%d status=%s tables=%v counts=%v total=%d rejects=%d ms=%d from=%v finished=%v",
			n, status, tables, counts, total, rejects, ms, windowFrom, finishedAt)
	}
}
