package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/finsync/finsync/transform"
)

// Cluster mode (Options.Cluster): the single-node DDL of sql/ is rewritten,
// statement by statement, for a ClickHouse cluster, so that each table is
// declared once. Two kinds of table:
//
//   - Sharded: every table with a user_id column (the data tables and
//     the FinGoal ledger). X becomes X_local, a Replicated*MergeTree per
//     shard ('/clickhouse/tables/{shard}/<db>/X_local', '{replica}'),
//     plus X, a Distributed table over it with X's name and columns, which
//     the loader, the views and BI tools use. Rows go to a shard by a hash
//     of (provider, tenant, user_id): all versions of a row land on one
//     shard, so FINAL deduplicates there.
//   - Everywhere: the pipeline's own small tables (subjects, etl_state,
//     etl_runs, etl_rejects, schema_migrations; and contracts, see
//     Sharded). One replicated table on every node of the cluster
//     ('/clickhouse/tables/all/<db>/X'), not sharded: any node answers the
//     daemon's reads of cursors, jobs and subjects in full, under the same
//     names.
//   - Tables of other engines than *MergeTree (none in sql/) are created on
//     every node as they are.
//
// Every statement but ALTER gets ON CLUSTER (for ALTER see DB.Alter);
// views get their tables qualified with the database (the cluster's DDL
// worker runs them in database default).
// The macros {shard} and {replica} come from each server's configuration;
// {replica} must be unique in the whole cluster (e.g. the host name), since
// the tables of the second kind have one replica per node.

const localSuffix = "_local"

// alterPrefix marks a statement of clusterDDL that DB.Alter runs: it is
// followed by the table's name and the rest of the ALTER.
const alterPrefix = "-- finsync:alter "

// Sharded reports whether table is split across the cluster's shards (in
// cluster mode): whether its schema has a user_id column. Except contracts:
// 18.16 sends a query to the other shards with its column interval (a
// keyword) unquoted, which they cannot parse (even SELECT *), so contracts
// (a few rows per user) are kept whole on every node.
func Sharded(table string) bool {
	for _, t := range transform.Tables() {
		if t.Name == table {
			_, user := t.Schema.FieldsByName("user_id")
			_, keyword := t.Schema.FieldsByName("interval")
			return user && !keyword
		}
	}
	return false
}

// shardingKey is the columns whose hash picks a row's shard: the user's.
// The FinGoal ledger is sharded by the transaction it records, so that it
// sits on the shard of that transaction: Unsent compares the two there.
func shardingKey(table string) string {
	if table == transform.EnrichmentSubmissions.Name {
		return "cityHash64(source_provider, source_tenant, user_id)"
	}
	return "cityHash64(provider, tenant, user_id)"
}

