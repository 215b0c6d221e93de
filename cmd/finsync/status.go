package main

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// statusRow is one stream on the status page.
type statusRow struct {
	Stream, Schedule string
	Tenants          string // the tenants' own schedules (per_tenant)
	Enabled          bool
	// Health is failing (its last run failed or was abandoned), stale (no
	// success for two of its periods and a timeout), notes (its last run
	// was partial), ok, or unknown (never ran, or ClickHouse is down).
	Health      string
	LastSuccess string // "3 h ago", for a stream that is not ok
	Last        *clickhouse.Run
	LastRows    uint64
	Duration    string
	Next        string
	Cursors     string
	Bars        []bar // rows of the last runs, oldest first
	Day         []dayCount
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

// statusPage answers at-a-glance "is the warehouse fresh?": one row per
// scheduled stream with its schedule, last run, next run, cursor and the
// rows loaded by its last runs.
func statusPage(c Config, d *schedules.Daemon, state *clickhouse.State) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		// What ClickHouse knows; without it the page still shows the
		// schedule, with a banner.
		runs, err := state.RecentRuns(ctx, sparkRuns)
		var cursors map[string]map[string]string
		var counts map[string]map[string]uint64
		var successes map[string]map[string]time.Time
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
			runs, cursors, counts, successes = nil, nil, nil, nil
			outage = fmt.Sprintf("ClickHouse at %s does not answer (%v): last runs, cursors and counts are unknown until it does; the schedules go on.", c.ClickHouse.Addr, err)
		}
		now := time.Now()
		next := d.Next()
		var rows []statusRow
		for _, j := range d.Current() {
			row := statusRow{Stream: j.Stream.Name, Schedule: j.Schedule.Spec, Enabled: j.Schedule.Enabled, Next: "—",
				Tenants: overridesText(j.Schedule)}
			if t, ok := next[j.Stream.Name]; ok {
				row.Next = t.UTC().Format("2006-01-02 15:04 MST")
			}
			var cs []string
			for tenant, cur := range cursors[j.Stream.Name] {
				cs = append(cs, tenant+": "+cur)
			}
			sort.Strings(cs)
			row.Cursors = strings.Join(cs, "; ")
			history := runs[j.Stream.Name]
			if len(history) > 0 {
				row.Last = &history[0]
				for _, n := range history[0].Rows {
					row.LastRows += n
				}
				if !history[0].FinishedAt.IsZero() {
					row.Duration = history[0].FinishedAt.Sub(history[0].StartedAt).Round(10 * time.Millisecond).String()
				}
			}
			row.Bars = bars(history)
			var success time.Time
			for _, at := range successes[j.Stream.Name] {
				if at.After(success) {
					success = at
				}
			}
			row.Health = health(j.Schedule, row.Last, success, now, outage != "")
			if row.Health != "ok" && !success.IsZero() {
				row.LastSuccess = now.Sub(success).Round(time.Minute).String() + " ago"
			}
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
		rank := map[string]int{"failing": 0, "stale": 1, "notes": 2, "unknown": 3, "ok": 4}
		sort.SliceStable(rows, func(i, k int) bool {
			if rows[i].Health != rows[k].Health {
				return rank[rows[i].Health] < rank[rows[k].Health]
			}
			return rows[i].Stream < rows[k].Stream
		})
		summary := map[string]int{}
		for _, r := range rows {
			summary[r.Health]++
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if outage != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		if err := statusTemplate.Execute(w, map[string]any{"Rows": rows, "Now": now.UTC().Format(time.RFC1123),
			"Database": c.ClickHouse.Database, "Schedules": c.sched.File, "Outage": outage, "Summary": summary}); err != nil {
			fmt.Fprintf(w, "<p>rendering failed: %s</p>", template.HTMLEscapeString(err.Error()))
		}
	})
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
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>finsync status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f4f4f4}.success{color:#1a7f37;fill:#2da44e}.partial{color:#9a6700;fill:#d4a72c}.failed{color:#cf222e;fill:#cf222e}
.running{color:#0969da;fill:#0969da}.failing{color:#cf222e;font-weight:600}.stale{color:#9a6700;font-weight:600}.notes{color:#9a6700}.ok{color:#1a7f37}.unknown{color:#6e7781}
.banner{background:#fff8c5;border:1px solid #d4a72c;padding:.6em 1em}.summary{font-size:18px}.abandoned{color:#6e7781;fill:#6e7781}.err{color:#cf222e;font-size:12px;max-width:28em;word-break:break-word}.muted{color:#888}
</style></head><body>
<h1>finsync</h1>
{{with .Outage}}<p id="outage" class="banner">{{.}}</p>{{end}}
<p id="summary" class="summary">{{with index .Summary "failing"}}<span class="failing">{{.}} failing</span> · {{end}}{{with index .Summary "stale"}}<span class="stale">{{.}} stale</span> · {{end}}{{with index .Summary "notes"}}<span class="notes">{{.}} with notes</span> · {{end}}{{with index .Summary "unknown"}}<span class="unknown">{{.}} unknown</span> · {{end}}<span class="ok">{{index .Summary "ok"}} ok</span></p>
<p class="muted">database {{.Database}} · schedules {{.Schedules}} · {{.Now}} · times in UTC · refreshes every 30 s · <a href="/metrics">metrics</a></p>
<table id="streams"><thead><tr><th>stream</th><th>health</th><th>schedule</th><th>last run</th><th>rows</th><th>rejects</th><th>duration</th><th>next run</th><th>cursor</th><th>last 24 h</th><th>last runs</th></tr></thead><tbody>
{{range .Rows}}<tr class="stream" data-stream="{{.Stream}}" data-health="{{.Health}}">
<td>{{.Stream}}</td>
<td><span class="{{.Health}}">{{.Health}}</span>{{with .LastSuccess}}<div class="muted">last success {{.}}</div>{{end}}</td>
<td><code>{{.Schedule}}</code>{{if not .Enabled}} <span class="muted">(disabled)</span>{{end}}{{if .Tenants}}<br><span class="muted">{{.Tenants}}</span>{{end}}</td>
<td>{{with .Last}}<span class="{{.Status}}">{{.Status}}</span> {{.StartedAt.UTC.Format "01-02 15:04"}}{{if .Error}}<div class="err">{{.Error}}</div>{{end}}{{else}}<span class="muted">never</span>{{end}}</td>
<td>{{if .Last}}{{.LastRows}}{{end}}</td>
<td>{{with .Last}}{{.Rejects}}{{end}}</td>
<td>{{.Duration}}</td>
<td>{{.Next}}</td>
<td>{{.Cursors}}</td>
<td class="day">{{range $i, $c := .Day}}{{if $i}} · {{end}}<span class="{{$c.Status}}" data-status="{{$c.Status}}">{{$c.N}} {{$c.Status}}</span>{{end}}</td>
<td><svg width="84" height="24" role="img" aria-label="rows loaded by the last runs">{{range .Bars}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="5" height="{{.H}}"><title>{{.Title}}</title></rect>{{end}}</svg></td>
</tr>{{end}}
</tbody></table></body></html>
`))
