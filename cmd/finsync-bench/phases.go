package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fino"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	finsql "github.com/finsync/finsync/sql"
	"github.com/finsync/finsync/transform"
)

const benchDatabase = "finsync_bench"

// bench is the warehouse side: a database of its own, and the loader,
// state and runner the daemon uses, with their defaults.
type bench struct {
	out     string
	finsync string    // the binary under test
	server  serverCPU // the local ClickHouse server's CPU
	opts    clickhouse.Options
	db      *clickhouse.DB
	loader  *clickhouse.Loader
	state   *clickhouse.State
	runner  *schedules.Runner
}

func newBench(ctx context.Context, out string) (*bench, error) {
	addr := os.Getenv("FINSYNC_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:19000"
	}
	b := &bench{out: out, finsync: os.Getenv("BENCH_FINSYNC"), opts: clickhouse.Options{Addr: addr, Database: benchDatabase}}
	b.server = processCPU(filepath.Join(".finsync", "clickhouse", "clickhouse-server.pid"))
	if addr != "127.0.0.1:19000" {
		b.server = func() float64 { return 0 }
	}
	if b.finsync == "" {
		b.finsync = filepath.Join("bin", "finsync")
	}
	if _, err := clickhouse.Migrate(ctx, b.opts, finsql.Files, nil); err != nil {
		return nil, err
	}
	db, err := clickhouse.Open(ctx, b.opts)
	if err != nil {
		return nil, err
	}
	b.db = db
	b.loader = clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: envInt("FINSYNC_INSERT_MAX_ROWS", 0), MaxBytes: int64(envInt("FINSYNC_INSERT_MAX_BYTES", 0))})
	b.state = clickhouse.NewState(db, b.loader)
	b.runner = &schedules.Runner{Loader: b.loader, State: b.state}
	return b, b.reset(ctx)
}

func (b *bench) close() {
	b.db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+benchDatabase)
	b.db.Close()
}

// reset empties what the runs wrote: data, cursors, runs, subjects.
func (b *bench) reset(ctx context.Context) error {
	for _, t := range []string{"transactions", "accounts", "etl_state", "etl_runs", "etl_rejects", "subjects"} {
		if err := b.db.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
			return err
		}
	}
	return nil
}

// register enters the sandbox's users into the subjects registry, as an
// operator's INSERT would.
func (b *bench) register(ctx context.Context, users []string) error {
	subs := make([]extract.Subject, len(users))
	first := time.Now().AddDate(0, 0, -30)
	for i, u := range users {
		subs[i] = extract.Subject{Provider: "fino", Tenant: sandboxClient, Kind: "user", ID: u, Source: clickhouse.SourceInsert, FirstSeen: first}
	}
	return b.state.AddSubjects(ctx, subs)
}

// once runs `finsync once -stream stream` against the sandbox, as an
// operator would, and measures the process: wall, CPU, peak RSS. Rows come
// from the run's etl_runs row, bytes and the sandbox's CPU from the sandbox.
func (b *bench) once(ctx context.Context, name string, sb *sandboxProc, stream string, env ...string) (result, error) {
	cmd := exec.CommandContext(ctx, b.finsync, "once", "-stream", stream)
	cmd.Env = append(os.Environ(), "FINSYNC_CLICKHOUSE_ADDR="+b.opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE="+benchDatabase,
		"FINSYNC_FINO_BASE_URL="+sb.url, "FINSYNC_FINO_CLIENT_ID="+sandboxClient, "FINSYNC_FINO_CLIENT_SECRET="+sandboxSecret,
		"FINSYNC_FINO_RATE_LIMIT=1000000", "FINSYNC_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := b.quiet(ctx); err != nil {
		return result{}, err
	}
	before, err := sb.stats()
	if err != nil {
		return result{}, err
	}
	r, err := measureChild(name, b.server, 0, 0, cmd)
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, stdout.String())
	}
	after, err := sb.stats()
	if err != nil {
		return r, err
	}
	var rows, rejects uint64
	var status string
	err = b.db.Conn().QueryRow(ctx, "SELECT rows_total, rejects, status FROM etl_runs FINAL WHERE stream = ? ORDER BY started_at DESC, finished_at DESC LIMIT 1", stream).Scan(&rows, &rejects, &status)
	if err == nil && (status != "success" || rejects > 0) {
		err = fmt.Errorf("run ended %s with %d rejects", status, rejects)
	}
	if err != nil {
		return r, fmt.Errorf("reading the run: %w", err)
	}
	r.Rows = int(rows)
	r.RowsPerS = float64(rows) / r.Seconds
	r.Requests = after.Requests - before.Requests
	r.JSONMB = float64(after.Bytes-before.Bytes) / 1e6
	r.JSONMBPS = r.JSONMB / r.Seconds
	r.Note = fmt.Sprintf("finsync's own CPU and peak RSS; the sandbox spent %.2f CPU s serving it", after.CPUSecs-before.CPUSecs)
	return r, nil
}

