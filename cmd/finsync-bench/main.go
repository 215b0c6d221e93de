// Command finsync-bench is `make bench`: what finsync costs end to end and
// per stage, against ClickHouse's own client on the same rows, in one run.
// Timings are only ever measured here, never asserted in tests.
//
// The provider is the finoOS sandbox in a child process (over loopback
// HTTP, its memory not ours). Phases, all on the same synthetic rows:
//
//   - e2e: fino.transactions for BENCH_USERS users and BENCH_ROWS rows,
//     sandbox → HTTP → decode → Arrow → loader → ClickHouse, as the daemon
//     runs it (schedules.Runner); then the same with BENCH_ROWS_LARGE rows,
//     to show how cost (and memory) grows;
//   - incremental: a second run with no new data;
//   - baseline: the rows e2e loaded, as a JSONEachRow file, loaded by
//     `clickhouse-client --query "INSERT ... FORMAT JSONEachRow"`; and the
//     same as Native, which the server stores without parsing: what one
//     INSERT costs the server, whoever sends it;
//   - extract: the stream without loading (sandbox → HTTP → Arrow);
//   - decode: the same provider pages, from memory, into Arrow records;
//   - loader: those records into ClickHouse;
//   - fan-out: fino.accounts for BENCH_FANOUT_USERS users against a sandbox
//     adding BENCH_LATENCY_MS per request, against the ideal
//     max(requests × latency / concurrency, requests / rate limit).
//
// Every phase starts on a server with no merge running; the three pure
// loads (both clickhouse-client formats and the loader) are each the
// fastest of BENCH_REPEAT runs (default 3), since one run on a shared
// machine can take twice the next. Every load is checked (count, amount
// sum, raw bytes). The results go to
// .finsync/bench/bench.json; the last line is the summary the targets of
// issue 10 name. BENCH_CPUPROFILE=path profiles finsync in the first e2e
// phase, BENCH_DECODE_PROFILE the decode phase.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sandbox" {
		if err := serveSandbox(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "finsync-bench sandbox:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "finsync-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	rows := envInt("BENCH_ROWS", 1_000_000)
	users := envInt("BENCH_USERS", 10_000)
	large := envInt("BENCH_ROWS_LARGE", 5*rows)
	fanUsers := envInt("BENCH_FANOUT_USERS", 10_000)
	latency := time.Duration(envInt("BENCH_LATENCY_MS", 20)) * time.Millisecond
	out := filepath.Join(".finsync", "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, err := newBench(ctx, out)
	if err != nil {
		return err
	}
	defer b.close()
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	var results []result
	add := func(r result, err error) error {
		if err == nil {
			results = append(results, r)
			say("  %s: %.2f s, %.0f rows/s, peak RSS %.0f MB (now %.0f MB)", r.Name, r.Seconds, r.RowsPerS, r.PeakRSSMB, procStatusMB("VmRSS:"))
		}
		return err
	}
	// Every login synced before the runs: a second run finds nothing new.
	synced := time.Now().Add(-2 * time.Hour)

	say("sandbox: %d users × %d transactions", users, rows/users)
	sb, err := startSandbox(sandboxSize{users: users, txPerUser: rows / users, months: 6, syncedAt: synced})
	if err != nil {
		return err
	}
	defer sb.close()
	if err := b.register(ctx, sb.users); err != nil {
		return err
	}
	say("e2e: fino.transactions, sandbox → finsync → ClickHouse")
	var profile []string
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		profile = append(profile, "FINSYNC_CPUPROFILE="+p)
	}
	e2e, err := b.once(ctx, "e2e fino.transactions", sb, "fino.transactions", profile...)
	if err := add(e2e, err); err != nil {
		return err
	}
	want, err := b.check(ctx, checkSum{})
	if err != nil {
		return err
	}
	if e2e.Rows != rows {
		return fmt.Errorf("e2e loaded %d rows, the sandbox has %d", e2e.Rows, rows)
	}
	say("incremental: the same stream again, no new data")
	inc, err := b.once(ctx, "incremental (no new data)", sb, "fino.transactions")
	if err := add(inc, err); err != nil {
		return err
	}

	say("baseline: the loaded rows as JSONEachRow through clickhouse-client")
	base, err := b.clientLoad(ctx, "JSONEachRow", want)
	if err := add(base, err); err != nil {
		return err
	}
	say("floor: the same rows in ClickHouse's Native format through clickhouse-client")
	native, err := b.clientLoad(ctx, "Native", want)
	if err := add(native, err); err != nil {
		return err
	}

	say("extract: fino.transactions without loading")
	ext, err := b.extractOnly(ctx, sb)
	if err := add(ext, err); err != nil {
		return err
	}

	say("decode: capturing the provider's pages (untimed), then decoding them into Arrow")
	pages, err := b.capture(ctx, sb)
	if err != nil {
		return err
	}
	dec, recs, err := b.decode(pages, os.Getenv("BENCH_DECODE_PROFILE"))
	pages = nil
	if err := add(dec, err); err != nil {
		return err
	}
	say("loader: those Arrow records into ClickHouse")
	ld, err := b.load(ctx, recs, want)
	if err := add(ld, err); err != nil {
		return err
	}
	sb.close()

	say("e2e at %d rows (sandbox: %d users × %d transactions)", large, users, large/users)
	if err := b.reset(ctx); err != nil {
		return err
	}
	sbL, err := startSandbox(sandboxSize{users: users, txPerUser: large / users, months: 6, syncedAt: synced})
	if err != nil {
		return err
	}
	if err := b.register(ctx, sbL.users); err != nil {
		return err
	}
	e2eL, err := b.once(ctx, "e2e fino.transactions (large)", sbL, "fino.transactions")
	sbL.close()
	if err := add(e2eL, err); err != nil {
		return err
	}
	if e2eL.Rows != large {
		return fmt.Errorf("large e2e loaded %d rows, the sandbox has %d", e2eL.Rows, large)
	}

	say("fan-out: fino.accounts for %d users, %v per request", fanUsers, latency)
	if err := b.reset(ctx); err != nil {
		return err
	}
	sbF, err := startSandbox(sandboxSize{users: fanUsers, txPerUser: 1, months: 1, latency: latency})
	if err != nil {
		return err
	}
	if err := b.register(ctx, sbF.users); err != nil {
		return err
	}
	fan, ideal, err := b.fanout(ctx, sbF, latency)
	sbF.close()
	if err := add(fan, err); err != nil {
		return err
	}

	printTable(results)
	summary := fmt.Sprintf("e2e_vs_clickhouse_client=%.2f loader_vs_clickhouse_client=%.2f peak_rss_mb=%.0f rss_growth_1m_to_5m=%.2f incremental_vs_full=%.3f fanout_vs_ideal=%.2f",
		e2e.RowsPerS/base.RowsPerS, ld.RowsPerS/base.RowsPerS, e2eL.PeakRSSMB,
		e2eL.PeakRSSMB/e2e.PeakRSSMB, inc.Seconds/e2e.Seconds, fan.Seconds/ideal)
	js, _ := json.MarshalIndent(map[string]any{"rows": rows, "rows_large": large, "users": users, "fanout_users": fanUsers,
		"latency_ms": latency.Milliseconds(), "clickhouse": b.db.Version().String(), "results": results,
		"fanout_ideal_seconds": ideal, "native_floor_ratio": base.Seconds / native.Seconds, "summary": summary, "at": time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "bench.json"), js, 0o644); err != nil {
		return err
	}
	fmt.Printf("ClickHouse %s; results in %s\n", b.db.Version(), filepath.Join(out, "bench.json"))
	fmt.Printf("floor: one INSERT of these rows in Native takes the server %.2f s, so parsing is %.0f%% of clickhouse-client's JSONEachRow load (%.2f×); beating that needs INSERTs in parallel\n",
		native.Seconds, 100*(1-native.Seconds/base.Seconds), base.Seconds/native.Seconds)
	fmt.Println(summary)
	return nil
}

func printTable(results []result) {
	fmt.Printf("\n%-32s %9s %8s %8s %10s %8s %8s %7s %9s %9s\n", "phase", "rows", "requests", "seconds", "rows/s", "JSON MB", "MB/s", "cpu s", "server s", "peak RSS")
	for _, r := range results {
		mb, mbps := "-", "-"
		if r.JSONMB > 0 {
			mb, mbps = fmt.Sprintf("%.0f", r.JSONMB), fmt.Sprintf("%.1f", r.JSONMBPS)
		}
		req := "-"
		if r.Requests > 0 {
			req = fmt.Sprint(r.Requests)
		}
		fmt.Printf("%-32s %9d %8s %8.2f %10.0f %8s %8s %7.2f %9.2f %9.0f\n", r.Name, r.Rows, req, r.Seconds, r.RowsPerS, mb, mbps, r.CPUSecs, r.ServerCPUSecs, r.PeakRSSMB)
		if r.Note != "" {
			fmt.Printf("%-32s %s\n", "", r.Note)
		}
	}
	fmt.Println()
}
