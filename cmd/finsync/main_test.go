package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// run runs the finsync command in-process. A demo writes its report into a
// temporary directory, not into the working tree (tests run in cmd/finsync).
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if len(args) > 0 && args[0] == "demo" && !slices.Contains(args, "-report") {
		args = append(append([]string{}, args...), "-report", filepath.Join(t.TempDir(), "report.html"))
	}
	var out, errs bytes.Buffer
	a := &app{stdout: &out, stderr: &errs, lookup: lookupFrom(env), environ: func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return kv
	}}
	code = a.main(context.Background(), args)
	return code, out.String(), errs.String()
}

// with is env plus the pairs kv.
func with(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestCLI(t *testing.T) {
	opts := chtest.Options(t)
	env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn"}
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	fino := with(env, "FINSYNC_FINO_BASE_URL", "https://os.fino.cloud", "FINSYNC_FINO_CLIENT_ID", "c", "FINSYNC_FINO_CLIENT_SECRET", "s")
	perTenant := filepath.Join(t.TempDir(), "tenants.yaml")
	os.WriteFile(perTenant, []byte("streams:\n  fino.accounts:\n    per_tenant:\n      c: {schedule: \"*/15 * * * *\", lookback: 1h}\n"), 0o644)
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		code       int
		stdout     string
		stderr     string
		notInOuput string
	}{
		{"no command", env, nil, 2, "", "Usage: finsync <command>", ""},
		{"unknown command", env, []string{"sync-all"}, 2, "", `unknown command "sync-all"`, ""},
		{"a misspelled command", env, []string{"valdate"}, 2, "", `unknown command "valdate", did you mean validate?`, ""},
		{"help asked for", env, []string{"-h"}, 0, "Usage: finsync <command>", "", ""},
		{"the version", env, []string{"--version"}, 0, "finsync ", "", ""},
		{"help of a command", env, []string{"migrate", "-h"}, 0, "Usage: finsync migrate", "", ""},
		{"a wrong flag", env, []string{"once", "-strem", "x"}, 2, "", "Usage: finsync once", ""},
		{"stray argument", env, []string{"version", "now"}, 2, "", `unexpected argument "now"`, ""},
		{"version", env, []string{"version"}, 0, "finsync dev", "", ""},
		{"validate ok", with(env, "FINSYNC_FINO_BASE_URL", "https://os.fino.cloud", "FINSYNC_FINO_CLIENT_ID", "c", "FINSYNC_FINO_CLIENT_SECRET", "s"),
			[]string{"validate"}, 0, "configuration ok: fino configured", "", ""},
		{"validate with no provider", env, []string{"validate"}, 1, "", "no provider is configured", ""},
		{"validate prints the effective schedules", with(env, "FINSYNC_FINO_BASE_URL", "https://os.fino.cloud", "FINSYNC_FINO_CLIENT_ID", "c", "FINSYNC_FINO_CLIENT_SECRET", "s"),
			[]string{"validate", "-schedules"}, 0, "  finapi.segments.low_balance:\n    schedule: \"10 4 * * *\"\n    enabled: true\n    catchup: false\n    window: 720h0m0s\n    lookback: 0s\n    timeout: 30m0s\n    jitter: 2m0s\n    params: {account_type: checking, months: 3, threshold: 0}", "", ""},
		{"validate prints the tenants' own schedules", with(fino, "FINSYNC_SCHEDULES", perTenant), []string{"validate", "-schedules"}, 0,
			"    timeout: 30m0s\n    jitter: 2m0s\n    per_tenant:\n      c:\n        schedule: \"*/15 * * * *\"\n        lookback: 1h0m0s\n  fino.analytics.cockpit_company:", "", ""},
		{"streams shows the tenants' own schedules", with(fino, "FINSYNC_SCHEDULES", perTenant), []string{"streams"}, 0,
			`15 */6 * * * (c: schedule "*/15 * * * *", lookback 1h0m0s)`, "", ""},
		{"validate a misspelled variable", with(env, "FINSYNC_FINO_BASE_URL", "https://os.fino.cloud", "FINSYNC_FINO_CLIENT_ID", "c", "FINSYNC_FINO_CLIENT_SECRET", "s", "FINSYNC_FINO_RATELIMIT", "3"),
			[]string{"validate"}, 1, "", "FINSYNC_FINO_RATELIMIT is not a finsync variable: did you mean FINSYNC_FINO_RATE_LIMIT?", ""},
		{"validate bad", map[string]string{"FINSYNC_CLICKHOUSE_ADDR": "x", "FINSYNC_CLICKHOUSE_PASSWORD": "s3cret"}, []string{"validate"}, 1, "", "FINSYNC_CLICKHOUSE_ADDR", "s3cret"},
		{"migrate", env, []string{"migrate"}, 0, "8 migration(s) applied, schema matches the 12 tables", "", ""},
		{"migrate again", env, []string{"migrate"}, 0, "0 migration(s) applied", "", ""},
		{"streams", env, []string{"streams"}, 0, "fino.account_history                      not configured  never", "", ""},
		{"streams, every column", env, []string{"streams", "-o", "wide"}, 0, "fino.account_history                      fino      user     account_balances", "", ""},
		{"once needs a stream", env, []string{"once"}, 2, "", "-stream is required", ""},
		{"once of an unknown stream", env, []string{"once", "-stream", "nope"}, 1, "", `no stream "nope"`, ""},
		{"a misspelled stream", with(env, "FINSYNC_FINO_BASE_URL", "http://127.0.0.1:1", "FINSYNC_FINO_CLIENT_ID", "c", "FINSYNC_FINO_CLIENT_SECRET", "s"),
			[]string{"once", "-stream", "fino.acounts"}, 1, "", `no stream "fino.acounts", did you mean fino.accounts?`, ""},
		{"once for an unknown tenant", with(env, "FINSYNC_FINO_BASE_URL", "http://127.0.0.1:1", "FINSYNC_FINO_CLIENT_ID", "c", "FINSYNC_FINO_CLIENT_SECRET", "s"),
			[]string{"once", "-stream", "fino.accounts", "-tenant", "nope"}, 1, "", `fino has no tenant "nope"; its tenants: c`, ""},
		{"a guide question that is not", env, []string{"guide", "-q", "nope"}, 1, "", `no question's name contains "nope"; the questions: 01_`, ""},
		{"once of an unconfigured provider", env, []string{"once", "-stream", "fino.contracts"}, 1, "", "fino is not configured", ""},
		{"a reconciliation of a snapshot", fino, []string{"once", "-stream", "fino.contracts", "-reconcile"}, 2, "", "fino.contracts is not incremental", ""},
		{"validate prints the reconciliations", fino, []string{"validate", "-schedules"}, 0,
			"  fino.transactions:\n    schedule: \"0 */6 * * *\"\n    enabled: true\n    catchup: true\n    window: 720h0m0s\n    lookback: 0s\n    timeout: 30m0s\n    jitter: 2m0s\n    reconcile: \"0 3 * * 0\"\n    reconcile_lookback: 840h0m0s\n", "", ""},
		{"demo syncs the sandboxes", env, []string{"demo", "-users", "2", "-months", "2"}, 0, "finAPI segment members per type", "", "failed"},
		{"demo syncs the Fimento sandbox and shows no SSN", env, []string{"demo", "-users", "2", "-months", "2"}, 0, "Fimento processes and why they did or did not load", "", "199503096316"},
		{"unreachable server", map[string]string{"FINSYNC_CLICKHOUSE_ADDR": "127.0.0.1:1", "FINSYNC_CLICKHOUSE_PASSWORD": "s3cret"}, []string{"migrate"}, 1, "",
			"ClickHouse is unreachable at 127.0.0.1:1", "s3cret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if tc.notInOuput != "" && strings.Contains(stdout+stderr, tc.notInOuput) {
				t.Fatalf("output contains %q", tc.notInOuput)
			}
		})
	}
	_, stdout, _ := run(t, env, "demo", "-users", "1", "-months", "1")
	for _, table := range []string{"transactions", "accounts", "account_balances", "contracts", "etl_rejects"} {
		if !strings.Contains(stdout, "\n"+table+" ") {
			t.Errorf("demo does not list table %s:\n%s", table, stdout)
		}
	}
	// An empty result says so instead of printing a header over nothing.
	if !strings.Contains(stdout, "\nrejected records:\n  (none)\n") {
		t.Errorf("demo does not say it rejected nothing:\n%s", stdout)
	}
	// The analytics summary shows values, not only metric names.
	for _, fact := range []string{`person-income-salary +\d+ +\d+ +salary\.amount \d{4}-\d\d = \d+`, `person-adult-check +\d+ +\d+ +.*decision = ADULT`} {
		if !regexp.MustCompile(fact).MatchString(stdout) {
			t.Errorf("demo shows no fact matching %s:\n%s", fact, stdout)
		}
	}
}

