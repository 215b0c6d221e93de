package clickhouse_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/transform"
)

// sampleValue gives row i's value for field f: edge cases first (extremes,
// nulls, empty and odd strings), so a few rows cover every mapping.
func sampleValue(f arrow.Field, i int) any {
	if f.Nullable && i%3 == 1 {
		return nil
	}
	switch t := f.Type.(type) {
	case *arrow.StringType:
		return []string{"", "plain", "quote ' \" \\ back`tick", "tab\tnew\nline", "ünïcødé €", "\x00nul"}[i%6] + strconv.Itoa(i)
	case *arrow.Date32Type:
		return []time.Time{
			time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
			time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC),
		}[i%3].AddDate(0, 0, i/3)
	case *arrow.TimestampType:
		return []time.Time{
			time.Unix(0, 0).UTC(),
			time.Date(2026, 11, 22, 1, 58, 18, 0, time.UTC),
			time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC),
		}[i%3].Add(time.Duration(i) * time.Second)
	case *arrow.Decimal128Type:
		whole := strings.Repeat("9", int(t.Precision-t.Scale))
		frac := strings.Repeat("9", int(t.Scale))
		return decimal.RequireFromString([]string{
			"-" + whole + "." + frac, // the smallest value the type holds
			"0",
			"-1426.84",
			whole + "." + frac,
			"0.0001",
			"123456789.1234",
		}[i%6])
	case *arrow.BooleanType:
		return i%2 == 0
	case *arrow.Int32Type:
		return []int32{-2147483648, 0, 2147483647, 90}[i%4]
	case *arrow.Uint64Type:
		return []uint64{0, 18446744073709551615, uint64(i)}[i%3]
	case *arrow.ListType:
		if _, ok := t.Elem().(*arrow.Uint64Type); ok {
			return [][]uint64{{}, {1, 2, 3}, {18446744073709551615}}[i%3]
		}
		return [][]string{{}, {"a"}, {"insurance_legal", "insurance", "spending"}, {"", "x,y"}}[i%4]
	}
	panic("no sample for " + f.Type.String())
}

// canonical prints a value the same way whether it came from the sample
// generator or back from ClickHouse.
func canonical(f arrow.Field, v any) string {
	rv := reflect.ValueOf(v)
	if v == nil || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return "NULL"
	}
	if rv.Kind() == reflect.Pointer {
		v = rv.Elem().Interface()
	}
	switch v := v.(type) {
	case time.Time:
		if f.Type.ID() == arrow.DATE32 {
			return v.UTC().Format("2006-01-02")
		}
		return strconv.FormatInt(v.Unix(), 10)
	case decimal.Decimal:
		return v.StringFixed(f.Type.(*arrow.Decimal128Type).Scale)
	case bool:
		if v {
			return "1"
		}
		return "0"
	}
	return fmt.Sprint(v)
}

// TestRoundTripEveryTable loads rows covering every column type and edge
// value into each table and reads them back unchanged.
func TestRoundTripEveryTable(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{})
	const rows = 12
	for _, tb := range transform.Tables() {
		t.Run(tb.Name, func(t *testing.T) {
			fields := tb.Schema.Fields()
			want := make([][]string, rows)
			w := transform.NewRowWriter(mem, tb)
			for i := range rows {
				vals := make([]any, len(fields))
				for c, f := range fields {
					vals[c] = sampleValue(f, i)
					want[i] = append(want[i], canonical(f, vals[c]))
				}
				// The first column is part of every key: keep rows distinct.
				vals[0] = fmt.Sprintf("k%02d", i)
				want[i][0] = vals[0].(string)
				if err := w.Append(vals...); err != nil {
					t.Fatal(err)
				}
			}
			rec := w.Record()
			w.Release()
			b := loader.NewBatch(ctx, tb)
			if err := b.Append(rec); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			if err := b.Send(); err != nil {
				t.Fatal(err)
			}
			if b.Rows() != rows {
				t.Errorf("batch accepted %d rows, want %d", b.Rows(), rows)
			}
			got := selectAll(t, db, tb)
			if len(got) != rows {
				t.Fatalf("read back %d rows, want %d", len(got), rows)
			}
			for i := range rows {
				for c, f := range fields {
					if got[i][c] != want[i][c] {
						t.Errorf("row %d column %s: got %q, want %q", i, f.Name, got[i][c], want[i][c])
					}
				}
			}
		})
	}
	mem.AssertSize(t, 0)
}

