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
	"github.com/finsync/finsync/transform"
)

// previousRelease is sql/ as the release before 0008 shipped it: the files
// 0008 changed as they were then (their views join unaliased subqueries,
// which current ClickHouse refuses), the others as they are. Their
// checksums are the release's only after recordReleasedChecksums.
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

// recordReleasedChecksums writes, for each file of testdata/migrations-before-0008,
// the checksum the previous release recorded when it applied that file:
// the one the current file names in its supersedes line. The fixtures are
// the released statements, but their comments no longer cite a document
// that was never in the repository, so their own checksums differ.
func recordReleasedChecksums(t *testing.T, ctx context.Context, opts clickhouse.Options) {
	t.Helper()
	names, err := fs.Glob(os.DirFS("testdata/migrations-before-0008"), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range names {
		b, err := fs.ReadFile(finsql.Files, name)
		if err != nil {
			t.Fatal(err)
		}
		var released []string
		for _, l := range strings.Split(string(b), "\n") {
			if sum, ok := strings.CutPrefix(l, "-- finsync:supersedes "); ok {
				released = append(released, strings.TrimSpace(sum))
			}
		}
		if len(released) != 1 {
			t.Fatalf("sql/%s names %d superseded checksums, want the released one", name, len(released))
		}
		version, _, _ := strings.Cut(name, "_")
		if err := db.Conn().Exec(ctx, "INSERT INTO "+clickhouse.MigrationsTable+" (version, name, checksum, applied_at) "+
			"SELECT '"+version+"', '"+name+"', '"+released[0]+"', now()"); err != nil {
			t.Fatal(err)
		}
	}
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
	recordReleasedChecksums(t, ctx, opts)
	res, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil)
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	if want := filesFrom(t, "0008"); strings.Join(res.Applied, ",") != strings.Join(want, ",") {
		t.Fatalf("upgrade applied %v, want %v", res.Applied, want)
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

// filesFrom are the names of sql/'s migration files from version on.
func filesFrom(t *testing.T, version string) []string {
	t.Helper()
	names, err := fs.Glob(finsql.Files, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if n >= version {
			out = append(out, n)
		}
	}
	return out
}

// releaseBefore is sql/ as the release before version shipped it (files
// older than version, as they are now).
func releaseBefore(t *testing.T, version string) fs.FS {
	t.Helper()
	files := fstest.MapFS{}
	names, err := fs.Glob(finsql.Files, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name >= version {
			continue
		}
		b, err := fs.ReadFile(finsql.Files, name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: b}
	}
	return files
}

// TestMigrateUpgradesToMoneyPerCurrency: a warehouse of the release before
// 0009 whose monthly cash flow adds SEK and EUR upgrades with `finsync
// migrate`: the view then keeps the currencies apart, the FinGoal ledger
// keeps its rows (with an empty currency: they predate the column) and the
// schema matches the Arrow schema again.
func TestMigrateUpgradesToMoneyPerCurrency(t *testing.T) {
	ctx := context.Background()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	if _, err := clickhouse.Migrate(ctx, opts, releaseBefore(t, "0009"), nil); err != nil {
		t.Fatal(err)
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// INSERT ... SELECT: the native protocol sends no client data for it.
	for _, q := range []string{
		`INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount, currency, category)
			SELECT 'fimento', 'bank', 'p1', 't1', toDate('2026-11-03'), toDecimal64(-10.5, 4), 'SEK', 'groceries' UNION ALL
			SELECT 'fimento', 'bank', 'p1', 't2', toDate('2026-11-04'), toDecimal64(-2.25, 4), 'EUR', 'groceries'`,
		`INSERT INTO enrichment_submissions (provider, tenant, source_provider, source_tenant, user_id, transaction_id, uid, status)
			SELECT 'fingoal', 'fg', 'fimento', 'bank', 'p1', 't1', 'uid-1', 'submitted'`,
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(q string) string {
		t.Helper()
		r, err := db.Conn().Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return strings.Join(out, "; ")
	}
	const cashflow = "SELECT concat(currency, ' ', toString(spending), ' ', toString(transactions)) FROM v_monthly_cashflow ORDER BY currency"
	if got := rows("SELECT concat(toString(spending), ' ', toString(transactions)) FROM v_monthly_cashflow"); got != "-12.7500 2" {
		t.Fatalf("before 0009 the view added SEK and EUR into %q; the test proves nothing", got)
	}

	res, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil)
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	if want := filesFrom(t, "0009"); strings.Join(res.Applied, ",") != strings.Join(want, ",") {
		t.Fatalf("upgrade applied %v, want %v", res.Applied, want)
	}
	if err := db.CheckSchema(ctx, transform.Tables()); err != nil {
		t.Fatal(err)
	}
	if got, want := rows(cashflow), "EUR -2.2500 1; SEK -10.5000 1"; got != want {
		t.Errorf("v_monthly_cashflow after the upgrade: %q, want %q", got, want)
	}
	if got := rows("SELECT concat(transaction_id, ' ', uid, ' [', currency, ']') FROM enrichment_submissions FINAL"); got != "t1 uid-1 []" {
		t.Errorf("the ledger after the upgrade: %q", got)
	}
}
