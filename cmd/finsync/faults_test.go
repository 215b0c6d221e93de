package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/finsync/finsync/extract/finapi"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// faultMatrix is the whole fault matrix of issue 9, with a fixed seed: one
// under which every kind of fault is drawn at least once in the demo.
const faultMatrix = "429:0.1,500:0.05,slow:0.05,expire:0.02,malformed:0.01,truncate:0.01,dup:0.05,seed:8"

// naturalKeys are the columns that identify a row of each data table
// across two loads (segment_members without job_id: every run creates a
// job of its own), and the column whose values must agree.
var naturalKeys = map[string]struct{ key, value string }{
	"transactions":           {"provider, tenant, user_id, transaction_id", "toString(amount)"},
	"accounts":               {"provider, tenant, user_id, account_id", "toString(balance)"},
	"account_balances":       {"provider, tenant, user_id, account_id, granularity, toString(balance_date)", "toString(balance)"},
	"contracts":              {"provider, tenant, user_id, contract_id", "toString(amount)"},
	"segment_members":        {"provider, tenant, segment_type, user_id, account_id", "toString(amount)"},
	"insights":               {"provider, tenant, user_id, module, insight_id, metric, period", "concat(toString(value), ' ', value_text)"},
	"user_tags":              {"provider, tenant, user_id, tag", "state"},
	"enrichment_submissions": {"provider, tenant, source_provider, source_tenant, user_id, transaction_id", "status"},
}

// queryStringsOf is queryStrings on the database of opts.
func queryStringsOf(t *testing.T, opts clickhouse.Options, q string) [][]string {
	t.Helper()
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return queryStrings(t, db, q)
}

// loadedRow is one row of a data table: its table/provider, and the value
// that must agree between the loads.
type loadedRow struct{ group, value, txIDs string }

// The whole fault matrix on every sandbox at once: every stream of the
// demo (a stream whose run a fault ended partial run again, as its next
// tick would) ends with the fault-free warehouse, row for row (natural keys and
// amounts), except exactly the records the runs rejected. Per table and
// provider the rows missing are as many as the rejects reported there;
// nothing is only in the faulty warehouse (no duplicate, no invention);
// every stored reject has its raw payload and reason, and every run's
// rejects are all stored. Each fault kind was really injected.
func TestFaultMatrixLosesNothing(t *testing.T) {
	var injected sandboxkit.Counts
	load := func(matrix string) warehouse {
		sb, err := startSandbox("127.0.0.1:0", sandboxOptions{users: 2, companies: 1, months: 3, seed: 1, faults: matrix})
		if err != nil {
			t.Fatal(err)
		}
		defer sb.close()
		opts := chtest.Options(t)
		t.Cleanup(func() { chtest.DropDatabase(t, opts) })
		// Pages of 40 categorizations: several per user, so that pages can
		// repeat records (dup) and more bodies can be cut off.
		env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
			"FINSYNC_FINO_PAGE_SIZE": "40"}
		sb.into(env)
		code, stdout, stderr := run(t, env, "demo")
		if code != 0 && matrix == "" {
			t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
		}
		// A fault that outlasts the retries ends a run partial (or
		// failed): the next run of the stream resumes, as the daemon's
		// next tick would.
		for attempt := 1; ; attempt++ {
			unfinished := queryStringsOf(t, opts, `SELECT stream, argMax(status, started_at) AS last, argMax(error, started_at)
				FROM etl_runs FINAL GROUP BY stream, tenant HAVING last != 'success'`)
			if len(unfinished) == 0 {
				break
			}
			if attempt > 3 {
				t.Fatalf("streams still not successful after 3 more runs: %v", unfinished)
			}
			done := map[string]bool{}
			for _, u := range unfinished {
				t.Logf("faults %q: %s ended %s (%.200s); running it again", matrix, u[0], u[1], u[2])
				if done[u[0]] {
					continue
				}
				done[u[0]] = true
				run(t, env, "once", "-stream", u[0])
			}
		}
		for _, c := range []sandboxkit.Counts{sb.fino().Injected(), sb.finapi().Injected(), sb.fimento().Injected(), sb.fingoal().Injected()} {
			injected.RateLimited += c.RateLimited
			injected.ServerErrors += c.ServerErrors
			injected.TokensExpired += c.TokensExpired
			injected.Malformed += c.Malformed
			injected.Truncated += c.Truncated
			injected.Duplicated += c.Duplicated
			injected.Slowed += c.Slowed
		}
		return readWarehouse(t, opts)
	}
	clean := load("")
	injected = sandboxkit.Counts{}
	faulty := load(faultMatrix)
	if len(clean.rejects) != 0 {
		t.Fatalf("the fault-free demo has rejects: %v", clean.rejects)
	}

	res := compareLoads(t, clean, faulty)

	// The faults did happen, every kind of them.
	for kind, n := range map[string]int64{"429": injected.RateLimited, "500": injected.ServerErrors, "slow": injected.Slowed,
		"expire": injected.TokensExpired, "malformed": injected.Malformed, "truncate": injected.Truncated, "dup": injected.Duplicated} {
		if n == 0 {
			t.Errorf("fault %s was never injected: the matrix proves nothing about it", kind)
		}
	}
	var retries uint64
	faulty.db.Conn().QueryRow(context.Background(), "SELECT sum(retries) FROM etl_runs FINAL").Scan(&retries)
	if retries == 0 {
		t.Errorf("no run recorded a retry")
	}
	t.Logf("fault matrix %s over %d runs: injected %+v; %d retries; %d rows compared; %d only with faults; "+
		"missing exactly the rejected (and %d FinGoal submissions left pending by an ambiguous answer, reported by %d runs): %s",
		faultMatrix, faulty.runs, injected, retries, res.compared, res.invented, res.pending, res.told, strings.Join(res.differ, ", "))
}