func selectAll(t *testing.T, db *clickhouse.DB, tb transform.Table) [][]string {
	t.Helper()
	names := make([]string, 0, len(tb.Schema.Fields()))
	for _, f := range tb.Schema.Fields() {
		names = append(names, "`"+f.Name+"`")
	}
	rows, err := db.Conn().Query(context.Background(), "SELECT "+strings.Join(names, ", ")+" FROM "+tb.Name+" FINAL ORDER BY "+names[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]string
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = canonical(tb.Schema.Field(i), reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// transactions builds n transaction rows, from offset on, with the given version.
func transactions(t *testing.T, mem memory.Allocator, offset, n int, version uint64) arrow.Record {
	t.Helper()
	w := transform.NewRowWriter(mem, transform.Transactions)
	defer w.Release()
	fields := transform.Transactions.Schema.Fields()
	for i := offset; i < offset+n; i++ {
		vals := make([]any, len(fields))
		for c, f := range fields {
			vals[c] = sampleValue(f, i)
		}
		vals[0], vals[1], vals[2], vals[3] = "fino", "client-a", fmt.Sprintf("user-%d", i%7), fmt.Sprintf("tx-%06d", i)
		vals[7] = decimal.New(int64(i%1000)-500, -2) // amount
		vals[len(vals)-1] = version
		if err := w.Append(vals...); err != nil {
			t.Fatal(err)
		}
	}
	return w.Record()
}

func countAndSum(t *testing.T, db *clickhouse.DB, final string) (uint64, string) {
	t.Helper()
	var n uint64
	var sum decimal.Decimal
	if err := db.Conn().QueryRow(context.Background(), "SELECT count(), sum(amount) FROM transactions "+final).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	return n, sum.StringFixed(2)
}

func TestLoadingTwiceIsIdempotent(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{})
	load := func(version uint64) {
		rec := transactions(t, memory.DefaultAllocator, 0, 5000, version)
		defer rec.Release()
		b := loader.NewBatch(ctx, transform.Transactions)
		if err := b.Append(rec); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	load(1)
	n1, sum1 := countAndSum(t, db, "FINAL")
	load(1) // the same records again, e.g. a run that crashed before its checkpoint
	load(2) // a re-extraction of the same window
	n2, sum2 := countAndSum(t, db, "FINAL")
	if n1 != 5000 || n2 != n1 || sum2 != sum1 {
		t.Fatalf("FINAL after one load: %d rows, sum %s; after three: %d rows, sum %s", n1, sum1, n2, sum2)
	}
	if raw, _ := countAndSum(t, db, ""); raw < 5000 {
		t.Fatalf("raw count %d", raw)
	}
}

func TestBatchInsertsWithinItsBudget(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: 1000})
	b := loader.NewBatch(ctx, transform.Transactions)
	for i := range 10 {
		rec := transactions(t, memory.DefaultAllocator, i*300, 300, 1)
		if err := b.Append(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	// Two INSERTs of 1,200 rows (4 records each) went out before Send, in
	// the background: the rows reach the server without Send.
	var n uint64
	for deadline := time.Now().Add(20 * time.Second); n < 2400 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n, _ = countAndSum(t, db, "")
	}
	if n != 2400 {
		t.Fatalf("before Send: %d rows on the server, want 2400 (two INSERTs of 1200)", n)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if n, _ := countAndSum(t, db, ""); n != 3000 || b.Rows() != 3000 {
		t.Fatalf("after Send: %d rows, batch says %d", n, b.Rows())
	}
}

// One INSERT larger than a block goes out as several blocks (the driver's
// buffers stay one block big) and the server still writes it as one part
// per partition: it squashes the blocks, as it does a client's.
func TestLargeInsertStreamsBlocksIntoOnePart(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: 1_000_000, MaxBytes: 1 << 30, BlockBytes: 64 << 10})
	b := loader.NewBatch(ctx, transform.Transactions)
	const recs, rows = 5, 1500 // 5 records of ~150 KB: a block each
	for i := range recs {
		rec := transactions(t, memory.DefaultAllocator, i*rows, rows, 1)
		if err := b.Append(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if n, _ := countAndSum(t, db, ""); n != recs*rows || b.Rows() != recs*rows {
		t.Fatalf("%d rows in ClickHouse, batch says %d, want %d", n, b.Rows(), recs*rows)
	}
	var parts, partitions uint64
	if err := db.Conn().QueryRow(ctx, "SELECT count(), uniqExact(partition) FROM system.parts WHERE database = ? AND table = 'transactions' AND active",
		db.Database()).Scan(&parts, &partitions); err != nil {
		t.Fatal(err)
	}
	if parts != partitions {
		t.Fatalf("%d parts in %d partitions: the INSERT was not one part per partition", parts, partitions)
	}
}

func TestBatchRefusesBadRecords(t *testing.T) {
	db := chtest.NewDB(t)
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{})
	rec := transactions(t, memory.DefaultAllocator, 0, 3, 1)
	defer rec.Release()
	b := loader.NewBatch(context.Background(), transform.Accounts)
	if err := b.Append(rec); err == nil || !strings.Contains(err.Error(), "record schema does not match") {
		t.Fatalf("got %v", err)
	}
}

// cutProxy forwards TCP to ClickHouse but cuts the first connection that
// carries more than cutAfter bytes from the client: an INSERT dies mid-stream.
type cutProxy struct {
	ln       net.Listener
	target   string
	cutAfter int64
	cuts     atomic.Int32
}

// openCutProxy connects to db through a cutProxy that cuts the first
// connection sending more than cutAfter bytes.
func openCutProxy(t *testing.T, db *clickhouse.DB, cutAfter int64) (*clickhouse.DB, *cutProxy) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	proxy := &cutProxy{ln: ln, target: db.Addr(), cutAfter: cutAfter}
	go proxy.serve()
	// The cluster too: a Distributed INSERT must be synchronous, as in
	// production (Open sets insert_distributed_sync for a cluster).
	viaProxy, err := clickhouse.Open(context.Background(), clickhouse.Options{Addr: ln.Addr().String(), Database: db.Database(), Cluster: db.Cluster()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaProxy.Close() })
	return viaProxy, proxy
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *cutProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	go func() { io.Copy(client, server); client.Close() }()
	var sent int64
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		sent += int64(n)
		if sent > p.cutAfter && p.cuts.CompareAndSwap(0, 1) {
			server.Close()
			client.Close()
			return
		}
		if n > 0 {
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			server.Close()
			return
		}
	}
}

