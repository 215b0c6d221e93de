package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// SIGHUP reads the schedules file again: a good file's schedules replace
// the old ones (next runs, the status page, per-tenant overrides) and the
// log says what changed; a file with a problem is logged at ERROR with its
// file:line, and the old schedules stay.
func TestSIGHUPReloadsSchedules(t *testing.T) {
	tenants := []string{"sandbox-client", "sandbox-client-b"}
	fs := finosb.New(finosb.Options{Tenants: tenants, UsersPerTenant: 2, Months: 2, Seed: 5})
	fsrv := httptest.NewServer(fs)
	defer fsrv.Close()
	defer fs.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	var users []string
	for _, tenant := range tenants {
		for _, u := range fs.Users(tenant) {
			users = append(users, tenant+"/"+u)
		}
	}
	file := filepath.Join(t.TempDir(), "schedules.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte("defaults:\n  jitter: 0s\nstreams:\n"+s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("  fino.accounts:\n    schedule: \"0 3 1 1 *\"\n")
	d := startDaemon(t, map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_FORMAT": "text",
		"FINSYNC_SCHEDULES": file, "FINSYNC_FINO_BASE_URL": fsrv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client",
		"FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret", "FINSYNC_FINO_TENANTS": strings.Join(tenants, ","), "FINSYNC_FINO_USERS": strings.Join(users, ","),
	})
	waitFor(t, 60*time.Second, d.stderr, func() bool { code, _ := d.get("/readyz"); return code == http.StatusOK })
	// next is a stream's finsync_next_run_timestamp_seconds (zero: none).
	next := func(stream string) time.Time {
		_, body := d.get("/metrics")
		families, err := (&expfmt.TextParser{}).TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		if f := families["finsync_next_run_timestamp_seconds"]; f != nil {
			for _, m := range f.Metric {
				if m.Label[0].GetValue() == stream {
					return time.Unix(int64(m.Gauge.GetValue()), 0).UTC()
				}
			}
		}
		return time.Time{}
	}
	nextOn := func(month time.Month, day, hour int) time.Time {
		now := time.Now().UTC()
		at := time.Date(now.Year(), month, day, hour, 0, 0, 0, time.UTC)
		if !at.After(now) {
			at = at.AddDate(1, 0, 0)
		}
		return at
	}
	if got, want := next("fino.accounts"), nextOn(time.January, 1, 3); !got.Equal(want) {
		t.Fatalf("next run at the start %v, want %v", got, want)
	}
	if next("fino.contracts").IsZero() {
		t.Fatal("fino.contracts has no next run at the start")
	}
	hup := func() {
		t.Helper()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	write("  fino.accounts:\n    schedule: \"0 4 2 2 *\"\n    per_tenant:\n      sandbox-client-b: {enabled: false}\n" +
		"  fino.contracts:\n    enabled: false\n")
	hup()
	waitFor(t, 30*time.Second, d.stderr, func() bool {
		return strings.Contains(d.stderr.String(), `msg="schedules reloaded" file=`+file+" added=0 removed=0 changed=2")
	})
	if got, want := next("fino.accounts"), nextOn(time.February, 2, 4); !got.Equal(want) {
		t.Errorf("next run after the reload %v, want %v", got, want)
	}
	if got := next("fino.contracts"); !got.IsZero() {
		t.Errorf("the disabled stream still runs next at %v", got)
	}
	if _, page := d.get("/"); !strings.Contains(page, "0 4 2 2 *") || !strings.Contains(page, "sandbox-client-b: enabled false") {
		t.Errorf("the status page does not show the reloaded schedule:\n%s", grepLines(page, "fino.accounts"))
	}

	for _, tc := range []struct{ file, want string }{
		{"  fino.accounts:\n    schedule: \"61 * * * *\"\n", file + `:5: fino.accounts: schedule \"61 * * * *\"`},
		{"  fino.accounts:\n    per_tenant:\n      nope: {enabled: false}\n", file + `:6: fino.accounts: tenant \"nope\" is not one of fino's configured tenants`},
	} {
		write(tc.file)
		hup()
		waitFor(t, 30*time.Second, d.stderr, func() bool {
			for _, line := range strings.Split(d.stderr.String(), "\n") {
				if strings.Contains(line, "level=ERROR") && strings.Contains(line, "schedules not reloaded") && strings.Contains(line, tc.want) {
					return true
				}
			}
			return false
		})
		if got, want := next("fino.accounts"), nextOn(time.February, 2, 4); !got.Equal(want) {
			t.Errorf("a broken file changed the next run: %v, want the old %v", got, want)
		}
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-d.done; err != nil {
		t.Errorf("the daemon exited with %v:\n%s", err, d.stderr.String())
	}
}
