package clickhouse

import (
	"context"
	"fmt"
)

// Keys is how many natural keys provider's rows for tenant in table hold:
// distinct values of the table's sorting key, the key ReplacingMergeTree
// replaces rows by, whether or not their versions were merged yet. A
// reconciliation counts them before and after it loads: the difference is
// the rows incremental runs had missed. It reads the tenant's part of the
// table once (uniqExact keeps 16 bytes per key on the server).
func (s *State) Keys(ctx context.Context, table, provider, tenant string) (uint64, error) {
	var key string
	err := s.db.conn.QueryRow(ctx, "SELECT sorting_key FROM system.tables WHERE database = ? AND name = ?",
		s.db.database, s.db.localName(table)).Scan(&key)
	if err == nil && key == "" {
		err = fmt.Errorf("no sorting key")
	}
	if err != nil {
		return 0, fmt.Errorf("natural key of %s: %w", table, err)
	}
	var n uint64
	if err := s.db.conn.QueryRow(ctx, "SELECT uniqExact("+key+") FROM "+s.db.table(table)+" WHERE provider = ? AND tenant = ?",
		provider, tenant).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the keys of %s: %w", table, err)
	}
	return n, nil
}
