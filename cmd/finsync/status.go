package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// statusRow is one stream on the status page, with a line per tenant.
type statusRow struct {
	Stream, Schedule string
	Overrides        string // the tenants' own schedules (per_tenant)
	Reconcile        string // its reconciliation's cron and lookback, "" without
	Enabled          bool
	// Health is the worst of its tenants' (tenantLine.Health): one tenant
	// failing alone makes the stream failing.
	Health  string
	Tenants []tenantLine // at least one (an empty line when it has none)
	Next    string
	Bars    []bar // rows of the last runs, oldest first
	Day     []dayCount
}

// tenantLine is a stream's state for one tenant.
type tenantLine struct {
	Tenant string
	// Health is failing (its last run failed or was abandoned), stale (no
	// success for two of its periods and a timeout), notes (its last run
	// was partial), ok, or unknown (never ran, or ClickHouse is down).
	Health      string
	LastSuccess string // "12 min ago", for a tenant that is not ok
	Last        *clickhouse.Run
	Rows        uint64
	Duration    string
	Cursors     []cursorView
}

// cursorView is a cursor as a person reads it, the stored value on hover.
type cursorView struct {
	Shard, Text, Raw string
}

// dayCount is how many of a stream's runs of the last 24 hours ended with
// Status; Status "runs" is all of them.
type dayCount struct {
	Status string
	N      uint64
}

// dayStatuses are the outcomes the status page counts, in its order: every
// one that is not a success.
var dayStatuses = []string{clickhouse.RunFailed, clickhouse.RunPartial, clickhouse.RunAbandoned}

type bar struct {
	X, Y, H int
	Title   string
	Class   string
}

const sparkRuns, sparkHeight = 12, 24

// healthRank orders healths worst first: the page sorts by it and a
// stream takes its worst tenant's.
var healthRank = map[string]int{"failing": 0, "stale": 1, "notes": 2, "unknown": 3, "ok": 4}

