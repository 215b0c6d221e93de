package clickhouse

import (
	"strings"
	"testing"

	finsql "github.com/finsync/finsync/sql"
)

// The migrations of sql/ as cluster mode runs them: every statement but
// ALTER ON CLUSTER, with qualified names; a data table becomes a replicated local
// table per shard and a Distributed table of its name; the pipeline's
// tables and contracts are replicated whole; a view's IN subquery over a
// sharded table reads the shard's local table.
func TestClusterDDL(t *testing.T) {
	migrations, err := readMigrations(finsql.Files)
	if err != nil {
		t.Fatal(err)
	}
	known := createdNames(migrations)
	out := map[string][]string{} // first line of the statement → what it became
	for _, m := range migrations {
		for _, st := range m.statements {
			stmts, err := clusterDDL(st.text, "wh", "c1", known)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range stmts {
				if !strings.Contains(s+" ", " ON CLUSTER `c1` ") && !strings.HasPrefix(s, alterPrefix) {
					t.Errorf("no ON CLUSTER: %s", s)
				}
				for _, name := range []string{"transactions", "insights", "segment_members", "contracts", "current_segment_members"} {
					if strings.Contains(s, "FROM "+name+" ") || strings.Contains(s, "FROM "+name+"\n") {
						t.Errorf("unqualified %s: %s", name, s)
					}
				}
			}
			out[firstLine(st.text)] = stmts
		}
	}
	check := func(first string, want ...string) {
		t.Helper()
		got := strings.Join(out[first], "\n;\n")
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s\nbecame\n%s\nwithout %q", first, got, w)
			}
		}
	}
	check("CREATE TABLE IF NOT EXISTS transactions (",
		"CREATE TABLE IF NOT EXISTS `wh`.`transactions_local` ON CLUSTER `c1` (",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wh/transactions_local', '{replica}', _version) PARTITION BY toYYYYMM(booking_date)",
		"CREATE TABLE IF NOT EXISTS `wh`.`transactions` ON CLUSTER `c1` (",
		"ENGINE = Distributed('c1', 'wh', 'transactions_local', cityHash64(provider, tenant, user_id))")
	check("CREATE TABLE IF NOT EXISTS enrichment_submissions (", "cityHash64(source_provider, source_tenant, user_id)")
	for _, whole := range []string{"subjects", "etl_state", "etl_runs", "etl_rejects", "contracts"} {
		first := "CREATE TABLE IF NOT EXISTS " + whole + " ("
		if len(out[first]) != 1 {
			t.Errorf("%s: %d statements, want one replicated table", whole, len(out[first]))
		}
		check(first, "ReplicatedReplacingMergeTree('/clickhouse/tables/all/wh/"+whole+"', '{replica}', _version)")
	}
	// An ALTER is left to DB.Alter, never ON CLUSTER.
	check("ALTER TABLE subjects MODIFY COLUMN source String DEFAULT 'insert'",
		alterPrefix+"subjects MODIFY COLUMN source String DEFAULT 'insert'")
	check("CREATE VIEW IF NOT EXISTS v_insights AS",
		"FROM `wh`.`insights` FINAL\nWHERE", "FROM `wh`.`insights_local` FINAL\n        GROUP BY")
	// An IN over a view runs where the view does: no local table.
	check("CREATE VIEW IF NOT EXISTS latest_segment_members AS", "FROM `wh`.`current_segment_members`\n    GROUP BY")
	if s := strings.Join(out["CREATE VIEW IF NOT EXISTS latest_segment_members AS"], ""); strings.Contains(s, "_local") {
		t.Errorf("latest_segment_members reads a local table: %s", s)
	}

	for _, tc := range []struct{ stmt, want string }{
		{"SELECT * FROM x WHERE a IN (SELECT a FROM transactions)", "SELECT * FROM x WHERE a IN (SELECT a FROM `wh`.`transactions`)"},
		{"SELECT * FROM transactions WHERE a GLOBAL IN (SELECT a FROM transactions)", "SELECT * FROM `wh`.`transactions` WHERE a GLOBAL IN (SELECT a FROM `wh`.`transactions`)"},
		{"SELECT * FROM transactions ANY LEFT JOIN accounts USING (a)", "SELECT * FROM `wh`.`transactions` ANY LEFT JOIN `wh`.`accounts_local` USING (a)"},
		{"SELECT toYear(booking_date) FROM system.one, numbers(3)", "SELECT toYear(booking_date) FROM system.one, numbers(3)"},
	} {
		if got := qualifySelect(tc.stmt, lex(tc.stmt), "wh", known); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.stmt, got, tc.want)
		}
	}
	if _, err := clusterDDL("INSERT INTO transactions (a) VALUES (1)", "wh", "c1", known); err == nil {
		t.Error("an INSERT in a migration was translated")
	}
}
