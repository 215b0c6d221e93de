package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/finapi"
	"github.com/finsync/finsync/extract/fingoal"
	"github.com/finsync/finsync/extract/fino"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// provider is one data provider as configured: its streams, its tenants
// and the subjects its configuration names.
type provider struct {
	name       string
	configured bool
	streams    []extract.Stream
	tenants    []string
	subjects   []clickhouse.Subject
	// maintain, if set, runs after the provider's streams (retention).
	maintain func(ctx context.Context, db *clickhouse.DB, log *slog.Logger) error
}

// providers is the one list of providers finsync knows.
func providers(c Config, log *slog.Logger) []provider {
	api := fino.NewAPI(fino.Config{BaseURL: c.Fino.BaseURL, ClientID: c.Fino.ClientID,
		ClientSecret: c.Fino.ClientSecret.Value(), RateLimit: c.Fino.RateLimit, Logger: log})
	finoP := provider{name: "fino", configured: c.Fino.BaseURL != "", streams: fino.Streams(api), tenants: c.finoTenants()}
	for _, u := range c.Fino.Users {
		tenant, user, found := strings.Cut(u, "/")
		if !found {
			tenant, user = c.Fino.ClientID, u
		}
		finoP.subjects = append(finoP.subjects, clickhouse.Subject{Provider: "fino", Tenant: tenant, Kind: "user", ID: user, Source: "config"})
	}
	mandators, _ := c.finapiTenants() // Validate reported a bad list
	finapiP := provider{name: "finapi", configured: c.Finapi.BaseURL != "", maintain: expireSegments,
		streams: finapi.Streams(finapi.NewAPI(finapi.Config{BaseURL: c.Finapi.BaseURL, TokenURL: c.Finapi.TokenURL,
			Tenants: mandators, Params: c.finapiParams(), CallbackURL: c.Finapi.CallbackURL, RateLimit: c.Finapi.RateLimit, Logger: log}))}
	for _, m := range mandators {
		finapiP.tenants = append(finapiP.tenants, m.Name)
	}
	// After fino: fingoal.enrichment sends the transactions the other
	// providers loaded.
	fingoalP := provider{name: "fingoal", configured: c.Fingoal.BaseURL != "", tenants: c.fingoalTenants(),
		streams: fingoal.Streams(fingoal.NewAPI(c.fingoalConfig(log)))}
	return []provider{finoP, fingoalP, finapiP}
}

// expireSegments deletes the segment members finAPI no longer keeps.
func expireSegments(ctx context.Context, db *clickhouse.DB, log *slog.Logger) error {
	ex, err := db.DeleteExpiredSegments(ctx, time.Now())
	if err == nil && (len(ex.Partitions) > 0 || ex.Rows > 0) {
		log.Info("expired segment members removed", "partitions", ex.Partitions, "rows", ex.Rows)
	}
	return err
}

func findStream(ps []provider, name string) (provider, extract.Stream, bool) {
	for _, p := range ps {
		for _, s := range p.streams {
			if s.Name == name {
				return p, s, true
			}
		}
	}
	return provider{}, extract.Stream{}, false
}

func runStreams(ctx context.Context, a *app, args []string) error {
	if err := a.flags("streams", summaryOf("streams"), args, nil); err != nil {
		return err
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "stream\tprovider\tper\ttables\tconfigured")
	for _, p := range providers(c, a.logger(c)) {
		for _, s := range p.streams {
			var tables []string
			for _, t := range s.Tables {
				tables = append(tables, t.Name)
			}
			per := "tenant"
			if s.SubjectKind != "" {
				per = s.SubjectKind
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", s.Name, p.name, per, strings.Join(tables, ","), p.configured)
		}
	}
	return w.Flush()
}

func runOnce(ctx context.Context, a *app, args []string) error {
	var stream, tenant string
	err := a.flags("once", summaryOf("once"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&stream, "stream", "", "the stream to run (see finsync streams)")
		fs.StringVar(&tenant, "tenant", "", "run for this tenant only (default: every configured tenant)")
	})
	if err != nil {
		return err
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
	p, s, ok := findStream(providers(c, log), stream)
	if !ok {
		return fmt.Errorf("no stream %q (run finsync streams)", stream)
	}
	if !p.configured {
		return fmt.Errorf("%s is not configured: set FINSYNC_%s_BASE_URL and its credentials", p.name, strings.ToUpper(p.name))
	}
	runs, err := syncStreams(ctx, c, db, log, p, []extract.Stream{s}, tenant)
	printRuns(a, runs)
	return err
}

// syncStreams registers p's configured subjects, then runs each stream for
// each tenant (or the one given), one after the other.
func syncStreams(ctx context.Context, c Config, db *clickhouse.DB, log *slog.Logger, p provider, streams []extract.Stream, only string) ([]clickhouse.Run, error) {
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: c.ClickHouse.InsertMaxRows, MaxBytes: c.ClickHouse.InsertMaxBytes, Logger: log})
	state := clickhouse.NewState(db, loader)
	if len(p.subjects) > 0 {
		if err := state.AddSubjects(ctx, p.subjects); err != nil {
			return nil, err
		}
	}
	runner := &schedules.Runner{Loader: loader, State: state, Log: log}
	var runs []clickhouse.Run
	var firstErr error
	for _, s := range streams {
		for _, t := range p.tenants {
			if only != "" && t != only {
				continue
			}
			run, err := runner.Run(ctx, s, t)
			runs = append(runs, run)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	if p.maintain != nil {
		if err := p.maintain(ctx, db, log); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return runs, firstErr
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
		secs := r.FinishedAt.Sub(r.StartedAt).Round(10 * time.Millisecond).Seconds()
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%.2f\t%s\n", r.Stream, r.Tenant, r.Status, strings.Join(tables, ", "), r.Rejects, r.Retries, secs, r.Error)
	}
	w.Flush()
}