// clusterDDL is one statement of a single-node migration as it runs on
// cluster. known are the tables and views the migrations create (a name
// after FROM or JOIN that is one of them gets the database).
func clusterDDL(stmt, database, cluster string, known map[string]bool) ([]string, error) {
	toks := lex(stmt)
	w := func(i int) string { // the i-th token's text, upper-cased
		if i < len(toks) {
			return strings.ToUpper(toks[i].text)
		}
		return ""
	}
	on := " ON CLUSTER " + quoteIdent(cluster)
	qualified := func(name string) string { return quoteIdent(database) + "." + quoteIdent(name) }
	// name after CREATE TABLE|VIEW [IF NOT EXISTS], ALTER TABLE, DROP TABLE|VIEW [IF EXISTS].
	nameAt := func(i int) (name string, next int, ok bool) {
		if i < len(toks) && toks[i].ident && w(i+1) != "." {
			return toks[i].name(), i + 1, true
		}
		return "", 0, false
	}
	rest := func(i int) string {
		if i >= len(toks) {
			return ""
		}
		return stmt[toks[i].pos:]
	}
	fail := func(why string) ([]string, error) {
		return nil, fmt.Errorf("cluster mode cannot translate %q: %s", firstLine(stmt), why)
	}
	switch {
	case w(0) == "CREATE" && w(1) == "TABLE":
		i, ifNot := 2, ""
		if w(2) == "IF" && w(3) == "NOT" && w(4) == "EXISTS" {
			i, ifNot = 5, "IF NOT EXISTS "
		}
		name, i, ok := nameAt(i)
		if !ok || w(i) != "(" {
			return fail("want CREATE TABLE name (columns) ENGINE = ...")
		}
		end := matching(toks, i)
		if end < 0 || w(end+1) != "ENGINE" || w(end+2) != "=" {
			return fail("want a column list and ENGINE = ...")
		}
		columns := stmt[toks[i].pos : toks[end].pos+1]
		if !strings.HasSuffix(w(end+3), "MERGETREE") {
			return []string{"CREATE TABLE " + ifNot + qualified(name) + on + " " + columns + " " + rest(end+1)}, nil
		}
		engine, args, tail := toks[end+3].text, "", end+4
		if w(tail) == "(" {
			end := matching(toks, tail)
			if end < 0 {
				return fail("unbalanced engine arguments")
			}
			args = strings.TrimSpace(stmt[toks[tail].pos+1 : toks[end].pos])
			tail = end + 1
		}
		replicated := func(table, path string) string {
			a := "'" + path + "', '{replica}'"
			if args != "" {
				a += ", " + args
			}
			return "CREATE TABLE " + ifNot + qualified(table) + on + " " + columns + " ENGINE = Replicated" + engine + "(" + a + ") " + rest(tail)
		}
		if !Sharded(name) {
			return []string{replicated(name, "/clickhouse/tables/all/"+database+"/"+name)}, nil
		}
		local := name + localSuffix
		return []string{
			replicated(local, "/clickhouse/tables/{shard}/"+database+"/"+local),
			"CREATE TABLE " + ifNot + qualified(name) + on + " " + columns + " ENGINE = Distributed(" +
				quoteString(cluster) + ", " + quoteString(database) + ", " + quoteString(local) + ", " + shardingKey(name) + ")",
		}, nil

	case w(0) == "CREATE" && w(1) == "VIEW":
		i, ifNot := 2, ""
		if w(2) == "IF" && w(3) == "NOT" && w(4) == "EXISTS" {
			i, ifNot = 5, "IF NOT EXISTS "
		}
		name, i, ok := nameAt(i)
		if !ok || w(i) != "AS" {
			return fail("want CREATE VIEW name AS SELECT ...")
		}
		return []string{"CREATE VIEW " + ifNot + qualified(name) + on + " AS " + qualifySelect(stmt, toks[i+1:], database, known)}, nil

	case w(0) == "ALTER" && w(1) == "TABLE":
		// Run by DB.Alter (see there why not ON CLUSTER).
		name, i, ok := nameAt(2)
		if !ok {
			return fail("want ALTER TABLE name ...")
		}
		return []string{alterPrefix + name + " " + rest(i)}, nil

	case w(0) == "DROP" && (w(1) == "TABLE" || w(1) == "VIEW"):
		i, ifExists := 2, ""
		if w(2) == "IF" && w(3) == "EXISTS" {
			i, ifExists = 4, "IF EXISTS "
		}
		name, i, ok := nameAt(i)
		if !ok || i != len(toks) {
			return fail("want DROP TABLE|VIEW name")
		}
		out := []string{"DROP " + w(1) + " " + ifExists + qualified(name) + on}
		if Sharded(name) {
			out = append(out, "DROP TABLE "+ifExists+qualified(name+localSuffix)+on)
		}
		return out, nil
	}
	return fail("only CREATE TABLE, CREATE VIEW, ALTER TABLE and DROP are rewritten for a cluster")
}

