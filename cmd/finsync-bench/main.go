// Command finsync-bench measures the loader against ClickHouse's own client
// on the same rows (make bench). It never runs in tests: timings are only
// ever measured here, side by side in one run.
//
// It generates BENCH_ROWS (default 1,000,000) synthetic transactions, writes
// them once as a JSONEachRow file (untimed), builds the same rows as Arrow
// records in memory (timed apart), then:
//   - loader: loads the records with the finsync loader (columnar native
//     inserts);
//   - clickhouse-client: `INSERT ... FORMAT JSONEachRow` of the file.
//
// Each side starts from its ready input, as the issue asks ("from Arrow
// records"). BENCH_INSERT_ROWS / BENCH_INSERT_BYTES override the loader's
// INSERT budget, BENCH_CPUPROFILE writes a CPU profile of the loader phase.
//
// Both loads are checked to leave the same count and amount sum. The last
// line is loader_vs_clickhouse_client=<ratio of rows/s>.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/load/clickhouse"
	finsql "github.com/finsync/finsync/sql"
	"github.com/finsync/finsync/transform"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "finsync-bench:", err)
		os.Exit(1)
	}
}

type result struct {
	Name     string  `json:"name"`
	Rows     int     `json:"rows"`
	Seconds  float64 `json:"seconds"`
	RowsPerS float64 `json:"rows_per_s"`
	CPUSecs  float64 `json:"cpu_seconds"`
	// PeakRSSMB is the process's peak during the phase; GrowthMB how far
	// that peak rose above the RSS the phase started with (for the loader:
	// its own memory, above the input records it was handed).
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	GrowthMB  float64 `json:"rss_growth_mb,omitempty"`
}