// warehouse is what a comparison of two loads needs of one database.
type warehouse struct {
	rows    map[string]loadedRow // key → row
	rejects map[string]int       // table/provider → records rejected (each once, however many runs rejected it)
	// rejectedMembers are the finAPI members (tenant|segment|user)
	// some job rejected: the Malformed fault picks them by job.
	rejectedMembers map[string]bool
	// rejectedMonths are the finoOS analytics months (tenant|module|user|period)
	// rejected: one month record holds several insight rows.
	rejectedMonths map[string]bool
	db             *clickhouse.DB
	runs           int
}

// readWarehouse reads the data tables and rejects of the database of
// opts, and checks that every stored reject has its payload and reason and
// that every run (but a killed one) stored the rejects it reported.
func readWarehouse(t *testing.T, opts clickhouse.Options) warehouse {
	t.Helper()
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := warehouse{rows: map[string]loadedRow{}, rejects: map[string]int{}, db: db}
	for table, k := range naturalKeys {
		txIDs := "''"
		if table == "insights" {
			txIDs = "arrayStringConcat(transaction_ids, ',')"
		}
		for _, row := range queryStrings(t, db, fmt.Sprintf("SELECT provider, concat(%s), %s, %s FROM %s FINAL",
			strings.ReplaceAll(k.key, ", ", ", '|', "), k.value, txIDs, table)) {
			w.rows[table+"|"+row[1]] = loadedRow{group: table + "/" + row[0], value: row[2], txIDs: row[3]}
		}
	}
	for _, row := range queryStrings(t, db, "SELECT target_table, provider, toString(uniqExact(tenant, record_key)), toString(countIf(raw = '' OR reason = '')) FROM etl_rejects FINAL GROUP BY target_table, provider") {
		var n int
		fmt.Sscan(row[2], &n)
		w.rejects[row[0]+"/"+row[1]] = n
		if row[3] != "0" && row[0] != "segment_members" { // a lost finAPI job has no record
			t.Errorf("%s rejects of %s/%s without raw payload or reason", row[3], row[0], row[1])
		}
	}
	w.rejectedMembers = map[string]bool{}
	for _, row := range queryStrings(t, db, `SELECT tenant, stream, substring(record_key, position(record_key, '/') + 1)
		FROM etl_rejects FINAL WHERE target_table = 'segment_members' AND position(record_key, '/') > 0`) {
		w.rejectedMembers[row[0]+"|"+row[1]+"|"+row[2]] = true
	}
	w.rejectedMonths = map[string]bool{}
	for _, row := range queryStrings(t, db, `SELECT DISTINCT tenant, record_key FROM etl_rejects FINAL WHERE provider = 'fino' AND target_table = 'insights'`) {
		if f := strings.Split(row[1], "/"); len(f) == 4 { // module/user/period/hash
			w.rejectedMonths[row[0]+"|"+f[0]+"|"+f[1]+"|"+f[2]] = true
		}
	}
	// Every reject a run reported is stored: none collapsed into another
	// (a killed run reported none; a failed one's error names the INSERT
	// of etl_rejects that failed, as when ClickHouse was down).
	for _, row := range queryStrings(t, db, `SELECT stream, run_id, toString(rejects), toString(stored)
		FROM (SELECT stream, run_id, rejects FROM etl_runs FINAL WHERE status IN ('success', 'partial'))
		ANY LEFT JOIN (SELECT stream, run_id, count() AS stored FROM etl_rejects FINAL GROUP BY stream, run_id) USING (stream, run_id)`) {
		w.runs++
		if row[2] != row[3] {
			t.Errorf("run %s of %s reported %s rejects, etl_rejects holds %s", row[1], row[0], row[2], row[3])
		}
	}
	return w
}

// comparison is what compareLoads found.
type comparison struct {
	compared, invented, pending int
	told                        uint64   // runs saying FinGoal submissions stay pending
	differ                      []string // table/provider -missing, the missing all accounted for
}