// Logs carry what an operator reads them for: a run's duration in seconds,
// an error only when there is one; the demo's own output is not buried
// under a line per run.
func TestLogsSayWhatHappened(t *testing.T) {
	_, _, env := sandboxed(t, sandboxOptions{users: 1, months: 1, seed: 3}, map[string]string{"FINSYNC_LOG_FORMAT": "json"})
	code, stdout, stderr := run(t, env, "once", "-stream", "fino.accounts")
	if code != 0 {
		t.Fatalf("once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	finished := 0
	for _, line := range strings.Split(stderr, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil || l["msg"] != "run finished" {
			continue
		}
		finished++
		if _, ok := l["seconds"].(float64); !ok || l["status"] != "success" {
			t.Errorf("run finished without its seconds: %s", line)
		}
		if _, ok := l["err"]; ok {
			t.Errorf("a successful run logs an error key: %s", line)
		}
		if _, ok := l["error"]; ok {
			t.Errorf("errors are logged as err, not error: %s", line)
		}
	}
	if finished == 0 {
		t.Errorf("no run finished line:\n%s", stderr)
	}
	delete(env, "FINSYNC_LOG_FORMAT")
	code, stdout, stderr = run(t, env, "demo", "-users", "1", "-months", "1")
	if code != 0 || strings.Contains(stderr, "INFO") || strings.Contains(stderr, `"level":"INFO"`) || !strings.Contains(stdout, "this sync's runs") {
		t.Errorf("demo: exit %d, INFO lines in its logs or no summary:\n%s\n%s", code, stderr, stdout)
	}
}

// fresh answers a reporting job: 1 until every tenant's run of the streams
// succeeded within the bound, 0 then; -wait polls until it does.
func TestFresh(t *testing.T) {
	_, _, env := sandboxed(t, sandboxOptions{users: 1, months: 1, seed: 4}, map[string]string{"FINSYNC_LOG_LEVEL": "warn"})
	if code, _, stderr := run(t, env, "migrate"); code != 0 {
		t.Fatal(stderr)
	}
	type answer struct {
		Fresh   bool `json:"fresh"`
		Streams []struct {
			Stream, Tenant string
			LastSuccess    *time.Time `json:"last_success"`
			Fresh          bool
		} `json:"streams"`
	}
	ask := func(args ...string) (int, answer, string) {
		code, stdout, stderr := run(t, env, append([]string{"fresh", "-o", "json"}, args...)...)
		var a answer
		if err := json.Unmarshal([]byte(stdout), &a); err != nil && stdout != "" {
			t.Fatalf("fresh %v: exit %d, not JSON: %v\n%s\n%s", args, code, err, stdout, stderr)
		}
		return code, a, stderr
	}
	if code, a, _ := ask("-streams", "fino.accounts,fimento.insights"); code != 1 || a.Fresh || len(a.Streams) != 3 || a.Streams[0].LastSuccess != nil {
		t.Errorf("before any run: exit %d, %+v (want 1, fino's tenant and Fimento's two banks, never)", code, a)
	}
	// A reporting job waiting for the data while the sync runs.
	waited := make(chan int, 1)
	go func() {
		code, _, _ := run(t, env, "fresh", "-streams", "fino.accounts", "-wait", "2m")
		waited <- code
	}()
	code, stdout, stderr := run(t, env, "once", "-stream", "fino.accounts", "-o", "json")
	var runs []runJSON
	if err := json.Unmarshal([]byte(stdout), &runs); code != 0 || err != nil || len(runs) != 1 || runs[0].Status != "success" || runs[0].Rows["accounts"] == 0 {
		t.Fatalf("once -o json: exit %d, %v, %+v\n%s\n%s", code, err, runs, stdout, stderr)
	}
	select {
	case code := <-waited:
		if code != 0 {
			t.Errorf("fresh -wait ended %d after the run succeeded", code)
		}
	case <-time.After(90 * time.Second):
		t.Error("fresh -wait did not see the run")
	}
	if code, a, _ := ask("-streams", "fino.accounts"); code != 0 || !a.Fresh || a.Streams[0].LastSuccess == nil || !a.Streams[0].Fresh {
		t.Errorf("after the run: exit %d, %+v", code, a)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, a, _ := ask("-streams", "fino.accounts", "-within", "1s"); code != 1 || a.Fresh {
		t.Errorf("older than the bound: exit %d, %+v", code, a)
	}
	if code, _, stderr := ask("-streams", "fino.acounts"); code != 1 || !strings.Contains(stderr, `no stream "fino.acounts"`) {
		t.Errorf("an unknown stream: exit %d, %s", code, stderr)
	}
	if code, _, _ := ask(); code != 2 {
		t.Errorf("without -streams: exit %d, want 2", code)
	}
	code, stdout, _ = run(t, env, "streams", "-o", "json")
	var list []streamJSON
	if err := json.Unmarshal([]byte(stdout), &list); code != 0 || err != nil || len(list) < 30 {
		t.Fatalf("streams -o json: exit %d, %v, %d streams", code, err, len(list))
	}
	for _, s := range list {
		if s.Stream == "fino.accounts" && (s.Schedule != "15 */6 * * *" || s.LastStatus != "success" || s.NextRun == nil || !s.Configured) {
			t.Errorf("streams -o json: %+v", s)
		}
	}
}

// healthcheck is the image's HEALTHCHECK: 0 when the daemon's /healthz
// answers 200 (asked on loopback when it listens on every interface), 1
// when nothing answers.
func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if code, stdout, stderr := run(t, map[string]string{"FINSYNC_HTTP_ADDR": "0.0.0.0:" + port}, "healthcheck"); code != 0 || stdout != "ok\n" {
		t.Errorf("a healthy daemon: exit %d, %q %q", code, stdout, stderr)
	}
	srv.Close()
	if code, _, stderr := run(t, map[string]string{"FINSYNC_HTTP_ADDR": "127.0.0.1:" + port}, "healthcheck"); code != 1 || !strings.Contains(stderr, "does not answer") {
		t.Errorf("no daemon: exit %d, %q", code, stderr)
	}
}

// A backfill carries on: run again it has nothing to do, extended it loads
// only what is new, and -window takes days like the schedules file.
func TestBackfillCarriesOn(t *testing.T) {
	_, _, env := sandboxed(t, sandboxOptions{users: 1, months: 3, seed: 5}, map[string]string{"FINSYNC_LOG_LEVEL": "warn"})
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format(time.DateOnly) }
	backfill := func(to string) string {
		code, stdout, stderr := run(t, env, "backfill", "-stream", "fino.transactions", "-from", day(-40), "-to", to, "-window", "7d")
		if code != 0 {
			t.Fatalf("backfill to %s: exit %d\n%s\n%s", to, code, stdout, stderr)
		}
		return stdout
	}
	if out := backfill(day(-27)); !strings.Contains(out, "window 2/2") {
		t.Errorf("the first backfill, two weeks in windows of 7d:\n%s", out)
	}
	if out := backfill(day(-27)); !strings.Contains(out, "is loaded already: nothing to do") || strings.Contains(out, "window 1/") {
		t.Errorf("the same backfill again:\n%s", out)
	}
	if out := backfill(day(-20)); !strings.Contains(out, "resuming after 2 of 3 windows") || strings.Contains(out, "window 1/3") || !strings.Contains(out, "window 3/3") {
		t.Errorf("the backfill extended by a week:\n%s", out)
	}
}

// On a terminal, log lines go above the progress bar, which is drawn again
// below them, instead of onto its line.
func TestBackfillLogsAboveTheBar(t *testing.T) {
	var term bytes.Buffer
	bar := newProgress(&term, true, "fino.transactions t", 4, 0)
	logs := &barLogs{out: &term, bar: bar}
	fmt.Fprintln(logs, "level=WARN msg=retrying")
	got := term.String()
	i := strings.Index(got, "level=WARN")
	if i < 0 || !strings.HasSuffix(got[:i], "\r\033[K") || !strings.Contains(got[i:], "\n\rfino.transactions t [") {
		t.Errorf("the log line is not above the bar: %q", got)
	}
}

// validate -connect reaches ClickHouse and authenticates with every
// configured provider and tenant, a line each; what fails says what to fix.
func TestValidateConnect(t *testing.T) {
	_, opts, env := sandboxed(t, sandboxOptions{users: 1, months: 1, seed: 6}, map[string]string{})
	code, stdout, stderr := run(t, env, "validate", "-connect")
	for _, want := range []string{"ClickHouse at " + opts.Addr + ": ok (ClickHouse ", "fino tenant sandbox-client: ok", "finapi tenant mandator-b: ok",
		"fimento tenant 605c6c479691950d359bb0ea: ok", "fingoal tenant sandbox-client: ok"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("exit %d, no %q:\n%s\n%s", code, want, stdout, stderr)
		}
	}
	// A wrong secret, and ClickHouse's HTTP port where its native one belongs.
	httpPort := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "Ok.") }))
	defer httpPort.Close()
	code, stdout, _ = run(t, with(env, "FINSYNC_FINO_CLIENT_SECRET", "wrong", "FINSYNC_CLICKHOUSE_ADDR", httpPort.Listener.Addr().String()), "validate", "-connect")
	if code != 1 || !strings.Contains(stdout, "that is ClickHouse's HTTP port") || !strings.Contains(stdout, "fino tenant sandbox-client: finoOS auth") ||
		!strings.Contains(stdout, "fimento tenant 605c6c479691950d359bb0ea: ok") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}

