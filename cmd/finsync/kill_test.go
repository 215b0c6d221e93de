package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/finapi"
	finapisb "github.com/finsync/finsync/extract/finapi/sandbox"
	fgsb "github.com/finsync/finsync/extract/fingoal/sandbox"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// TestMain lets a test run the finsync command in a child process (the
// test binary itself, with FINSYNC_TEST_ARGS), so it can be killed, and
// measured: the child applies FINSYNC_MEMORY_BUDGET as the binary does
// and, with FINSYNC_TEST_PEAK_RSS set, ends by printing its peak RSS
// (peakRSSLine; not otherwise: tests read the others' last lines).
func TestMain(m *testing.M) {
	if args := os.Getenv("FINSYNC_TEST_ARGS"); args != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		a := &app{stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv, setMemoryLimit: debug.SetMemoryLimit}
		code := a.main(ctx, strings.Fields(args))
		stop()
		if status, err := os.ReadFile("/proc/self/status"); err == nil && os.Getenv("FINSYNC_TEST_PEAK_RSS") != "" {
			for _, line := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(line, "VmHWM:") {
					fmt.Fprintln(os.Stderr, peakRSSLine+strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
				}
			}
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// A finsync process killed with SIGKILL after creating a finAPI job and
// before collecting it: the restarted run polls the same job (finAPI bills
// per job) and the members land once.
func TestKilledBetweenJobCreationAndCollection(t *testing.T) {
	// Created today, so the members are current (once removes expired ones).
	sb := finapisb.New(finapisb.Options{UsersPerTenant: 12, Seed: 5, ReadyPolls: -1, Today: time.Now().UTC().Truncate(24 * time.Hour)})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	id, secret := finapisb.Credentials("mandator")
	env := map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
		"FINSYNC_FINAPI_BASE_URL": srv.URL, "FINSYNC_FINAPI_MANDATORS": "mandator:" + id + ":" + secret,
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=once -stream finapi.segments.high_balance")
	for k, v := range env {
		child.Env = append(child.Env, k+"="+v)
	}
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the child recorded the job and is polling it, then kill it.
	db, err := clickhouse.Open(context.Background(), opts)
	deadline := time.Now().Add(30 * time.Second)
	var jobs []extract.Job
	for len(jobs) == 0 {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("no job recorded in 30s (%v); child said: %s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
		if db == nil {
			db, err = clickhouse.Open(context.Background(), opts)
			continue
		}
		jobs, _ = clickhouse.NewState(db, nil).Jobs(context.Background(), finapi.HighBalance.Stream, "mandator", extract.JobActive)
	}
	defer db.Close()
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if n := sb.JobsCreated(""); n != 1 {
		t.Fatalf("%d jobs created before the kill", n)
	}

	if err := sb.MakeReady(jobs[0].ID); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, env, "once", "-stream", "finapi.segments.high_balance")
	if code != 0 || !strings.Contains(stdout, "success") {
		t.Fatalf("restart: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := sb.JobsCreated(""); n != 1 {
		t.Errorf("%d jobs created, want 1: the restart did not resume the job", n)
	}
	var rows, final uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM segment_members WHERE job_id = ?", jobs[0].ID).Scan(&rows)
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM segment_members FINAL").Scan(&final)
	if rows == 0 || rows != final || !strings.Contains(stdout, fmt.Sprintf("segment_members %d", rows)) {
		t.Errorf("%d rows of the job, %d after FINAL, run said:\n%s", rows, final, stdout)
	}
}

// A backfill killed with SIGKILL after some windows resumes after the last
// window it checkpointed, and the range ends up loaded exactly once.
func TestBackfillResumesAfterAKill(t *testing.T) {
	sb := finosb.New(finosb.Options{UsersPerTenant: 3, Months: 8, Seed: 9, Faults: sandboxkit.Knobs{Latency: 30 * time.Millisecond}})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	// A short timeout, so that the killed runs are past it when the last
	// command starts.
	schedFile := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(schedFile, []byte("streams:\n  fino.transactions:\n    schedule: \"@daily\"\n    timeout: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
		"FINSYNC_SCHEDULES": schedFile, "FINSYNC_FINO_BASE_URL": srv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
		"FINSYNC_FINO_USERS": strings.Join(sb.Users("sandbox-client"), ","),
	}
	args := []string{"backfill", "-stream", "fino.transactions", "-from", "2025-08-01", "-to", "2026-01-31", "-window", "168h"}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS="+strings.Join(args, " "))
	for k, v := range env {
		child.Env = append(child.Env, k+"="+v)
	}
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	db, err := clickhouse.Open(context.Background(), opts)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("no window checkpointed in 60 s (%v):\n%s", err, out.String())
		}
		if db == nil {
			db, err = clickhouse.Open(context.Background(), opts)
			continue
		}
		var windows uint64
		db.Conn().QueryRow(context.Background(), "SELECT count() FROM etl_runs FINAL WHERE status = 'success'").Scan(&windows)
		if windows >= 3 {
			break
		}
	}
	defer db.Close()
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	code, stdout, stderr := run(t, env, args...)
	if code != 0 || !strings.Contains(stdout, "resuming after") || !strings.Contains(stdout, "window 27/27") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "window 1/27") {
		t.Errorf("the resumed backfill loaded the first window again:\n%s", stdout)
	}
	var want int
	for _, u := range sb.Users("sandbox-client") {
		l, err := sb.Ledger("sandbox-client", u)
		if err != nil {
			t.Fatal(err)
		}
		for day, d := range l.Days {
			if day >= "2025-08-01" && day <= "2026-01-31" {
				want += d.Transactions
			}
		}
	}
	var got, outside uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM transactions FINAL").Scan(&got)
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM transactions WHERE booking_date < '2025-08-01' OR booking_date > '2026-01-31'").Scan(&outside)
	if got != uint64(want) || outside != 0 {
		t.Errorf("%d transactions after FINAL, %d outside the range; the ledger has %d in it", got, outside, want)
	}
	if c, _ := clickhouse.NewState(db, nil).Cursor(context.Background(), "fino.transactions", "sandbox-client"); c != "" {
		t.Errorf("the backfill moved the stream's cursor to %q", c)
	}
}

// A finsync killed with SIGKILL after submitting FinGoal enrichment batches
// and before collecting them: the restart submits nothing again (FinGoal
// received every transaction exactly once) and collects the batches.
func TestKilledBetweenEnrichmentSubmissionAndCollection(t *testing.T) {
	fs := finosb.New(finosb.Options{UsersPerTenant: 3, Months: 3, Seed: 11})
	fsrv := httptest.NewServer(fs)
	defer fsrv.Close()
	defer fs.Close()
	gs := fgsb.New(fgsb.Options{ResultDelay: -1}) // batches finish only when the test says
	gsrv := httptest.NewServer(gs)
	defer gsrv.Close()
	defer gs.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	id, secret := gs.Credentials()
	env := map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
		"FINSYNC_FINO_BASE_URL": fsrv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
		"FINSYNC_FINO_USERS":       strings.Join(fs.Users("sandbox-client"), ","),
		"FINSYNC_FINGOAL_BASE_URL": gsrv.URL + "/v3", "FINSYNC_FINGOAL_CLIENT_ID": id, "FINSYNC_FINGOAL_CLIENT_SECRET": secret,
		"FINSYNC_FINGOAL_POLL_TIMEOUT": "10m", "FINSYNC_FINGOAL_ID_KEY": "kill-test-id-key-0123",
	}
	if code, stdout, stderr := run(t, env, "once", "-stream", "fino.transactions"); code != 0 {
		t.Fatalf("fino: exit %d\n%s\n%s", code, stdout, stderr)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=once -stream fingoal.enrichment")
	for k, v := range env {
		child.Env = append(child.Env, k+"="+v)
	}
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		child.Process.Kill()
		t.Fatal(err)
	}
	defer db.Close()
	var sent uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM transactions FINAL WHERE provider = 'fino'").Scan(&sent)
	// Killed once every transaction went out and every batch is recorded.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var jobs uint64
		db.Conn().QueryRow(context.Background(), "SELECT count() FROM etl_state FINAL WHERE stream = 'fingoal.enrichment' AND startsWith(key, 'job:') AND status = 'active'").Scan(&jobs)
		if len(gs.Received()) == int(sent) && int(jobs) == len(gs.Batches()) && jobs > 0 {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatalf("not all %d transactions submitted and recorded in 60 s (received %d, %d batches, %d jobs):\n%s", sent, len(gs.Received()), len(gs.Batches()), jobs, out.String())
		}
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	for _, b := range gs.Batches() {
		if err := gs.Finish(b); err != nil {
			t.Fatal(err)
		}
	}
	batches := len(gs.Batches())
	code, stdout, stderr := run(t, env, "once", "-stream", "fingoal.enrichment")
	if code != 0 {
		t.Fatalf("restart: exit %d\n%s\n%s", code, stdout, stderr)
	}
	received := gs.Received()
	for tx, n := range received {
		if n != 1 {
			t.Errorf("FinGoal received %s %d times", tx, n)
		}
	}
	var enriched uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM transactions_enriched WHERE enrichment_status = 'enriched'").Scan(&enriched)
	if len(received) != int(sent) || len(gs.Batches()) != batches || enriched == 0 || enriched > sent {
		t.Errorf("%d of %d transactions received, %d batches (before the restart %d), %d enriched after the restart", len(received), sent, len(gs.Batches()), batches, enriched)
	}
}