// check returns the warehouse's transactions as count, amount sum and raw
// bytes, failing unless they are want (when want is not zero).
func (b *bench) check(ctx context.Context, want checkSum) (checkSum, error) {
	var c checkSum
	err := b.db.Conn().QueryRow(ctx, "SELECT count(), toString(sum(amount)), sum(length(raw)) FROM transactions FINAL").Scan(&c.rows, &c.amount, &c.raw)
	if err == nil && want != (checkSum{}) && c != want {
		err = fmt.Errorf("the warehouse holds %s, want %s", c, want)
	}
	return c, err
}

type checkSum struct {
	rows   uint64
	amount string
	raw    uint64
}

func (c checkSum) String() string {
	return fmt.Sprintf("%d rows, amount sum %s, %d raw bytes", c.rows, c.amount, c.raw)
}

func columnList() string {
	names := make([]string, 0, len(transform.Transactions.Schema.Fields()))
	for _, f := range transform.Transactions.Schema.Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

func (b *bench) client(query string) *exec.Cmd {
	host, port, _ := strings.Cut(b.opts.Addr, ":")
	return exec.Command("clickhouse-client", "--host", host, "--port", port, "--query", query)
}

// clientLoad dumps the loaded rows in format (untimed), empties the table
// and times clickhouse-client loading the file: JSONEachRow is the
// baseline, Native the server's own floor (no parsing at all).
func (b *bench) clientLoad(ctx context.Context, format string, want checkSum) (result, error) {
	path := filepath.Join(b.out, "transactions."+strings.ToLower(format))
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return result{}, err
	}
	dump := b.client("SELECT " + columnList() + " FROM " + benchDatabase + ".transactions FINAL FORMAT " + format)
	dump.Stdout, dump.Stderr = f, os.Stderr
	err = dump.Run()
	f.Close()
	if err != nil {
		return result{}, fmt.Errorf("dumping %s: %w", format, err)
	}
	r, err := b.fastest(ctx, func() (result, error) {
		in, err := os.Open(path)
		if err != nil {
			return result{}, err
		}
		defer in.Close()
		st, _ := in.Stat()
		load := b.client("INSERT INTO " + benchDatabase + ".transactions (" + columnList() + ") FORMAT " + format)
		load.Stdin, load.Stderr = in, os.Stderr
		r, err := measureChild("clickhouse-client "+format, b.server, int(want.rows), st.Size(), load)
		if err != nil {
			return r, err
		}
		_, err = b.check(ctx, want)
		return r, err
	})
	r.Note = "clickhouse-client's CPU and peak RSS; " + r.Note
	if format != "JSONEachRow" {
		r.JSONMB, r.JSONMBPS = 0, 0
	}
	return r, err
}

