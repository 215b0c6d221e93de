// Package sql holds the warehouse DDL as numbered migration files, embedded
// into the binary and applied in order by `finsync migrate`
// (load/clickhouse.Migrate).
//
// File names are NNNN_description.sql. Statements end with a semicolon at
// the end of a line. A file whose first line is
//
//	-- finsync:min-server 21.8
//
// uses features newer ClickHouse releases have (LowCardinality, TTL,
// DateTime64, ...) and is applied only on servers of at least that version;
// the base schema never needs one, so it runs on 18.16 and on 23+ alike.
//
// An applied file is never changed, with two exceptions: when a later file
// repairs what it created (0008 replaced views of 0006 and 0007 that
// current releases cannot read), the old file may drop that part; and its
// comments may be corrected (0001). The file then names its previous
// text's SHA-256 in a line
//
//	-- finsync:supersedes <sha256>
//
// so that a warehouse which applied the previous text counts it as
// applied. Every statement must run on 18.16 and on current releases with
// the same answer: make test replays them on both (cmd/finsync's
// TestEveryStatementOnModernClickHouse), and joins of subqueries need
// aliases, `(...) AS a ANY LEFT JOIN (...) AS b USING (k)`.
package sql

import "embed"

// Files are the migration files, at the root of the FS.
//
//go:embed *.sql
var Files embed.FS

// Guide holds the query guide: one file per question an analyst asks, its
// first line the question as a comment, the rest one query on the v_* views
// (finsync guide runs them; a test checks their answers).
//
//go:embed guide/*.sql
var Guide embed.FS
