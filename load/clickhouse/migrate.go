package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MigrationsTable records which migration files were applied.
const MigrationsTable = "schema_migrations"

// MigrateResult says what a Migrate call did.
type MigrateResult struct {
	Applied []string // files applied now
	Skipped []string // files waiting for a newer server ("file (needs X)")
	Version Version  // the server's
}

// Migrate creates the database if it is missing and applies, in name order,
// every migration file of files not yet recorded in schema_migrations.
// Running it again changes nothing. A file changed after it was applied is an error: add a new
// file instead. (A file may be edited if a later file repairs what the old
// text created: the edited file then names the old text's checksum in a
// "-- finsync:supersedes <sha256>" line, and a warehouse that applied the
// old text counts it as applied.)
func Migrate(ctx context.Context, opts Options, files fs.FS, log *slog.Logger) (MigrateResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	migrations, err := readMigrations(files)
	if err != nil {
		return MigrateResult{}, err
	}
	// Up to date: no DDL at all. ON CLUSTER DDL waits for every node, and
	// a finsync starting while a replica is down must not wait for it.
	if res, ok := upToDate(ctx, opts, migrations); ok {
		return res, nil
	}
	server, err := open(ctx, opts, "")
	if err != nil {
		return MigrateResult{}, err
	}
	create := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(opts.Database)
	if opts.Cluster != "" {
		create += " ON CLUSTER " + quoteIdent(opts.Cluster)
	}
	err = server.Exec(ctx, create)
	server.Close()
	if err != nil {
		return MigrateResult{}, fmt.Errorf("creating database %q: %w", opts.Database, err)
	}
	db, err := Open(ctx, opts)
	if err != nil {
		return MigrateResult{}, err
	}
	defer db.Close()
	res := MigrateResult{Version: db.Version()}

	known := createdNames(migrations)
	known[MigrationsTable] = true
	if err := db.execDDL(ctx, "CREATE TABLE IF NOT EXISTS "+MigrationsTable+` (
		version String, name String, checksum String, applied_at DateTime('UTC')
	) ENGINE = ReplacingMergeTree ORDER BY version`, known); err != nil {
		return res, fmt.Errorf("creating %s: %w", MigrationsTable, err)
	}
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return res, err
	}
	for _, m := range migrations {
		if sum, ok := applied[m.version]; ok {
			if !m.appliedAs(sum) {
				return res, fmt.Errorf("migration %s was changed after it was applied: add a new migration file instead", m.name)
			}
			continue
		}
		if !db.Version().AtLeast(m.minServer) {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s (needs ClickHouse %s)", m.name, m.minServer))
			continue
		}
		for _, st := range m.statements {
			if err := db.execDDL(ctx, st.text, known); err != nil {
				return res, fmt.Errorf("migration %s, statement at line %d (%s): %w", m.name, st.line, firstLine(st.text), err)
			}
		}
		if err := db.recordMigration(ctx, m); err != nil {
			return res, fmt.Errorf("recording migration %s: %w", m.name, err)
		}
		log.Info("migration applied", "file", m.name, "statements", len(m.statements))
		res.Applied = append(res.Applied, m.name)
	}
	return res, nil
}

// upToDate reports whether every migration this server should have is
// applied, unchanged (then Migrate has nothing to do).
func upToDate(ctx context.Context, opts Options, migrations []migration) (MigrateResult, bool) {
	db, err := Open(ctx, opts)
	if err != nil {
		return MigrateResult{}, false
	}
	defer db.Close()
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return MigrateResult{}, false
	}
	res := MigrateResult{Version: db.Version()}
	for _, m := range migrations {
		sum, ok := applied[m.version]
		switch {
		case ok && m.appliedAs(sum):
		case !ok && !db.Version().AtLeast(m.minServer):
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s (needs ClickHouse %s)", m.name, m.minServer))
		default:
			return MigrateResult{}, false
		}
	}
	return res, true
}

// execDDL runs one statement of a migration, rewritten for the cluster in
// cluster mode (known: the names the migrations create).
func (db *DB) execDDL(ctx context.Context, stmt string, known map[string]bool) error {
	if db.cluster == "" {
		return db.Exec(ctx, stmt)
	}
	stmts, err := clusterDDL(stmt, db.database, db.cluster, known)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if alter, ok := strings.CutPrefix(s, alterPrefix); ok {
			table, rest, _ := strings.Cut(alter, " ")
			err = db.Alter(ctx, table, rest)
		} else {
			err = db.Exec(ctx, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) appliedMigrations(ctx context.Context) (map[string]string, error) {
	rows, err := db.conn.Query(ctx, "SELECT version, checksum FROM "+db.table(MigrationsTable)+" FINAL")
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", MigrationsTable, err)
	}
	defer rows.Close()
	applied := map[string]string{}
	for rows.Next() {
		var v, sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, err
		}
		applied[v] = sum
	}
	return applied, rows.Err()
}

