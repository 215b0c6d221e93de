package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	fgsb "github.com/finsync/finsync/extract/fingoal/sandbox"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/schedules/schedulestest"
)

// TestDaemon runs `finsync run` as a real process against the sandboxes:
// schedules fire, webhooks are received, /metrics parses and carries the
// daemon's metrics, the status page renders in headless Chromium, SIGTERM
// ends it with exit 0 and no run half done, and no secret reaches its logs.
func TestDaemon(t *testing.T) {
	sb, err := startSandbox("127.0.0.1:0", sandboxOptions{users: 2, months: 2, seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	dir := t.TempDir()
	schedFile := filepath.Join(dir, "schedules.yaml")
	os.WriteFile(schedFile, []byte(`defaults:
  jitter: 0s
streams:
  fino.transactions:
    schedule: "@every 1s"
  fino.accounts:
    schedule: "@every 2s"
  finapi.segments.high_balance:
    schedule: "@every 2s"
  fino.contracts:
    schedule: "@daily"
    enabled: false
`), 0o644)
	// A run a killed finsync left `running` an hour ago: the daemon marks
	// it abandoned at start-up, counts it and shows it.
	if code, _, stderr := run(t, map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database}, "migrate"); code != 0 {
		t.Fatal(stderr)
	}
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hourAgo := time.Now().Add(-time.Hour)
	if err := db.Conn().Exec(context.Background(), fmt.Sprintf("INSERT INTO etl_runs (stream, run_id, tenant, status, started_at, _version) "+
		"SELECT 'fino.accounts', 'killed-run', 'sandbox-client', 'running', toDateTime(%d), toUInt64(%d)", hourAgo.Unix(), hourAgo.UnixNano())); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	const webhookSecret = "whsec-d1st1nct-4711"
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=run", "FINSYNC_CLICKHOUSE_ADDR="+opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE="+opts.Database,
		"FINSYNC_HTTP_ADDR="+addr, "FINSYNC_SCHEDULES="+schedFile, "FINSYNC_FINO_WEBHOOK_SECRET="+webhookSecret,
		"FINSYNC_LOG_LEVEL=debug", "FINSYNC_SHUTDOWN_GRACE=20s",
		"FINSYNC_FINAPI_RATE_LIMIT=2") // low enough that finAPI's calls wait on it
	child.Env = append(child.Env, sb.env()...)
	var stdout, stderr schedulestest.SyncBuffer
	child.Stdout, child.Stderr = &stdout, &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	base := "http://" + addr
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Counters are there at zero from the start; wait until they count.
	waitFor(t, 60*time.Second, &stderr, func() bool { code, _ := get("/healthz"); return code == 200 })
	_, m := get("/metrics")
	for _, zero := range []string{`finsync_runs_total{status="failed",stream="fino.transactions",tenant="sandbox-client"} 0`, `finsync_build_info{goversion="go`} {
		if !strings.Contains(m, zero) {
			t.Errorf("/metrics at start-up lacks %s", zero)
		}
	}
	waitFor(t, 60*time.Second, &stderr, func() bool {
		_, m := get("/metrics")
		fino, _ := seriesSum(t, m, "finsync_runs_total", map[string]string{"stream": "fino.transactions", "status": "success"})
		finapi, _ := seriesSum(t, m, "finsync_runs_total", map[string]string{"stream": "finapi.segments.high_balance", "status": "success"})
		waited, _ := seriesSum(t, m, "finsync_rate_limit_wait_seconds_total", map[string]string{"provider": "finapi"})
		return fino > 0 && finapi > 0 && waited > 0
	})

	if code, body := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "ready") {
		t.Errorf("/readyz: %d %s", code, body)
	}
	_, metrics := get("/metrics")
	families, err := (&expfmt.TextParser{}).TextToMetricFamilies(strings.NewReader(metrics))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"finsync_runs_total", "finsync_rows_loaded_total", "finsync_rejects_total", "finsync_retries_total",
		"finsync_provider_request_duration_seconds", "finsync_last_success_timestamp_seconds", "finsync_next_run_timestamp_seconds",
		"finsync_run_duration_seconds", "finsync_rate_limit_wait_seconds_total", "finsync_clickhouse_insert_duration_seconds",
		"finsync_clickhouse_insert_bytes_total", "finsync_clickhouse_insert_retries_total"} {
		if families[name] == nil || len(families[name].Metric) == 0 {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// Histogram bounds a person reads: seconds, minutes, an hour.
	for _, bound := range []string{`finsync_run_duration_seconds_bucket{stream="fino.transactions",tenant="sandbox-client",le="60"}`,
		`finsync_provider_request_duration_seconds_bucket{code="200",provider="finapi",le="0.5"}`, `finsync_clickhouse_insert_duration_seconds_bucket{table="transactions",le="0.01"}`} {
		if !strings.Contains(metrics, bound) {
			t.Errorf("/metrics has no %s:\n%s", bound, grepLines(metrics, "_bucket"))
		}
	}
	if !strings.Contains(metrics, `finsync_runs_total{status="abandoned",stream="fino.accounts",tenant="sandbox-client"} 1`) {
		t.Errorf("/metrics does not count the run found abandoned at start-up")
	}
	var status, reason string
	if err := db.Conn().QueryRow(context.Background(), "SELECT status, error FROM etl_runs FINAL WHERE run_id = 'killed-run'").Scan(&status, &reason); err != nil ||
		status != "abandoned" || !strings.Contains(reason, "timeout (30m0s)") {
		t.Errorf("the killed run after start-up: %s %q %v", status, reason, err)
	}
	if !strings.Contains(metrics, `finsync_provider_request_duration_seconds_count{code="200",provider="fino"}`) ||
		!strings.Contains(metrics, `finsync_rows_loaded_total{stream="fino.transactions",table="transactions"}`) {
		t.Errorf("/metrics lacks per-provider requests or rows per table")
	}
	// The runs' INSERTs into transactions were timed and their bytes
	// counted; finAPI's calls waited on its rate limit of 2 per second.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"finsync_clickhouse_insert_duration_seconds", map[string]string{"table": "transactions"}},
		{"finsync_clickhouse_insert_duration_seconds", map[string]string{"table": "etl_runs"}},
		{"finsync_clickhouse_insert_bytes_total", map[string]string{"table": "transactions"}},
		{"finsync_rate_limit_wait_seconds_total", map[string]string{"provider": "finapi"}},
	} {
		if sum, _ := seriesSum(t, metrics, c.name, c.labels); sum <= 0 {
			t.Errorf("%s%v is %v, want > 0:\n%s", c.name, c.labels, sum, grepLines(metrics, c.name))
		}
	}
	if _, n := seriesSum(t, metrics, "finsync_clickhouse_insert_retries_total", map[string]string{"table": "transactions"}); n != 1 {
		t.Errorf("/metrics has no finsync_clickhouse_insert_retries_total for transactions")
	}
	// The dashboard's daemon panels ask for series /metrics has, by
	// labels they carry.
	dash := readGrafana(t)
	if len(dash.Prometheus) < 3 {
		t.Errorf("the dashboard has %d daemon panels, want 3", len(dash.Prometheus))
	}
	for title, expr := range dash.Prometheus {
		for _, name := range regexp.MustCompile(`finsync_\w+`).FindAllString(expr, -1) {
			name = strings.TrimSuffix(name, "_bucket")
			labels := familyLabels(t, metrics, name)
			if labels == nil {
				t.Errorf("grafana panel %q: /metrics has no %s", title, name)
			}
			for _, by := range regexp.MustCompile(`by \(([^)]*)\)`).FindAllStringSubmatch(expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					if l = strings.TrimSpace(l); l != "le" && !labels[l] {
						t.Errorf("grafana panel %q: %s has no label %s", title, name, l)
					}
				}
			}
		}
	}

	// The finoOS webhook brings a new user into the registry; a wrong
	// secret records nothing.
	hook := func(secret, user string) int {
		body := `{"webhookID":"w1","userID":"` + user + `","tenantID":"sandbox-client","correlationID":"c-1","secret":"` + secret + `","event":"analysis"}`
		resp, err := http.Post(base+"/webhooks/fino", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := hook(webhookSecret, "hooked-user"); code != http.StatusNoContent {
		t.Errorf("webhook with the secret: %d", code)
	}
	if code := hook("guess", "forged-user"); code != http.StatusUnauthorized {
		t.Errorf("webhook with a wrong secret: %d", code)
	}

	// The status page, as a person sees it.
	dom, png := browse(t, base+"/", "status-page.png")
	for _, s := range []string{"fino.transactions", "fino.accounts", "finapi.segments.high_balance", "fino.contracts"} {
		if !strings.Contains(dom, `data-stream="`+s+`"`) {
			t.Errorf("status page has no row for %s", s)
		}
	}
	if !strings.Contains(dom, `id="summary"`) || !strings.Contains(dom, `<th>rejects</th>`) || !strings.Contains(dom, `data-health="`) {
		t.Errorf("status page lacks its summary, the health or the rejects column:\n%.3000s", dom)
	}
	if !strings.Contains(dom, `data-status="abandoned">1 abandoned`) {
		t.Errorf("status page does not count the abandoned run:\n%.4000s", dom)
	}
	if !strings.Contains(dom, `class="success"`) || !strings.Contains(dom, "(disabled)") || !strings.Contains(dom, "<rect") {
		t.Errorf("status page lacks run status, the disabled stream or the bars:\n%.2000s", dom)
	}
	checkNotBlank(t, png)

	// SIGTERM: no new runs, running ones finish, exit 0.
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("daemon did not stop within its grace period\n%s", stderr.String())
	}

	var running, hooked uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM etl_runs FINAL WHERE status = 'running'").Scan(&running)
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM subjects FINAL WHERE subject_id IN ('hooked-user', 'forged-user')").Scan(&hooked)
	if running != 0 || hooked != 1 {
		t.Errorf("after SIGTERM: %d runs still 'running'; %d webhook users registered (want 1)", running, hooked)
	}
	logs := stderr.String()
	for _, secret := range []string{webhookSecret, "sandbox-secret", "mandator-a-secret"} {
		if strings.Contains(logs, secret) || strings.Contains(stdout.String(), secret) {
			t.Errorf("a secret (%s…) is in the daemon's output", secret[:4])
		}
	}
	if !strings.Contains(logs, `"msg":"run finished"`) || !strings.Contains(logs, `"run":"`) || !strings.Contains(logs, `"msg":"finsync daemon stopped"`) {
		t.Errorf("daemon logs lack run ids or the stop:\n%.3000s", logs)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// seriesSum adds up the samples of the metric family name in the
// Prometheus text m whose labels include want (a histogram's: its count),
// and counts them.
func seriesSum(t *testing.T, m, name string, want map[string]string) (sum float64, n int) {
	t.Helper()
	families, err := (&expfmt.TextParser{}).TextToMetricFamilies(strings.NewReader(m))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
next:
	for _, s := range families[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		sum += s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
		n++
	}
	return sum, n
}

// familyLabels are the label names of family name's series in m; nil if
// it has none.
func familyLabels(t *testing.T, m, name string) map[string]bool {
	t.Helper()
	families, err := (&expfmt.TextParser{}).TextToMetricFamilies(strings.NewReader(m))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	var out map[string]bool
	for _, s := range families[name].GetMetric() {
		if out == nil {
			out = map[string]bool{}
		}
		for _, l := range s.GetLabel() {
			out[l.GetName()] = true
		}
	}
	return out
}

func waitFor(t *testing.T, limit time.Duration, log *schedulestest.SyncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %s; daemon said:\n%s", limit, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// browse loads url in headless Chromium (installing Debian's chromium when
// missing) and returns the DOM and a screenshot, also saved as
// .finsync/out/<name> for people to look at.
func browse(t *testing.T, url, name string) (string, []byte) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		out, ierr := exec.Command("../../deploy/chromium/install.sh").CombinedOutput()
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("headless Chromium is needed (deploy/chromium/install.sh failed: %v):\n%s", ierr, out)
		}
	}
	outDir, _ := filepath.Abs("../../.finsync/out")
	os.MkdirAll(outDir, 0o755)
	profile := t.TempDir()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--user-data-dir=" + profile}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dom, err := exec.CommandContext(ctx, bin, append(flags, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	shot := filepath.Join(outDir, name)
	os.Remove(shot)
	if out, err := exec.CommandContext(ctx, bin, append(flags, "--window-size=1400,1800", "--screenshot="+shot, url)...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	return string(dom), png
}

// checkNotBlank fails unless the image has both light and dark pixels.
func checkNotBlank(t *testing.T, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	var dark, light int
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 4 {
		for x := r.Min.X; x < r.Max.X; x += 4 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if l := (cr + cg + cb) / 3; l < 0x4000 {
				dark++
			} else if l > 0xc000 {
				light++
			}
		}
	}
	if dark == 0 || light == 0 {
		t.Errorf("the screenshot looks blank (%d dark, %d light samples)", dark, light)
	}
}