// fastest runs a load phase BENCH_REPEAT times (default 3), each into an
// empty table on a server with no merge running, and keeps the fastest:
// on a shared 2-core machine one run of the same load has been seen to
// take twice as long as the next, which would make a ratio of single runs
// say more about the neighbours than about the loads.
func (b *bench) fastest(ctx context.Context, run func() (result, error)) (result, error) {
	var best result
	var times []string
	for i := range envInt("BENCH_REPEAT", 3) {
		if err := b.db.Exec(ctx, "TRUNCATE TABLE transactions"); err != nil {
			return result{}, err
		}
		if err := b.quiet(ctx); err != nil {
			return result{}, err
		}
		r, err := run()
		if err != nil {
			return r, err
		}
		times = append(times, fmt.Sprintf("%.2f", r.Seconds))
		if i == 0 || r.Seconds < best.Seconds {
			best = r
		}
	}
	best.Note = "fastest of " + strings.Join(times, ", ") + " s"
	return best, nil
}

// quiet waits until the server runs no merge, so a phase does not pay for
// the parts of the one before.
func (b *bench) quiet(ctx context.Context) error {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n uint64
		if err := b.db.Conn().QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
	return errors.New("the server is still merging after 2 minutes")
}

// extractOnly runs fino.transactions in this process into an Output that
// counts and drops the records: HTTP and decoding without ClickHouse.
func (b *bench) extractOnly(ctx context.Context, sb *sandboxProc) (result, error) {
	a := fino.NewAPI(fino.Config{BaseURL: sb.url, ClientID: sandboxClient, ClientSecret: sandboxSecret, RateLimit: 1e6,
		Concurrency: envInt("FINSYNC_FINO_CONCURRENCY", 0)})
	var stream extract.Stream
	for _, s := range fino.Streams(a) {
		if s.Name == "fino.transactions" {
			stream = s
		}
	}
	subs := make([]extract.Subject, len(sb.users))
	for i, u := range sb.users {
		subs[i] = extract.Subject{Provider: "fino", Tenant: sandboxClient, Kind: "user", ID: u}
	}
	now := time.Now().UTC().Truncate(time.Second)
	req := extract.Request{Tenant: sandboxClient, Window: extract.Window{To: now}, Subjects: subs,
		Lineage: transform.Lineage{Provider: "fino", Tenant: sandboxClient, RunID: "bench-extract", ExtractedAt: now, Version: 1}}
	before, err := sb.stats()
	if err != nil {
		return result{}, err
	}
	out := &countingOutput{}
	req.Registry = out // fino.transactions is per-subject
	r, err := measure("extract (HTTP → Arrow, no load)", b.server, func() (int, int64, error) {
		_, err := stream.Run(ctx, req, out)
		return out.rows, 0, err
	})
	if err != nil {
		return r, err
	}
	after, err := sb.stats()
	if err != nil {
		return r, err
	}
	r.Requests = after.Requests - before.Requests
	r.JSONMB = float64(after.Bytes-before.Bytes) / 1e6
	r.JSONMBPS = r.JSONMB / r.Seconds
	r.Note = fmt.Sprintf("the sandbox spent %.2f CPU s serving it", after.CPUSecs-before.CPUSecs)
	return r, nil
}

// countingOutput counts the rows it is handed and keeps nothing; it is
// the stream's Registry too, and ignores what it is told of subjects.
type countingOutput struct{ rows, rejects int }

func (o *countingOutput) Records(t transform.Table, rec arrow.Record) error {
	o.rows += int(rec.NumRows())
	return nil
}
func (o *countingOutput) Reject(extract.Reject) error                           { o.rejects++; return nil }
func (o *countingOutput) Skip(context.Context, extract.Subject, string) error   { return nil }
func (o *countingOutput) Forget(context.Context, extract.Subject, string) error { return nil }
func (o *countingOutput) Gone(context.Context, extract.Subject, string) error   { return nil }
func (o *countingOutput) Read(extract.Subject)                                  {}

// page is one categorization page as the sandbox served it.
type page struct {
	user string
	body []byte
}