// statusPage answers at-a-glance "is the warehouse fresh?": one row per
// scheduled stream with its schedule, next run and the rows loaded by its
// last runs, and in it a line per tenant with its last run and cursor.
func statusPage(c Config, d *schedules.Daemon, state *clickhouse.State) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		// What ClickHouse knows; without it the page still shows the
		// schedule, with a banner.
		runs, err := state.RecentRuns(ctx, sparkRuns)
		var last map[string]map[string]clickhouse.Run
		var cursors map[string]map[string]string
		var counts map[string]map[string]uint64
		var successes map[string]map[string]time.Time
		if err == nil {
			last, err = state.LastRuns(ctx)
		}
		if err == nil {
			cursors, err = state.Cursors(ctx)
		}
		if err == nil {
			counts, err = state.RunCounts(ctx, time.Now().Add(-24*time.Hour))
		}
		if err == nil {
			successes, err = state.LastSuccess(ctx)
		}
		outage := ""
		if err != nil {
			runs, last, cursors, counts, successes = nil, nil, nil, nil, nil
			outage = fmt.Sprintf("ClickHouse at %s does not answer (%v): last runs, cursors and counts are unknown until it does; the schedules go on.", c.ClickHouse.Addr, err)
		}
		now := time.Now()
		next := d.Next()
		var rows []statusRow
		for _, j := range d.Current() {
			row := statusRow{Stream: j.Stream.Name, Schedule: j.Schedule.Spec, Enabled: j.Schedule.Enabled, Next: "—",
				Overrides: overridesText(j.Schedule)}
			if r := j.Schedule.Reconcile; r != "" {
				row.Reconcile = r + ", " + reconcileWindow(j.Schedule.ReconcileLookback)
			}
			if t, ok := next[j.Stream.Name]; ok {
				row.Next = t.UTC().Format("2006-01-02 15:04 MST")
			}
			// The configured tenants, then any other that ran (a tenant
			// since removed still shows what it left).
			tenants := slices.Clone(j.Tenants)
			for _, t := range slices.Sorted(maps.Keys(last[j.Stream.Name])) {
				if !slices.Contains(tenants, t) {
					tenants = append(tenants, t)
				}
			}
			row.Health = "ok"
			for _, t := range tenants {
				line := tenantLine{Tenant: t, Cursors: tenantCursors(j.Stream.Name, t, cursors[j.Stream.Name])}
				if run, ok := last[j.Stream.Name][t]; ok {
					line.Last = &run
					for _, n := range run.Rows {
						line.Rows += n
					}
					if !run.FinishedAt.IsZero() {
						line.Duration = run.FinishedAt.Sub(run.StartedAt).Round(10 * time.Millisecond).String()
					}
				}
				success := successes[j.Stream.Name][t]
				line.Health = health(j.Schedule, line.Last, success, now, outage != "")
				switch {
				case line.Health == "ok" || line.Last == nil:
				case success.IsZero():
					line.LastSuccess = "never"
				default:
					line.LastSuccess = ago(now.Sub(success))
				}
				if healthRank[line.Health] < healthRank[row.Health] {
					row.Health = line.Health
				}
				row.Tenants = append(row.Tenants, line)
			}
			if len(row.Tenants) == 0 {
				row.Health = "unknown"
				row.Tenants = []tenantLine{{Health: "unknown"}}
			}
			row.Bars = bars(runs[j.Stream.Name])
			var all uint64
			for _, n := range counts[j.Stream.Name] {
				all += n
			}
			row.Day = append(row.Day, dayCount{"runs", all})
			for _, st := range dayStatuses {
				if n := counts[j.Stream.Name][st]; n > 0 {
					row.Day = append(row.Day, dayCount{st, n})
				}
			}
			rows = append(rows, row)
		}
		// Problems first; within each, by stream (so by provider).
		sort.SliceStable(rows, func(i, k int) bool {
			if rows[i].Health != rows[k].Health {
				return healthRank[rows[i].Health] < healthRank[rows[k].Health]
			}
			return rows[i].Stream < rows[k].Stream
		})
		summary := map[string]int{}
		for _, r := range rows {
			summary[r.Health]++
		}
		// The notice of a run now (POST /run redirects here), for a stream
		// the daemon has: the query cannot put other text on the page.
		notice := ""
		if stream := r.URL.Query().Get("run"); jobOf(d, stream) != nil {
			who := "every tenant"
			if t := r.URL.Query().Get("tenant"); t != "" {
				who = "tenant " + t
			}
			notice = fmt.Sprintf("Run now: %s for %s started; its lines update when it ends.", stream, who)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if outage != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		if err := statusTemplate.Execute(w, map[string]any{"Rows": rows, "Now": now.UTC().Format(time.RFC1123),
			"Database": c.ClickHouse.Database, "Schedules": c.sched.File, "Outage": outage, "Split": d.SplitProblems(), "Summary": summary,
			"RunNow": c.RunToken != "", "Notice": notice}); err != nil {
			fmt.Fprintf(w, "<p>rendering failed: %s</p>", template.HTMLEscapeString(err.Error()))
		}
	})
}

// tenantCursors are tenant's cursors among a stream's (tenant → value; a
// shard's under "tenant@i/n").
func tenantCursors(stream, tenant string, all map[string]string) []cursorView {
	var out []cursorView
	for _, key := range slices.Sorted(maps.Keys(all)) {
		t, shard, _ := strings.Cut(key, "@")
		if t == tenant && all[key] != "" {
			out = append(out, cursorView{Shard: shard, Text: cursorText(stream, all[key]), Raw: all[key]})
		}
	}
	return out
}

