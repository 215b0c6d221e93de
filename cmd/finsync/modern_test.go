package main

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	finsql "github.com/finsync/finsync/sql"
	"github.com/finsync/finsync/transform"
)

// TestEveryStatementOnModernClickHouse proves every statement finsync can
// send on a current ClickHouse (26.x, chDB in-process) as well as on the
// 18.16 server the rest of the tests use, with the same answers.
//
// The list of statements is what finsync itself sent, recorded
// (clickhouse.Options.Trace) while it did everything it does to a
// warehouse on 18.16: migrate, the demo's sync of every provider twice
// (so the second writes new versions of the same keys) and a
// reconciliation of fino.transactions, the demo's
// summary, examples and report, every guide question, streams and the
// daemon's reads, a revocation with FinGoal copies and the expiry of
// segments. The Grafana dashboard's queries are added from its file. Each
// statement then runs, as text, on a database of the same contents on both
// engines: the migrations in order to create it, the loader's INSERTs to
// fill it with every row of the scenario (in three parts ordered by
// _version, so FINAL has versions to collapse), the reads compared
// (column names, types, rows; order where the query orders), the writes
// applied on both and the tables compared after them.
//
// A statement cannot be missed: every SQL text in finsync's code must be
// part of a recorded statement (TestSQLInCodeIsChecked below does the
// bookkeeping), so a new query that this scenario does not send fails.
func TestEveryStatementOnModernClickHouse(t *testing.T) {
	modern := chtest.Modern(t)
	old := chtest.Server(t)
	started := time.Now()
	rec := &recorder{}
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	scenario := opts.Database

	// 1. What finsync sends, on 18.16.
	// A few malformed records, so that rejects are loaded too.
	sb, err := startSandbox("127.0.0.1:0", sandboxOptions{users: 2, companies: 1, months: 3, seed: 7, faults: "malformed:0.02,seed:3"})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.close()
	env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": scenario, "FINSYNC_LOG_LEVEL": "warn"}
	sb.into(env)
	traced := func(phase string, args ...string) {
		t.Helper()
		rec.phase(phase)
		var out, errs strings.Builder
		a := &app{stdout: &out, stderr: &errs, lookup: lookupFrom(env), trace: rec.trace}
		if args[0] == "demo" {
			args = append(args, "-report", filepath.Join(t.TempDir(), "report.html"))
		}
		if code := a.main(context.Background(), args); code != 0 {
			t.Fatalf("finsync %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out.String(), errs.String())
		}
	}
	traced(phaseMigrate, "migrate")
	traced(phaseReads, "demo")
	traced(phaseReads, "demo")
	// A reconciliation counts the natural keys before and after it loads.
	traced(phaseReads, "once", "-stream", "fino.transactions", "-reconcile")
	traced(phaseReads, "guide", "-rows", "1000")
	traced(phaseReads, "streams")
	traced(phaseReads, "report", "-o", filepath.Join(t.TempDir(), "report.html"))
	ctx := context.Background()
	plain, err := clickhouse.Open(ctx, opts) // the test's own queries, not recorded
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	topts := opts
	topts.Trace = rec.trace
	db, err := clickhouse.Open(ctx, topts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	// The daemon's reads at start-up and for /readyz and the webhooks.
	_, err = state.LastSuccess(ctx)
	noErr(t, err)
	_, err = state.RunCounts(ctx, time.Now().Add(-24*time.Hour)) // the status page
	noErr(t, err)
	_, err = state.LastRuns(ctx) // the status page's tenant lines
	noErr(t, err)
	_, err = db.Pending(ctx, finsql.Files)
	noErr(t, err)
	_, err = state.JobStatus(ctx, "fingoal.enrichment", "default", "no-such-batch")
	noErr(t, err)
	// A fino user with FinGoal copies is revoked; expiry meets a month
	// partition wholly expired and one partly expired (rows added below).
	victim := firstRow(t, plain, "SELECT source_tenant, user_id FROM enrichment_submissions FINAL WHERE source_provider = 'fino' AND uid != '' ORDER BY source_tenant, user_id LIMIT 1")
	noErr(t, state.AddSubjects(ctx, []extract.Subject{{Provider: "fino", Tenant: victim[0], Kind: "user", ID: victim[1], Source: clickhouse.SourceInsert, Status: extract.SubjectRevoked}}))
	addOldSegments(t, plain)

	// 2. The same database on both engines: the migrations in order, then
	// every row, then the reads.
	check := &modernCheck{t: t, engines: []chtest.Engine{old, modern}, from: scenario, to: scenario + "_c"}
	t.Cleanup(func() { old.Query("", "DROP DATABASE IF EXISTS "+quoteIdent(check.to), "") })
	for _, s := range rec.statements(phaseMigrate) {
		check.statement(s)
	}
	reads := rec.statements(phaseReads)
	check.copyRows(reads)

	// 3. The destructive work, recorded after the copy so that its reads
	// see on both engines what they saw on 18.16.
	rec.phase(phaseWrites)
	revoked, err := state.RevokedWithRows(ctx, "fino", victim[0], true)
	if err != nil || len(revoked) == 0 {
		t.Fatalf("the revoked user with rows is not found: %v %v", revoked, err)
	}
	_, err = state.DeleteSubjectRows(ctx, "fino", victim[0], victim[1])
	noErr(t, err)
	_, err = state.RevokedWithRows(ctx, "fino", victim[0], true)
	noErr(t, err)
	ex, err := db.DeleteExpiredSegments(ctx, expiryDay)
	if err != nil || len(ex.Partitions) != 1 || ex.Rows == 0 {
		t.Fatalf("expiry on %s: %+v %v (want one partition dropped and rows deleted)", expiryDay, ex, err)
	}
	// The demo's leases, released: lapsed an hour from now.
	if n, err := state.DeleteLapsedLeases(ctx, "fino.transactions", time.Now().Add(time.Hour), 1); err != nil || n == 0 {
		t.Fatalf("deleting the demo's lapsed leases: %d rows, %v", n, err)
	}
	rec.phase("")

	// Mutations wait for merges, stopped until the reads are done: the
	// demo's deletions (a subject its provider revoked) and their polls
	// run after.
	var mutations []recorded
	for _, s := range reads {
		if strings.HasPrefix(s.text, "ALTER") || strings.Contains(s.text, "system.mutations") {
			mutations = append(mutations, s)
			continue
		}
		check.statement(s)
	}
	for _, s := range grafanaStatements(t, scenario, plain) {
		check.statement(recorded{text: s})
	}
	check.startMerges()
	for _, s := range append(mutations, rec.statements(phaseWrites)...) {
		check.statement(s)
	}
	check.compareTables()
	check.insertsCopied()

	// The one setting finsync sends (with cluster mode's INSERTs) exists on both.
	check.statement(recorded{text: "SELECT name FROM system.settings WHERE name = 'insert_distributed_sync'"})
	for _, q := range clusterReads {
		text, err := bindArgs(q, []any{"finsync"})
		noErr(t, err)
		check.statement(recorded{text: text})
	}

	// Literal coverage: every SQL text of the code is in a statement sent.
	sent := rec.texts() + strings.Join(clusterReads, "\x00")
	for _, lit := range sqlLiterals(t) {
		if !lit.in(sent) {
			t.Errorf("%s: SQL never sent in this check, so never proven on ClickHouse 26.x: add what sends it to TestEveryStatementOnModernClickHouse\n%s", lit.pos, lit.text)
		}
	}
	t.Logf("%d statements on %s and %s: %d same answer, %d explained differences (%s); %s",
		check.n, old.Name(), modern.Name(), check.same, check.explained, check.reasons(), time.Since(started).Round(time.Second))
}

const (
	phaseMigrate = "migrate" // the first migrate: replayed in order to create the database
	phaseReads   = "reads"   // everything up to the copy
	phaseWrites  = "writes"  // after the copy, replayed in order
)

// expiryDay is "today" for the expiry of the segment rows addOldSegments
// writes: 2025-12's only row expired, 2026-01 has one expired and one not.
var expiryDay = time.Date(2026, 1, 25, 0, 0, 0, 0, time.UTC)

// addOldSegments adds segment members of old jobs (untraced: the test's
// own rows, not finsync's statements).
func addOldSegments(t *testing.T, db *clickhouse.DB) {
	t.Helper()
	for _, created := range []string{"2025-12-01", "2026-01-05", "2026-01-20"} {
		err := db.Exec(context.Background(), `INSERT INTO segment_members (provider, tenant, segment_type, job_id, user_id, account_id, creation_date, expires_on,
			params, amount, metrics, raw, source_job_id, run_id, extracted_at, _version)
			SELECT provider, tenant, segment_type, concat('old-', ?), user_id, account_id, toDate(?), toDate(?) + 14,
				params, amount, metrics, raw, source_job_id, run_id, extracted_at, _version
			FROM segment_members FINAL WHERE creation_date > toDate('2026-06-01') ORDER BY user_id, account_id LIMIT 2`, created, created, created)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// recorder keeps what finsync sent, by phase.
type recorder struct {
	mu      sync.Mutex
	current string
	sent    []sentStatement
}

type sentStatement struct {
	phase, query string
	args         []any
	external     []externalTable
}

// externalTable is an external table sent with a query, as SQL: the
// check creates it in the compared database before the query runs.
type externalTable struct {
	name, structure string
	rows            []string // "(v1, v2, ...)"
}

// recorded is one statement as sent, its arguments bound.
type recorded struct {
	text     string
	external []externalTable
}

func (r *recorder) phase(p string) {
	r.mu.Lock()
	r.current = p
	r.mu.Unlock()
}

func (r *recorder) trace(query string, args []any, external []*ext.Table) {
	var tables []externalTable
	for _, x := range external {
		tbl := externalTable{name: x.Name(), structure: x.Structure()}
		block := x.Block()
		for i := range block.Rows() {
			vals := make([]string, len(block.Columns))
			for j, c := range block.Columns {
				lit, err := sqlLiteral(c.Row(i, false))
				if err != nil {
					panic(fmt.Sprintf("external table %s: %v", x.Name(), err))
				}
				vals[j] = lit
			}
			tbl.rows = append(tbl.rows, "("+strings.Join(vals, ", ")+")")
		}
		tables = append(tables, tbl)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, sentStatement{r.current, query, append([]any(nil), args...), tables})
}

// statements are the phase's statements with their arguments bound, in
// the order first sent, each once.
func (r *recorder) statements(phase string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []recorded
	for _, s := range r.sent {
		if s.phase != phase {
			continue
		}
		text, err := bindArgs(s.query, s.args)
		if err != nil {
			panic(fmt.Sprintf("binding %q: %v", s.query, err))
		}
		key := text + fmt.Sprint(s.external)
		if !seen[key] {
			seen[key] = true
			out = append(out, recorded{text, s.external})
		}
	}
	return out
}

// texts is every statement sent, unbound, for the literal coverage.
func (r *recorder) texts() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, s := range r.sent {
		b.WriteString(s.query)
		b.WriteByte(0)
	}
	return b.String()
}

// bindArgs binds positional arguments into query as clickhouse-go does
// (client-side, SQL literals), for the types finsync passes.
func bindArgs(query string, args []any) (string, error) {
	if len(args) == 0 {
		return query, nil
	}
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(query) {
				b.WriteByte(c)
				i++
				c = query[i]
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '?':
			if n >= len(args) {
				return "", fmt.Errorf("more ? than the %d arguments", len(args))
			}
			lit, err := sqlLiteral(args[n])
			if err != nil {
				return "", err
			}
			b.WriteString(lit)
			n++
			continue
		}
		b.WriteByte(c)
	}
	if n != len(args) {
		return "", fmt.Errorf("%d arguments for %d ?", len(args), n)
	}
	return b.String(), nil
}

func sqlLiteral(v any) (string, error) {
	quote := func(s string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
	}
	join := func(vs []any) (string, error) {
		parts := make([]string, len(vs))
		for i, v := range vs {
			lit, err := sqlLiteral(v)
			if err != nil {
				return "", err
			}
			parts[i] = lit
		}
		return strings.Join(parts, ", "), nil
	}
	switch v := v.(type) {
	case nil:
		return "NULL", nil
	case string:
		return quote(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case time.Time:
		return v.UTC().Format("toDateTime('2006-01-02 15:04:05')"), nil
	case []string:
		vs := make([]any, len(v))
		for i, s := range v {
			vs[i] = s
		}
		s, err := join(vs)
		return "[" + s + "]", err
	case ch.GroupSet:
		s, err := join(v.Value)
		return "(" + s + ")", err
	}
	return "", fmt.Errorf("no SQL literal for %T", v)
}

// grafanaStatements are the dashboard's queries as Grafana sends them
// over the last 180 days, on the scenario's database: each query
// variable's query, and each panel's query for every value its variables
// take there (db answers them, on 18.16).
func grafanaStatements(t *testing.T, database string, db *clickhouse.DB) []string {
	t.Helper()
	dash := readGrafana(t)
	var out []string
	for _, q := range dash.variableQueries(database) {
		out = append(out, q)
	}
	sort.Strings(out)
	vars := dash.variables(t, db, database)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			values := []string{""}
			if strings.Contains(tg.RawSQL, "${currency}") {
				values = vars["currency"]
			}
			for _, v := range values {
				sql, err := expandGrafanaMacros(onDatabase(tg.RawSQL, database), "180d", map[string]string{"currency": v})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, sql)
			}
		}
	}
	if len(out) < 6 {
		t.Fatalf("%d Grafana queries", len(out))
	}
	return out
}

