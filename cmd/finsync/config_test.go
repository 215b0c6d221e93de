package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/schedules"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(context.Background(), lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.Addr != "127.0.0.1:19000" || c.ClickHouse.Database != "finsync" || c.ClickHouse.InsertMaxRows != 250000 {
		t.Fatalf("defaults: %+v", c.ClickHouse)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"address without port", map[string]string{"FINSYNC_CLICKHOUSE_ADDR": "localhost"},
			[]string{`FINSYNC_CLICKHOUSE_ADDR="localhost": want host:port`}},
		{"port out of range", map[string]string{"FINSYNC_CLICKHOUSE_ADDR": "h:70000"},
			[]string{"port must be 1-65535"}},
		{"database name", map[string]string{"FINSYNC_CLICKHOUSE_DATABASE": "fin-sync"},
			[]string{`FINSYNC_CLICKHOUSE_DATABASE="fin-sync"`}},
		{"tiny inserts", map[string]string{"FINSYNC_INSERT_MAX_ROWS": "10"},
			[]string{"FINSYNC_INSERT_MAX_ROWS=10: want at least 1000"}},
		{"not a number", map[string]string{"FINSYNC_INSERT_MAX_ROWS": "many"},
			[]string{"FINSYNC_INSERT_MAX_ROWS"}},
		{"several at once", map[string]string{"FINSYNC_LOG_LEVEL": "loud", "FINSYNC_LOG_FORMAT": "xml", "FINSYNC_CLICKHOUSE_ADDR": ":"},
			[]string{"FINSYNC_LOG_LEVEL", "FINSYNC_LOG_FORMAT", "FINSYNC_CLICKHOUSE_ADDR"}},
		{"value and file", map[string]string{"FINSYNC_CLICKHOUSE_PASSWORD": "a", "FINSYNC_CLICKHOUSE_PASSWORD_FILE": "/x"},
			[]string{"FINSYNC_CLICKHOUSE_PASSWORD and FINSYNC_CLICKHOUSE_PASSWORD_FILE are both set"}},
		{"missing file", map[string]string{"FINSYNC_CLICKHOUSE_PASSWORD_FILE": filepath.Join(dir, "nope")},
			[]string{"FINSYNC_CLICKHOUSE_PASSWORD_FILE: open"}},
		{"finapi without mandators", map[string]string{"FINSYNC_FINAPI_BASE_URL": "https://di-sandbox.finapi.io/api"},
			[]string{"FINSYNC_FINAPI_MANDATORS is required"}},
		{"malformed mandator", map[string]string{"FINSYNC_FINAPI_BASE_URL": "https://di-sandbox.finapi.io/api", "FINSYNC_FINAPI_MANDATORS": "m1:id"},
			[]string{"FINSYNC_FINAPI_MANDATORS: entry 1 is not name:client_id:client_secret"}},
		{"page size beyond finoOS's maximum", map[string]string{"FINSYNC_FINO_BASE_URL": "http://x", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s",
			"FINSYNC_FINO_PAGE_SIZE": "5000"},
			[]string{"FINSYNC_FINO_PAGE_SIZE=5000: want 1..1000"}},
		{"unknown scope and tenant", map[string]string{"FINSYNC_FINO_BASE_URL": "http://x", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s",
			"FINSYNC_FINO_SCOPES": "person-income-salary,person-income-lottery,other/company-*"},
			[]string{`FINSYNC_FINO_SCOPES: no analytics module matches ["person-income-lottery"]`}},
		{"scope for an unconfigured tenant", map[string]string{"FINSYNC_FINO_BASE_URL": "http://x", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s",
			"FINSYNC_FINO_SCOPES": "person-spending-creditCard,c-b/cockpits"},
			[]string{`FINSYNC_FINO_SCOPES: tenant "c-b" is not one of FINSYNC_FINO_TENANTS`}},
		{"fimento without credentials", map[string]string{"FINSYNC_FIMENTO_BASE_URL": "https://api.example"},
			[]string{"FINSYNC_FIMENTO_NAME is required", "FINSYNC_FIMENTO_PASSWORD is required", "FINSYNC_FIMENTO_HASH_KEY is required", "FINSYNC_FIMENTO_PARTNER_BANKS is required"}},
		{"fimento processes, paths, webhook", map[string]string{"FINSYNC_FIMENTO_BASE_URL": "https://api.example", "FINSYNC_FIMENTO_NAME": "n",
			"FINSYNC_FIMENTO_PASSWORD": "p", "FINSYNC_FIMENTO_HASH_KEY": "short", "FINSYNC_FIMENTO_PARTNER_BANKS": "b1,b2",
			"FINSYNC_FIMENTO_PROCESSES": "b3/p,p", "FINSYNC_FIMENTO_PATHS": "process=/p", "FINSYNC_FIMENTO_WEBHOOK_URL": "ftp://x?token=s3cret"},
			[]string{"at least 16 characters", `"b3/p"`, `FINSYNC_FIMENTO_PROCESSES: "b3/p", "p": want bank/processId`, "FINSYNC_FIMENTO_PATHS", "FINSYNC_FIMENTO_WEBHOOK_URL"}},
		{"fingoal without an id key", map[string]string{"FINSYNC_FINGOAL_BASE_URL": "https://findmoney-dev.fingoal.com/v3",
			"FINSYNC_FINGOAL_CLIENT_ID": "client-1", "FINSYNC_FINGOAL_CLIENT_SECRET": "s"},
			[]string{"FINSYNC_FINGOAL_ID_KEY is required with FINSYNC_FINGOAL_BASE_URL: a secret of at least 16 characters"}},
		{"fingoal id key too short", map[string]string{"FINSYNC_FINGOAL_BASE_URL": "https://findmoney-dev.fingoal.com/v3",
			"FINSYNC_FINGOAL_CLIENT_ID": "client-1", "FINSYNC_FINGOAL_CLIENT_SECRET": "s", "FINSYNC_FINGOAL_ID_KEY": "short-key"},
			[]string{"FINSYNC_FINGOAL_ID_KEY is required with FINSYNC_FINGOAL_BASE_URL: a secret of at least 16 characters"}},
		{"fingoal id key is the client id", map[string]string{"FINSYNC_FINGOAL_BASE_URL": "https://findmoney-dev.fingoal.com/v3",
			"FINSYNC_FINGOAL_CLIENT_ID": "client-0123456789abc", "FINSYNC_FINGOAL_CLIENT_SECRET": "s", "FINSYNC_FINGOAL_ID_KEY": "client-0123456789abc"},
			[]string{"FINSYNC_FINGOAL_ID_KEY must not be the client id or secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(context.Background(), lookupFrom(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// A schedules file's problems are reported with file, line and the exact
// complaint, all at once.
func TestSchedulesFileProblems(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, file string
		want       []string
	}{
		{"broken spec", "streams:\n  fino.transactions:\n    schedule: \"61 * * * *\"\n",
			[]string{`bad.yaml:3: fino.transactions: schedule "61 * * * *": end of range (61) above maximum (59): 61`}},
		{"unknown stream", "streams:\n  fino.transactionz:\n    schedule: \"@hourly\"\n",
			[]string{`bad.yaml:2: unknown stream "fino.transactionz" (see finsync streams)`}},
		{"invalid parameters", "streams:\n  finapi.segments.financial_breakdown:\n    schedule: \"@daily\"\n    params: {months: 13, label_groups: [SALARY, CRYPTO]}\n" +
			"  finapi.segments.low_balance:\n    schedule: \"@daily\"\n    params: {months: -1}\n",
			[]string{`bad.yaml:4: finapi.segments.financial_breakdown: label_groups: unknown label group "CRYPTO"`,
				"bad.yaml:4: finapi.segments.financial_breakdown: months: months 13 is outside 1..12",
				"bad.yaml:7: finapi.segments.low_balance: months: months -1 is outside 1..24"}},
		{"a parameter on its own line", "streams:\n  finapi.segments.high_balance:\n    schedule: \"@daily\"\n    params:\n      account_type: checking\n      threshold: lots\n",
			[]string{"bad.yaml:6: finapi.segments.high_balance: threshold: "}},
		{"a YAML syntax error", "streams:\n  fino.accounts:\n\tschedule: \"@daily\"\n",
			[]string{"bad.yaml:3: found character that cannot start any token"}},
		{"params where none are taken", "streams:\n  fino.contracts:\n    schedule: \"@daily\"\n    params: {x: 1}\n",
			[]string{"bad.yaml:4: fino.contracts takes no params"}},
		{"typos and bad values", "defaults:\n  timeout: soon\nstreams:\n  fino.accounts:\n    shedule: \"@daily\"\n    enabled: maybe\n",
			[]string{`bad.yaml:2: timeout: "soon" is not a duration`, `bad.yaml:5: unknown setting "shedule"`, `bad.yaml:6: enabled: "maybe" is not true or false`}},
		{"a stream no layer schedules", "streams:\n  fino.accounts:\n    schedule: \"\"\n",
			[]string{"bad.yaml:2: fino.accounts: no schedule"}},
		{"a reconcile of a snapshot, a broken reconcile", "streams:\n  fino.accounts:\n    reconcile: \"@weekly\"\n  fino.transactions:\n    reconcile: \"0 3 * *\"\n",
			[]string{"bad.yaml:3: fino.accounts: reconcile: the stream is not incremental (it reads everything each run): nothing to reconcile",
				`bad.yaml:5: fino.transactions: reconcile "0 3 * *": expected exactly 5 fields, found 4: [0 3 * *]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(context.Background(), lookupFrom(map[string]string{"FINSYNC_SCHEDULES": path}))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), path[:len(path)-len("bad.yaml")]+w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
	// The built-in file names every stream finsync has.
	c, err := LoadConfig(context.Background(), lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		for _, s := range p.Streams {
			if _, ok := c.sched.Find(s.Name); !ok {
				t.Errorf("schedules/default.yaml has no entry for %s", s.Name)
			}
		}
	}
}

// An operator's schedules file overlays the built-in schedules: a stream it
// does not name keeps its own, enabled: false turns one off, params change
// key by key, and the last word on concurrency is the file's.
func TestSchedulesFileOverlays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.yaml")
	file := "concurrency:\n  provider.fino: 5\nstreams:\n  fino.transactions:\n    schedule: \"@hourly\"\n" +
		"  fino.contracts:\n    enabled: false\n  finapi.segments.low_balance:\n    params: {months: 6}\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(context.Background(), lookupFrom(map[string]string{"FINSYNC_SCHEDULES": path}))
	if err != nil {
		t.Fatal(err)
	}
	find := func(stream string) schedules.Schedule {
		s, ok := c.sched.Find(stream)
		if !ok {
			t.Fatalf("%s has no schedule", stream)
		}
		return s
	}
	if s := find("fino.transactions"); s.Spec != "@hourly" || !s.Enabled {
		t.Errorf("the file's schedule: %+v", s)
	}
	if s := find("fino.accounts"); s.Spec != "15 */6 * * *" || !s.Enabled || s.Window != 30*24*time.Hour {
		t.Errorf("a stream the file does not name keeps its built-in schedule: %+v", s)
	}
	if s := find("fino.contracts"); s.Enabled || s.Spec != "45 5 * * *" {
		t.Errorf("enabled: false: %+v", s)
	}
	if p := find("finapi.segments.low_balance").Params; p["months"] != "6" || p["threshold"] != "0" || p["account_type"] != "checking" {
		t.Errorf("params overlaid key by key: %v", p)
	}
	if c.sched.PerProvider["fino"] != 5 || c.sched.PerProvider["finapi"] != 2 || c.sched.Global != 4 || c.sched.File != path {
		t.Errorf("concurrency %d %v, file %s", c.sched.Global, c.sched.PerProvider, c.sched.File)
	}
}

// Each mistake is reported once, by its variable, with what it wants, and
// not with the problems it would cause further on.
func TestConfigSaysWhatIsWrong(t *testing.T) {
	fino := map[string]string{"FINSYNC_FINO_BASE_URL": "https://os.fino.cloud", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s"}
	var users []string
	for i := range 10 {
		users = append(users, fmt.Sprintf("other/u%d", i))
	}
	sched := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(sched, []byte("streams:\n  fino.accounts:\n    tenants: [c, nope]\n"), 0o644)
	perTenant := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(perTenant, []byte("streams:\n  fino.accounts:\n    schedule: \"@daily\"\n    per_tenant:\n      c: {enabled: false}\n      nope: {enabled: false}\n"), 0o644)
	tests := []struct {
		name string
		env  map[string]string
		want []string // the whole list of problems
	}{
		{"a number that is not", with(fino, "FINSYNC_FINO_RATE_LIMIT", "fast"), []string{`FINSYNC_FINO_RATE_LIMIT="fast": want a number`}},
		{"a boolean that is not", with(map[string]string{}, "FINSYNC_CLICKHOUSE_TLS", "yes"), []string{`FINSYNC_CLICKHOUSE_TLS="yes": want true or false`}},
		{"a duration that is not", with(map[string]string{}, "FINSYNC_SHUTDOWN_GRACE", "30"), []string{`FINSYNC_SHUTDOWN_GRACE="30": want a duration (like 30s, 2m, 1h)`}},
		{"two at once", with(fino, "FINSYNC_FINO_CONCURRENCY", "many", "FINSYNC_CLICKHOUSE_TLS", "yes"),
			[]string{`FINSYNC_CLICKHOUSE_TLS="yes": want true or false`, `FINSYNC_FINO_CONCURRENCY="many": want a whole number`}},
		{"a secret file missing", with(fino, "FINSYNC_FINO_CLIENT_SECRET", "", "FINSYNC_FINO_CLIENT_SECRET_FILE", "/nonexistent/secret"),
			[]string{"FINSYNC_FINO_CLIENT_SECRET_FILE: open /nonexistent/secret: no such file or directory"}},
		{"ten bad entries", with(fino, "FINSYNC_FINO_USERS", strings.Join(users, ",")),
			[]string{`FINSYNC_FINO_USERS: "other/u0", "other/u1", "other/u2", "other/u3", "other/u4", and 5 more: want user or tenant/user with a tenant of FINSYNC_FINO_TENANTS`}},
		{"the base URL with /api", with(fino, "FINSYNC_FINO_BASE_URL", "https://os.fino.cloud/api"),
			[]string{`FINSYNC_FINO_BASE_URL="https://os.fino.cloud/api": leave out /api: finsync adds /api/... itself`}},
		{"a port for an address", with(map[string]string{}, "FINSYNC_HTTP_ADDR", "8080"),
			[]string{`FINSYNC_HTTP_ADDR="8080": want host:port (127.0.0.1:8080, or :8080 for every interface)`}},
		{"a negative webhook rate", with(fino, "FINSYNC_WEBHOOK_RATE", "-1"),
			[]string{`FINSYNC_WEBHOOK_RATE=-1: want webhooks a second per provider, 0 for no cap`}},
		{"a schedule's tenant not configured", with(fino, "FINSYNC_SCHEDULES", sched),
			[]string{sched + `:2: fino.accounts: tenant "nope" is not one of fino's configured tenants [c]`}},
		{"a tenant's own schedule for a tenant not configured", with(fino, "FINSYNC_SCHEDULES", perTenant),
			[]string{perTenant + `:6: fino.accounts: tenant "nope" is not one of fino's configured tenants [c]`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			delete(tc.env, "")
			for k, v := range tc.env {
				if v == "" {
					delete(tc.env, k)
				}
			}
			_, err := LoadConfig(context.Background(), lookupFrom(tc.env))
			want := "invalid configuration:\n" + strings.Join(tc.want, "\n")
			if err == nil || err.Error() != want {
				t.Errorf("got\n%v\nwant\n%s", err, want)
			}
		})
	}
}

func TestSecretFromFileIsNeverPrinted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(context.Background(), lookupFrom(map[string]string{"FINSYNC_CLICKHOUSE_PASSWORD_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.Password.Value() != "hunter2" || c.clickhouseOptions().Password != "hunter2" {
		t.Fatalf("password not read from the file")
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "password", c.ClickHouse.Password, "config", c)
	js, _ := json.Marshal(c)
	for _, out := range []string{
		fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c.ClickHouse.Password),
		string(js), logged.String(),
	} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "REDACTED") {
			t.Errorf("secret leaked or not redacted in %q", out)
		}
	}
}

// FINSYNC_RUN_TOKEN is read like every secret (or from its _FILE), a short
// one is refused, and the refusal does not print it.
func TestRunToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("tok-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(context.Background(), lookupFrom(map[string]string{"FINSYNC_RUN_TOKEN_FILE": path}))
	if err != nil || c.RunToken.Value() != "tok-0123456789abcdef" || strings.Contains(fmt.Sprintf("%+v", c), "tok-0123") {
		t.Errorf("token from its file: %v, printed %+v", err, c)
	}
	_, err = LoadConfig(context.Background(), lookupFrom(map[string]string{"FINSYNC_RUN_TOKEN": "letmein"}))
	if err == nil || !strings.Contains(err.Error(), "FINSYNC_RUN_TOKEN: 7 characters, want at least 16") || strings.Contains(err.Error(), "letmein") {
		t.Errorf("a short token: %v", err)
	}
}