// FinGoal's webhooks make `finsync run` work at once: the enrichment
// webhook of a pending batch has it collected, and a tag-status webhook has
// the tag update fetched from /users/tags/{guid}, although neither stream's
// schedule fires during the test. The runs they start submit nothing.
func TestDaemonActsOnFinGoalWebhooks(t *testing.T) {
	fs := finosb.New(finosb.Options{UsersPerTenant: 2, Months: 2, Seed: 5, Today: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)}) // recent: FinGoal tags the last 90 days
	fsrv := httptest.NewServer(fs)
	defer fsrv.Close()
	defer fs.Close()
	addr := freeAddr(t)
	// Batches are enriched only when the test says; webhooks go to the
	// daemon, spelled unlike JSON.stringify, which FinGoal signs.
	gs := fgsb.New(fgsb.Options{ResultDelay: -1, WebhookURL: "http://" + addr + "/webhooks/fingoal", RespellWebhooks: true})
	gsrv := httptest.NewServer(gs)
	defer gsrv.Close()
	defer gs.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	dir := t.TempDir()
	schedFile := filepath.Join(dir, "schedules.yaml")
	os.WriteFile(schedFile, []byte("defaults:\n  jitter: 0s\nstreams:\n  fingoal.enrichment:\n    schedule: \"@yearly\"\n  fingoal.user_tags:\n    schedule: \"@yearly\"\n"), 0o644)
	id, secret := gs.Credentials()
	env := map[string]string{
		"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "info",
		"FINSYNC_FINO_BASE_URL": fsrv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
		"FINSYNC_FINO_USERS":       strings.Join(fs.Users("sandbox-client"), ","),
		"FINSYNC_FINGOAL_BASE_URL": gsrv.URL + "/v3", "FINSYNC_FINGOAL_CLIENT_ID": id, "FINSYNC_FINGOAL_CLIENT_SECRET": secret,
		"FINSYNC_FINGOAL_ID_KEY": "daemon-test-id-key-0123", "FINSYNC_FINGOAL_POLL_TIMEOUT": "100ms",
		"FINSYNC_HTTP_ADDR": addr, "FINSYNC_SCHEDULES": schedFile, "FINSYNC_SHUTDOWN_GRACE": "20s",
	}
	// Before the daemon: fino's rows, submitted to FinGoal, not enriched yet.
	for _, stream := range []string{"fino.transactions", "fingoal.enrichment"} {
		if code, stdout, stderr := run(t, env, "once", "-stream", stream); code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", stream, code, stdout, stderr)
		}
	}
	batches, received := gs.Batches(), len(gs.Received())
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string) uint64 {
		var n uint64
		if err := db.Conn().QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	activeBatches := "SELECT count() FROM etl_state FINAL WHERE stream = 'fingoal.enrichment' AND startsWith(key, 'job:') AND status = 'active'"
	if len(batches) == 0 || count(activeBatches) != uint64(len(batches)) {
		t.Fatalf("%d batches, %d active jobs before the daemon", len(batches), count(activeBatches))
	}

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=run")
	for k, v := range env {
		child.Env = append(child.Env, k+"="+v)
	}
	var stdout, stderr schedulestest.SyncBuffer
	child.Stdout, child.Stderr = &stdout, &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	waitFor(t, 60*time.Second, &stderr, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	// FinGoal finishes the batches and says so: the daemon collects them.
	for _, b := range batches {
		if err := gs.Finish(b); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, &stderr, func() bool {
		return count(activeBatches) == 0 && count("SELECT count() FROM transactions FINAL WHERE provider = 'fingoal'") > 0
	})
	// FinGoal tags the users and says so: the daemon fetches the updates.
	gs.Tag()
	tagJobs := "SELECT count() FROM etl_state FINAL WHERE stream = 'fingoal.user_tags' AND startsWith(key, 'job:')"
	waitFor(t, 60*time.Second, &stderr, func() bool {
		// A tag update's job is done only once GET /users/tags/{guid} answered
		// and its tags were loaded.
		n := count(tagJobs)
		return n > 0 && count(tagJobs+" AND status = 'done'") == n && count("SELECT count() FROM user_tags WHERE guid != ''") > 0
	})
	if n := len(gs.Batches()); n != len(batches) || len(gs.Received()) != received {
		t.Errorf("the triggered runs submitted: %d batches (before %d), %d transactions received (before %d)", n, len(batches), len(gs.Received()), received)
	}
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, stderr.String())
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"stream":"fingoal.enrichment"`) || !strings.Contains(logs, `"triggered":true`) {
		t.Errorf("the daemon's logs show no triggered run:\n%.3000s", logs)
	}
	t.Logf("%d batches collected and %d tag updates fetched on FinGoal's webhooks", len(batches), count(tagJobs))
}

// grepLines are the lines of s containing sub, at most 10.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && len(out) < 10 {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
