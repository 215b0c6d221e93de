package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// The soak's private ClickHouse: it is restarted mid-run, so never the
// shared server of the other tests (19000).
const soakCHTCP, soakCHHTTP = "19300", "18300"

// Slopes above these, per minute, fail the soak (README: the soak test).
var soakLimits = map[string]float64{"rss_mib": 2, "goroutines": 1, "fds": 1}

// soakClock is the sandboxes' clock: real time until frozen.
type soakClock struct{ frozen atomic.Pointer[time.Time] }

func (c *soakClock) now() time.Time {
	if t := c.frozen.Load(); t != nil {
		return *t
	}
	return time.Now()
}

func (c *soakClock) freeze() { now := time.Now(); c.frozen.Store(&now) }

// soakSample is one reading of the daemon; seg counts its starts.
type soakSample struct {
	at, segStart     time.Duration // since the soak began
	seg              int
	rssMiB, fds, gor float64
}

// TestSoak runs the real daemon (bin/finsync run) for SOAK_DURATION
// (default 15m) on every stream every 20-30 s against sandboxes whose
// finoOS data grows, under the whole fault matrix, killing it twice with
// SIGKILL and restarting its ClickHouse once. Then the faults stop (the
// malformed records stay: they are the data), the daemon converges, and
// its warehouse must equal a clean load of the same sandbox state less
// exactly the rejected records. RSS, goroutines and open files are
// sampled; their slope over the last segment (after warm-up) must stay
// under soakLimits. make test-soak runs it; go test skips it.
func TestSoak(t *testing.T) {
	if os.Getenv("FINSYNC_SOAK") == "" {
		t.Skip("the soak test runs with make test-soak (FINSYNC_SOAK=1)")
	}
	dur := 15 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil || dur < 4*time.Minute {
			// Less leaves the killed runs within their 2m timeout at the end.
			t.Fatalf("SOAK_DURATION=%q: want a duration of at least 4m", v)
		}
	}
	repo, _ := filepath.Abs("../..")
	bin := cmp.Or(os.Getenv("FINSYNC_SOAK_BIN"), filepath.Join(repo, "bin", "finsync"))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: make build first (make test-soak does)", err)
	}
	outDir := filepath.Join(repo, ".finsync", "soak")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var summary strings.Builder
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		summary.WriteString(line + "\n")
		t.Log(line)
	}
	defer func() {
		os.WriteFile(filepath.Join(outDir, "summary.txt"), []byte(summary.String()), 0o644)
	}()

	clickhouseDo := func(cmd string) {
		t.Helper()
		c := exec.Command(filepath.Join(repo, "deploy", "clickhouse", "local.sh"), cmd)
		c.Env = append(os.Environ(), "FINSYNC_CH_TCP_PORT="+soakCHTCP, "FINSYNC_CH_HTTP_PORT="+soakCHHTTP)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("local.sh %s: %v\n%s", cmd, err, out)
		}
	}
	clickhouseDo("start")
	t.Cleanup(func() { clickhouseDo("stop") })
	opts := clickhouse.Options{Addr: "127.0.0.1:" + soakCHTCP, Database: "soak"}
	cleanOpts := clickhouse.Options{Addr: opts.Addr, Database: "soak_clean"}
	// Kept after the run for a look (start the server on these ports).
	chtest.DropDatabase(t, opts)
	chtest.DropDatabase(t, cleanOpts)

	knobs, err := sandboxkit.Parse(faultMatrix)
	if err != nil {
		t.Fatal(err)
	}
	var clock soakClock
	const grow = 20 * time.Second
	sbOpts := sandboxOptions{users: 3, companies: 1, months: 3, seed: 1}
	faulty := sbOpts
	faulty.faults, faulty.grow, faulty.now = faultMatrix, grow, clock.now
	sb, err := startSandbox("127.0.0.1:0", faulty)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.close()
	setFaults := func(k sandboxkit.Knobs) {
		sb.fino().SetFaults(k)
		sb.finapi().SetFaults(k)
		sb.fimento().SetFaults(k)
		sb.fingoal().SetFaults(k)
	}

	// Every stream on a fast schedule: the data streams every 20 s, the
	// rest every 30 s.
	sched := "defaults:\n  jitter: 5s\n  timeout: 2m\nconcurrency:\n  global: 5\n  provider.fino: 4\nstreams:\n"
	var streams []string
	for _, p := range providers(Config{}, slog.New(slog.DiscardHandler), nil) {
		for _, s := range p.Streams {
			every := "30s"
			if !strings.Contains(s.Name, ".analytics.") && !strings.HasPrefix(s.Name, "finapi.") {
				every = "20s"
			}
			streams = append(streams, s.Name)
			sched += fmt.Sprintf("  %s:\n    schedule: \"@every %s\"\n", s.Name, every)
		}
	}
	schedFile := filepath.Join(outDir, "schedules.yaml")
	if err := os.WriteFile(schedFile, []byte(sched), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	env := sb.into(map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database,
		"FINSYNC_HTTP_ADDR": httpAddr, "FINSYNC_SCHEDULES": schedFile, "FINSYNC_LOG_LEVEL": "info",
		"FINSYNC_SHUTDOWN_GRACE": "20s", "FINSYNC_FINO_PAGE_SIZE": "40"})
	logFile, err := os.Create(filepath.Join(outDir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	// The daemon, and the sampler reading it every few seconds.
	var mu sync.Mutex
	var daemon *exec.Cmd
	var seg int
	var segStart time.Duration
	var samples []soakSample
	begin := time.Now()
	start := func() {
		c := exec.Command(bin, "run")
		c.Env = daemonEnv()
		for k, v := range env {
			c.Env = append(c.Env, k+"="+v)
		}
		c.Stdout, c.Stderr = logFile, logFile
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		daemon, segStart = c, time.Since(begin)
		seg++
		mu.Unlock()
	}
	until := func(f float64) { time.Sleep(time.Until(begin.Add(time.Duration(f * float64(dur))))) }
	var inFlight uint64 // runs going when the daemon was killed
	kill := func() {
		mu.Lock()
		c := daemon
		mu.Unlock()
		if db, err := clickhouse.Open(context.Background(), opts); err == nil {
			var n uint64
			db.Conn().QueryRow(context.Background(), "SELECT count() FROM etl_runs FINAL WHERE status = 'running'").Scan(&n)
			inFlight += n
			db.Close()
		}
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		fmt.Fprintf(logFile, "\n=== soak: SIGKILL at %s, restarting ===\n", time.Since(begin).Round(time.Second))
	}

	start()
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(3 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			mu.Lock()
			pid, s, ss := daemon.Process.Pid, seg, segStart
			mu.Unlock()
			if x, ok := sampleDaemon(pid, httpAddr); ok {
				x.at, x.seg, x.segStart = time.Since(begin), s, ss
				mu.Lock()
				samples = append(samples, x)
				mu.Unlock()
			}
		}
	}()
	var kills int
	for _, f := range []float64{0.15, 0.30} {
		until(f)
		kill()
		kills++
		start()
	}
	until(0.6)
	fmt.Fprintf(logFile, "\n=== soak: ClickHouse stopped at %s ===\n", time.Since(begin).Round(time.Second))
	chDown := time.Now()
	clickhouseDo("stop")
	time.Sleep(5 * time.Second)
	clickhouseDo("start")
	chOutage := time.Since(chDown)
	until(1)

	// The end: the data freezes, the faults stop but for the malformed
	// records (they are the data: a clean run still rejects them), and the
	// daemon runs every stream cleanly. Three rounds, so that FinGoal's
	// streams run after the last transactions were loaded and enriched.
	clock.freeze()
	setFaults(sandboxkit.Knobs{Seed: knobs.Seed, Malformed: knobs.Malformed})
	soakDB, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer soakDB.Close()
	converge := time.Now()
	for round := 1; round <= 3; round++ {
		from := time.Now().Add(time.Second)
		deadline := time.Now().Add(5 * time.Minute)
		for {
			missing := queryStrings(t, soakDB, fmt.Sprintf(`SELECT stream, tenant, argMax(status, started_at), argMax(error, started_at) FROM etl_runs FINAL
				GROUP BY stream, tenant HAVING countIf(status = 'success' AND started_at >= toDateTime(%d)) = 0`, from.Unix()))
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the daemon did not converge: round %d, no clean run of %d stream/tenants in 5 minutes, e.g. %q", round, len(missing), missing[0])
			}
			time.Sleep(2 * time.Second)
		}
	}
	converged := time.Since(converge)
	mu.Lock()
	last := daemon
	mu.Unlock()
	last.Process.Signal(syscall.SIGTERM)
	if err := last.Wait(); err != nil {
		t.Errorf("the daemon's SIGTERM exit: %v", err)
	}
	close(stopSampling)
	<-sampled
	total := time.Since(begin)

	// The clean load of the same state: every stream once, no faults, into
	// another database; FinGoal is a fresh sandbox of its own, as it keeps
	// what a client sent it.
	setFaults(sandboxkit.Knobs{})
	fg, err := startSandbox("127.0.0.1:0", sbOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.close()
	cleanEnv := daemonEnv()
	for k, v := range env {
		cleanEnv = append(cleanEnv, k+"="+v)
	}
	cleanEnv = append(cleanEnv, fg.fakes["fingoal"].Env(fg.baseURL("fingoal"))...)
	cleanEnv = append(cleanEnv, "FINSYNC_CLICKHOUSE_DATABASE="+cleanOpts.Database)
	c := exec.Command(bin, "demo", "-report", filepath.Join(outDir, "clean-report.html"))
	c.Env = cleanEnv
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("clean load: %v\n%s", err, out)
	}
	clean, soak := readWarehouse(t, cleanOpts), readWarehouse(t, opts)
	if len(clean.rejects) != 0 {
		t.Errorf("the clean load has rejects: %v", clean.rejects)
	}
	res := compareLoads(t, clean, soak)

	// The summary.
	say("soak %s (SOAK_DURATION) + %s converging = %s; daemon killed %d times (SIGKILL, %d runs in flight), ClickHouse restarted once (%s down)",
		dur, converged.Round(time.Second), total.Round(time.Second), kills, inFlight, chOutage.Round(time.Second))
	say("sandboxes: %d persons + %d company per tenant, finoOS grows 1 transaction per user every %s (%d each by the end); faults %s",
		sbOpts.users, sbOpts.companies, grow, int(dur/grow), faultMatrix)
	var inj sandboxkit.Counts
	for _, c := range []sandboxkit.Counts{sb.fino().Injected(), sb.finapi().Injected(), sb.fimento().Injected(), sb.fingoal().Injected()} {
		inj.RateLimited += c.RateLimited
		inj.ServerErrors += c.ServerErrors
		inj.TokensExpired += c.TokensExpired
		inj.Malformed += c.Malformed
		inj.Truncated += c.Truncated
		inj.Duplicated += c.Duplicated
		inj.Slowed += c.Slowed
	}
	say("injected: 429 %d, 5xx %d, slow %d, token expired %d, malformed %d, truncated %d, duplicated %d",
		inj.RateLimited, inj.ServerErrors, inj.Slowed, inj.TokensExpired, inj.Malformed, inj.Truncated, inj.Duplicated)
	for kind, n := range map[string]int64{"429": inj.RateLimited, "500": inj.ServerErrors, "slow": inj.Slowed,
		"expire": inj.TokensExpired, "malformed": inj.Malformed, "truncate": inj.Truncated, "dup": inj.Duplicated} {
		if n == 0 {
			t.Errorf("fault %s was never injected", kind)
		}
	}
	say("\nruns per stream (success / partial / failed / abandoned; the last %d rounds of clean runs included):", 3)
	runs := queryStrings(t, soakDB, fmt.Sprintf(`SELECT stream, toString(countIf(status = 'success')), toString(countIf(status = 'partial')),
		toString(countIf(status = 'failed')), toString(countIf(status = 'abandoned')), toString(countIf(status NOT IN ('success', 'partial', 'failed', 'abandoned'))),
		toString(countIf(status = 'success' AND started_at < toDateTime(%d)))
		FROM etl_runs FINAL GROUP BY stream ORDER BY stream`, converge.Unix()))
	seen := map[string]bool{}
	var sums [5]int
	for _, r := range runs {
		seen[r[0]] = true
		var n [5]int
		for i := range n {
			n[i], _ = strconv.Atoi(r[i+1])
			sums[i] += n[i]
		}
		say("  %-42s %4d / %3d / %3d / %3d", r[0], n[0], n[1], n[2], n[3])
		if r[6] == "0" {
			t.Errorf("%s: no successful run under the faults", r[0])
		}
		if n[4] > 0 {
			t.Errorf("%s: %d runs left in another status (running?)", r[0], n[4])
		}
	}
	say("  %-42s %4d / %3d / %3d / %3d", "all", sums[0], sums[1], sums[2], sums[3])
	for _, s := range streams {
		if !seen[s] {
			t.Errorf("%s never ran", s)
		}
	}
	// The query at the kill may miss a run starting then; the abandoned count does not.
	if inFlight == 0 && sums[3] == 0 {
		t.Errorf("the kills hit %d runs in flight, %d runs abandoned: the kills proved nothing", inFlight, sums[3])
	}
	say("\nrows per table (loaded by all runs; in the warehouse FINAL; in the clean load FINAL):")
	loaded := map[string]string{}
	for _, r := range queryStrings(t, soakDB, `SELECT tbl, toString(sum(n)) FROM etl_runs FINAL ARRAY JOIN rows_tables AS tbl, rows_counts AS n GROUP BY tbl`) {
		loaded[r[0]] = r[1]
	}
	tables := make([]string, 0, len(naturalKeys))
	for table := range naturalKeys {
		tables = append(tables, table)
	}
	sort.Strings(tables)
	countsOf := func(o clickhouse.Options, table string) string {
		return queryStringsOf(t, o, "SELECT toString(count()) FROM "+table+" FINAL")[0][0]
	}
	for _, table := range tables {
		say("  %-24s %8s %8s %8s", table, cmp.Or(loaded[table], "0"), countsOf(opts, table), countsOf(cleanOpts, table))
	}
	var rejectGroups []string
	for g, n := range soak.rejects {
		rejectGroups = append(rejectGroups, fmt.Sprintf("%s %d", g, n))
	}
	sort.Strings(rejectGroups)
	say("\nrejected records (distinct): %s", strings.Join(rejectGroups, ", "))
	verdict := "EQUAL but for the rejects"
	if t.Failed() {
		verdict = "DIFFERENT (see the test's errors)"
	}
	say("comparison with the clean load: %s; %d rows compared, %d only in the soak's, %d FinGoal submissions left pending (reported by %d runs); missing: %s",
		verdict, res.compared, res.invented, res.pending, res.told, strings.Join(res.differ, ", "))

	// The slopes, per segment between starts, after each start's warm-up
	// (a fifth of the soak); the last segment is held to soakLimits.
	say("\nresources per segment (least-squares slope per minute after %s warm-up; samples every 3 s):", (dur / 5).Round(time.Second))
	mu.Lock()
	defer mu.Unlock()
	for s := 1; s <= seg; s++ {
		var xs []soakSample
		var from time.Duration
		for _, x := range samples {
			if x.seg == s && x.at >= x.segStart+dur/5 {
				xs = append(xs, x)
				from = x.segStart
			}
		}
		if len(xs) < 10 {
			say("  segment %d: %d samples after warm-up, too few for a slope", s, len(xs))
			if s == seg {
				t.Errorf("the last segment has only %d samples after warm-up", len(xs))
			}
			continue
		}
		line := fmt.Sprintf("  segment %d (started %s, %d samples over %s):", s, from.Round(time.Second), len(xs), (xs[len(xs)-1].at - xs[0].at).Round(time.Second))
		for _, m := range []struct {
			name string
			of   func(soakSample) float64
		}{{"rss_mib", func(x soakSample) float64 { return x.rssMiB }}, {"goroutines", func(x soakSample) float64 { return x.gor }}, {"fds", func(x soakSample) float64 { return x.fds }}} {
			slope, lo, hi := fitSlope(xs, m.of)
			line += fmt.Sprintf(" %s %+.3f/min (%.1f..%.1f)", m.name, slope, lo, hi)
			if s == seg && slope > soakLimits[m.name] {
				t.Errorf("%s grows %.3f per minute over the last segment, above the limit %.1f", m.name, slope, soakLimits[m.name])
			}
		}
		say("%s", line)
	}
	say("limits (last segment): rss_mib %.0f/min, goroutines %.0f/min, fds %.0f/min", soakLimits["rss_mib"], soakLimits["goroutines"], soakLimits["fds"])
	if t.Failed() {
		say("RESULT: FAIL")
	} else {
		say("RESULT: PASS")
	}
}