// modernCheck runs statements on every engine and compares the answers.
type modernCheck struct {
	t         *testing.T
	engines   []chtest.Engine
	from, to  string // the scenario's database and the compared one
	n, same   int
	explained int
	why       map[string]int
	inserts   []string        // the INSERTs met, proven by copyRows
	copied    map[string]bool // the INSERTs copyRows ran
}

// insertsCopied checks that every INSERT met was run, with rows, by copyRows.
func (c *modernCheck) insertsCopied() {
	for _, sql := range c.inserts {
		c.n++
		if !c.copied[sql] {
			c.t.Errorf("an INSERT finsync sends was not run with rows on both engines:\n%s", sql)
			continue
		}
		c.same++
	}
}

func (c *modernCheck) reasons() string {
	var out []string
	for why, n := range c.why {
		out = append(out, fmt.Sprintf("%d× %s", n, why))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// timeDependent matches queries whose answer depends on the clock.
var timeDependent = regexp.MustCompile(`\b(now|today)\(\)`)

// statement runs one statement of the scenario on every engine.
func (c *modernCheck) statement(s recorded) {
	c.t.Helper()
	c.statementOnce(s, false)
}

func (c *modernCheck) statementOnce(s recorded, retried bool) {
	c.t.Helper()
	sql := strings.ReplaceAll(s.text, c.from, c.to)
	for _, x := range s.external {
		c.createExternal(x)
	}
	if strings.HasPrefix(sql, "INSERT INTO") {
		// The loader's INSERTs carry rows in the native protocol: copyRows
		// sent each with the rows of its table.
		c.inserts = append(c.inserts, sql)
		return
	}
	c.n++
	database := c.to
	if strings.HasPrefix(sql, "CREATE DATABASE") {
		database = ""
	}
	reads := returnsRows(sql)
	format := ""
	if reads {
		format = "JSONCompact"
	}
	var answers []answer
	for _, e := range c.engines {
		out, err := e.Query(database, sql, format)
		if err != nil {
			c.t.Errorf("%s refuses a statement finsync sends:\n%s\n%v", e.Name(), sql, err)
			return
		}
		if strings.HasPrefix(sql, "SELECT count() FROM system.mutations") {
			out = c.waitMutations(e, sql, out)
		}
		if !reads {
			continue
		}
		var a answer
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			c.t.Fatalf("%s: answer of %s: %v\n%s", e.Name(), sql, err, out)
		}
		answers = append(answers, a)
	}
	if !reads {
		c.same++
		return
	}
	why, ok := compareAnswers(sql, answers[0], answers[1])
	if !ok && timeDependent.MatchString(sql) && !retried {
		// now() moved on between the two engines' answers: ask both again.
		c.n--
		c.statementOnce(s, true)
		return
	}
	switch {
	case ok && why == "":
		c.same++
	case ok:
		c.explained++
		if c.why == nil {
			c.why = map[string]int{}
		}
		c.why[why]++
	default:
		c.t.Errorf("different answers on %s and %s: %s\n%s\n%s: %s\n%s: %s", c.engines[0].Name(), c.engines[1].Name(), why, sql,
			c.engines[0].Name(), answers[0].text(), c.engines[1].Name(), answers[1].text())
	}
}

// createExternal creates an external table of a statement as a table of
// the compared database, where the statement finds it by its bare name.
func (c *modernCheck) createExternal(x externalTable) {
	name := quoteIdent(c.to) + "." + quoteIdent(x.name)
	for _, e := range c.engines {
		for _, sql := range []string{
			"DROP TABLE IF EXISTS " + name,
			"CREATE TABLE " + name + " (" + x.structure + ") ENGINE = Memory",
			"INSERT INTO " + name + " VALUES " + strings.Join(x.rows, ", "),
		} {
			if _, err := e.Query(c.to, sql, ""); err != nil {
				c.t.Fatalf("%s: external table %s: %v", e.Name(), x.name, err)
			}
		}
	}
}

// waitMutations polls finsync's own mutation query until it answers 0:
// the engines run mutations in the background, at their own pace.
func (c *modernCheck) waitMutations(e chtest.Engine, sql, out string) string {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var a answer
		if json.Unmarshal([]byte(out), &a) == nil && len(a.Data) == 1 && string(a.Data[0][0]) == `"0"` {
			return out
		}
		var err error
		if out, err = e.Query(c.to, sql, "JSONCompact"); err != nil {
			c.t.Fatalf("%s: %v", e.Name(), err)
		}
	}
	c.t.Fatalf("%s: mutations still running after a minute: %s", e.Name(), out)
	return ""
}