// recordMigration notes m as applied. (18.16 hangs on INSERT ... VALUES with
// bound parameters over the native protocol; a one-row batch works.)
func (db *DB) recordMigration(ctx context.Context, m migration) error {
	b, err := db.conn.PrepareBatch(ctx, "INSERT INTO "+db.table(MigrationsTable)+" (version, name, checksum, applied_at)")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Append(m.version, m.name, m.checksum, time.Now().UTC()); err != nil {
		return err
	}
	return b.Send()
}

type migration struct {
	name, version, checksum string
	supersedes              []string // checksums of earlier texts of this file
	minServer               Version
	statements              []statement
}

// appliedAs reports whether a warehouse that recorded this migration with
// checksum sum has it: the current text or one it supersedes.
func (m migration) appliedAs(sum string) bool {
	return sum == m.checksum || slices.Contains(m.supersedes, sum)
}

type statement struct {
	text string
	line int
}

// readMigrations parses every NNNN_name.sql file at the root of files.
func readMigrations(files fs.FS) ([]migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []migration
	seen := map[string]string{}
	for _, name := range names {
		version, _, ok := strings.Cut(name, "_")
		if _, err := strconv.Atoi(version); !ok || err != nil {
			return nil, fmt.Errorf("migration file %s: name must start with a number and an underscore, e.g. 0002_views.sql", name)
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("migration files %s and %s share version %s", prev, name, version)
		}
		seen[version] = name
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		m := migration{name: path.Base(name), version: version, checksum: hex.EncodeToString(sum[:])}
		m.supersedes = supersedes(string(body))
		if m.minServer, err = minServer(string(body)); err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		if m.statements, err = splitStatements(string(body)); err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

const minServerDirective = "-- finsync:min-server "

const supersedesDirective = "-- finsync:supersedes "

// supersedes reads the checksums a migration's supersedes lines name.
func supersedes(body string) []string {
	var sums []string
	for _, l := range strings.Split(body, "\n") {
		if sum, ok := strings.CutPrefix(strings.TrimSpace(l), supersedesDirective); ok {
			sums = append(sums, strings.TrimSpace(sum))
		}
	}
	return sums
}

// minServer reads the optional version gate on a migration's first line.
func minServer(body string) (Version, error) {
	first, _, _ := strings.Cut(body, "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), minServerDirective)
	if !ok {
		return Version{}, nil
	}
	var out Version
	parts := strings.Split(strings.TrimSpace(v), ".")
	nums := []*int{&out.Major, &out.Minor, &out.Patch}
	if len(parts) > len(nums) {
		return out, fmt.Errorf("bad server version %q in %q", v, first)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, fmt.Errorf("bad server version %q in %q", v, first)
		}
		*nums[i] = n
	}
	return out, nil
}

// splitStatements cuts a SQL file at semicolons outside quotes and comments.
// Comment-only pieces are dropped; each statement keeps its first line number.
func splitStatements(body string) ([]statement, error) {
	var out []statement
	line, startLine, codeStart := 1, 1, 0
	hasCode := false
	begin := func(i int) {
		if !hasCode {
			hasCode, startLine, codeStart = true, line, i
		}
	}
	emit := func(end int) {
		if hasCode {
			out = append(out, statement{text: strings.TrimSpace(body[codeStart:end]), line: startLine})
		}
		hasCode = false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\n':
			line++
		case c == '-' && i+1 < len(body) && body[i+1] == '-':
			for i < len(body) && body[i] != '\n' {
				i++
			}
			line++
		case c == '/' && i+1 < len(body) && body[i+1] == '*':
			end := strings.Index(body[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated /* comment", line)
			}
			line += strings.Count(body[i:i+2+end], "\n")
			i += end + 3
		case c == '\'' || c == '"' || c == '`':
			begin(i)
			j := i + 1
			for ; j < len(body) && body[j] != c; j++ {
				if body[j] == '\\' {
					j++
				}
			}
			if j >= len(body) {
				return nil, fmt.Errorf("line %d: unterminated quote %c", line, c)
			}
			line += strings.Count(body[i:j], "\n")
			i = j
		case c == ';':
			emit(i)
		case c == ' ' || c == '\t' || c == '\r':
		default:
			begin(i)
		}
	}
	emit(len(body))
	return out, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 80 {
		l = l[:80] + "…"
	}
	return l
}

// Pending lists the migrations of files this server should have and has
// not applied (or applied in another version): what /readyz reports.
func (db *DB) Pending(ctx context.Context, files fs.FS) ([]string, error) {
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	migrations, err := readMigrations(files)
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, m := range migrations {
		if sum, ok := applied[m.version]; (!ok || !m.appliedAs(sum)) && db.Version().AtLeast(m.minServer) {
			pending = append(pending, m.name)
		}
	}
	return pending, nil
}
