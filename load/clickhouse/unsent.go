package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/finsync/finsync/transform"
)

// UnsentQuery asks for the rows of Table that a stream has not submitted yet
// (extract.Reads): Provider's own rows are left out, and so is every row
// whose Key has a row in Ledger for Provider and Tenant with a status other
// than Released.
type UnsentQuery struct {
	Table     transform.Table
	Key       []string
	Columns   []string
	Ledger    transform.Table
	LedgerKey []string
	Released  string
	Provider  string
	Tenant    string
	// PageSize is rows per query; default 10,000.
	PageSize int
}

// Unsent calls fn with each unsent row, Key then Columns as text, in Key
// order. It reads a page at a time and resumes after the last key seen
// (keyset paging: each query is short, memory is one page), so the rows fn
// records in the ledger meanwhile neither repeat nor shift what comes next.
func (db *DB) Unsent(ctx context.Context, q UnsentQuery, fn func(row []string) error) error {
	if len(q.Key) == 0 || len(q.Key) != len(q.LedgerKey) {
		return fmt.Errorf("unsent %s: %d key columns, %d ledger key columns", q.Table.Name, len(q.Key), len(q.LedgerKey))
	}
	if q.PageSize <= 0 {
		q.PageSize = 10_000
	}
	cols := append(append([]string{}, q.Key...), q.Columns...)
	for _, c := range append(append([]string{}, cols...), q.LedgerKey...) {
		if !identifierOK(c) {
			return fmt.Errorf("unsent %s: bad column name %q", q.Table.Name, c)
		}
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "toString(" + quoteIdent(c) + ")"
	}
	keyList := make([]string, len(q.Key))
	for i, c := range q.Key {
		keyList[i] = quoteIdent(c)
	}
	ledgerKey := make([]string, len(q.LedgerKey))
	for i, c := range q.LedgerKey {
		ledgerKey[i] = quoteIdent(c)
	}
	// On a cluster the query runs on each shard, and the NOT IN there reads
	// the shard's own ledger: the ledger is sharded by the rows it records
	// (shardingKey), so a row and its ledger rows share a shard.
	base := "SELECT " + strings.Join(sel, ", ") + " FROM " + db.table(q.Table.Name) + " FINAL WHERE provider != ? AND (" +
		strings.Join(keyList, ", ") + ") NOT IN (SELECT " + strings.Join(ledgerKey, ", ") + " FROM " + db.table(db.localName(q.Ledger.Name)) +
		" FINAL WHERE provider = ? AND tenant = ? AND status != ?)"
	order := " ORDER BY " + strings.Join(keyList, ", ") + fmt.Sprintf(" LIMIT %d", q.PageSize)

	var last []string
	for {
		query, args := base, []any{q.Provider, q.Provider, q.Tenant, q.Released}
		if last != nil {
			// (k1, k2, ...) > last, spelled out: 18.16 has no tuple comparison.
			var or []string
			for i := range q.Key {
				var and []string
				for j := 0; j < i; j++ {
					and = append(and, keyList[j]+" = ?")
					args = append(args, last[j])
				}
				and = append(and, keyList[i]+" > ?")
				args = append(args, last[i])
				or = append(or, "("+strings.Join(and, " AND ")+")")
			}
			query += " AND (" + strings.Join(or, " OR ") + ")"
		}
		page, err := db.unsentPage(ctx, query+order, args, len(cols))
		if err != nil {
			return fmt.Errorf("reading unsent rows of %s: %w", q.Table.Name, err)
		}
		for _, row := range page {
			if err := fn(row); err != nil {
				return err
			}
		}
		if len(page) < q.PageSize {
			return nil
		}
		last = page[len(page)-1][:len(q.Key)]
	}
}

func (db *DB) unsentPage(ctx context.Context, query string, args []any, ncols int) ([][]string, error) {
	rows, err := db.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page [][]string
	for rows.Next() {
		row := make([]string, ncols)
		ptrs := make([]any, ncols)
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		page = append(page, row)
	}
	return page, rows.Err()
}

func identifierOK(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Unsent reads unsent rows through the state's database (the runner holds
// a State, not a DB).
func (s *State) Unsent(ctx context.Context, q UnsentQuery, fn func(row []string) error) error {
	return s.db.Unsent(ctx, q, fn)
}

// LookupQuery reads rows of Table for Provider and Tenant (FINAL): Columns
// as text, where each column of Where holds one of its values.
type LookupQuery struct {
	Table            transform.Table
	Columns          []string
	Where            map[string][]string
	Provider, Tenant string
}

// Lookup calls fn with each row of q, Columns as text.
func (s *State) Lookup(ctx context.Context, q LookupQuery, fn func(row []string) error) error {
	if len(q.Columns) == 0 {
		return fmt.Errorf("lookup in %s: no columns", q.Table.Name)
	}
	names := make([]string, 0, len(q.Where))
	for c, vals := range q.Where {
		if len(vals) == 0 {
			return nil // matches nothing
		}
		names = append(names, c)
	}
	sort.Strings(names)
	sel := make([]string, len(q.Columns))
	for i, c := range q.Columns {
		if !identifierOK(c) {
			return fmt.Errorf("lookup in %s: bad column name %q", q.Table.Name, c)
		}
		sel[i] = "toString(" + quoteIdent(c) + ")"
	}
	query := "SELECT " + strings.Join(sel, ", ") + " FROM " + s.db.table(q.Table.Name) + " FINAL WHERE provider = ? AND tenant = ?"
	args := []any{q.Provider, q.Tenant}
	for _, c := range names {
		if !identifierOK(c) {
			return fmt.Errorf("lookup in %s: bad column name %q", q.Table.Name, c)
		}
		query += " AND " + quoteIdent(c) + " IN ?"
		args = append(args, toGroupSet(q.Where[c]))
	}
	rows, err := s.db.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("lookup in %s: %w", q.Table.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		row := make([]string, len(q.Columns))
		ptrs := make([]any, len(row))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("lookup in %s: %w", q.Table.Name, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lookup in %s: %w", q.Table.Name, err)
	}
	return nil
}