// qualifySelect gives every table or view of known after FROM or JOIN in
// the tokens toks of stmt its database. A SELECT that reads a sharded table
// is sent to each shard as it is, subqueries included, so its IN and JOIN
// subqueries run there, on that shard's rows: they read the shard's local
// tables (what distributed_product_mode = 'local' does, spelled out so the
// views need no setting). That is correct because each such subquery of the
// views groups by keys that contain the sharding key.
func qualifySelect(stmt string, toks []token, database string, known map[string]bool) string {
	if len(toks) == 0 {
		return ""
	}
	type level struct{ shardedFrom, onShard bool }
	levels := []level{{}}
	var b strings.Builder
	last := toks[0].pos
	for i, t := range toks {
		up := strings.ToUpper(t.text)
		top := &levels[len(levels)-1]
		switch {
		case t.text == "(":
			prev := ""
			if i > 0 {
				prev = strings.ToUpper(toks[i-1].text)
			}
			// A subquery of IN (not GLOBAL IN) or JOIN in a SELECT that reads a sharded table runs on the shards.
			global := i > 1 && strings.EqualFold(toks[i-2].text, "GLOBAL")
			levels = append(levels, level{onShard: top.onShard || ((prev == "IN" || prev == "JOIN") && top.shardedFrom && !global)})
		case t.text == ")" && len(levels) > 1:
			levels = levels[:len(levels)-1]
		case (up == "FROM" || up == "JOIN") && i+1 < len(toks) && toks[i+1].ident &&
			(i+2 >= len(toks) || (toks[i+2].text != "." && toks[i+2].text != "(")):
			name := toks[i+1].name()
			if !known[name] {
				continue
			}
			table := name
			if Sharded(name) && (top.onShard || (up == "JOIN" && top.shardedFrom)) {
				table = name + localSuffix
			}
			if up == "FROM" && Sharded(name) {
				top.shardedFrom = true
			}
			n := toks[i+1]
			b.WriteString(stmt[last:n.pos])
			b.WriteString(quoteIdent(database) + "." + quoteIdent(table))
			last = n.pos + len(n.text)
		}
	}
	b.WriteString(stmt[last:])
	return b.String()
}

// createdNames are the tables and views the migrations create.
func createdNames(migrations []migration) map[string]bool {
	names := map[string]bool{}
	for _, m := range migrations {
		for _, st := range m.statements {
			toks := lex(st.text)
			if len(toks) < 3 || !strings.EqualFold(toks[0].text, "CREATE") {
				continue
			}
			i := 2
			if len(toks) > 5 && strings.EqualFold(toks[2].text, "IF") {
				i = 5
			}
			if i < len(toks) && toks[i].ident {
				names[toks[i].name()] = true
			}
		}
	}
	return names
}

// token is a word, a quoted identifier, a literal or one punctuation
// character of a SQL statement, at byte offset pos.
type token struct {
	text  string
	pos   int
	ident bool // a word or `quoted` identifier
}

// name is an identifier's name without its quotes.
func (t token) name() string {
	if strings.HasPrefix(t.text, "`") {
		return strings.ReplaceAll(t.text[1:len(t.text)-1], "``", "`")
	}
	return t.text
}

// lex splits stmt into tokens, dropping blanks and comments.
func lex(stmt string) []token {
	var out []token
	isWord := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(stmt); {
		c := stmt[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(stmt[i:], "--"):
			for i < len(stmt) && stmt[i] != '\n' {
				i++
			}
		case strings.HasPrefix(stmt[i:], "/*"):
			end := strings.Index(stmt[i+2:], "*/")
			if end < 0 {
				return out
			}
			i += end + 4
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(stmt) && stmt[j] != c; j++ {
				if stmt[j] == '\\' {
					j++
				}
			}
			j = min(j+1, len(stmt))
			out = append(out, token{text: stmt[i:j], pos: i, ident: c == '`'})
			i = j
		case isWord(c):
			j := i
			for j < len(stmt) && isWord(stmt[j]) {
				j++
			}
			out = append(out, token{text: stmt[i:j], pos: i, ident: !(c >= '0' && c <= '9')})
			i = j
		default:
			out = append(out, token{text: stmt[i : i+1], pos: i})
			i++
		}
	}
	return out
}