// copyRows fills the compared database with every row of the scenario's
// tables, all versions, through finsync's INSERT statements (those met so
// far and those of sent): three INSERTs per table in _version order, merges
// stopped afterwards, so that FINAL has versions in different parts to
// collapse.
func (c *modernCheck) copyRows(sent []recorded) {
	c.t.Helper()
	old := c.engines[0]
	c.copied = map[string]bool{}
	inserts := c.inserts
	for _, s := range sent {
		if strings.HasPrefix(s.text, "INSERT INTO") {
			inserts = append(inserts, strings.ReplaceAll(s.text, c.from, c.to))
		}
	}
	for _, tbl := range append(transform.Tables(), transform.Table{Name: clickhouse.MigrationsTable}) {
		var insert string
		for _, s := range inserts {
			if strings.HasPrefix(s, "INSERT INTO "+quoteIdent(c.to)+"."+quoteIdent(tbl.Name)+" (") {
				insert = s
			}
		}
		if insert == "" {
			c.t.Fatalf("no INSERT into %s was sent", tbl.Name)
		}
		c.copied[insert] = true
		cols := insert[strings.Index(insert, "(")+1 : strings.LastIndex(insert, ")")]
		order := "_version"
		if tbl.Name == clickhouse.MigrationsTable {
			order = "version"
		}
		data, err := old.Query("", "SELECT "+cols+" FROM "+quoteIdent(c.from)+"."+quoteIdent(tbl.Name)+" ORDER BY "+order, "TabSeparated")
		if err != nil {
			c.t.Fatal(err)
		}
		lines := strings.SplitAfter(data, "\n")
		lines = lines[:len(lines)-1] // after the last newline
		for part := range 3 {
			chunk := strings.Join(lines[part*len(lines)/3:(part+1)*len(lines)/3], "")
			if chunk == "" {
				continue
			}
			for _, e := range c.engines {
				if _, err := e.Query(c.to, insert+" FORMAT TabSeparated\n"+chunk, ""); err != nil {
					c.t.Fatalf("%s: copying %s: %v", e.Name(), tbl.Name, err)
				}
			}
		}
	}
	c.merges("STOP")
}