// cursorText is a cursor as a person reads it. Cursors are opaque to
// finsync but each provider's have a shape: finoOS's "<day> synced-before
// <RFC 3339>", FinGoal's an RFC 3339 time or UNIX seconds, finAPI's the id
// of the last job it collected.
func cursorText(stream, raw string) string {
	if strings.HasPrefix(stream, "finapi.") {
		return "after job " + raw
	}
	if day, _, ok := strings.Cut(raw, " synced-before "); ok {
		if _, err := time.Parse(time.DateOnly, day); err == nil {
			return "up to " + day
		}
	}
	if t, err := time.Parse(time.RFC3339, raw); err == nil {
		return "up to " + t.UTC().Format("2006-01-02 15:04")
	}
	if sec, err := strconv.ParseInt(raw, 10, 64); err == nil && len(raw) >= 9 && len(raw) <= 11 {
		return "up to " + time.Unix(sec, 0).UTC().Format("2006-01-02 15:04")
	}
	return raw
}

// ago says how long ago d was, as a person says it.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min ago", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
	}
}

// health judges a stream from its last run and last success; down says
// ClickHouse did not answer.
func health(s schedules.Schedule, last *clickhouse.Run, success, now time.Time, down bool) string {
	switch {
	case down || last == nil:
		return "unknown"
	case last.Status == clickhouse.RunFailed || last.Status == clickhouse.RunAbandoned:
		return "failing"
	}
	if s.Enabled && s.Spec != "" {
		// Two of its periods and a run's timeout without a success: stale.
		next := s.Next(now)
		period := s.Next(next).Sub(next)
		if success.IsZero() || now.Sub(success) > 2*period+s.Timeout {
			return "stale"
		}
	}
	if last.Status == clickhouse.RunPartial {
		return "notes"
	}
	return "ok"
}

// reconcileWindow says how far back a reconciliation reads.
func reconcileWindow(d time.Duration) string {
	switch {
	case d == 0:
		return "the provider's default window"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("last %d days", d/(24*time.Hour))
	}
	return "last " + d.String()
}

// bars draws the rows of the last runs, scaled to the largest.
func bars(history []clickhouse.Run) []bar {
	var most uint64 = 1
	totals := make([]uint64, len(history))
	for i, r := range history {
		for _, n := range r.Rows {
			totals[i] += n
		}
		most = max(most, totals[i])
	}
	var out []bar
	for i := len(history) - 1; i >= 0; i-- {
		h := max(1, int(totals[i]*sparkHeight/most))
		out = append(out, bar{X: len(out) * 7, Y: sparkHeight - h, H: h, Class: history[i].Status,
			Title: fmt.Sprintf("%s %s: %d rows", history[i].StartedAt.UTC().Format("01-02 15:04"), history[i].Status, totals[i])})
	}
	return out
}

