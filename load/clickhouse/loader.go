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
	// MaxRows and MaxBytes (Arrow bytes) cap one INSERT. Big INSERTs are
	// what ClickHouse stores cheaply: every INSERT writes a part per
	// partition it touches, and small parts cost the server merges later
	// (measured: 16 MiB INSERTs cost it 3× the CPU of clickhouse-client's
	// one big INSERT), while two INSERTs in flight let the server write
	// one's parts while the next streams (measured: 250,000-row INSERTs
	// load 1,000,000 rows in 4.9 s, one INSERT of all in 6.6 s). Rows stay
	// under the server's min_insert_block_size_rows (1,048,576), so a
	// failed INSERT leaves nothing behind. Defaults: 250,000 rows, 1 GiB.
	MaxRows  int
	MaxBytes int64
	// BlockBytes is how much of an INSERT (Arrow bytes) is handed to the
	// driver between flushes to the server: the driver copies a block into
	// its own buffers, twice, so this and InFlight bound its memory; the
	// server squashes the blocks into parts. Default 4 MiB.
	BlockBytes int64
	// InFlight is how many INSERTs of one batch may be open at once, each
	// on its own connection: the one being fed and the ones finishing.
	// Default 2.
	InFlight int
	// RetainBytes is how much of what an INSERT sent (Arrow bytes) is kept
	// in memory for a retry after a transient error; default 32 MiB. An
	// INSERT beyond it is retried only with a SpillDir, which then holds
	// the rest in a file; without one, its failure fails the batch.
	RetainBytes int64
	SpillDir    string
	// MaxAttempts bounds tries of one INSERT on transient server errors;
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between them. Defaults: 5, 500 ms, 30 s.
	MaxAttempts int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Logger      *slog.Logger
	// Observe, if set, is told of each INSERT once it ended (the daemon's
	// metrics), from the goroutine that ran it.
	Observe func(Inserted)
}

// Memory is the most a batch of these options holds, in bytes, whatever
// MaxRows and MaxBytes say: per INSERT in flight what it keeps for a retry
// (RetainBytes; beyond it a SpillDir's file or nothing), the block being
// converted and the driver's two copies of it (BlockBytes each). The
// records a caller appends are its own, held until converted: one waits
// in the INSERT's channel.
func (o LoaderOptions) Memory() int64 {
	o = o.withDefaults()
	return int64(o.InFlight) * (o.RetainBytes + 3*o.BlockBytes)
}

// Inserted is what one INSERT did.
type Inserted struct {
	Table string
	// Duration is the time the INSERT took with ClickHouse over all its
	// attempts, backoffs included: opening it, converting and sending its
	// blocks, the server's accepting it. The time a batch's INSERT waits
	// for the records it is fed is not in it.
	Duration time.Duration
	// Rows and Bytes (Arrow bytes, as MaxBytes counts them) are what
	// ClickHouse accepted: 0 for an INSERT that failed.
	Rows, Bytes int64
	Retries     int64
	Err         error
}