func (c *modernCheck) startMerges() { c.merges("START") }

// merges stops or starts the background merges of the compared tables on
// both engines (stopped, parts stay as copied; started, mutations run).
func (c *modernCheck) merges(verb string) {
	for _, tbl := range append(transform.Tables(), transform.Table{Name: clickhouse.MigrationsTable}) {
		for _, e := range c.engines {
			if _, err := e.Query(c.to, "SYSTEM "+verb+" MERGES "+quoteIdent(c.to)+"."+quoteIdent(tbl.Name), ""); err != nil {
				c.t.Fatalf("%s: %v", e.Name(), err)
			}
		}
	}
}

// compareTables compares every table's rows (FINAL) on the two engines
// after the writes.
func (c *modernCheck) compareTables() {
	for _, tbl := range transform.Tables() {
		var cols []string
		for _, f := range tbl.Schema.Fields() {
			cols = append(cols, quoteIdent(f.Name))
		}
		c.statement(recorded{text: fmt.Sprintf("SELECT %s FROM %s.%s FINAL ORDER BY %s", strings.Join(cols, ", "), quoteIdent(c.from), quoteIdent(tbl.Name), strings.Join(cols, ", "))})
	}
}

// answer is a JSONCompact result.
type answer struct {
	Meta []struct{ Name, Type string }
	Data [][]json.RawMessage
}