// `finsync once` killed with SIGKILL at several points of a run, each
// checked at the kill (mid-page: the sandbox served pages, nothing loaded
// yet; between insert and checkpoint: rows landed, no cursor), restarted
// each time: the warehouse ends equal to the ledger, nothing lost, nothing
// twice.
func TestKilledAtSeveralPointsOfARun(t *testing.T) {
	sb := finosb.New(finosb.Options{UsersPerTenant: 3, Months: 6, Seed: 13, Faults: sandboxkit.Knobs{Latency: 25 * time.Millisecond}})
	// The pages of categorizations the sandbox has answered.
	var pages atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb.ServeHTTP(w, r)
		if strings.HasSuffix(r.URL.Path, "/categorization") {
			pages.Add(1)
		}
	}))
	defer srv.Close()
	defer sb.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	// A short timeout, so that the killed runs are past it when the last
	// command starts.
	schedFile := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(schedFile, []byte("streams:\n  fino.transactions:\n    schedule: \"@daily\"\n    timeout: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
		"FINSYNC_SCHEDULES": schedFile, "FINSYNC_FINO_BASE_URL": srv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
		"FINSYNC_FINO_USERS":     strings.Join(sb.Users("sandbox-client"), ","),
		"FINSYNC_FINO_PAGE_SIZE": "50", // several pages per user
	}
	// Migrate first, so that the kill points can be watched in the database.
	if code, _, stderr := run(t, env, "migrate"); code != 0 {
		t.Fatal(stderr)
	}
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string) uint64 {
		var n uint64
		db.Conn().QueryRow(context.Background(), q).Scan(&n)
		return n
	}
	const cursorRows = "SELECT count() FROM etl_state FINAL WHERE stream = 'fino.transactions' AND key = 'cursor'"
	var pagesBefore int64
	points := []struct {
		name string
		at   func() bool // when to kill
		was  func() bool // whether the kill hit the point
	}{
		{"mid-page: pages served, none loaded", func() bool {
			return count("SELECT count() FROM etl_runs FINAL WHERE status = 'running'") > 0 && pages.Load() > pagesBefore
		}, func() bool {
			return pages.Load() > pagesBefore && count("SELECT count() FROM transactions") == 0 && count(cursorRows) == 0
		}},
		{"between insert and checkpoint", func() bool { return count("SELECT count() FROM transactions") > 0 }, func() bool {
			return count("SELECT count() FROM transactions") > 0 && count(cursorRows) == 0 &&
				count("SELECT count() FROM etl_runs FINAL WHERE status = 'success'") == 0
		}},
	}
	for i, p := range points {
		pagesBefore = pages.Load()
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=once -stream fino.transactions")
		for k, v := range env {
			child.Env = append(child.Env, k+"="+v)
		}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		runsBefore := count("SELECT count() FROM etl_runs FINAL")
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if count("SELECT count() FROM etl_runs FINAL") > runsBefore && p.at() {
				break
			}
			if time.Now().After(deadline) {
				child.Process.Kill()
				t.Fatalf("kill %d (%s): the point never came", i, p.name)
			}
		}
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		landed, cursors := count("SELECT count() FROM transactions"), count(cursorRows)
		if !p.was() {
			t.Fatalf("kill %d missed its point (%s): %d pages served, %d rows landed, %d cursor rows", i, p.name, pages.Load()-pagesBefore, landed, cursors)
		}
		t.Logf("killed %s: %d pages served, %d rows had landed, cursor rows %d", p.name, pages.Load()-pagesBefore, landed, cursors)
	}
	// The killed runs are `running` until a command finds them past the
	// stream's timeout: then abandoned, with the reason, and counted.
	if n := count("SELECT count() FROM etl_runs FINAL WHERE status = 'running'"); n != uint64(len(points)) {
		t.Errorf("%d runs running after %d kills", n, len(points))
	}
	time.Sleep(2 * time.Second)
	if code, stdout, stderr := run(t, env, "once", "-stream", "fino.transactions"); code != 0 {
		t.Fatalf("the run after the kills: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := count("SELECT count() FROM etl_runs FINAL WHERE status = 'abandoned' AND finished_at IS NULL AND position(error, 'timeout (2s)') > 0"); n != uint64(len(points)) {
		t.Errorf("%d killed runs abandoned with their reason, want %d", n, len(points))
	}
	var failed, abandoned, runs uint64
	var last string
	if err := db.Conn().QueryRow(context.Background(), "SELECT failed_24h, abandoned_24h, runs_24h, last_status FROM v_pipeline_freshness WHERE stream = 'fino.transactions'").
		Scan(&failed, &abandoned, &runs, &last); err != nil {
		t.Fatal(err)
	}
	if failed != uint64(len(points)) || abandoned != uint64(len(points)) || runs != uint64(len(points))+1 || last != "success" {
		t.Errorf("v_pipeline_freshness: failed_24h %d, abandoned_24h %d, runs_24h %d, last_status %s", failed, abandoned, runs, last)
	}
	want := 0
	for _, u := range sb.Users("sandbox-client") {
		l, _ := sb.Ledger("sandbox-client", u)
		want += l.Transactions
	}
	if got := count("SELECT count() FROM transactions FINAL"); got != uint64(want) {
		t.Errorf("%d transactions after the kills and a final run, the ledger has %d", got, want)
	}
}