// matching is the index of the ")" closing the "(" at toks[open], or -1.
func matching(toks []token, open int) int {
	depth := 0
	for i := open; i < len(toks); i++ {
		switch toks[i].text {
		case "(":
			depth++
		case ")":
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Alter runs ALTER TABLE table rest (a DELETE, a DROP PARTITION, a
// column change) where table's rows are: on a single server the table
// itself. On a cluster not ON CLUSTER: 18.16's DDL worker now and then runs
// an ALTER of a replicated table on two replicas of a shard at once and
// then stops for good ("Node exists: .../executed"). Replication carries
// an ALTER of a replicated table to its other replicas anyway, so it is
// run on this node for a table replicated whole, and for a sharded table
// on its local table on one replica of each shard (this node for its own
// shard); a column change of a sharded table then reaches its Distributed
// table on every node, one by one: ON CLUSTER refuses a table that is not
// replicated on a cluster whose shards replicate internally (code 371).
func (db *DB) Alter(ctx context.Context, table, rest string, args ...any) error {
	if db.cluster == "" || !Sharded(table) {
		return db.Exec(ctx, "ALTER TABLE "+db.table(table)+" "+rest, args...)
	}
	shards, err := db.shards(ctx)
	if err != nil {
		return err
	}
	local := "ALTER TABLE " + db.table(table+localSuffix) + " " + rest
	for _, replicas := range shards {
		var errs []error
		for _, r := range replicas {
			err := db.execOn(ctx, r, local, args...)
			if err == nil {
				errs = nil
				break
			}
			errs = append(errs, fmt.Errorf("%s: %w", r.addr, err))
		}
		if errs != nil {
			return fmt.Errorf("shard of %s: %w", replicas[0].addr, errors.Join(errs...))
		}
	}
	if toks := lex(rest); len(toks) > 1 && strings.EqualFold(toks[1].text, "COLUMN") {
		for _, replicas := range shards {
			for _, r := range replicas {
				if err := db.execOn(ctx, r, "ALTER TABLE "+db.table(table)+" "+rest, args...); err != nil {
					return fmt.Errorf("%s: %w", r.addr, err)
				}
			}
		}
	}
	return nil
}

// replica is one node of the cluster.
type replica struct {
	addr  string
	local bool
}

// shards are the cluster's nodes (system.clusters) by shard, in shard
// order, this node first within its shard.
func (db *DB) shards(ctx context.Context) ([][]replica, error) {
	rows, err := db.conn.Query(ctx, "SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", db.cluster)
	if err != nil {
		return nil, fmt.Errorf("reading the nodes of cluster %s: %w", db.cluster, err)
	}
	defer rows.Close()
	var out [][]replica
	last := uint32(0)
	for rows.Next() {
		var shard uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &host, &port); err != nil {
			return nil, err
		}
		if len(out) == 0 || shard != last {
			out = append(out, nil)
			last = shard
		}
		// This node by its address: is_local says only that the host is
		// this machine's (every node of a one-machine cluster).
		addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
		r := replica{addr, addr == db.addr}
		if r.local { // this node first
			out[len(out)-1] = append([]replica{r}, out[len(out)-1]...)
		} else {
			out[len(out)-1] = append(out[len(out)-1], r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster %s is not in system.clusters of %s", db.cluster, db.addr)
	}
	return out, nil
}

// execOn runs query on node r: through this connection when it is this
// node.
func (db *DB) execOn(ctx context.Context, r replica, query string, args ...any) error {
	if r.local {
		return db.Exec(ctx, query, args...)
	}
	return db.execAt(ctx, r.addr, query, args...)
}

// execAt runs query on the node at addr, in this database.
func (db *DB) execAt(ctx context.Context, addr, query string, args ...any) error {
	opts := db.opts
	opts.Addr = addr
	other, err := Open(ctx, opts)
	if err != nil {
		return err
	}
	defer other.Close()
	return other.Exec(ctx, query, args...)
}

// localName is the table holding table's rows on this server: X_local for a
// sharded table in cluster mode, else the table itself.
func (db *DB) localName(table string) string {
	if db.cluster != "" && Sharded(table) {
		return table + localSuffix
	}
	return table
}

// Cluster is the ClickHouse cluster the database spans, "" on a single server.
func (db *DB) Cluster() string { return db.cluster }
