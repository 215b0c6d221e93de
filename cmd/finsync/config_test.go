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
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(context.Background(), lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.Addr != "127.0.0.1:19000" || c.ClickHouse.Database != "finsync" || c.ClickHouse.InsertMaxRows != 500000 {
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
		{"breakdown over 12 months", map[string]string{"FINSYNC_FINAPI_FINANCIAL_BREAKDOWN_MONTHS": "13"},
			[]string{"FINSYNC_FINAPI_FINANCIAL_BREAKDOWN_MONTHS: months 13 is outside 1..12"}},
		{"unknown label group", map[string]string{"FINSYNC_FINAPI_FINANCIAL_BREAKDOWN_LABEL_GROUPS": "SALARY,CRYPTO"},
			[]string{`FINSYNC_FINAPI_FINANCIAL_BREAKDOWN_LABEL_GROUPS: unknown label group "CRYPTO"`}},
		{"negative months", map[string]string{"FINSYNC_FINAPI_LOW_BALANCE_MONTHS": "-2"},
			[]string{"FINSYNC_FINAPI_LOW_BALANCE_MONTHS: months -2 is outside 1..24"}},
		{"bad threshold and account type", map[string]string{"FINSYNC_FINAPI_HIGH_BALANCE_THRESHOLD": "lots", "FINSYNC_FINAPI_HIGH_BALANCE_ACCOUNT_TYPE": "piggybank"},
			[]string{`FINSYNC_FINAPI_HIGH_BALANCE_THRESHOLD: threshold "lots" is not a number`, `FINSYNC_FINAPI_HIGH_BALANCE_ACCOUNT_TYPE: unknown account type "piggybank"`}},
		{"finapi without mandators", map[string]string{"FINSYNC_FINAPI_BASE_URL": "https://di-sandbox.finapi.io/api"},
			[]string{"FINSYNC_FINAPI_MANDATORS is required"}},
		{"malformed mandator", map[string]string{"FINSYNC_FINAPI_BASE_URL": "https://di-sandbox.finapi.io/api", "FINSYNC_FINAPI_MANDATORS": "m1:id"},
			[]string{"FINSYNC_FINAPI_MANDATORS: entry 1 is not name:client_id:client_secret"}},
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
