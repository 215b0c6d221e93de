package clickhouse_test

import (
	"context"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	finsql "github.com/finsync/finsync/sql"
)

// previousRelease is sql/ as the release before 0008 shipped it: the files
// 0008 changed as they were then (their views join unaliased subqueries,
// which current ClickHouse refuses), the others as they are.
func previousRelease(t *testing.T) fs.FS {
	t.Helper()
	const changed = "testdata/migrations-before-0008"
	files := fstest.MapFS{}
	for _, dir := range []fs.FS{finsql.Files, os.DirFS(changed)} {
		names, err := fs.Glob(dir, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if name >= "0008" {
				continue
			}
			b, err := fs.ReadFile(dir, name)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = &fstest.MapFile{Data: b}
		}
	}
	return files
}

// TestMigrateUpgradesPreviousRelease: a warehouse the previous release
// migrated upgrades with `finsync migrate` alone, and every view answers.
func TestMigrateUpgradesPreviousRelease(t *testing.T) {
	ctx := context.Background()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	if _, err := clickhouse.Migrate(ctx, opts, previousRelease(t), nil); err != nil {
		t.Fatal(err)
	}
	res, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil)
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	all, err := fs.Glob(finsql.Files, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	since := all[slices.Index(all, "0008_join_aliases.sql"):]
	if !slices.Equal(res.Applied, since) {
		t.Fatalf("upgrade applied %v, want %v (0008 and the files after it)", res.Applied, since)
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if pending, err := db.Pending(ctx, finsql.Files); err != nil || len(pending) != 0 {
		t.Fatalf("pending after the upgrade: %v %v", pending, err)
	}
	if res, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil); err != nil || len(res.Applied) != 0 {
		t.Fatalf("migrate after the upgrade: applied %v, %v", res.Applied, err)
	}
	rows, err := db.Conn().Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var views []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	rows.Close()
	if len(views) < 10 {
		t.Fatalf("%d views after the upgrade: %v", len(views), views)
	}
	for _, v := range views {
		var n uint64
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM "+v).Scan(&n); err != nil {
			t.Errorf("view %s after the upgrade: %v", v, err)
		}
	}
}

// TestUpgradeOnModernClickHouse: on 26.x, the views the previous release
// stored (created by a server of before joined_subquery_requires_alias)
// fail on every read, and 0008's statements replace them: every view then
// answers.
func TestUpgradeOnModernClickHouse(t *testing.T) {
	modern := chtest.Modern(t)
	const database = "upgrade"
	run := func(sql string) string {
		t.Helper()
		out, err := modern.Query(database, sql, "TabSeparated")
		if err != nil {
			t.Fatalf("%s: %v\n%s", modern.Name(), err, sql)
		}
		return out
	}
	if _, err := modern.Query("", "CREATE DATABASE "+database, ""); err != nil {
		t.Fatal(err)
	}
	_, old, err := clickhouse.MigrationStatements(previousRelease(t))
	if err != nil {
		t.Fatal(err)
	}
	run("SET joined_subquery_requires_alias = 0") // as an older server stored them
	for _, file := range old {
		for _, st := range file {
			run(st)
		}
	}
	run("SET joined_subquery_requires_alias = 1") // the default since 20.x
	for _, v := range []string{"transactions_enriched", "v_transactions", "v_user_tags_current"} {
		_, err := modern.Query(database, "SELECT count() FROM "+v, "TabSeparated")
		if err == nil || !strings.Contains(err.Error(), "ALIAS_REQUIRED") {
			t.Fatalf("the previous release's %s on %s: %v (want ALIAS_REQUIRED)", v, modern.Name(), err)
		}
	}
	names, current, err := clickhouse.MigrationStatements(finsql.Files)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(names, "0008_join_aliases.sql")
	if i < 0 {
		t.Fatal("no 0008_join_aliases.sql")
	}
	for _, file := range current[i:] {
		for _, st := range file {
			run(st)
		}
	}
	views := strings.Fields(run("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View' ORDER BY name"))
	if len(views) < 10 {
		t.Fatalf("%d views after the upgrade: %v", len(views), views)
	}
	for _, v := range views {
		run("SELECT count() FROM " + v)
	}
}
