// Package chtest gives tests a real, private ClickHouse database: a fresh
// database on the server at FINSYNC_CLICKHOUSE_ADDR (default the local
// server of deploy/clickhouse/local.sh), migrated, and dropped when the test
// ends. There is no mock: a test that needs ClickHouse fails when the server
// is down, with the command that starts it.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	finsql "github.com/finsync/finsync/sql"
)

// Options are the connection options for a new database named after the test.
func Options(t testing.TB) clickhouse.Options {
	addr := os.Getenv("FINSYNC_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:19000"
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return clickhouse.Options{Addr: addr, Database: "test_" + name + "_" + hex.EncodeToString(suffix)}
}

// NewDB creates and migrates a database of its own for the test and drops
// it at the end.
func NewDB(t testing.TB) *clickhouse.DB {
	t.Helper()
	opts := Options(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil); err != nil {
		t.Fatalf("migrating a test database (is the server up? make clickhouse): %v", err)
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		DropDatabase(t, opts)
	})
	return db
}

// DropDatabase drops opts.Database, for tests that create databases
// themselves (migrations, the CLI).
func DropDatabase(t testing.TB, opts clickhouse.Options) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := clickhouse.Open(ctx, clickhouse.Options{Addr: opts.Addr, Database: "system"})
	if err != nil {
		t.Errorf("dropping test database: %v", err)
		return
	}
	defer db.Close()
	if err := db.Exec(ctx, "DROP DATABASE IF EXISTS `"+opts.Database+"`"); err != nil {
		t.Errorf("dropping test database: %v", err)
	}
}
