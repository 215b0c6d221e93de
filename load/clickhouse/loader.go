package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/transform"
)

// LoaderOptions tune how records are grouped into INSERTs and retried.
type LoaderOptions struct {
	// MaxRows and MaxBytes cap one INSERT. The driver holds a whole INSERT
	// in memory, so together they bound the loader's memory; big INSERTs
	// keep ClickHouse far from "Too many parts". Defaults: 500,000 rows,
	// 16 MiB of Arrow buffers (measured: larger budgets buy no speed, only memory).
	MaxRows  int
	MaxBytes int64
	// InFlight is how many INSERTs of one batch may run at once, each on
	// its own connection, while the next one fills. Default 2.
	InFlight int
	// MaxAttempts bounds tries of one INSERT on transient server errors;
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between them. Defaults: 5, 500 ms, 30 s.
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Logger      *slog.Logger
}

func (o LoaderOptions) withDefaults() LoaderOptions {
	if o.MaxRows <= 0 {
		o.MaxRows = 500_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 16 << 20
	}
	if o.InFlight <= 0 {
		o.InFlight = 2
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Loader inserts Arrow records of the common schema into ClickHouse.
type Loader struct {
	db   *DB
	opts LoaderOptions
}

// NewLoader returns a loader writing to db.
func NewLoader(db *DB, opts LoaderOptions) *Loader {
	return &Loader{db: db, opts: opts.withDefaults()}
}

// Batch collects the records bound for one table and inserts them in
// INSERTs of bounded size. INSERTs run in the background (InFlight of them,
// each on its own connection) while the next one fills, so converting
// columns and ClickHouse's writing overlap; memory stays at about
// InFlight+1 budgets.
// A Batch is not safe for concurrent use.
type Batch struct {
	ctx      context.Context
	loader   *Loader
	table    transform.Table
	query    string
	pending  []arrow.Record
	rows     int
	bytes    int64
	inflight []chan insertResult // INSERTs running, oldest first
	accepted int64
	retries  int64
}

type insertResult struct {
	rows, retries int64
	err           error
}

// NewBatch starts a batch for table t.
func (l *Loader) NewBatch(ctx context.Context, t transform.Table) *Batch {
	names := make([]string, len(t.Schema.Fields()))
	for i, f := range t.Schema.Fields() {
		names[i] = quoteIdent(f.Name)
	}
	return &Batch{
		ctx:    ctx,
		loader: l,
		table:  t,
		// 18.16 needs the column list; it also keeps inserts independent of
		// column order on the server.
		query: "INSERT INTO " + l.db.table(t.Name) + " (" + strings.Join(names, ", ") + ")",
	}
}

// Append adds rec to the batch. The batch retains rec (the caller may
// release its own reference) and starts an INSERT once the batch reaches
// its row or byte budget; an error of an earlier INSERT is returned here.
func (b *Batch) Append(rec arrow.Record) error {
	if !rec.Schema().Equal(b.table.Schema) {
		return fmt.Errorf("%s: record schema does not match the table schema:\n got %s\nwant %s", b.table.Name, rec.Schema(), b.table.Schema)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	rec.Retain()
	b.pending = append(b.pending, rec)
	b.rows += int(rec.NumRows())
	b.bytes += recordBytes(rec)
	if b.rows >= b.loader.opts.MaxRows || b.bytes >= b.loader.opts.MaxBytes {
		return b.startInsert()
	}
	return nil
}

// Send inserts whatever is pending and waits for every INSERT. Once it
// returns nil, every row appended to the batch has been accepted by
// ClickHouse: only then may a cursor covering them be written.
func (b *Batch) Send() error {
	if err := b.startInsert(); err != nil {
		return err
	}
	return b.wait()
}

// Abort drops the rows not inserted yet and waits for an INSERT in flight.
func (b *Batch) Abort() {
	b.wait()
	releaseAll(b.pending)
	b.pending, b.rows, b.bytes = nil, 0, 0
}

// Rows is the number of rows ClickHouse accepted through this batch.
func (b *Batch) Rows() int64 { return b.accepted }

// Retries is the number of INSERTs that were retried after a transient error.
func (b *Batch) Retries() int64 { return b.retries }

// startInsert sends the pending records in the background, once fewer than
// InFlight INSERTs are running.
func (b *Batch) startInsert() error {
	for len(b.inflight) >= b.loader.opts.InFlight {
		if err := b.waitOldest(); err != nil {
			return err
		}
	}
	if len(b.pending) == 0 {
		return nil
	}
	recs, rows := b.pending, b.rows
	b.pending, b.rows, b.bytes = nil, 0, 0
	done := make(chan insertResult, 1)
	b.inflight = append(b.inflight, done)
	go func() {
		defer releaseAll(recs)
		retries, err := b.insertWithRetry(recs)
		if err != nil {
			err = fmt.Errorf("inserting %d rows into %s: %w", rows, b.table.Name, err)
			rows = 0
		}
		done <- insertResult{rows: int64(rows), retries: retries, err: err}
	}()
	return nil
}

// wait collects every INSERT in flight and returns the first error.
func (b *Batch) wait() error {
	var first error
	for len(b.inflight) > 0 {
		if err := b.waitOldest(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (b *Batch) waitOldest() error {
	res := <-b.inflight[0]
	b.inflight = b.inflight[1:]
	b.accepted += res.rows
	b.retries += res.retries
	return res.err
}

func releaseAll(recs []arrow.Record) {
	for _, r := range recs {
		r.Release()
	}
}

func (b *Batch) insertWithRetry(recs []arrow.Record) (retries int64, err error) {
	opts := b.loader.opts
	for attempt := 1; ; attempt++ {
		err := b.insert(recs)
		if err == nil {
			return retries, nil
		}
		if attempt >= opts.MaxAttempts || !transient(err) || b.ctx.Err() != nil {
			return retries, err
		}
		wait := backoff(opts.BackoffBase, opts.BackoffMax, attempt)
		opts.Logger.WarnContext(b.ctx, "insert failed, retrying", "table", b.table.Name,
			"attempt", attempt, "wait", wait, "err", err)
		retries++
		t := time.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return retries, fmt.Errorf("%w (after: %v)", b.ctx.Err(), err)
		case <-t.C:
		}
	}
}

// insert sends recs as one INSERT, column by column.
func (b *Batch) insert(recs []arrow.Record) error {
	batch, err := b.loader.db.conn.PrepareBatch(b.ctx, b.query)
	if err != nil {
		return err
	}
	defer batch.Close()
	fields := b.table.Schema.Fields()
	for _, rec := range recs {
		for i, f := range fields {
			vals, err := columnValues(rec.Column(i), f.Nullable)
			if err != nil {
				return permanent{fmt.Errorf("column %s: %w", f.Name, err)}
			}
			if err := batch.Column(i).Append(vals); err != nil {
				return permanent{fmt.Errorf("column %s: %w", f.Name, err)}
			}
		}
	}
	return batch.Send()
}

// recordBytes estimates a record's memory from its buffers.
func recordBytes(rec arrow.Record) int64 {
	var n int64
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, buf := range d.Buffers() {
		if buf != nil {
			n += int64(buf.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}

// permanent marks an error retrying cannot fix (bad data, schema mismatch).
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Server errors worth retrying: overload, timeouts, merges behind.
var transientCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203: true, // NO_FREE_CONNECTION
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
	252: true, // TOO_MANY_PARTS
	285: true, // TOO_FEW_LIVE_REPLICAS
	319: true, // UNKNOWN_STATUS_OF_INSERT
	425: true, // SYSTEM_ERROR
	999: true, // KEEPER_EXCEPTION
}

// transient reports whether an INSERT that failed with err may succeed if
// tried again: a server busy or restarting, a dropped connection.
func transient(err error) bool {
	var p permanent
	if errors.As(err, &p) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return transientCodes[ex.Code]
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, ch.ErrAcquireConnTimeout)
}

// backoff is the wait before retry number attempt (1-based): exponential,
// capped, with full jitter so concurrent writers spread out.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 20)
	if d <= 0 || d > max {
		d = max
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}