var statusTemplate = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30;url=/">
<title>finsync status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .6em;vertical-align:top}
th{background:#f4f4f4;border-bottom:1px solid #ddd}tbody.stream{border-bottom:1px solid #ddd}tr.tenant+tr.tenant td.t{border-top:1px dotted #e4e4e4}
.success{color:#1a7f37;fill:#2da44e}.partial{color:#9a6700;fill:#d4a72c}.failed{color:#cf222e;fill:#cf222e}
.running{color:#0969da;fill:#0969da}.failing{color:#cf222e;font-weight:600}.stale{color:#9a6700;font-weight:600}.notes{color:#9a6700}.ok{color:#1a7f37}.unknown{color:#6e7781}
.banner{background:#fff8c5;border:1px solid #d4a72c;padding:.6em 1em}.notice{background:#ddf4ff;border:1px solid #54aeff;padding:.6em 1em}
.summary{font-size:18px}.abandoned{color:#6e7781;fill:#6e7781}.err{color:#cf222e;font-size:12px;max-width:28em;word-break:break-word}.muted{color:#888}
.dot{display:inline-block;width:.6em;height:.6em;border-radius:50%;margin-right:.35em;background:currentColor}
button.run{font:12px system-ui,sans-serif;padding:.1em .6em;border:1px solid #8c959f;border-radius:4px;background:#f6f8fa;cursor:pointer}
button.run:hover{background:#eaeef2}code{font-size:12px}[title]{cursor:help}button[title]{cursor:pointer}
</style></head><body>
<h1>finsync</h1>
{{with .Outage}}<p id="outage" class="banner">{{.}}</p>{{end}}
{{range .Split}}<p class="banner split">replicas: {{.}}</p>{{end}}
{{with .Notice}}<p id="notice" class="notice">{{.}}</p>{{end}}
<p id="summary" class="summary">{{with index .Summary "failing"}}<span class="failing">{{.}} failing</span> · {{end}}{{with index .Summary "stale"}}<span class="stale">{{.}} stale</span> · {{end}}{{with index .Summary "notes"}}<span class="notes">{{.}} with notes</span> · {{end}}{{with index .Summary "unknown"}}<span class="unknown">{{.}} unknown</span> · {{end}}<span class="ok">{{index .Summary "ok"}} ok</span></p>
<p class="muted">database {{.Database}} · schedules {{.Schedules}} · {{.Now}} · times in UTC · refreshes every 30 s · <a href="/metrics">metrics</a></p>
{{if .RunNow}}<form id="run-now" method="post" action="/run"><label>run token <input type="password" name="token" autocomplete="current-password" required size="24"></label> <span class="muted">then press a stream's or a tenant's <b>run now</b>: it starts the run its schedule would, at once (for finAPI segments: a new, billed job)</span></form>
{{else}}<p id="run-now-off" class="muted">run now is off: set FINSYNC_RUN_TOKEN (or FINSYNC_RUN_TOKEN_FILE) to have a <b>run now</b> button per stream and tenant.</p>
{{end}}<table id="streams"><thead><tr><th>stream</th><th>health</th><th>schedule</th><th>tenant</th><th>last run</th><th>rows</th><th>rejects</th><th>duration</th><th>cursor</th><th>next run</th><th>last 24 h</th><th>last runs</th></tr></thead>
{{range $r := .Rows}}<tbody class="stream" data-stream="{{$r.Stream}}" data-health="{{$r.Health}}">
{{range $i, $t := $r.Tenants}}<tr class="tenant" data-tenant="{{$t.Tenant}}" data-health="{{$t.Health}}">
{{if not $i}}<td rowspan="{{len $r.Tenants}}"><b>{{$r.Stream}}</b>{{if and $.RunNow $r.Enabled}}<div><button class="run" form="run-now" formaction="/run?stream={{$r.Stream}}" title="run {{$r.Stream}} now for every tenant">run now</button></div>{{end}}</td>
<td rowspan="{{len $r.Tenants}}"><span class="{{$r.Health}}">{{$r.Health}}</span></td>
<td rowspan="{{len $r.Tenants}}"><code>{{$r.Schedule}}</code>{{if not $r.Enabled}} <span class="muted">(disabled)</span>{{end}}{{with $r.Overrides}}<br><span class="muted">{{.}}</span>{{end}}{{with $r.Reconcile}}<br><span class="muted reconcile">reconcile <code>{{.}}</code></span>{{end}}</td>
{{end}}<td class="t">{{with $t.Tenant}}<span class="{{$t.Health}}" title="{{$t.Health}}"><span class="dot"></span></span>{{.}}{{if and $.RunNow $r.Enabled}} <button class="run" form="run-now" formaction="/run?stream={{$r.Stream}}&amp;tenant={{.}}" title="run {{$r.Stream}} now for {{.}}">run now</button>{{end}}{{else}}<span class="muted">—</span>{{end}}{{with $t.LastSuccess}}<div class="muted last-success">last success {{.}}</div>{{end}}</td>
<td class="t">{{with $t.Last}}<span class="{{.Status}}">{{.Status}}</span> {{.StartedAt.UTC.Format "01-02 15:04"}}{{if .Error}}<div class="err">{{.Error}}</div>{{end}}{{else}}<span class="muted">never</span>{{end}}</td>
<td class="t">{{if $t.Last}}{{$t.Rows}}{{end}}</td>
<td class="t">{{with $t.Last}}{{.Rejects}}{{end}}</td>
<td class="t">{{$t.Duration}}</td>
<td class="t">{{range $k, $c := $t.Cursors}}{{if $k}}<br>{{end}}{{with $c.Shard}}<span class="muted">{{.}}</span> {{end}}<span class="cursor" title="{{$c.Raw}}">{{$c.Text}}</span>{{end}}</td>
{{if not $i}}<td rowspan="{{len $r.Tenants}}">{{$r.Next}}</td>
<td rowspan="{{len $r.Tenants}}" class="day">{{range $k, $c := $r.Day}}{{if $k}} · {{end}}<span class="{{$c.Status}}" data-status="{{$c.Status}}">{{$c.N}} {{$c.Status}}</span>{{end}}</td>
<td rowspan="{{len $r.Tenants}}"><svg width="84" height="24" role="img" aria-label="rows loaded by the last runs">{{range $r.Bars}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="5" height="{{.H}}"><title>{{.Title}}</title></rect>{{end}}</svg></td>
{{end}}</tr>
{{end}}</tbody>
{{end}}</table></body></html>
`))

// jobOf is d's job of stream, nil if it has none.
func jobOf(d *schedules.Daemon, stream string) *schedules.Job {
	jobs := d.Current()
	for i := range jobs {
		if jobs[i].Stream.Name == stream {
			return &jobs[i]
		}
	}
	return nil
}

// runNow is POST /run, the status page's "run now": it starts the run a
// schedule's tick would (Daemon.Tick) of the form's stream for its tenant
// ("" = each), unless the stream's last run is still going, and
// sends the browser back to the page. It is off unless FINSYNC_RUN_TOKEN
// is set, and then wants that token in the form's body; a cross-site
// request is refused whatever it carries, so that another page open in the
// operator's browser cannot press the button.
func runNow(c Config, d *schedules.Daemon) http.Handler {
	// Hashes compare in constant time whatever the lengths.
	want := sha256.Sum256([]byte(c.RunToken.Value()))
	sameSite := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "run now is a POST: the status page's run now buttons send it", http.StatusMethodNotAllowed)
			return
		}
		if c.RunToken == "" {
			http.Error(w, "run now is off: set FINSYNC_RUN_TOKEN (or FINSYNC_RUN_TOKEN_FILE) to turn it on", http.StatusForbidden)
			return
		}
		if err := sameSite.Check(r); err != nil {
			http.Error(w, "refused: a run now must come from the status page itself, not from another site", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		got := sha256.Sum256([]byte(r.PostFormValue("token")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			http.Error(w, "wrong or missing run token (FINSYNC_RUN_TOKEN)", http.StatusForbidden)
			return
		}
		stream, tenant := r.FormValue("stream"), r.FormValue("tenant")
		job := jobOf(d, stream)
		if job == nil {
			var names []string
			for _, j := range d.Current() {
				names = append(names, j.Stream.Name)
			}
			http.Error(w, fmt.Sprintf("no stream %q in this daemon; its streams: %s", stream, strings.Join(names, ", ")), http.StatusNotFound)
			return
		}
		if tenant != "" && !slices.Contains(job.Tenants, tenant) {
			http.Error(w, fmt.Sprintf("%s does not run for tenant %q; its tenants: %s", stream, tenant, strings.Join(job.Tenants, ", ")), http.StatusNotFound)
			return
		}
		if !job.Schedule.Enabled {
			http.Error(w, stream+" is disabled in the schedules (enabled: false): run now starts enabled streams only", http.StatusConflict)
			return
		}
		if d.Stopping() {
			http.Error(w, "not started: the daemon is stopping", http.StatusServiceUnavailable)
			return
		}
		if !d.Tick(stream, tenant) {
			http.Error(w, "not started: a run of "+stream+" is still going; press run now again once it ended", http.StatusConflict)
			return
		}
		if d.Log != nil {
			d.Log.Info("run now from the status page", "stream", stream, "tenant", tenant, "remote", r.RemoteAddr)
		}
		http.Redirect(w, r, "/?"+url.Values{"run": {stream}, "tenant": {tenant}}.Encode(), http.StatusSeeOther)
	})
}