func run(ctx context.Context) error {
	rows := envInt("BENCH_ROWS", 1_000_000)
	users := envInt("BENCH_USERS", 10_000)
	addr := os.Getenv("FINSYNC_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:19000"
	}
	host, port, _ := strings.Cut(addr, ":")
	opts := clickhouse.Options{Addr: addr, Database: "finsync_bench"}
	out := filepath.Join(".finsync", "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if _, err := clickhouse.Migrate(ctx, opts, finsql.Files, nil); err != nil {
		return err
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	gen := generator{rows: rows, users: users, chunk: 65_536, version: 1}

	jsonPath := filepath.Join(out, "transactions.jsonl")
	fmt.Fprintf(os.Stderr, "writing %d rows as JSONEachRow to %s (untimed)\n", rows, jsonPath)
	if err := writeJSON(jsonPath, gen); err != nil {
		return err
	}
	defer os.Remove(jsonPath)

	truncate := func() error { return db.Exec(ctx, "TRUNCATE TABLE transactions") }
	if err := truncate(); err != nil {
		return err
	}
	// The loader's input is Arrow records, as clickhouse-client's is a file:
	// both are made before the clock starts. Building them is timed apart.
	fmt.Fprintln(os.Stderr, "building the Arrow records (timed apart)")
	var input []arrow.Record
	buildRes, err := measure("build Arrow records (input)", rows, func() error {
		return gen.each(memory.DefaultAllocator, func(rec arrow.Record) error {
			rec.Retain()
			input = append(input, rec)
			return nil
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "loader: Arrow records -> finsync loader -> ClickHouse")
	loaderRes, err := measure("finsync loader (Arrow -> native)", rows, func() error {
		if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: envInt("BENCH_INSERT_ROWS", 0), MaxBytes: int64(envInt("BENCH_INSERT_BYTES", 0)), InFlight: envInt("BENCH_INSERT_INFLIGHT", 0)})
		b := loader.NewBatch(ctx, transform.Transactions)
		for _, rec := range input {
			if err := b.Append(rec); err != nil {
				b.Abort()
				return err
			}
		}
		return b.Send()
	})
	if err != nil {
		return err
	}
	for _, rec := range input {
		rec.Release()
	}
	input = nil
	loaderCheck, err := check(ctx, db, rows)
	if err != nil {
		return err
	}

	if err := truncate(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "baseline: clickhouse-client INSERT ... FORMAT JSONEachRow")
	names := make([]string, 0, len(transform.Transactions.Schema.Fields()))
	for _, f := range transform.Transactions.Schema.Fields() {
		names = append(names, f.Name)
	}
	query := "INSERT INTO finsync_bench.transactions (" + strings.Join(names, ", ") + ") FORMAT JSONEachRow"
	jsonFile, err := os.Open(jsonPath)
	if err != nil {
		return err
	}
	defer jsonFile.Close()
	clientRes, err := measureChild("clickhouse-client (JSONEachRow)", rows, func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", port, "--query", query)
		cmd.Stdin = jsonFile
		cmd.Stderr = os.Stderr
		return cmd
	})
	if err != nil {
		return err
	}
	clientCheck, err := check(ctx, db, rows)
	if err != nil {
		return err
	}
	if clientCheck != loaderCheck {
		return fmt.Errorf("the two loads differ: loader %s, clickhouse-client %s", loaderCheck, clientCheck)
	}
	if err := truncate(); err != nil {
		return err
	}

	results := []result{buildRes, loaderRes, clientRes}
	fmt.Printf("\n%-34s %10s %9s %12s %9s %12s %12s\n", "phase", "rows", "seconds", "rows/s", "cpu s", "peak RSS MB", "RSS rise MB")
	for _, r := range results {
		rss, rise := "-", "-"
		if r.PeakRSSMB > 0 {
			rss, rise = fmt.Sprintf("%.0f", r.PeakRSSMB), fmt.Sprintf("%.0f", r.GrowthMB)
		}
		fmt.Printf("%-34s %10d %9.2f %12.0f %9.2f %12s %12s\n", r.Name, r.Rows, r.Seconds, r.RowsPerS, r.CPUSecs, rss, rise)
	}
	fmt.Printf("both loads: %s; ClickHouse %s\n", loaderCheck, db.Version())
	js, _ := json.MarshalIndent(map[string]any{"rows": rows, "users": users, "results": results, "at": time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "loader.json"), js, 0o644); err != nil {
		return err
	}
	fmt.Printf("loader_vs_clickhouse_client=%.2f\n", loaderRes.RowsPerS/clientRes.RowsPerS)
	return nil
}

// measure times fn in this process: wall, CPU, and peak RSS from a reset
// high-water mark.
func measure(name string, rows int, fn func() error) (result, error) {
	// Writing 5 to clear_refs resets VmHWM, so the peak is this phase's own.
	if f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0); err == nil {
		f.WriteString("5")
		f.Close()
	}
	before := procStatusMB("VmRSS:")
	cpu0 := cpuSeconds(syscall.RUSAGE_SELF)
	start := time.Now()
	if err := fn(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	peak := procStatusMB("VmHWM:")
	return result{Name: name, Rows: rows, Seconds: secs, RowsPerS: float64(rows) / secs,
		CPUSecs: cpuSeconds(syscall.RUSAGE_SELF) - cpu0, PeakRSSMB: peak, GrowthMB: peak - before}, nil
}

// measureChild times a child process (its CPU, not the server's).
func measureChild(name string, rows int, cmd func() *exec.Cmd) (result, error) {
	cpu0 := cpuSeconds(syscall.RUSAGE_CHILDREN)
	start := time.Now()
	if err := cmd().Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	return result{Name: name, Rows: rows, Seconds: secs, RowsPerS: float64(rows) / secs,
		CPUSecs: cpuSeconds(syscall.RUSAGE_CHILDREN) - cpu0}, nil
}

func cpuSeconds(who int) float64 {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// procStatusMB reads one memory line (VmHWM:, VmRSS:) of /proc/self/status.
func procStatusMB(key string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// check returns the loaded rows' count and amount sum, failing unless every
// row arrived.
func check(ctx context.Context, db *clickhouse.DB, rows int) (string, error) {
	var n uint64
	var sum string
	if err := db.Conn().QueryRow(ctx, "SELECT count(), toString(sum(amount)) FROM transactions FINAL").Scan(&n, &sum); err != nil {
		return "", err
	}
	if int(n) != rows {
		return "", fmt.Errorf("%d rows in ClickHouse, want %d", n, rows)
	}
	return fmt.Sprintf("%d rows, amount sum %s", n, sum), nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// generator makes the same synthetic transactions every time.
type generator struct {
	rows, users, chunk int
	version            uint64
}

var (
	descriptions = []string{"REWE SAGT DANKE 1234", "Gehalt November ACME GmbH", "Miete Wohnung", "Netflix.com", "Allianz Versicherung", "Amazon Mktp DE"}
	categories   = []string{"groceries", "salary", "rent", "subscriptions", "insurance", "shopping"}
	tags         = [][]string{{"food_groceries", "food", "spending"}, {"income_salary", "income"}, {"living_rent", "living", "spending"},
		{"leisure_streaming", "leisure", "spending"}, {"insurance_legal", "insurance", "spending"}, {"shopping_online", "shopping", "spending"}}
)

// each calls fn with consecutive records of the transactions table.
func (g generator) each(mem memory.Allocator, fn func(arrow.Record) error) error {
	rb := array.NewRecordBuilder(mem, transform.Transactions.Schema)
	defer rb.Release()
	base := arrow.Date32FromTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	extracted := arrow.Timestamp(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC).Unix())
	var buf []byte
	str := func(col int) *array.StringBuilder { return rb.Field(col).(*array.StringBuilder) }
	for start := 0; start < g.rows; start += g.chunk {
		n := min(g.chunk, g.rows-start)
		rb.Reserve(n)
		for i := start; i < start+n; i++ {
			k := i % len(descriptions)
			user := i % g.users
			str(0).Append("fino")
			str(1).Append("client-a")
			buf = strconv.AppendInt(append(buf[:0], "user-"...), int64(user), 10)
			str(2).BinaryBuilder.Append(buf)
			buf = strconv.AppendInt(append(buf[:0], "tx-"...), int64(i), 10)
			str(3).BinaryBuilder.Append(buf)
			buf = strconv.AppendInt(append(buf[:0], "acc-"...), int64(user), 10)
			str(4).BinaryBuilder.Append(buf)
			day := base + arrow.Date32(i%365)
			rb.Field(5).(*array.Date32Builder).Append(day)
			if i%10 == 0 {
				rb.Field(6).AppendNull()
			} else {
				rb.Field(6).(*array.Date32Builder).Append(day + 1)
			}
			// Cents between -500.00 and +499.99, stored with 4 decimals.
			rb.Field(7).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(i*7919%100000-50000) * 100))
			str(8).Append("EUR")
			str(9).Append(descriptions[k])
			str(10).Append("LASTSCHRIFT")
			str(11).Append("EREF+" + categories[k])
			str(12).Append("Counterparty " + categories[k])
			str(13).Append("DE89370400440532013000")
			str(14).Append("COBADEFFXXX")
			str(15).Append("DE98ZZZ09999999999")
			buf = strconv.AppendInt(append(buf[:0], "E2E-"...), int64(i), 10)
			str(16).BinaryBuilder.Append(buf)
			str(17).Append("")
			str(18).Append("5411")
			str(19).Append(categories[k])
			str(20).Append(tags[k][0])
			str(21).Append("")
			lb := rb.Field(22).(*array.ListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.StringBuilder).AppendValues(tags[k], nil)
			str(23).Append("")
			str(24).Append("")
			str(25).Append("bench")
			str(26).Append("run-1")
			rb.Field(27).(*array.TimestampBuilder).Append(extracted)
			rb.Field(28).(*array.Uint64Builder).Append(g.version)
		}
		rec := rb.NewRecord()
		err := fn(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// writeJSON writes the generator's rows as JSONEachRow in the text forms
// ClickHouse 18.16 parses (decimals as bare numbers, DateTime as
// "YYYY-MM-DD hh:mm:ss").
func writeJSON(path string, g generator) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fields := transform.Transactions.Schema.Fields()
	err = g.each(memory.DefaultAllocator, func(rec arrow.Record) error {
		for r := 0; r < int(rec.NumRows()); r++ {
			w.WriteByte('{')
			for c, f := range fields {
				if c > 0 {
					w.WriteByte(',')
				}
				w.WriteString(strconv.Quote(f.Name))
				w.WriteByte(':')
				writeJSONValue(w, rec.Column(c), r)
			}
			w.WriteString("}\n")
		}
		return nil
	})
	if err != nil {
		return err
	}
	return w.Flush()
}

func writeJSONValue(w *bufio.Writer, col arrow.Array, r int) {
	if col.IsNull(r) {
		w.WriteString("null")
		return
	}
	switch a := col.(type) {
	case *array.String:
		b, _ := json.Marshal(a.Value(r))
		w.Write(b)
	case *array.Date32:
		w.WriteString(`"` + a.Value(r).ToTime().Format("2006-01-02") + `"`)
	case *array.Timestamp:
		w.WriteString(`"` + time.Unix(int64(a.Value(r)), 0).UTC().Format("2006-01-02 15:04:05") + `"`)
	case *array.Decimal128:
		w.WriteString(a.Value(r).ToString(a.DataType().(*arrow.Decimal128Type).Scale))
	case *array.Uint64:
		w.WriteString(strconv.FormatUint(a.Value(r), 10))
	case *array.List:
		vals := a.ListValues().(*array.String)
		lo, hi := a.ValueOffsets(r)
		items := make([]string, 0, hi-lo)
		for i := lo; i < hi; i++ {
			items = append(items, vals.Value(int(i)))
		}
		b, _ := json.Marshal(items)
		w.Write(b)
	default:
		panic("no JSON form for " + col.DataType().String())
	}
}
