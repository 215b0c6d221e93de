package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// While another process holds the lease of a stream for a tenant (a
// daemon's run going), `once` and `backfill` start nothing for it: they
// say who runs it and exit 3.
func TestOnceAndBackfillRefuseAStreamAnotherProcessRuns(t *testing.T) {
	sb := finosb.New(finosb.Options{UsersPerTenant: 1, Months: 1, Seed: 3})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	env := map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
		"FINSYNC_FINO_BASE_URL": srv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
		"FINSYNC_FINO_USERS": strings.Join(sb.Users("sandbox-client"), ","),
	}
	if code, stdout, stderr := run(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	claimed := time.Now().Add(-time.Minute)
	if err := state.PutLease(context.Background(), clickhouse.Lease{Stream: "fino.transactions", Tenant: "sandbox-client", ID: "the-daemon",
		Host: "daemon-host", PID: 4242, Claimed: claimed, Until: time.Now().Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	want := "fino.transactions/sandbox-client is being run by host daemon-host pid 4242 since " + claimed.UTC().Format(time.DateTime)
	for _, args := range [][]string{
		{"once", "-stream", "fino.transactions"},
		{"backfill", "-stream", "fino.transactions", "-from", "2026-01-01", "-to", "2026-01-07"},
	} {
		code, stdout, stderr := run(t, env, args...)
		if code != 3 || !strings.Contains(stderr, "finsync "+args[0]+": ") || !strings.Contains(stderr, want) || !strings.Contains(stderr, "; not started") {
			t.Errorf("%s: exit %d, want 3 and %q\n%s\n%s", args[0], code, want, stdout, stderr)
		}
	}
	var runs, rows uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM etl_runs").Scan(&runs)
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM transactions").Scan(&rows)
	if runs != 0 || rows != 0 {
		t.Errorf("%d runs recorded and %d transactions loaded by refused runs", runs, rows)
	}
}
