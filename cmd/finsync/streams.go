package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// runStreams is `finsync streams`: every provider's streams, with their last runs and cursors when ClickHouse answers.
func runStreams(ctx context.Context, a *app, args []string) error {
	var output string
	if err := a.flags("streams", summaryOf("streams"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "text", "output: text (fits a terminal), wide (every column) or json")
	}); err != nil {
		return err
	}
	if output != "text" && output != "wide" && output != "json" {
		fmt.Fprintln(a.stderr, "finsync streams: -o is text, wide or json")
		return errUsage
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	// Last runs and cursors come from ClickHouse when it answers; the list
	// itself does not need it.
	var runs map[string][]clickhouse.Run
	var cursors map[string]map[string]string
	if db, err := clickhouse.Open(ctx, a.dbOptions(c)); err == nil {
		state := clickhouse.NewState(db, nil)
		runs, _ = state.RecentRuns(ctx, 1)
		cursors, _ = state.Cursors(ctx)
		db.Close()
	} else {
		fmt.Fprintf(a.stderr, "finsync streams: no last runs or cursors: %v\n", err)
	}
	now := time.Now()
	var list []streamJSON
	for _, p := range providers(c, a.logger(c), nil) {
		for _, s := range p.Streams {
			r := streamJSON{Stream: s.Name, Provider: p.Name, Per: "tenant", Configured: p.Configured, Cursors: cursors[s.Name]}
			if s.SubjectKind != "" {
				r.Per = s.SubjectKind
			}
			for _, t := range s.Tables {
				r.Tables = append(r.Tables, t.Name)
			}
			if sched, ok := c.schedule(s.Name); ok {
				r.Schedule, r.Enabled = sched.Spec, sched.Enabled
				if r.Enabled {
					next := sched.Next(now).UTC()
					r.NextRun = &next
				}
				for _, o := range tenantOverrides(sched) {
					ts := sched.PerTenant[o.Tenant]
					tj := tenantJSON{Schedule: ts.Spec, Enabled: ts.Enabled, Params: ts.Params}
					if ts.Enabled {
						next := ts.Next(now).UTC()
						tj.NextRun = &next
					}
					if r.PerTenant == nil {
						r.PerTenant = map[string]tenantJSON{}
					}
					r.PerTenant[o.Tenant] = tj
				}
				r.overrides = overridesText(sched)
			}
			if runs := runs[s.Name]; len(runs) > 0 {
				r.LastStatus, r.LastRun = runs[0].Status, &runs[0].StartedAt
			}
			list = append(list, r)
		}
	}
	if output == "json" {
		return json.NewEncoder(a.stdout).Encode(list)
	}
	if output == "wide" {
		return streamsWide(a.stdout, list)
	}
	return streamsText(a.stdout, list)
}

// streamsText fits a terminal: each stream's schedule, runs and cursor
// (cut); the rest is -o wide's.
func streamsText(out io.Writer, list []streamJSON) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tSCHEDULE (UTC)\tLAST RUN (UTC)\tNEXT RUN (UTC)\tCURSOR")
	for _, r := range list {
		spec, last, next := r.Schedule, "never", "-"
		switch {
		case !r.Configured:
			spec = "not configured"
		case !r.Enabled || spec == "":
			spec = "off"
		}
		if r.overrides != "" && r.Configured {
			spec += " (" + r.overrides + ")"
		}
		if r.LastRun != nil {
			last = r.LastStatus + " " + r.LastRun.UTC().Format("01-02 15:04")
		}
		if r.NextRun != nil && r.Configured {
			next = r.NextRun.Format("01-02 15:04")
		}
		cursor := cursorsText(r.Cursors)
		if n := []rune(cursor); len(n) > 20 {
			cursor = string(n[:19]) + "…"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Stream, spec, last, next, cursor)
	}
	return w.Flush()
}