// A connection cut while the INSERT's data streams: the loader sends
// everything again, from memory or its spill file, and every row lands
// once. (A cut inside the query packet itself, before the data, crashed
// the 18.16 server here once — a segfault in its handler — so it is not
// provoked.)
func TestInsertRetriesAfterConnectionCut(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cutAfter int64 // bytes the client sent on the connection
		retain   int64 // bytes kept in memory; less than the INSERT: it spills
	}{
		{"cut mid-data", 256 << 10, 0},
		{"cut mid-data, retried from the spill file", 256 << 10, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := chtest.NewDB(t)
			viaProxy, proxy := openCutProxy(t, db, tc.cutAfter)
			spillDir := t.TempDir()
			var mu sync.Mutex
			var seen []clickhouse.Inserted
			loader := clickhouse.NewLoader(viaProxy, clickhouse.LoaderOptions{BackoffBase: 10 * time.Millisecond, BlockBytes: 64 << 10,
				RetainBytes: tc.retain, SpillDir: spillDir, Observe: func(in clickhouse.Inserted) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, in)
				}})
			b := loader.NewBatch(context.Background(), transform.Transactions)
			for i := range 4 {
				rec := transactions(t, memory.DefaultAllocator, i*2500, 2500, 1)
				if err := b.Append(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
			}
			if err := b.Send(); err != nil {
				t.Fatalf("insert not retried to success: %v", err)
			}
			if proxy.cuts.Load() != 1 || b.Retries() < 1 {
				t.Fatalf("cuts %d, retries %d: the fault never happened", proxy.cuts.Load(), b.Retries())
			}
			if n, _ := countAndSum(t, db, "FINAL"); n != 10000 || b.Rows() != 10000 {
				t.Fatalf("%d rows after the retry, batch says %d, want 10000", n, b.Rows())
			}
			if left, _ := os.ReadDir(spillDir); len(left) > 0 {
				t.Fatalf("spill files left behind: %v", left)
			}
			// The observer (the daemon's insert metrics) heard of the INSERT,
			// its retry, its rows and bytes, and the time it took.
			if len(seen) != 1 || seen[0].Table != "transactions" || seen[0].Err != nil || seen[0].Rows != 10000 ||
				seen[0].Retries != b.Retries() || seen[0].Bytes < 10000 || seen[0].Duration <= 0 {
				t.Fatalf("observed %+v, want one INSERT of 10000 rows into transactions, %d retries, bytes and a duration", seen, b.Retries())
			}
		})
	}
}

