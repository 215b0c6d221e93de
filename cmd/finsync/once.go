package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// runOnce is `finsync once`: one stream, once, for its tenants (or one).
func runOnce(ctx context.Context, a *app, args []string) error {
	var stream, tenant, output string
	var reconcile bool
	err := a.flags("once", summaryOf("once"), args, func(fs *flag.FlagSet) {
		fs.BoolVar(&reconcile, "reconcile", false, "a reconciliation: read every subject over the stream's reconcile_lookback, not incrementally, and count the rows incremental runs had missed")
		fs.StringVar(&stream, "stream", "", "the stream to run (see finsync streams)")
		fs.StringVar(&tenant, "tenant", "", "run for this tenant only (default: every configured tenant)")
		fs.StringVar(&output, "o", "text", "output: text or json")
	})
	if err != nil {
		return err
	}
	if output != "text" && output != "json" {
		fmt.Fprintln(a.stderr, "finsync once: -o is text or json")
		return errUsage
	}
	if stream == "" {
		fmt.Fprintln(a.stderr, "finsync once: -stream is required")
		return errUsage
	}
	c, db, _, err := a.migrated(ctx, "once", nil)
	if err != nil {
		return err
	}
	defer db.Close()
	log := a.logger(c)
	ps := providers(c, log, nil)
	p, s, ok := findStream(ps, stream)
	if !ok {
		return unknownStream(ps, stream)
	}
	if !p.Configured {
		return fmt.Errorf("%s is not configured: set FINSYNC_%s_BASE_URL and its credentials", p.Name, strings.ToUpper(p.Name))
	}
	if tenant != "" && !slices.Contains(p.Tenants, tenant) {
		return fmt.Errorf("%s has no tenant %q; its tenants: %s", p.Name, tenant, strings.Join(p.Tenants, ", "))
	}
	if reconcile && !s.Reconciles {
		fmt.Fprintf(a.stderr, "finsync once: %s is not incremental (it reads everything each run): nothing to reconcile\n", s.Name)
		return errUsage
	}
	runs, err := syncStreams(ctx, c, db, log, p, []extract.Stream{s}, tenant, reconcile)
	if output == "json" {
		if jerr := printRunsJSON(a, runs); jerr != nil {
			return errors.Join(err, jerr)
		}
		return err
	}
	printRuns(a, runs)
	return err
}

// syncStreams registers p's configured subjects, then runs each stream for
// each tenant (or the one given), one after the other; reconcile: as
// reconciliations (schedules.Runner.RunReconcile).
func syncStreams(ctx context.Context, c Config, db *clickhouse.DB, log *slog.Logger, p extract.Provider, streams []extract.Stream, only string, reconcile bool) ([]clickhouse.Run, error) {
	loader := clickhouse.NewLoader(db, c.loaderOptions(log))
	state := clickhouse.NewState(db, loader)
	if subs := configSubjects(p); len(subs) > 0 {
		if err := state.AddSubjects(ctx, subs); err != nil {
			return nil, err
		}
	}
	runner := &schedules.Runner{Loader: loader, State: state, Log: log, Shard: c.shard(), Owner: schedules.NewOwner()}
	var runs []clickhouse.Run
	var firstErr error
	for _, s := range streams {
		abandonStale(ctx, c, runner, s.Name)
		sched, scheduled := c.schedule(s.Name)
		for _, t := range p.Tenants {
			if only != "" && t != only {
				continue
			}
			// As the daemon would run it for t: its lookback and params
			// (per_tenant included), whatever its cron says.
			var run clickhouse.Run
			var err error
			switch {
			case reconcile:
				// sched is the zero Schedule when not scheduled: the provider's defaults.
				run, err = runner.RunReconcile(ctx, s, t, sched.For(t))
			case scheduled:
				run, err = runner.RunScheduled(ctx, s, t, sched.For(t), false)
			default:
				run, err = runner.Run(ctx, s, t)
			}
			runs = append(runs, run)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	if c.shard().Index == 0 {
		if err := maintain(ctx, db, log, streams); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return runs, firstErr
}

// abandonStale marks abandoned the runs of stream a dead process left
// `running` past the stream's timeout and deletes the leases such
// processes left, as the daemon does at start-up; a failure only delays
// that to the next command.
func abandonStale(ctx context.Context, c Config, runner *schedules.Runner, stream string) {
	timeout := schedules.DefaultTimeout
	if sched, ok := c.schedule(stream); ok {
		timeout = sched.Timeout
	}
	if _, err := runner.AbandonStale(ctx, stream, timeout); err != nil {
		runner.Log.Warn("looking for abandoned runs", "stream", stream, "err", err)
	}
	if err := runner.DeleteLapsedLeases(ctx, stream); err != nil {
		runner.Log.Warn("lapsed leases not deleted", "stream", stream, "err", err)
	}
}

// runJSON is a run as `once -o json` prints it.
type runJSON struct {
	Stream  string            `json:"stream"`
	Tenant  string            `json:"tenant"`
	Status  string            `json:"status"`
	Rows    map[string]uint64 `json:"rows"`
	Rejects uint64            `json:"rejects"`
	Retries uint64            `json:"retries"`
	Seconds float64           `json:"seconds"`
	Error   string            `json:"error,omitempty"`
	// Missed is set for a reconciliation: the rows incremental runs had missed.
	Missed *uint64 `json:"missed,omitempty"`
}

func printRunsJSON(a *app, runs []clickhouse.Run) error {
	out := []runJSON{}
	for _, r := range runs {
		j := runJSON{Stream: r.Stream, Tenant: r.Tenant, Status: r.Status, Rows: r.Rows, Rejects: r.Rejects, Retries: r.Retries, Error: r.Error}
		if !r.FinishedAt.IsZero() {
			j.Seconds = r.FinishedAt.Sub(r.StartedAt).Seconds()
		}
		if r.Reconcile {
			j.Missed = &r.Missed
		}
		out = append(out, j)
	}
	return json.NewEncoder(a.stdout).Encode(out)
}

func printRuns(a *app, runs []clickhouse.Run) {
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "stream\ttenant\tstatus\trows\trejects\tretries\tseconds\terror")
	for _, r := range runs {
		var tables []string
		for t, n := range r.Rows {
			tables = append(tables, fmt.Sprintf("%s %d", t, n))
		}
		sort.Strings(tables)
		var secs float64
		if !r.FinishedAt.IsZero() { // zero: another shard's run, not done here
			secs = r.FinishedAt.Sub(r.StartedAt).Round(10 * time.Millisecond).Seconds()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%.2f\t%s\n", r.Stream, r.Tenant, r.Status, strings.Join(tables, ", "), r.Rejects, r.Retries, secs, r.Error)
	}
	w.Flush()
}
