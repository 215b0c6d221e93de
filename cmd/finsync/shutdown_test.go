package main

import (
	"context"
	"fmt"
	"github.com/finsync/finsync/schedules/schedulestest"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/finsync/finsync/extract"
	finapisb "github.com/finsync/finsync/extract/finapi/sandbox"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// daemonProcess is `finsync run` as a child process of the test.
type daemonProcess struct {
	cmd    *exec.Cmd
	base   string
	stderr *schedulestest.SyncBuffer
	done   chan error
}

func startDaemon(t *testing.T, env map[string]string) *daemonProcess {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=run", "FINSYNC_HTTP_ADDR="+addr)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &daemonProcess{cmd: cmd, base: "http://" + addr, stderr: &schedulestest.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

func (p *daemonProcess) get(path string) (int, string) {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// finapiCallback posts finAPI's job-ready callback for the job
// "job-"+tenant, which the test records as active: the receiver starts a
// run of the segment's stream for tenant.
func (p *daemonProcess) finapiCallback(t *testing.T, tenant string) int {
	t.Helper()
	resp, err := http.Post(p.base+"/webhooks/finapi?tenant="+tenant+"&segmentType=highBalance", "application/json",
		strings.NewReader(`{"jobId":"job-`+tenant+`","segmentType":"highBalance"}`))
	if err != nil {
		return 0 // the daemon is gone
	}
	resp.Body.Close()
	return resp.StatusCode
}

// SIGTERM while a run is in flight (a slow provider), as a real process:
// no run starts any more (not the stream's other tenant, not the next tick,
// not a webhook's trigger), the daemon exits 0, and the cursor covers
// exactly what is loaded: with time enough the run finishes, every row of
// its window landed and it is checkpointed; with a grace period too short
// it is cancelled and not checkpointed at all. A restarted daemon reports
// the last success from the run history.
func TestSIGTERMMidRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		latency  time.Duration
		grace    time.Duration
		finishes bool
	}{
		{"the run finishes within the grace period", 150 * time.Millisecond, time.Minute, true},
		{"the grace period ends first", 1500 * time.Millisecond, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tenants := []string{"sandbox-client", "sandbox-client-b"}
			fs := finosb.New(finosb.Options{Tenants: tenants, UsersPerTenant: 3, Months: 6, Seed: 21,
				Faults: sandboxkit.Knobs{Latency: tc.latency}})
			fsrv := httptest.NewServer(fs)
			defer fsrv.Close()
			defer fs.Close()
			fa := finapisb.New(finapisb.Options{Tenants: []string{"mandator-a", "mandator-b"}, UsersPerTenant: 4, Seed: 2})
			fasrv := httptest.NewServer(fa)
			defer fasrv.Close()
			defer fa.Close()
			opts := chtest.Options(t)
			t.Cleanup(func() { chtest.DropDatabase(t, opts) })
			var users, mandators []string
			for _, tenant := range tenants {
				for _, u := range fs.Users(tenant) {
					users = append(users, tenant+"/"+u)
				}
			}
			for _, m := range []string{"mandator-a", "mandator-b"} {
				id, secret := finapisb.Credentials(m)
				mandators = append(mandators, m+":"+id+":"+secret)
			}
			schedFile := filepath.Join(t.TempDir(), "schedules.yaml")
			os.WriteFile(schedFile, []byte(`defaults:
  jitter: 0s
streams:
  fino.transactions:
    schedule: "@every 1s"
  finapi.segments.high_balance:
    schedule: "@yearly"
`), 0o644)
			env := map[string]string{
				"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "info",
				"FINSYNC_SCHEDULES": schedFile, "FINSYNC_SHUTDOWN_GRACE": tc.grace.String(),
				"FINSYNC_FINO_BASE_URL": fsrv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
				"FINSYNC_FINO_TENANTS": strings.Join(tenants, ","), "FINSYNC_FINO_USERS": strings.Join(users, ","),
				"FINSYNC_FINAPI_BASE_URL": fasrv.URL, "FINSYNC_FINAPI_MANDATORS": strings.Join(mandators, ","),
			}
			d := startDaemon(t, env)

			var db *clickhouse.DB
			count := func(q string, args ...any) uint64 {
				var n uint64
				if db != nil {
					db.Conn().QueryRow(context.Background(), q, args...).Scan(&n)
				}
				return n
			}
			// The control: before SIGTERM a finAPI callback starts a run.
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if db == nil {
					db, _ = clickhouse.Open(context.Background(), opts)
				}
				if code, _ := d.get("/readyz"); code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the daemon did not get ready in 60 s:\n%s", d.stderr.String())
				}
			}
			defer db.Close()
			// Each mandator has a job finAPI will call back about.
			jobs := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
			for _, m := range []string{"mandator-a", "mandator-b"} {
				if err := jobs.PutJob(context.Background(), "finapi.segments.high_balance", m,
					extract.Job{ID: "job-" + m, Status: extract.JobActive, CreatedAt: time.Now().UTC().Truncate(time.Second)}); err != nil {
					t.Fatal(err)
				}
			}
			if code := d.finapiCallback(t, "mandator-a"); code != http.StatusNoContent {
				t.Fatalf("finAPI callback: %d\n%s", code, d.stderr.String())
			}
			// SIGTERM once the first tenant's run is going (and the
			// control's run started).
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if count("SELECT count() FROM etl_runs FINAL WHERE stream = 'fino.transactions' AND status = 'running'") > 0 &&
					count("SELECT count() FROM etl_runs FINAL WHERE stream = 'finapi.segments.high_balance'") > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no run in flight with rows in 60 s:\n%s", d.stderr.String())
				}
			}
			if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			signalled := time.Now()
			// During the grace period: not ready, and a webhook starts nothing.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if code, body := d.get("/readyz"); code == http.StatusServiceUnavailable && strings.Contains(body, "stopping") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("/readyz did not say stopping after SIGTERM")
				}
			}
			hooked := d.finapiCallback(t, "mandator-b")
			var exit error
			select {
			case exit = <-d.done:
			case <-time.After(tc.grace + 30*time.Second):
				t.Fatalf("the daemon did not exit within its grace period of %s:\n%s", tc.grace, d.stderr.String())
			}
			took := time.Since(signalled)
			if exit != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", exit, d.stderr.String())
			}
			if hooked != http.StatusNoContent && hooked != 0 {
				t.Errorf("finAPI callback during the grace period: %d", hooked)
			}

			ctx := context.Background()
			state := clickhouse.NewState(db, nil)
			runs := queryStrings(t, db, "SELECT stream, tenant, status FROM etl_runs FINAL ORDER BY started_at, stream")
			var fino []string
			for _, r := range runs {
				switch {
				case r[2] == clickhouse.RunRunning:
					t.Errorf("a run is still 'running' after the exit: %v", r)
				case r[0] == "finapi.segments.high_balance" && r[1] != "mandator-a":
					t.Errorf("the webhook during the grace period started a run: %v", r)
				case r[0] == "fino.transactions":
					fino = append(fino, r[1]+" "+r[2])
				}
			}
			want := "sandbox-client success"
			if !tc.finishes {
				want = "sandbox-client failed"
			}
			if len(fino) != 1 || fino[0] != want {
				t.Fatalf("fino.transactions runs %v, want only [%s]: a run started after SIGTERM or the one going ended otherwise\n%s", fino, want, d.stderr.String())
			}
			ledger := 0
			for _, u := range fs.Users("sandbox-client") {
				l, _ := fs.Ledger("sandbox-client", u)
				ledger += l.Transactions
			}
			landed := count("SELECT count() FROM transactions FINAL WHERE tenant = 'sandbox-client'")
			cursor, _ := state.Cursor(ctx, "fino.transactions", "sandbox-client")
			if tc.finishes && (cursor == "" || landed != uint64(ledger)) {
				t.Errorf("the run finished: cursor %q, %d rows of the window's %d landed", cursor, landed, ledger)
			}
			if !tc.finishes && cursor != "" {
				t.Errorf("the cancelled run moved the cursor to %q (%d of %d rows landed)", cursor, landed, ledger)
			}
			if c, _ := state.Cursor(ctx, "fino.transactions", "sandbox-client-b"); c != "" || count("SELECT count() FROM transactions WHERE tenant = 'sandbox-client-b'") > 0 {
				t.Errorf("the stream's second tenant ran after SIGTERM (cursor %q)", c)
			}
			t.Logf("exit 0 %s after SIGTERM (grace %s); %d of %d rows landed, cursor %q", took.Round(time.Millisecond), tc.grace, landed, ledger, cursor)
			if !tc.finishes {
				return
			}

			// A restart reports each stream's last success before any run.
			os.WriteFile(schedFile, []byte("streams:\n  fino.transactions:\n    schedule: \"@daily\"\n"), 0o644)
			d = startDaemon(t, env)
			var metrics string
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				code, body := d.get("/metrics")
				if code == http.StatusOK {
					metrics = body
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the restarted daemon serves no /metrics:\n%s", d.stderr.String())
				}
			}
			families, err := (&expfmt.TextParser{}).TextToMetricFamilies(strings.NewReader(metrics))
			if err != nil {
				t.Fatal(err)
			}
			var got float64
			if f := families["finsync_last_success_timestamp_seconds"]; f != nil {
				for _, m := range f.Metric {
					if m.GetLabel()[0].GetValue() == "fino.transactions" { // labels: stream, tenant
						got = max(got, m.GetGauge().GetValue())
					}
				}
			}
			want2 := queryStrings(t, db, "SELECT toString(toUnixTimestamp(max(assumeNotNull(finished_at)))) FROM etl_runs FINAL WHERE stream = 'fino.transactions' AND status = 'success'")[0][0]
			if fmt.Sprint(int64(got)) != want2 {
				t.Errorf("after a restart finsync_last_success_timestamp_seconds{stream=fino.transactions} is %v, etl_runs says %s", got, want2)
			}
			d.cmd.Process.Signal(syscall.SIGTERM)
			if err := <-d.done; err != nil {
				t.Errorf("the restarted daemon's exit: %v", err)
			}
		})
	}
}