func (a answer) text() string {
	var b strings.Builder
	for _, m := range a.Meta {
		fmt.Fprintf(&b, "%s %s, ", m.Name, m.Type)
	}
	for i, row := range a.Data {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... %d rows", len(a.Data))
			break
		}
		b.WriteString("\n  ")
		for _, cell := range row {
			b.Write(cell)
			b.WriteString(" | ")
		}
	}
	return b.String()
}

// compareAnswers reports whether b answers as a does: same column names
// and types, the same rows (in the same order where sql orders them). ok
// with a reason is a difference the README lists as explained.
func compareAnswers(sql string, a, b answer) (why string, ok bool) {
	if strings.HasPrefix(sql, "DESCRIBE") && len(a.Meta) >= 2 && len(b.Meta) >= 2 {
		a.Meta, b.Meta = a.Meta[:2], b.Meta[:2]
	}
	if len(a.Meta) != len(b.Meta) {
		return fmt.Sprintf("%d columns against %d", len(a.Meta), len(b.Meta)), false
	}
	for i := range a.Meta {
		if a.Meta[i].Name != b.Meta[i].Name {
			return fmt.Sprintf("column %d is %q against %q", i+1, a.Meta[i].Name, b.Meta[i].Name), false
		}
		if a.Meta[i].Type != b.Meta[i].Type {
			return fmt.Sprintf("column %s is %s against %s", a.Meta[i].Name, a.Meta[i].Type, b.Meta[i].Type), false
		}
	}
	if strings.HasPrefix(sql, "DESCRIBE") {
		// Newer servers describe more of a column; finsync reads the first
		// two, name and type, on every version.
		for _, x := range []*answer{&a, &b} {
			for i := range x.Data {
				x.Data[i] = x.Data[i][:2]
			}
		}
		if r, ok := compareRows(sql, a, b); !ok {
			return r, false
		}
		return "DESCRIBE has more columns than name and type (finsync reads those two)", true
	}
	return compareRows(sql, a, b)
}

