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
		{"unknown scope and tenant", map[string]string{"FINSYNC_FINO_BASE_URL": "http://x", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s",
			"FINSYNC_FINO_SCOPES": "person-income-salary,person-income-lottery,other/company-*"},
			[]string{`FINSYNC_FINO_SCOPES: no analytics module matches ["person-income-lottery"]`}},
		{"scope for an unconfigured tenant", map[string]string{"FINSYNC_FINO_BASE_URL": "http://x", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s",
			"FINSYNC_FINO_SCOPES": "person-spending-creditCard,c-b/cockpits"},
			[]string{`FINSYNC_FINO_SCOPES: tenant "c-b" is not one of FINSYNC_FINO_TENANTS`}},
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