func (o LoaderOptions) withDefaults() LoaderOptions {
	if o.MaxRows <= 0 {
		o.MaxRows = 250_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.BlockBytes <= 0 {
		o.BlockBytes = 4 << 20
	}
	if o.InFlight <= 0 {
		o.InFlight = 2
	}
	if o.RetainBytes <= 0 {
		o.RetainBytes = 32 << 20
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

// Batch streams the records bound for one table into ClickHouse, in
// INSERTs of bounded size. An INSERT is open while it is fed: each record
// is converted into the driver's columns as it arrives and sent a block at
// a time, in the background, so extraction, conversion and the server's
// writing overlap; the caller blocks only when the server falls behind.
// What an INSERT sent is kept for a retry after a transient error, within
// RetainBytes (or in a spill file); memory holds a few blocks beyond that,
// whatever the INSERT's size. An INSERT that failed for good fails the
// batch: every later Append and Send returns its error, so a caller that
// missed it once still cannot checkpoint past the lost rows.
// A Batch is not safe for concurrent use.
type Batch struct {
	ctx      context.Context
	loader   *Loader
	table    transform.Table
	query    string
	open     *insert   // the INSERT being fed, if any
	closing  []*insert // INSERTs fed in full, finishing; oldest first
	accepted int64
	retries  int64
	err      error // the first INSERT that failed for good
}

// insert is one INSERT: records go in through recs, its outcome comes out
// of done once recs is closed and everything was sent.
type insert struct {
	recs        chan arrow.Record
	done        chan insertResult
	rows, bytes int64
}

type insertResult struct {
	rows, bytes, retries int64
	busy                 time.Duration // Inserted.Duration
	err                  error
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

// Insert writes rec to t now, as an INSERT of its own (a batch of one
// record), and returns once ClickHouse accepted it: for rows that must be
// durable before what follows them (state and registry rows, a stream's
// ledger rows, rows a webhook carried), unlike a run's records, which load
// in batches. It does not retain rec.
func (l *Loader) Insert(ctx context.Context, t transform.Table, rec arrow.Record) error {
	b := l.NewBatch(ctx, t)
	if err := b.Append(rec); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}

// Append adds rec to the batch's open INSERT, starting one if needed, and
// closes that INSERT once it reaches its row or byte budget. The batch
// retains rec until it is sent (the caller may release its own
// reference). An error of an earlier INSERT is returned here.
func (b *Batch) Append(rec arrow.Record) error {
	if !rec.Schema().Equal(b.table.Schema) {
		return fmt.Errorf("%s: record schema does not match the table schema:\n got %s\nwant %s", b.table.Name, rec.Schema(), b.table.Schema)
	}
	if b.err != nil {
		return b.err
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if b.open == nil {
		if err := b.start(); err != nil {
			return err
		}
	}
	in := b.open
	rec.Retain()
	select {
	case in.recs <- rec:
	case res := <-in.done: // the INSERT ended early: it failed for good
		in.rows += rec.NumRows() // rec was bound for it: lost with it
		rec.Release()
		close(in.recs)
		b.open = nil
		b.collect(in, res)
		return b.err
	case <-b.ctx.Done():
		rec.Release()
		return b.ctx.Err()
	}
	in.rows += rec.NumRows()
	in.bytes += recordBytes(rec)
	if in.rows >= int64(b.loader.opts.MaxRows) || in.bytes >= b.loader.opts.MaxBytes {
		b.close()
	}
	return nil
}

// Send ends the open INSERT and waits for every INSERT. Once it returns
// nil, every row appended to the batch has been accepted by ClickHouse:
// only then may a cursor covering them be written.
func (b *Batch) Send() error {
	b.close()
	b.wait()
	return b.err
}

// Abort ends the batch, sending what was appended, and waits for it.
// (Rows already streamed cannot be taken back; reloading them is harmless.)
func (b *Batch) Abort() {
	b.close()
	b.wait()
}

// Rows is the number of rows ClickHouse accepted through this batch.
func (b *Batch) Rows() int64 { return b.accepted }

// Retries is the number of INSERTs that were retried after a transient error.
func (b *Batch) Retries() int64 { return b.retries }

// start opens an INSERT, once fewer than InFlight are open.
func (b *Batch) start() error {
	for len(b.closing) >= b.loader.opts.InFlight {
		if b.waitOldest(); b.err != nil {
			return b.err
		}
	}
	in := &insert{recs: make(chan arrow.Record, 1), done: make(chan insertResult, 1)}
	b.open = in
	go func() {
		res := b.stream(in.recs)
		if res.err != nil {
			res.rows, res.bytes = 0, 0
		}
		if o := b.loader.opts.Observe; o != nil {
			o(Inserted{Table: b.table.Name, Duration: res.busy, Rows: res.rows, Bytes: res.bytes, Retries: res.retries, Err: res.err})
		}
		in.done <- res
		// A permanent failure ends the INSERT before its input does.
		for rec := range in.recs {
			rec.Release()
		}
	}()
	return nil
}

// close ends the open INSERT's input; it finishes in the background.
func (b *Batch) close() {
	if b.open != nil {
		close(b.open.recs)
		b.closing = append(b.closing, b.open)
		b.open = nil
	}
}

// wait collects every INSERT.
func (b *Batch) wait() {
	for len(b.closing) > 0 {
		b.waitOldest()
	}
}

func (b *Batch) waitOldest() {
	in := b.closing[0]
	b.closing = b.closing[1:]
	b.collect(in, <-in.done)
}

// collect counts what INSERT in did; the first INSERT that failed
// becomes the batch's error.
func (b *Batch) collect(in *insert, res insertResult) {
	b.accepted += res.rows
	b.retries += res.retries
	if res.err != nil && b.err == nil {
		b.err = fmt.Errorf("inserting %d rows into %s: %w", in.rows, b.table.Name, res.err)
	}
}

// stream runs one INSERT: it sends every record of recs as it comes and
// keeps it for a replay; after a transient error it goes on keeping what
// comes, then sends it all again, up to MaxAttempts times, as long as
// everything was kept. A permanent error returns at once.
func (b *Batch) stream(recs <-chan arrow.Record) (res insertResult) {
	opts := b.loader.opts
	kept := newReplay(b.table, opts.RetainBytes, opts.SpillDir)
	defer kept.release()
	// take keeps one record (and counts it); it consumes the caller's
	// reference.
	take := func(rec arrow.Record) error {
		defer rec.Release()
		res.rows += rec.NumRows()
		res.bytes += recordBytes(rec)
		return kept.keep(rec)
	}
	var err error
	defer func() { res.err = err }()
	err = b.send(&res.busy, func(put func(arrow.Record) error) error {
		for rec := range recs {
			rec.Retain()
			if err := take(rec); err != nil {
				rec.Release()
				return err
			}
			err := put(rec)
			rec.Release()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !transient(err) {
		return res
	}
	// After a transient error (even before the INSERT began), the rest of
	// the input is only kept, for the retries.
	for rec := range recs {
		if terr := take(rec); terr != nil {
			err = terr
			return res
		}
	}
	for attempt := 1; err != nil; attempt++ {
		if attempt >= opts.MaxAttempts || !transient(err) || b.ctx.Err() != nil {
			return res
		}
		if !kept.replayable() {
			err = fmt.Errorf("%w (not retried: the INSERT outgrew the %d bytes kept for retries; set a spill directory to retry large INSERTs)", err, opts.RetainBytes)
			return res
		}
		wait := backoff(opts.BackoffBase, opts.BackoffMax, attempt)
		opts.Logger.WarnContext(b.ctx, "insert failed, retrying", "table", b.table.Name,
			"attempt", attempt, "wait", wait.String(), "err", err)
		res.retries++
		started := time.Now()
		t := time.NewTimer(wait)
		select {
		case <-b.ctx.Done():
			t.Stop()
			err = fmt.Errorf("%w (after: %v)", b.ctx.Err(), err)
			return res
		case <-t.C:
		}
		res.busy += time.Since(started)
		err = b.send(&res.busy, kept.each)
	}
	return res
}

// send runs one INSERT fed by feed, which calls put with each record;
// blocks of BlockBytes are flushed to the server as they fill. It adds
// the time it spent, apart from waiting on feed, to busy.
func (b *Batch) send(busy *time.Duration, feed func(put func(arrow.Record) error) error) error {
	timed := func(start time.Time) { *busy += time.Since(start) }
	start := time.Now()
	batch, err := b.loader.db.conn.PrepareBatch(b.ctx, b.query)
	timed(start)
	if err != nil {
		return err
	}
	defer batch.Close()
	fields := b.table.Schema.Fields()
	var pending int64
	err = feed(func(rec arrow.Record) error {
		defer timed(time.Now())
		size := recordBytes(rec)
		if pending > 0 && pending+size > b.loader.opts.BlockBytes {
			if err := batch.Flush(); err != nil {
				return err
			}
			pending = 0
		}
		for i, f := range fields {
			vals, err := columnValues(rec.Column(i), f.Nullable)
			if err != nil {
				return permanent{fmt.Errorf("column %s: %w", f.Name, err)}
			}
			if err := batch.Column(i).Append(vals); err != nil {
				return permanent{fmt.Errorf("column %s: %w", f.Name, err)}
			}
		}
		pending += size
		return nil
	})
	if err != nil {
		return err
	}
	defer timed(time.Now())
	return batch.Send()
}

// recordBytes is a record's memory: its buffers' capacity, not just their
// length, since that is what the batch holds on to.
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
			n += int64(buf.Cap())
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