// compareRows compares the rows of two answers whose columns match.
func compareRows(sql string, a, b answer) (why string, ok bool) {
	rows := func(x answer, cell func(json.RawMessage) string) []string {
		out := make([]string, len(x.Data))
		for i, row := range x.Data {
			cells := make([]string, len(row))
			for j, c := range row {
				cells[j] = cell(c)
			}
			out[i] = strings.Join(cells, "\x00")
		}
		if !ordered(sql) {
			sort.Strings(out)
		}
		return out
	}
	same := func(ra, rb []string) (string, bool) {
		if len(ra) != len(rb) {
			return fmt.Sprintf("%d rows against %d", len(ra), len(rb)), false
		}
		for i := range ra {
			if ra[i] != rb[i] {
				return fmt.Sprintf("row %d differs", i+1), false
			}
		}
		return "", true
	}
	asSent := func(c json.RawMessage) string { return string(c) }
	why, ok = same(rows(a, asSent), rows(b, asSent))
	if ok {
		return "", true
	}
	if _, ok := same(rows(a, withoutTrailingZeros), rows(b, withoutTrailingZeros)); ok {
		return "toString(Decimal) drops the trailing zeros on 26.x (finsync reads that text as a number)", true
	}
	return why, false
}

var decimalText = regexp.MustCompile(`^"-?[0-9]+\.[0-9]+"$`)