// streamsWide is every column of every stream.
func streamsWide(out io.Writer, list []streamJSON) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tPROVIDER\tPER\tTABLES\tCONFIGURED\tSCHEDULE (UTC)\tENABLED\tLAST RUN (UTC)\tCURSOR\tNEXT RUN (UTC)")
	for _, r := range list {
		last, next, spec := "never", "-", r.Schedule
		if r.LastRun != nil {
			last = r.LastStatus + " " + r.LastRun.UTC().Format("2006-01-02 15:04")
		}
		if r.NextRun != nil {
			next = r.NextRun.Format("2006-01-02 15:04")
		}
		if spec == "" {
			spec = "-"
		}
		if r.overrides != "" {
			spec += " (" + r.overrides + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%v\t%s\t%s\t%s\n", r.Stream, r.Provider, r.Per, strings.Join(r.Tables, ","), r.Configured,
			spec, r.Enabled, last, cursorsText(r.Cursors), next)
	}
	return w.Flush()
}

// cursorsText is a stream's cursors, tenant=cursor, sorted; "-" for none.
func cursorsText(cursors map[string]string) string {
	var cs []string
	for tenant, cur := range cursors {
		cs = append(cs, tenant+"="+cur)
	}
	sort.Strings(cs)
	if len(cs) == 0 {
		return "-"
	}
	return strings.Join(cs, " ")
}

// streamJSON is a stream as `streams -o json` prints it.
type streamJSON struct {
	Stream     string            `json:"stream"`
	Provider   string            `json:"provider"`
	Per        string            `json:"per"` // tenant, or the kind of subject it iterates
	Tables     []string          `json:"tables"`
	Configured bool              `json:"configured"`
	Schedule   string            `json:"schedule"` // cron, UTC unless CRON_TZ=
	Enabled    bool              `json:"enabled"`
	LastStatus string            `json:"last_status,omitempty"`
	LastRun    *time.Time        `json:"last_run"`
	Cursors    map[string]string `json:"cursors"` // per tenant
	NextRun    *time.Time        `json:"next_run"`
	// PerTenant are the tenants whose schedule differs (per_tenant).
	PerTenant map[string]tenantJSON `json:"per_tenant,omitempty"`
	overrides string                // PerTenant for the text output
}

// tenantJSON is one tenant's own schedule in `streams -o json`.
type tenantJSON struct {
	Schedule string            `json:"schedule"`
	Enabled  bool              `json:"enabled"`
	Params   map[string]string `json:"params,omitempty"`
	NextRun  *time.Time        `json:"next_run"`
}

// tenantOverride is what one tenant's schedule changes of its stream's
// (per_tenant), each setting as the schedules file writes it.
type tenantOverride struct {
	Tenant   string
	Settings [][2]string // key, value
}

// tenantOverrides are s's per-tenant differences, by tenant; a tenant
// named with nothing different is left out.
func tenantOverrides(s schedules.Schedule) []tenantOverride {
	var out []tenantOverride
	for _, t := range slices.Sorted(maps.Keys(s.PerTenant)) {
		ts := s.PerTenant[t]
		var kv [][2]string
		if ts.Spec != s.Spec {
			kv = append(kv, [2]string{"schedule", strconv.Quote(ts.Spec)})
		}
		if ts.Enabled != s.Enabled {
			kv = append(kv, [2]string{"enabled", strconv.FormatBool(ts.Enabled)})
		}
		if ts.Timeout != s.Timeout {
			kv = append(kv, [2]string{"timeout", ts.Timeout.String()})
		}
		if ts.Lookback != s.Lookback {
			kv = append(kv, [2]string{"lookback", ts.Lookback.String()})
		}
		if !maps.Equal(ts.Params, s.Params) {
			kv = append(kv, [2]string{"params", paramsText(ts.Params)})
		}
		if len(kv) > 0 {
			out = append(out, tenantOverride{t, kv})
		}
	}
	return out
}

// paramsText is params as a flow mapping: {k: v, ...}.
func paramsText(params map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		kv = append(kv, k+": "+params[k])
	}
	return "{" + strings.Join(kv, ", ") + "}"
}

// overridesText is tenantOverrides on one line: "acme: schedule "*/15 * *
// * *"; slow: enabled false".
func overridesText(s schedules.Schedule) string {
	var ts []string
	for _, o := range tenantOverrides(s) {
		var kv []string
		for _, p := range o.Settings {
			kv = append(kv, p[0]+" "+p[1])
		}
		ts = append(ts, o.Tenant+": "+strings.Join(kv, ", "))
	}
	return strings.Join(ts, "; ")
}
