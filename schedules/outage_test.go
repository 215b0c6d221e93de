package schedules_test

import (
	"context"

	"fmt"
	"github.com/apache/arrow/go/v17/arrow"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fino"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	finsql "github.com/finsync/finsync/sql"
	"github.com/finsync/finsync/transform"

	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

// privateServer runs a ClickHouse server of the test's own (the deploy
// script with another home and ports), so that stopping it harms no other
// test. It returns the script's environment for stop/start.
func privateServer(t *testing.T) (addr string, script func(cmd string)) {
	t.Helper()
	ports := make([]int, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	home := t.TempDir()
	env := append(os.Environ(), "FINSYNC_CH_HOME="+home, "FINSYNC_CH_TCP_PORT="+strconv.Itoa(ports[0]), "FINSYNC_CH_HTTP_PORT="+strconv.Itoa(ports[1]))
	script = func(cmd string) {
		c := exec.Command("../deploy/clickhouse/local.sh", cmd)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("local.sh %s: %v\n%s", cmd, err, out)
		}
	}
	script("start")
	t.Cleanup(func() { script("stop") })
	return fmt.Sprintf("127.0.0.1:%d", ports[0]), script
}

// ClickHouse stopped in the middle of a load and started again: the run
// fails or retries, never checkpoints rows it did not load, and the next run
// completes the data without duplicates.
func TestClickHouseStoppedMidLoad(t *testing.T) {
	addr, script := privateServer(t)
	ctx := context.Background()
	opts := clickhouse.Options{Addr: addr, Database: "outage"}
	if _, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil); err != nil {
		t.Fatal(err)
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sb := finosb.New(finosb.Options{UsersPerTenant: 4, Months: 12, Seed: 5, Faults: sandboxkit.Knobs{Latency: 15 * time.Millisecond}})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	// Small inserts and records, so that loading goes on while extracting.
	logs := &schedulestest.SyncBuffer{}
	log := slog.New(schedules.RunHandler(slog.NewJSONHandler(logs, nil)))
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: 200, MaxAttempts: 3, BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second, Logger: log})
	state := clickhouse.NewState(db, loader)
	var subs []extract.Subject
	for _, u := range sb.Users("sandbox-client") {
		subs = append(subs, extract.Subject{Provider: "fino", Tenant: "sandbox-client", Kind: "user", ID: u, Source: "config"})
	}
	if err := state.AddSubjects(ctx, subs); err != nil {
		t.Fatal(err)
	}
	api := fino.NewAPI(fino.Config{BaseURL: srv.URL, ClientID: "sandbox-client", ClientSecret: "sandbox-secret", RateLimit: 1000, PageSize: 50, RecordRows: 100})
	var stream extract.Stream
	for _, s := range fino.Streams(api) {
		if s.Name == "fino.transactions" {
			stream = s
		}
	}
	now := func() time.Time { return time.Date(2026, 2, 24, 6, 0, 0, 0, time.UTC) }
	runner := &schedules.Runner{Loader: loader, State: state, Now: now, Log: log}

	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(ctx, stream, "sandbox-client")
		done <- err
	}()
	// Stop the server once rows are landing, start it again a moment later.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n uint64
		db.Conn().QueryRow(ctx, "SELECT count() FROM transactions").Scan(&n)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no rows landed in 60 s")
		}
	}
	script("stop")
	time.Sleep(1500 * time.Millisecond)
	script("start")
	firstErr := <-done

	cursor, err := state.Cursor(ctx, stream.Name, "sandbox-client")
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, u := range sb.Users("sandbox-client") {
		l, _ := sb.Ledger("sandbox-client", u)
		want += l.Transactions
	}
	var landed uint64
	db.Conn().QueryRow(ctx, "SELECT count() FROM transactions FINAL").Scan(&landed)
	if firstErr != nil {
		// Failed cleanly: no checkpoint.
		if cursor != "" {
			t.Errorf("the failed run moved the cursor to %q", cursor)
		}
		t.Logf("the run during the outage failed: %v (%d of %d rows landed)", firstErr, landed, want)
	} else if int(landed) != want {
		t.Errorf("the run during the outage succeeded (retries) but loaded %d of %d rows", landed, want)
	}
	// Every line the run logged, the loader's retries included, names it.
	retried := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, `"run":"`) {
			t.Errorf("a log line of the run lacks its id: %s", line)
		}
		if strings.Contains(line, "insert failed, retrying") {
			retried++
		}
	}
	t.Logf("%d insert retries logged during the outage", retried)
	// The next run completes the data, with nothing twice.
	if _, err := runner.Run(ctx, stream, "sandbox-client"); err != nil {
		t.Fatalf("the run after the outage: %v", err)
	}
	db.Conn().QueryRow(ctx, "SELECT count() FROM transactions FINAL").Scan(&landed)
	if int(landed) != want {
		t.Errorf("after the next run: %d rows, the ledger has %d", landed, want)
	}
}

// A provider that answers nothing usable ends the run failed, not partial:
// partial says some of it came through and the next run resumes from
// there. A retryable end after rows were loaded, or one the provider
// answered (a job not ready in time), stays partial.
func TestAProviderOutageIsAFailedRun(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close() // nothing listens there any more
	get := func(base string) func(ctx context.Context) error {
		c := extract.NewClient(extract.ClientOptions{BaseURL: base, MaxAttempts: 2, BackoffBase: time.Millisecond})
		return func(ctx context.Context) error { return c.GetJSON(ctx, "/data", nil, nil, &struct{}{}) }
	}
	tests := []struct {
		name   string
		rows   bool // the stream hands over a row before it fails
		err    func(ctx context.Context) error
		status string
	}{
		{"every answer a 503", false, get(down.URL), clickhouse.RunFailed},
		{"connection refused", false, get(refused.URL), clickhouse.RunFailed},
		{"a 503 after a page was read", true, get(down.URL), clickhouse.RunPartial},
		{"a job not ready in time", false, func(context.Context) error {
			return &extract.RetryAfter{Err: fmt.Errorf("not ready: %w", extract.ErrPollDeadline)}
		}, clickhouse.RunPartial},
	}
	w := schedulestest.NewWorld(t, time.Time{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := providerStream("test", "outage", func(ctx context.Context, _ string) error { return tc.err(ctx) })
			if !tc.rows {
				inner := s.Run
				s.Run = func(ctx context.Context, req extract.Request, _ extract.Output) (string, error) {
					return inner(ctx, req, nothing{})
				}
			}
			run, err := w.Runner.Run(context.Background(), s, "t1")
			if run.Status != tc.status || err == nil {
				t.Errorf("status %s (err %v), want %s", run.Status, err, tc.status)
			}
		})
	}
}

// nothing is an extract.Output that drops what it is handed.
type nothing struct{}

func (nothing) Records(transform.Table, arrow.Record) error { return nil }
func (nothing) Reject(extract.Reject) error                 { return nil }