// withoutTrailingZeros is a cell with a decimal number in text ("1.50")
// as 26.x's toString writes it ("1.5").
func withoutTrailingZeros(c json.RawMessage) string {
	s := string(c)
	if !decimalText.MatchString(s) {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(strings.TrimSuffix(s, `"`), "0"), ".") + `"`
}

// returnsRows reports whether sql is a query with a result.
func returnsRows(sql string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	switch strings.ToUpper(first) {
	case "SELECT", "WITH", "DESCRIBE", "SHOW", "EXISTS":
		return true
	}
	return false
}

var wrappedQuery = regexp.MustCompile(`(?s)^SELECT \* FROM \((.*)\) LIMIT \d+$`)

// ordered reports whether sql orders its rows: an ORDER BY outside any
// parentheses, or the guide's SELECT * FROM (ordered query) LIMIT n.
func ordered(sql string) bool {
	if m := wrappedQuery.FindStringSubmatch(strings.TrimSpace(sql)); m != nil {
		return ordered(m[1])
	}
	depth := 0
	var quote byte
	upper := strings.ToUpper(sql)
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(upper[i:], "ORDER BY"):
			return true
		}
	}
	return false
}

// codeSQL is a string constant in finsync's code that holds SQL.
type codeSQL struct {
	pos, text string
}

var formatVerb = regexp.MustCompile(`%[sdvq]`)

// in reports whether the text is part of sent; a format string's verbs
// (fmt.Sprintf("SELECT * FROM (%s) LIMIT %d", ...)) match anything.
func (c codeSQL) in(sent string) bool {
	if !formatVerb.MatchString(c.text) {
		return strings.Contains(sent, c.text)
	}
	parts := formatVerb.Split(c.text, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, "[^\x00]*")).MatchString(sent)
}