// capture fetches every user's categorization pages, as fino.transactions
// asks for them, into memory (untimed): decode's input.
func (b *bench) capture(ctx context.Context, sb *sandboxProc) ([]page, error) {
	hc := &http.Client{Transport: extract.DefaultTransport()}
	form := url.Values{"client_id": {sandboxClient}, "client_secret": {sandboxSecret}, "grant_type": {"client_credentials"}}
	resp, err := hc.PostForm(sb.url+"/api/auth", form)
	if err != nil {
		return nil, err
	}
	var tok fino.Token
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var pages []page
	for _, u := range sb.users {
		for p := 1; ; p++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/users/%s/categorization?size=%d&page=%d&includeTransaction=true",
				sb.url, url.PathEscape(u), fino.MaxPageSize, p), nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("capturing %s page %d: %d %v", u, p, resp.StatusCode, err)
			}
			pages = append(pages, page{user: u, body: body})
			var meta struct{ TotalPages int }
			if i := bytes.LastIndex(body, []byte(`,"page"`)); i >= 0 {
				json.Unmarshal(append([]byte("{"), body[i+1:]...), &meta)
			}
			if p >= meta.TotalPages {
				break
			}
		}
	}
	return pages, nil
}

// decode turns the captured pages into transactions records, as the
// stream does, without HTTP or ClickHouse.
func (b *bench) decode(pages []page, profile string) (result, []arrow.Record, error) {
	var recs []arrow.Record
	lin := transform.Lineage{Provider: "fino", Tenant: sandboxClient, RunID: "bench-decode", ExtractedAt: time.Now().UTC().Truncate(time.Second), Version: b.state.Version()}
	var n int64
	for _, p := range pages {
		n += int64(len(p.body))
	}
	r, err := measure("decode (JSON pages → Arrow)", b.server, func() (int, int64, error) {
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				return 0, 0, err
			}
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		tb := fino.NewTransactionsBuilder(memory.DefaultAllocator, lin)
		defer tb.Release()
		rows := 0
		flush := func() {
			rec := tb.NewRecord()
			rows += int(rec.NumRows())
			recs = append(recs, rec)
		}
		for _, p := range pages {
			err := fino.DecodeCategorizations(bytes.NewReader(p.body), tb, p.user, "", func(rej extract.Reject) error {
				return fmt.Errorf("reject: %s", rej.Reason)
			})
			if err != nil {
				return 0, 0, err
			}
			if tb.Len() >= 50_000 {
				flush()
			}
		}
		flush()
		return rows, n, nil
	})
	return r, recs, err
}

// load inserts recs with the loader and checks the warehouse equals want.
func (b *bench) load(ctx context.Context, recs []arrow.Record, want checkSum) (result, error) {
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	return b.fastest(ctx, func() (result, error) {
		r, err := measure("loader (Arrow → ClickHouse)", b.server, func() (int, int64, error) {
			batch := b.loader.NewBatch(ctx, transform.Transactions)
			rows := 0
			for _, rec := range recs {
				rows += int(rec.NumRows())
				if err := batch.Append(rec); err != nil {
					batch.Abort()
					return 0, 0, err
				}
			}
			return rows, 0, batch.Send()
		})
		if err != nil {
			return r, err
		}
		_, err = b.check(ctx, want)
		return r, err
	})
}

// fanout runs fino.accounts (account detection, per user) against a
// sandbox with latency; ideal is the time the concurrency and the rate
// limit allow for the requests the sandbox counted.
func (b *bench) fanout(ctx context.Context, sb *sandboxProc, latency time.Duration) (result, float64, error) {
	rate := envInt("BENCH_FANOUT_RATE", 2000)
	conc := envInt("BENCH_FANOUT_CONCURRENCY", 64)
	r, err := b.once(ctx, "fan-out fino.accounts", sb, "fino.accounts",
		fmt.Sprintf("FINSYNC_FINO_RATE_LIMIT=%d", rate), fmt.Sprintf("FINSYNC_FINO_CONCURRENCY=%d", conc))
	if err != nil {
		return r, 0, err
	}
	ideal := max(float64(r.Requests)*latency.Seconds()/float64(conc), float64(r.Requests)/float64(rate))
	r.Note = fmt.Sprintf("ideal %.2f s = max(%d requests × %v / %d workers, %d requests / %d per s)", ideal, r.Requests, latency, conc, r.Requests, rate)
	return r, ideal, nil
}
