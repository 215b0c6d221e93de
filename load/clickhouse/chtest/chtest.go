// Package chtest gives tests a real, private ClickHouse database: a fresh
// database on the server at FINSYNC_CLICKHOUSE_ADDR (default the local
// server of deploy/clickhouse/local.sh), migrated, and dropped when the test
// ends. There is no mock: a test that needs ClickHouse fails when the server
// is down, with the command that starts it.
//
// With FINSYNC_CLICKHOUSE_CLUSTER set as well, the databases are created in
// cluster mode on that cluster (make test-cluster runs tests so).
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
	return clickhouse.Options{Addr: addr, Database: "test_" + name + "_" + hex.EncodeToString(suffix),
		Cluster: os.Getenv("FINSYNC_CLICKHOUSE_CLUSTER")}
}

// ClusterNodes are the native addresses of every node of the test cluster
// (FINSYNC_TEST_CLUSTER_NODES, comma-separated; default the nodes of
// deploy/clickhouse/cluster.sh). A test that needs the cluster is skipped
// unless FINSYNC_CLICKHOUSE_CLUSTER is set: make test-cluster sets it.
func ClusterNodes(t testing.TB) []string {
	t.Helper()
	if os.Getenv("FINSYNC_CLICKHOUSE_CLUSTER") == "" {
		t.Skip("needs a ClickHouse cluster: make test-cluster")
	}
	nodes := os.Getenv("FINSYNC_TEST_CLUSTER_NODES")
	if nodes == "" {
		nodes = "127.0.0.1:19101,127.0.0.1:19102,127.0.0.1:19103"
	}
	return strings.Split(nodes, ",")
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
	drop := "DROP DATABASE IF EXISTS `" + opts.Database + "`"
	if opts.Cluster != "" {
		drop += " ON CLUSTER `" + opts.Cluster + "`"
	}
	if err := db.Exec(ctx, drop); err != nil {
		t.Errorf("dropping test database: %v", err)
	}
}