// sqlLiterals are the SQL texts in the non-test code of the packages that
// talk to ClickHouse: string literals starting with a statement's first
// keyword or holding a clause.
func sqlLiterals(t *testing.T) []codeSQL {
	t.Helper()
	sqlish := regexp.MustCompile(`^\s*(SELECT|INSERT|ALTER|CREATE|DROP|DESCRIBE|SYSTEM|TRUNCATE|OPTIMIZE|WITH)\b|\b(FROM|WHERE|FINAL|GROUP BY|ORDER BY|DELETE WHERE|DROP PARTITION)\b`)
	var out []codeSQL
	for _, dir := range []string{".", "../../load/clickhouse"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && sqlish.MatchString(s) {
					out = append(out, codeSQL{fset.Position(lit.Pos()).String(), s})
				}
				return true
			})
		}
	}
	if len(out) < 50 {
		t.Fatalf("only %d SQL texts found in the code", len(out))
	}
	return out
}

// clusterReads are the queries only cluster mode sends (make
// test-cluster runs it on a cluster of 18.16 servers). The modern engine
// has no cluster, so they run here as text, with a cluster name bound;
// the coverage of the code's SQL counts them as sent.
var clusterReads = []string{
	"SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num",
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func firstRow(t *testing.T, db *clickhouse.DB, query string) []string {
	t.Helper()
	rows := queryStrings(t, db, query)
	if len(rows) == 0 {
		t.Fatalf("no rows: %s", query)
	}
	return rows[0]
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// TestModernCheckCompares: the check's own rules, which decide what
// passes: coverage of the code's SQL, row comparison and what counts as
// an explained difference.
func TestModernCheckCompares(t *testing.T) {
	sent := "SELECT a FROM t WHERE x = ?\x00SELECT * FROM (SELECT 1) LIMIT 10\x00"
	for _, tc := range []struct {
		lit  string
		want bool
	}{
		{"FROM t WHERE x = ?", true},
		{"FROM t WHERE y = ?", false},                   // a query never sent
		{"SELECT * FROM (%s) LIMIT %d", true},           // format verbs match anything
		{"SELECT * FROM (%s) LIMIT %d OFFSET 1", false}, // but not across statements
	} {
		if got := (codeSQL{text: tc.lit}).in(sent); got != tc.want {
			t.Errorf("%q in sent: %v, want %v", tc.lit, got, tc.want)
		}
	}
	ans := func(rows ...string) answer {
		a := answer{Meta: []struct{ Name, Type string }{{"x", "String"}}}
		for _, r := range rows {
			a.Data = append(a.Data, []json.RawMessage{json.RawMessage(r)})
		}
		return a
	}
	for _, tc := range []struct {
		sql       string
		a, b      answer
		ok, known bool // same or explained; explained
	}{
		{"SELECT x FROM t", ans(`"1"`, `"2"`), ans(`"2"`, `"1"`), true, false},
		{"SELECT x FROM t ORDER BY x", ans(`"1"`, `"2"`), ans(`"2"`, `"1"`), false, false},
		{"SELECT * FROM (SELECT x FROM t ORDER BY x) LIMIT 5", ans(`"1"`, `"2"`), ans(`"2"`, `"1"`), false, false},
		{"SELECT x FROM (SELECT x FROM t ORDER BY x)", ans(`"1"`, `"2"`), ans(`"2"`, `"1"`), true, false},
		{"SELECT x FROM t", ans(`"100.0000"`, `"1.50"`), ans(`"100"`, `"1.5"`), true, true},
		{"SELECT x FROM t", ans(`"100.0000"`), ans(`"100.0001"`), false, false},
		{"SELECT x FROM t", ans(`"1"`), ans(`"1"`, `"1"`), false, false},
	} {
		why, ok := compareAnswers(tc.sql, tc.a, tc.b)
		if ok != tc.ok || (ok && (why != "") != tc.known) {
			t.Errorf("%s: %s against %s: ok %v (%q), want ok %v, explained %v", tc.sql, tc.a.text(), tc.b.text(), ok, why, tc.ok, tc.known)
		}
	}
}
