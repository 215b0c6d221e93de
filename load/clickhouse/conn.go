// Package clickhouse loads Arrow records of the common schema into
// ClickHouse over the native protocol, applies the migrations in sql/, and
// keeps the pipeline's state (etl_state, etl_runs) in the warehouse itself.
//
// It knows tables and columns, never providers; the registry's subjects
// and etl_state's jobs are extract.Subject and extract.Job, the one type of
// each that streams and the runner use too. It works against ClickHouse
// 18.16 (Debian's package) and current releases; what 18.16 needs:
//   - every INSERT names its columns (without a list the server sends a
//     0-column header and appends fail);
//   - query settings, if any, are integers or booleans;
//   - no TTL, DateTime64, Map or LowCardinality in the base schema.
package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Options say which server and database to use.
type Options struct {
	Addr     string // host:port of the native protocol
	Database string
	Username string
	Password string // never logged
	// DialTimeout bounds connecting; 0 means 5 s.
	DialTimeout time.Duration
	// TLS connects with TLS, verifying the server's certificate unless
	// InsecureSkipVerify (local testing only).
	TLS, InsecureSkipVerify bool
	// Cluster, if set, is the ClickHouse cluster (remote_servers) the
	// database spans: migrations emit ON CLUSTER DDL, replicated and
	// Distributed tables (cluster.go), and INSERTs into Distributed tables
	// return only once every shard has its rows.
	Cluster string
	// Trace, if set, is called with every statement before it is sent, its
	// arguments (which the driver binds into the text) and the external
	// tables sent with it. Tests record what finsync sends: the
	// modern-ClickHouse check replays it on 26.x.
	Trace func(query string, args []any, external []*ext.Table)
}

// Version is a server's release number.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is the same release as o or newer.
func (v Version) AtLeast(o Version) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

// DB is a connection pool to one database of one server.
type DB struct {
	conn     driver.Conn
	addr     string
	database string
	cluster  string
	opts     Options // to reach the cluster's other nodes
	version  Version
}

// ErrUnreachable marks a server that could not be connected to.
var ErrUnreachable = errors.New("ClickHouse is unreachable")

// Open connects to opts.Database and checks the server answers. The database
// must exist (finsync migrate creates it).
func Open(ctx context.Context, opts Options) (*DB, error) {
	db, err := open(ctx, opts, opts.Database)
	if err != nil && errorCode(err) == codeUnknownDatabase {
		return nil, fmt.Errorf("database %q does not exist on %s: run `finsync migrate` first", opts.Database, opts.Addr)
	}
	return db, err
}

func open(ctx context.Context, opts Options, database string) (*DB, error) {
	if opts.Addr == "" {
		return nil, errors.New("no ClickHouse address given")
	}
	dial := opts.DialTimeout
	if dial == 0 {
		dial = 5 * time.Second
	}
	var tlsConfig *tls.Config
	if opts.TLS {
		tlsConfig = &tls.Config{InsecureSkipVerify: opts.InsecureSkipVerify}
	}
	var settings ch.Settings
	if opts.Cluster != "" {
		// A Distributed INSERT otherwise queues the rows on this server
		// and returns: the cursor could then cover rows no shard has.
		settings = ch.Settings{"insert_distributed_sync": 1}
	}
	conn, err := ch.Open(&ch.Options{
		TLS:         tlsConfig,
		Settings:    settings,
		Addr:        []string{opts.Addr},
		Auth:        ch.Auth{Database: database, Username: opts.Username, Password: opts.Password},
		DialTimeout: dial,
		// Inserts are large and one per table at a time; a few connections suffice.
		MaxOpenConns: 8,
		MaxIdleConns: 4,
	})
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, opts.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		if errorCode(err) != 0 {
			return nil, fmt.Errorf("ClickHouse at %s: %w", opts.Addr, err)
		}
		return nil, fmt.Errorf("%w at %s (%v); for the local server run: deploy/clickhouse/local.sh start", ErrUnreachable, opts.Addr, err)
	}
	var pool driver.Conn = conn
	if opts.Trace != nil {
		pool = tracedConn{conn, opts.Trace}
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ClickHouse at %s: reading server version: %w", opts.Addr, err)
	}
	return &DB{
		conn:     pool,
		addr:     opts.Addr,
		database: database,
		cluster:  opts.Cluster,
		opts:     opts,
		version:  Version{int(sv.Version.Major), int(sv.Version.Minor), int(sv.Version.Patch)},
	}, nil
}

// tracedConn calls trace with every statement before sending it.
type tracedConn struct {
	driver.Conn
	trace func(query string, args []any, external []*ext.Table)
}

func externalTables(ctx context.Context) []*ext.Table {
	t, _ := ctx.Value(externalKey{}).([]*ext.Table)
	return t
}

// externalKey is the context key of the external tables a query sends
// (withExternalTables), for the trace: the driver's own is private.
type externalKey struct{}

// withExternalTables sends tables with the queries run under the returned
// context.
func withExternalTables(ctx context.Context, tables ...*ext.Table) context.Context {
	ctx = context.WithValue(ctx, externalKey{}, tables)
	return ch.Context(ctx, ch.WithExternalTable(tables...))
}

func (c tracedConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	c.trace(query, args, externalTables(ctx))
	return c.Conn.Select(ctx, dest, query, args...)
}

func (c tracedConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	c.trace(query, args, externalTables(ctx))
	return c.Conn.Query(ctx, query, args...)
}

func (c tracedConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	c.trace(query, args, externalTables(ctx))
	return c.Conn.QueryRow(ctx, query, args...)
}

func (c tracedConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	c.trace(query, nil, externalTables(ctx))
	return c.Conn.PrepareBatch(ctx, query, opts...)
}

func (c tracedConn) Exec(ctx context.Context, query string, args ...any) error {
	c.trace(query, args, externalTables(ctx))
	return c.Conn.Exec(ctx, query, args...)
}

func (c tracedConn) QueryFormat(ctx context.Context, format, query string, args ...any) (io.ReadCloser, error) {
	c.trace(query, args, externalTables(ctx))
	return c.Conn.QueryFormat(ctx, format, query, args...)
}

func (c tracedConn) AsyncInsert(ctx context.Context, query string, wait bool, args ...any) error {
	c.trace(query, args, externalTables(ctx))
	return c.Conn.AsyncInsert(ctx, query, wait, args...)
}

// Close releases the pool.
func (db *DB) Close() error { return db.conn.Close() }

// Version is the server's release.
func (db *DB) Version() Version { return db.version }

// Database is the database tables are read from and written to.
func (db *DB) Database() string { return db.database }

// Conn is the driver connection, for queries the pipeline does not wrap
// (reports, tests).
func (db *DB) Conn() driver.Conn { return db.conn }

// Exec runs one statement that returns no rows.
func (db *DB) Exec(ctx context.Context, query string, args ...any) error {
	return db.conn.Exec(ctx, query, args...)
}

// table quotes a table name of this database.
func (db *DB) table(name string) string { return quoteIdent(db.database) + "." + quoteIdent(name) }

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// Server error codes the package reacts to.
const (
	codeUnknownDatabase = 81
)

// errorCode is the ClickHouse exception code inside err, or 0.
func errorCode(err error) int32 {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// Addr is the server's address.
func (db *DB) Addr() string { return db.addr }