// sandboxed starts the sandboxes with o and gives a test a private
// database and the environment pointing finsync at both, plus extra.
func sandboxed(t *testing.T, o sandboxOptions, extra map[string]string) (*sandbox, clickhouse.Options, map[string]string) {
	t.Helper()
	sb, err := startSandbox("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.close)
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	env := sb.into(map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database})
	maps.Copy(env, extra)
	return sb, opts, env
}

// once runs a stream as the daemon would for each tenant: a tenant's own
// params (per_tenant) reach the job finAPI is asked for.
func TestOnceUsesTheTenantsOwnParams(t *testing.T) {
	file := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(file, []byte("streams:\n  finapi.segments.high_balance:\n    params: {threshold: 4321}\n"+
		"    per_tenant:\n      mandator-b: {params: {threshold: 123}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, opts, env := sandboxed(t, sandboxOptions{users: 2, months: 2, seed: 5}, map[string]string{"FINSYNC_SCHEDULES": file})
	if code, stdout, stderr := run(t, env, "once", "-stream", "finapi.segments.high_balance"); code != 0 {
		t.Fatalf("once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	jobs := queryStringsOf(t, opts, `SELECT tenant, value FROM etl_state FINAL
		WHERE stream = 'finapi.segments.high_balance' AND startsWith(key, 'job:') ORDER BY tenant`)
	if len(jobs) != 2 || !strings.Contains(jobs[0][1], `"threshold":4321`) || !strings.Contains(jobs[1][1], `"threshold":123`) {
		t.Errorf("the jobs' params: %v", jobs)
	}
}

// A process Fimento answered 404 for is quarantined, not deleted;
// finsync reactivate lifts it, and says what it was.
func TestReactivateLiftsAQuarantine(t *testing.T) {
	sb, opts, env := sandboxed(t, sandboxOptions{users: 2, months: 1, seed: 6}, nil)
	if code, stdout, stderr := run(t, env, "once", "-stream", "fimento.transactions"); code != 0 {
		t.Fatalf("once: exit %d\n%s\n%s", code, stdout, stderr)
	}
	bank := env["FINSYNC_FIMENTO_PARTNER_BANKS"]
	bank, _, _ = strings.Cut(bank, ",")
	victim := sb.fimento().Processes(bank)[0]
	sb.fimento().Hide(bank, victim, true)
	code, stdout, stderr := run(t, env, "once", "-stream", "fimento.transactions", "-tenant", bank)
	status := func() string {
		rows := queryStringsOf(t, opts, "SELECT status FROM subjects FINAL WHERE provider = 'fimento' AND subject_id = '"+victim+"'")
		if len(rows) != 1 {
			return fmt.Sprint(rows)
		}
		return rows[0][0]
	}
	if code != 0 || status() != "quarantined" || !strings.Contains(stdout, "quarantined 1 subject(s)") {
		t.Fatalf("once with one process hidden: exit %d, status %s\n%s\n%s", code, status(), stdout, stderr)
	}
	code, stdout, stderr = run(t, env, "reactivate", "-provider", "fimento", "-tenant", bank, "-subject", victim)
	if code != 0 || status() != "active" || !strings.Contains(stdout, "reactivated (was quarantined: since ") {
		t.Fatalf("reactivate: exit %d, status %s\n%s\n%s", code, status(), stdout, stderr)
	}
	if code, _, stderr := run(t, env, "reactivate", "-provider", "fimento", "-tenant", bank, "-subject", "nope"); code != 1 || !strings.Contains(stderr, `no fimento subject "nope"`) {
		t.Errorf("reactivate of an unknown subject: exit %d\n%s", code, stderr)
	}
}
