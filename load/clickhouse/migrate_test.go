package clickhouse_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	finsql "github.com/finsync/finsync/sql"
	"github.com/finsync/finsync/transform"
)

func TestSchemaMatchesServer(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	if err := db.CheckSchema(ctx, transform.Tables()); err != nil {
		t.Fatal(err)
	}
	// The check must notice drift, or it proves nothing.
	if err := db.Exec(ctx, "ALTER TABLE transactions MODIFY COLUMN currency FixedString(3)"); err != nil {
		t.Fatal(err)
	}
	err := db.CheckSchema(ctx, transform.Tables())
	if err == nil || !strings.Contains(err.Error(), "transactions column 9: server has currency FixedString(3), Arrow schema has currency String") {
		t.Fatalf("drift not reported as expected: %v", err)
	}
}

func TestMigrateTwiceChangesNothing(t *testing.T) {
	db := chtest.NewDB(t) // migrated once
	ctx := context.Background()
	before := showCreate(t, db)
	res, err := clickhouse.Migrate(ctx, optionsOf(db), finsql.Files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 {
		t.Errorf("second migrate applied %v", res.Applied)
	}
	if after := showCreate(t, db); after != before {
		t.Errorf("schema changed:\nbefore %s\nafter %s", before, after)
	}
	if len(transform.Tables()) != 12 {
		t.Errorf("the common schema has %d tables, want 12", len(transform.Tables()))
	}
}

func TestMigrateErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		steps []fstest.MapFS // applied one after the other
		want  string         // in the last step's error
	}{
		{
			name: "bad statement names file and line",
			steps: []fstest.MapFS{{
				"0001_a.sql": {Data: []byte("CREATE TABLE a (x UInt8) ENGINE = Memory;\n\n-- note\nCREATE TABLE b (x Nope) ENGINE = Memory;\n")},
			}},
			want: "migration 0001_a.sql, statement at line 4 (CREATE TABLE b (x Nope) ENGINE = Memory)",
		},
		{
			name: "changed after apply",
			steps: []fstest.MapFS{
				{"0001_a.sql": {Data: []byte("CREATE TABLE a (x UInt8) ENGINE = Memory;")}},
				{"0001_a.sql": {Data: []byte("CREATE TABLE a (x UInt16) ENGINE = Memory;")}},
			},
			want: "migration 0001_a.sql was changed after it was applied",
		},
		{
			name:  "file name without version",
			steps: []fstest.MapFS{{"base.sql": {Data: []byte("SELECT 1;")}}},
			want:  "name must start with a number",
		},
		{
			name: "two files, one version",
			steps: []fstest.MapFS{{
				"0001_a.sql": {Data: []byte("SELECT 1;")},
				"0001_b.sql": {Data: []byte("SELECT 1;")},
			}},
			want: "share version 0001",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := chtest.Options(t)
			t.Cleanup(func() { chtest.DropDatabase(t, opts) })
			var err error
			for _, fs := range tc.steps {
				_, err = clickhouse.Migrate(ctx, opts, fs, nil)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMigrateSkipsFilesForNewerServers(t *testing.T) {
	ctx := context.Background()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	files := fstest.MapFS{
		"0001_base.sql":   {Data: []byte("CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory;")},
		"0002_future.sql": {Data: []byte("-- finsync:min-server 999.1\nCREATE TABLE f (x Nope) ENGINE = Memory;")},
	}
	res, err := clickhouse.Migrate(ctx, opts, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Applied, ",") != "0001_base.sql" || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "needs ClickHouse 999.1.0") {
		t.Fatalf("applied %v, skipped %v", res.Applied, res.Skipped)
	}
	// Skipped files are not recorded, so they apply once the server is new enough.
	res, err = clickhouse.Migrate(ctx, opts, files, nil)
	if err != nil || len(res.Applied) != 0 || len(res.Skipped) != 1 {
		t.Fatalf("second run: applied %v, skipped %v, err %v", res.Applied, res.Skipped, err)
	}
}

func TestOpenMissingDatabaseSaysMigrate(t *testing.T) {
	opts := chtest.Options(t)
	_, err := clickhouse.Open(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "run `finsync migrate` first") {
		t.Fatalf("got %v", err)
	}
}

func TestOpenUnreachableNamesAddress(t *testing.T) {
	opts := clickhouse.Options{Addr: "127.0.0.1:1", Database: "x"}
	_, err := clickhouse.Open(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "deploy/clickhouse/local.sh start") {
		t.Fatalf("got %v", err)
	}
}

func showCreate(t *testing.T, db *clickhouse.DB) string {
	t.Helper()
	var out []string
	for _, tb := range transform.Tables() {
		var ddl string
		if err := db.Conn().QueryRow(context.Background(), "SHOW CREATE TABLE "+tb.Name).Scan(&ddl); err != nil {
			t.Fatal(err)
		}
		out = append(out, ddl)
	}
	return strings.Join(out, "\n")
}

func optionsOf(db *clickhouse.DB) clickhouse.Options {
	return clickhouse.Options{Addr: db.Addr(), Database: db.Database()}
}