// compareLoads checks that the faulty load is the clean one less exactly
// what its rejects account for, and reports each difference as an error.
func compareLoads(t *testing.T, clean, faulty warehouse) comparison {
	t.Helper()
	// Every row of the faulty load is the clean load's, with its values,
	// except FinGoal submissions whose POST got an ambiguous answer (a 5xx
	// or a cut-off body): FinGoal may have them, so they stay pending and
	// are not sent again (README, FinGoal enrichment), and their runs said
	// so in etl_runs.error.
	var invented []string
	pending := 0
	for k, r := range faulty.rows {
		c, ok := clean.rows[k]
		switch {
		case !ok:
			invented = append(invented, k)
		case r.group == "enrichment_submissions/fingoal" && r.value == "pending" && c.value == "submitted":
			pending++
		case c.value != r.value:
			t.Errorf("%s: %q with faults, %q without", k, r.value, c.value)
		}
	}
	var told uint64
	faulty.db.Conn().QueryRow(context.Background(), `SELECT count() FROM etl_runs FINAL WHERE stream = 'fingoal.enrichment'
		AND position(error, 'they stay pending (not resent)') > 0`).Scan(&told)
	if pending > 0 && told == 0 {
		t.Errorf("%d FinGoal submissions stay pending and no run's error says so", pending)
	}
	if len(invented) > 0 {
		sort.Strings(invented)
		t.Errorf("%d rows only in the faulty load (duplicates or inventions), e.g. %s", len(invented), invented[0])
	}
	// The rows missing from it, per table and provider.
	missing := map[string]int{}
	missingTx := map[string]bool{} // FinGoal transaction ids missing
	for k, c := range clean.rows {
		if _, ok := faulty.rows[k]; !ok {
			missing[c.group]++
			if c.group == "transactions/fingoal" {
				missingTx[k[strings.LastIndex(k, "|")+1:]] = true
			}
		}
	}
	// FinGoal enriches what the other providers loaded: a transaction
	// rejected upstream was never sent, so it is missing from the ledger,
	// and its enrichment from FinGoal's transactions; a finsight or tag
	// missing must be one of a missing enrichment.
	upstream := faulty.rejects["transactions/fino"] + faulty.rejects["transactions/fimento"]
	want := map[string]int{}
	for g, n := range faulty.rejects {
		if g != "segment_members/finapi" && g != "insights/fino" {
			want[g] = n
		}
	}
	// A finoOS analytics month rejected is missing all its insight rows.
	months := map[string]bool{}
	for k, c := range clean.rows {
		if _, ok := faulty.rows[k]; ok || c.group != "insights/fino" {
			continue
		}
		f := strings.Split(k, "|") // insights|fino|tenant|user|module|insight_id|metric|period
		month := f[2] + "|" + f[4] + "|" + f[3] + "|" + f[7]
		if faulty.rejectedMonths[month] {
			want[c.group]++
			months[month] = true
		} else {
			t.Errorf("%s is missing with faults and no rejected month explains it", k)
		}
	}
	for month := range faulty.rejectedMonths {
		if !months[month] {
			t.Errorf("analytics month %s was rejected, yet all its rows are there", month)
		}
	}
	// A finAPI member the Malformed fault corrupts is chosen by job (a
	// later job may serve it whole): each missing member must be one a
	// job rejected.
	segmentStream := map[string]string{}
	for _, seg := range finapi.Segments() {
		segmentStream[seg.Type] = seg.Stream
	}
	for k, c := range clean.rows {
		if _, ok := faulty.rows[k]; ok || c.group != "segment_members/finapi" {
			continue
		}
		f := strings.Split(k, "|") // segment_members|finapi|tenant|segment_type|user|account
		if faulty.rejectedMembers[f[2]+"|"+segmentStream[f[3]]+"|"+f[4]] {
			want[c.group]++
		} else {
			t.Errorf("%s is missing with faults and no job rejected it", k)
		}
	}
	want["enrichment_submissions/fingoal"] += upstream
	want["transactions/fingoal"] += missing["enrichment_submissions/fingoal"] + pending
	for k, c := range clean.rows {
		if _, ok := faulty.rows[k]; ok || (c.group != "insights/fingoal" && c.group != "user_tags/fingoal") {
			continue
		}
		explained := false
		for _, id := range strings.Split(c.txIDs, ",") {
			explained = explained || missingTx[id]
		}
		if c.group == "user_tags/fingoal" {
			explained = len(missingTx) > 0 // a user's tags come from all its transactions
		}
		if explained {
			want[c.group]++
		} else {
			t.Errorf("%s is missing with faults and no missing enrichment explains it", k)
		}
	}
	groups := map[string]bool{}
	for g := range missing {
		groups[g] = true
	}
	for g := range want {
		groups[g] = true
	}
	var differ []string
	for g := range groups {
		if missing[g] != want[g] {
			t.Errorf("%s: %d rows missing with faults, %d rejects (or rejected upstream) account for", g, missing[g], want[g])
		}
		if missing[g] > 0 {
			differ = append(differ, fmt.Sprintf("%s -%d", g, missing[g]))
		}
	}
	sort.Strings(differ)
	return comparison{compared: len(clean.rows), invented: len(invented), pending: pending, told: told, differ: differ}
}
