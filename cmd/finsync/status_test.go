package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

func TestHealth(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\n  timeout: 30m\nstreams:\n  a.hourly:\n    schedule: \"0 * * * *\"\n"),
		map[string]schedules.ParamsCheck{"a.hourly": nil})
	if err != nil {
		t.Fatal(err)
	}
	hourly, _ := ss.Find("a.hourly")
	run := func(status string) *clickhouse.Run { return &clickhouse.Run{Status: status} }
	for _, tc := range []struct {
		name    string
		last    *clickhouse.Run
		success time.Time
		down    bool
		want    string
	}{
		{"never ran", nil, time.Time{}, false, "unknown"},
		{"ClickHouse down", run(clickhouse.RunSuccess), now, true, "unknown"},
		{"failed", run(clickhouse.RunFailed), now.Add(-time.Minute), false, "failing"},
		{"abandoned", run(clickhouse.RunAbandoned), now, false, "failing"},
		{"success within two periods", run(clickhouse.RunSuccess), now.Add(-2 * time.Hour), false, "ok"},
		{"no success for three periods", run(clickhouse.RunPartial), now.Add(-3 * time.Hour), false, "stale"},
		{"partial, recent success", run(clickhouse.RunPartial), now.Add(-time.Hour), false, "notes"},
	} {
		if got := health(hourly, tc.last, tc.success, now, tc.down); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// With ClickHouse down the status page still shows the streams and their
// schedules and run now buttons, under a banner that says so, and answers
// 503.
func TestStatusPageWithClickHouseDown(t *testing.T) {
	c, err := LoadConfig(context.Background(), lookupFrom(map[string]string{"FINSYNC_RUN_TOKEN": "run-token-of-16-chars"}))
	if err != nil {
		t.Fatal(err)
	}
	d := &schedules.Daemon{}
	for _, p := range providers(c, nil, nil) {
		for _, s := range p.Streams {
			sched, _ := c.schedule(s.Name)
			d.Jobs = append(d.Jobs, schedules.Job{Stream: s, Schedule: sched})
		}
	}
	db := chtest.NewDB(t)
	state := clickhouse.NewState(db, nil)
	db.Close() // the outage
	srv := httptest.NewServer(statusPage(c, d, state))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dom, png := browse(t, srv.URL, "status-page-outage.png")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(dom, `id="outage"`) || !strings.Contains(dom, "does not answer") ||
		!strings.Contains(dom, `data-stream="fino.transactions" data-health="unknown"`) || !strings.Contains(dom, "0 * * * *") && !strings.Contains(dom, "*/6") {
		t.Errorf("status %d, page:\n%.3000s", resp.StatusCode, dom)
	}
	if !strings.Contains(dom, `id="summary"`) || !strings.Contains(dom, "unknown</span>") || !strings.Contains(dom, ">run now</button>") {
		t.Errorf("no summary or no run now:\n%.2000s", dom)
	}
	checkNotBlank(t, png)
}

// The status page shows every tenant's last run, not only the last
// tenant's: finAPI's mandator-b failed before mandator-a succeeded, and the
// stream is failing with mandator-b's error and last success on its line.
// Its "run now" (on with FINSYNC_RUN_TOKEN) starts a run that lands in
// etl_runs; a request without the token, from another site, for a
// stream or tenant the daemon does not have, or not a POST starts nothing.
func TestStatusPageTenantsAndRunNow(t *testing.T) {
	const token = "run-token-Zq8v1-4711"
	dir := t.TempDir()
	schedFile := filepath.Join(dir, "schedules.yaml")
	// Yearly: no tick fires during the test; only run now starts runs.
	os.WriteFile(schedFile, []byte(`defaults:
  jitter: 0s
streams:
  fino.accounts:
    schedule: "0 0 1 1 *"
  finapi.segments.high_balance:
    schedule: "0 0 1 1 *"
  fino.contracts:
    schedule: "@daily"
    enabled: false
`), 0o644)
	_, opts, env := sandboxed(t, sandboxOptions{users: 1, months: 1, seed: 3},
		map[string]string{"FINSYNC_RUN_TOKEN": token, "FINSYNC_SCHEDULES": schedFile, "FINSYNC_LOG_LEVEL": "warn"})
	if code, _, stderr := run(t, env, "migrate"); code != 0 {
		t.Fatal(stderr)
	}
	ctx := context.Background()
	c, err := LoadConfig(ctx, lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	db, err := clickhouse.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs schedulestest.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	metrics := schedules.NewMetrics()
	ps := providers(c, log, metrics)
	loader := clickhouse.NewLoader(db, c.loaderOptions(log))
	state := clickhouse.NewState(db, loader)
	d := &schedules.Daemon{Runner: &schedules.Runner{Loader: loader, State: state, Log: log}, Metrics: metrics, Log: log}
	for _, p := range ps {
		if err := state.AddSubjects(ctx, configSubjects(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range scheduledJobs(c, ps) {
		if j.Stream.Name == "fino.accounts" || j.Stream.Name == "finapi.segments.high_balance" || j.Stream.Name == "fino.contracts" {
			d.Jobs = append(d.Jobs, j)
		}
	}
	now := time.Now().UTC()
	const failure = "finAPI answered 500 for mandator-b"
	for _, r := range []clickhouse.Run{
		{ID: "b-ok", Tenant: "mandator-b", Status: clickhouse.RunSuccess, StartedAt: now.Add(-3*time.Hour - time.Minute), FinishedAt: now.Add(-3 * time.Hour)},
		{ID: "b-failed", Tenant: "mandator-b", Status: clickhouse.RunFailed, StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-2*time.Hour + time.Second), Error: failure},
		{ID: "a-ok", Tenant: "mandator-a", Status: clickhouse.RunSuccess, StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-time.Hour + 2*time.Second),
			Rows: map[string]uint64{"segment_members": 7}},
	} {
		r.Stream = "finapi.segments.high_balance"
		if err := state.RecordRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	day := now.AddDate(0, 0, -1).Format(time.DateOnly)
	rawCursor := day + " synced-before " + now.Format(time.RFC3339)
	if err := state.SetCursor(ctx, "fino.accounts", "sandbox-client", rawCursor); err != nil {
		t.Fatal(err)
	}
	d.Start()
	defer d.Stop(10 * time.Second)
	srv := httptest.NewServer(daemonMux(c, ps, d, loader, state, db, metrics))
	defer srv.Close()
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	page := get("/")
	for _, want := range []string{
		`<tbody class="stream" data-stream="finapi.segments.high_balance" data-health="failing">`,
		`data-tenant="mandator-a" data-health="ok"`,
		`data-tenant="mandator-b" data-health="failing"`,
		failure,
		`last success 3 h 0 min ago`,
		`title="` + rawCursor + `">up to ` + day + `</span>`,
		`<form id="run-now" method="post" action="/run">`,
		`type="password" name="token"`,
		`formaction="/run?stream=fino.accounts&amp;tenant=sandbox-client"`,
		`formaction="/run?stream=finapi.segments.high_balance"`,
		`<span class="failing">1 failing</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page lacks %s:\n%s", want, page)
		}
	}
	// A disabled stream has no button: run now would refuse it.
	if strings.Contains(page, "/run?stream=fino.contracts") {
		t.Errorf("the disabled stream has a run now button")
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(form url.Values, origin string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/run", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	runs := func(stream string) uint64 {
		var n uint64
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM etl_runs FINAL WHERE stream = ?", stream).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	target := func(kv ...string) url.Values {
		v := url.Values{"stream": {"fino.accounts"}, "tenant": {"sandbox-client"}, "token": {token}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		origin string
		code   int
		body   string
	}{
		{"no token", target("token", ""), "", http.StatusForbidden, "wrong or missing run token"},
		{"wrong token", target("token", token+"x"), "", http.StatusForbidden, "wrong or missing run token"},
		{"from another site", target(), "http://evil.example", http.StatusForbidden, "not from another site"},
		{"unknown stream", target("stream", "fino.acounts"), "", http.StatusNotFound, "its streams: fino.accounts"},
		{"unknown tenant", target("tenant", "nobody"), "", http.StatusNotFound, "its tenants: sandbox-client"},
		{"disabled stream", target("stream", "fino.contracts"), "", http.StatusConflict, "enabled: false"},
	} {
		if code, _, body := post(tc.form, tc.origin); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}
	if resp, err := http.Get(srv.URL + "/run?stream=fino.accounts&token=" + token); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /run: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	time.Sleep(500 * time.Millisecond) // a run started by mistake would be recorded by now
	if n := runs("fino.accounts") + runs("fino.contracts"); n != 0 {
		t.Fatalf("refused requests started %d runs", n)
	}

	// The right token, from the page itself: a run, and back to the page.
	code, location, body := post(target(), srv.URL)
	if code != http.StatusSeeOther || location != "/?run=fino.accounts&tenant=sandbox-client" {
		t.Fatalf("run now: %d %q %s", code, location, body)
	}
	var status string
	waitFor(t, 60*time.Second, &logs, func() bool {
		err := db.Conn().QueryRow(ctx, "SELECT status FROM etl_runs FINAL WHERE stream = 'fino.accounts' AND tenant = 'sandbox-client' AND status != 'running'").Scan(&status)
		return err == nil
	})
	if status != clickhouse.RunSuccess {
		t.Errorf("the run now ended %s", status)
	}
	dom, png := browse(t, srv.URL+location, "status-page-tenants.png")
	for _, want := range []string{`id="notice"`, "fino.accounts for tenant sandbox-client started", `id="summary"`,
		`data-tenant="mandator-b" data-health="failing"`, `data-stream="fino.accounts" data-health="ok"`, `>run now</button>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page after run now lacks %s:\n%s", want, dom)
		}
	}
	checkNotBlank(t, png)
	if strings.Contains(logs.String(), token) {
		t.Errorf("the run token is in the logs")
	}

	// Without FINSYNC_RUN_TOKEN: no button, and /run refuses.
	off := c
	off.RunToken = ""
	offSrv := httptest.NewServer(daemonMux(off, ps, d, loader, state, db, metrics))
	defer offSrv.Close()
	resp, err := http.Get(offSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "<button") || !strings.Contains(string(b), `id="run-now-off"`) {
		t.Errorf("run now off, the page:\n%s", b)
	}
	resp, err = http.PostForm(offSrv.URL+"/run", target())
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "set FINSYNC_RUN_TOKEN") {
		t.Errorf("run now off, POST /run: %d %s", resp.StatusCode, b)
	}
}

func TestCursorText(t *testing.T) {
	for _, tc := range []struct{ stream, raw, want string }{
		{"fino.transactions", "2026-12-01 synced-before 2026-12-02T03:04:05Z", "up to 2026-12-01"},
		{"fingoal.enrichment", "2026-12-02T03:04:05Z", "up to 2026-12-02 03:04"},
		{"fingoal.finsights", "1796180645", "up to 2026-12-02 03:04"},
		{"finapi.segments.high_balance", "8f2c", "after job 8f2c"},
		{"other.stream", "opaque", "opaque"},
	} {
		if got := cursorText(tc.stream, tc.raw); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.stream, tc.raw, got, tc.want)
		}
	}
}