// An INSERT larger than what is kept for retries, without a spill
// directory, fails at a cut instead of resending half of it.
func TestInsertTooLargeToRetryFails(t *testing.T) {
	db := chtest.NewDB(t)
	viaProxy, _ := openCutProxy(t, db, 256<<10)
	loader := clickhouse.NewLoader(viaProxy, clickhouse.LoaderOptions{BackoffBase: 10 * time.Millisecond, BlockBytes: 64 << 10, RetainBytes: 1 << 20})
	b := loader.NewBatch(context.Background(), transform.Transactions)
	for i := range 4 {
		rec := transactions(t, memory.DefaultAllocator, i*5000, 5000, 1)
		if err := b.Append(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := b.Send(); err == nil || !strings.Contains(err.Error(), "not retried") || b.Rows() != 0 {
		t.Fatalf("err %v, %d rows accepted: want the INSERT failed and not retried", err, b.Rows())
	}
}

// batchWithoutTable is a batch into a transactions table that was dropped,
// whose INSERTs fail for good, and a record of 10 rows for it.
func batchWithoutTable(t *testing.T) (*clickhouse.Batch, arrow.Record) {
	db := chtest.NewDB(t)
	if err := db.Exec(context.Background(), "DROP TABLE transactions"); err != nil {
		t.Fatal(err)
	}
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{BackoffBase: time.Millisecond})
	rec := transactions(t, memory.DefaultAllocator, 0, 10, 1)
	t.Cleanup(rec.Release)
	return loader.NewBatch(context.Background(), transform.Transactions), rec
}

func TestInsertGivesUpOnPermanentErrors(t *testing.T) {
	b, rec := batchWithoutTable(t)
	// The INSERT fails at once, in the background: Append returns its
	// error if it sees the failure first, Send does in any case.
	appendErr := b.Append(rec)
	err := b.Send()
	if err == nil || b.Retries() != 0 || !strings.Contains(err.Error(), "inserting 10 rows into transactions") {
		t.Fatalf("err %v (Append: %v) after %d retries", err, appendErr, b.Retries())
	}
}

// Once Append returned an INSERT's error, the batch stays failed: a
// caller that dropped that error must not get a nil from Send and
// checkpoint past the lost rows.
func TestBatchStaysFailedAfterAppendReturnedTheError(t *testing.T) {
	b, rec := batchWithoutTable(t)
	// Append sees the failure once it picks the INSERT's outcome over its
	// input, which are both ready after the INSERT failed.
	var appendErr error
	appends := 0
	for ; appendErr == nil && appends < 10_000; appends++ {
		appendErr = b.Append(rec)
	}
	if appendErr == nil || !strings.Contains(appendErr.Error(), "into transactions") {
		t.Fatalf("Append returned %v after %d appends", appendErr, appends)
	}
	if err := b.Append(rec); err != appendErr {
		t.Errorf("Append after the failure: %v, want %v", err, appendErr)
	}
	if err := b.Send(); err != appendErr {
		t.Errorf("Send after the failure: %v, want %v", err, appendErr)
	}
	if b.Rows() != 0 {
		t.Errorf("%d rows accepted", b.Rows())
	}
}