// daemonEnv is the test's environment less the soak's own settings (the
// daemon warns of FINSYNC_ names it does not know).
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FINSYNC_SOAK") {
			env = append(env, kv)
		}
	}
	return env
}

// sampleDaemon reads the process's RSS and open files from /proc and its
// goroutines from /metrics.
func sampleDaemon(pid int, httpAddr string) (soakSample, bool) {
	var x soakSample
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return x, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			x.rssMiB = kb / 1024
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil || x.rssMiB == 0 {
		return x, false
	}
	x.fds = float64(len(fds))
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return x, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			x.gor, err = strconv.ParseFloat(v, 64)
			return x, err == nil
		}
	}
	return x, false
}

// fitSlope is the least-squares slope of of(x) per minute, and its range.
func fitSlope(xs []soakSample, of func(soakSample) float64) (slope, lo, hi float64) {
	var sx, sy, sxx, sxy float64
	lo, hi = of(xs[0]), of(xs[0])
	for _, x := range xs {
		m, v := x.at.Minutes(), of(x)
		sx, sy, sxx, sxy = sx+m, sy+v, sxx+m*m, sxy+m*v
		lo, hi = min(lo, v), max(hi, v)
	}
	n := float64(len(xs))
	return (n*sxy - sx*sy) / (n*sxx - sx*sx), lo, hi
}