// Sharded replicas check their split: one counting differently is logged
// and shown on the status page until it is fixed.
func TestStatusPageShowsAWrongSplit(t *testing.T) {
	ctx := context.Background()
	db := chtest.NewDB(t)
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	other := schedules.Shard{Index: 1, Count: 3} // scaled up, and only this one told
	if err := other.Beat(ctx, state, schedules.NewOwner(), time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs schedulestest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d := &schedules.Daemon{Runner: &schedules.Runner{State: state, Shard: schedules.Shard{Index: 0, Count: 2}, Log: log},
		Log: log, SplitEvery: 100 * time.Millisecond}
	d.Start()
	defer d.Stop(time.Second)
	c, err := LoadConfig(ctx, lookupFrom(map[string]string{"FINSYNC_SHARD": "0/2"}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(statusPage(c, d, state))
	defer srv.Close()
	page := func() string {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	const wrong = "shard 1 runs with FINSYNC_SHARD 1/3, this one with 0/2"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(page(), wrong); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the status page does not show the wrong split:\n%s\nlogs:\n%s", page(), logs.String())
		}
	}
	// Fixed: the other replica counts 2 and keeps beating.
	fixed, twin := schedules.Shard{Index: 1, Count: 2}, schedules.NewOwner()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			fixed.Beat(ctx, state, twin, time.Now())
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); strings.Contains(page(), "replicas:"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the status page still shows a wrong split:\n%s", page())
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "the replicas split the work right again") {
		t.Errorf("%d ERROR lines, want the wrong split's once, then that it is right again:\n%s", n, logs.String())
	}
}
