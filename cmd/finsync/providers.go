package main

import (
	"context"
	"crypto/tls"

	"flag"
	"fmt"
	"github.com/apache/arrow/go/v17/arrow"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fimento"
	"github.com/finsync/finsync/extract/finapi"
	"github.com/finsync/finsync/extract/fingoal"
	"github.com/finsync/finsync/extract/fino"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/transform"
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
	// params, if set, checks a stream's params in the schedules file.
	params func(stream string) schedules.ParamsCheck
	// webhook, if set, is the provider's receiver, which the daemon mounts
	// at /webhooks/<name>.
	webhook func(h webhookHooks) http.Handler
	// start, if set, runs when the daemon starts (registering its webhook
	// URL with the provider).
	start func(ctx context.Context) error
}

// webhookHooks is what a webhook receiver may do: enter a subject into the
// registry, or start a triggered run of a stream for a tenant now (the
// daemon's Trigger: it collects pending jobs and creates nothing).
type webhookHooks struct {
	record  func(ctx context.Context, s extract.Subject) error
	trigger func(ctx context.Context, stream, tenant string)
	// jobStatus tells whether an async job a webhook names is one of a
	// stream's: its status in etl_state, "" if unknown.
	jobStatus func(ctx context.Context, stream, tenant, id string) (string, error)
	// job records an async job a webhook announced; records loads rows a
	// webhook carried, with version as their _version.
	job     func(ctx context.Context, stream, tenant string, j extract.Job) error
	records func(ctx context.Context, t transform.Table, rec arrow.Record) error
	version func() uint64
}

// providers is the one list of providers finsync knows. m, if not nil,
// counts their HTTP requests.
func providers(c Config, log *slog.Logger, m *schedules.Metrics) []provider {
	httpFor := func(name string) *http.Client {
		if m == nil && !c.InsecureSkipVerify {
			return nil // the client's default, which verifies certificates
		}
		t := extract.DefaultTransport()
		if c.InsecureSkipVerify {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		if m == nil {
			return &http.Client{Transport: t}
		}
		return &http.Client{Transport: m.Transport(name, t)}
	}
	// Validate has checked the scopes; an error here leaves every module on.
	scopes, _ := fino.ParseScopes(c.Fino.Scopes)
	api := fino.NewAPI(fino.Config{BaseURL: c.Fino.BaseURL, ClientID: c.Fino.ClientID,
		ClientSecret: c.Fino.ClientSecret.Value(), RateLimit: c.Fino.RateLimit, Concurrency: c.Fino.Concurrency, PageSize: c.Fino.PageSize, Scopes: scopes, Logger: log, HTTP: httpFor("fino")})
	finoP := provider{name: "fino", configured: c.Fino.BaseURL != "", streams: append(fino.Streams(api), fino.AnalyticsStreams(api)...),
		tenants: c.finoTenants(), webhook: func(h webhookHooks) http.Handler {
			return fino.WebhookHandler(c.Fino.WebhookSecret.Value(), h.record, log)
		}}
	for _, u := range c.Fino.Users {
		tenant, user, found := strings.Cut(u, "/")
		if !found {
			tenant, user = c.Fino.ClientID, u
		}
		finoP.subjects = append(finoP.subjects, clickhouse.Subject{Provider: "fino", Tenant: tenant, Kind: "user", ID: user, Source: "config"})
	}
	paths, _ := fimento.ParsePaths(c.Fimento.Paths) // Validate reported errors
	fapi := fimento.NewAPI(fimento.Config{BaseURL: c.Fimento.BaseURL, Name: c.Fimento.Name, Password: c.Fimento.Password.Value(),
		HashKey: []byte(c.Fimento.HashKey.Value()), Paths: paths, RateLimit: c.Fimento.RateLimit, Logger: log, HTTP: httpFor("fimento")})
	fimentoP := provider{name: "fimento", configured: c.Fimento.BaseURL != "", streams: fimento.Streams(fapi), tenants: c.Fimento.PartnerBanks,
		webhook: func(h webhookHooks) http.Handler {
			return fimento.WebhookHandler(c.Fimento.PartnerBanks, h.record, log)
		}}
	if c.Fimento.WebhookURL != "" {
		fimentoP.start = func(ctx context.Context) error { return fapi.AddWebhook(ctx, c.Fimento.WebhookURL) }
	}
	for _, p := range c.Fimento.Processes {
		if bank, id, ok := c.fimentoProcess(p); ok {
			fimentoP.subjects = append(fimentoP.subjects, clickhouse.Subject{Provider: "fimento", Tenant: bank, Kind: fimento.SubjectKind, ID: id, Source: "config"})
		}
	}
	mandators, _ := c.finapiTenants() // Validate reported a bad list
	params := finapi.DefaultParams()
	for _, seg := range finapi.Segments() {
		if s, ok := c.schedule(seg.Stream); ok {
			params.Apply(seg, s.Params) // loadSchedules reported the problems
		}
	}
	finapiAPI := finapi.NewAPI(finapi.Config{BaseURL: c.Finapi.BaseURL, TokenURL: c.Finapi.TokenURL, Tenants: mandators,
		Params: params, CallbackURL: c.Finapi.CallbackURL, RateLimit: c.Finapi.RateLimit, Logger: log, HTTP: httpFor("finapi")})
	finapiP := provider{name: "finapi", configured: c.Finapi.BaseURL != "", maintain: expireSegments, params: finapiParamsCheck,
		streams: finapi.Streams(finapiAPI), webhook: func(h webhookHooks) http.Handler {
			return finapi.CallbackHandler(finapiAPI, h.jobStatus, h.trigger)
		}}
	for _, m := range mandators {
		finapiP.tenants = append(finapiP.tenants, m.Name)
	}
	// After fino and Fimento: fingoal.enrichment sends the transactions the
	// other providers loaded.
	fgCfg := c.fingoalConfig(log)
	fgCfg.HTTP = httpFor("fingoal")
	fgAPI := fingoal.NewAPI(fgCfg)
	fingoalP := provider{name: "fingoal", configured: c.Fingoal.BaseURL != "", tenants: c.fingoalTenants(),
		streams: fingoal.Streams(fgAPI), webhook: func(h webhookHooks) http.Handler {
			return fingoal.WebhookHandler(fingoal.WebhookConfig{Secret: c.fingoalWebhookSecret(), API: fgAPI, Subject: h.record,
				Job: h.job, JobStatus: h.jobStatus, Trigger: h.trigger, Records: h.records, Version: h.version, Logger: log})
		}}
	ps := []provider{finoP, fimentoP, fingoalP, finapiP}
	// A shard registers its own subjects only: registering marks a subject
	// active again, which would undo another shard's status of it.
	for i := range ps {
		ps[i].subjects = slices.DeleteFunc(ps[i].subjects, func(s clickhouse.Subject) bool {
			return !c.shard().OwnsSubject(s.Provider, s.Tenant, s.ID)
		})
	}
	return ps
}

// finapiParamsCheck checks a segment stream's params.
func finapiParamsCheck(stream string) schedules.ParamsCheck {
	for _, seg := range finapi.Segments() {
		if seg.Stream == stream && seg != finapi.InsuranceSpending {
			return func(kv map[string]string) []error {
				p := finapi.DefaultParams()
				return p.Apply(seg, kv)
			}
		}
	}
	return nil
}

// schedule is a stream's entry in the schedules file, if any.
func (c Config) schedule(stream string) (schedules.Schedule, bool) {
	if c.sched == nil {
		return schedules.Schedule{}, false
	}
	return c.sched.Find(stream)
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
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "stream\tprovider\tper\ttables\tconfigured\tschedule\tenabled\tlast run\tcursor\tnext run")
	for _, p := range providers(c, a.logger(c), nil) {
		for _, s := range p.streams {
			var tables []string
			for _, t := range s.Tables {
				tables = append(tables, t.Name)
			}
			per := "tenant"
			if s.SubjectKind != "" {
				per = s.SubjectKind
			}
			spec, enabled, next := "-", false, "-"
			if sched, ok := c.schedule(s.Name); ok {
				spec, enabled = sched.Spec, sched.Enabled
				if enabled {
					next = sched.Next(now).UTC().Format("2006-01-02 15:04")
				}
			}
			last := "never"
			if r := runs[s.Name]; len(r) > 0 {
				last = r[0].Status + " " + r[0].StartedAt.UTC().Format("2006-01-02 15:04")
			}
			var cs []string
			for tenant, cur := range cursors[s.Name] {
				cs = append(cs, tenant+"="+cur)
			}
			sort.Strings(cs)
			cursor := strings.Join(cs, " ")
			if cursor == "" {
				cursor = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%v\t%s\t%s\t%s\n", s.Name, p.name, per, strings.Join(tables, ","), p.configured,
				spec, enabled, last, cursor, next)
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
	p, s, ok := findStream(providers(c, log, nil), stream)
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
	loader := clickhouse.NewLoader(db, c.loaderOptions(log))
	state := clickhouse.NewState(db, loader)
	if len(p.subjects) > 0 {
		if err := state.AddSubjects(ctx, p.subjects); err != nil {
			return nil, err
		}
	}
	runner := &schedules.Runner{Loader: loader, State: state, Log: log, Shard: c.shard()}
	var runs []clickhouse.Run
	var firstErr error
	for _, s := range streams {
		abandonStale(ctx, c, runner, s.Name)
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
	if p.maintain != nil && c.shard().Index == 0 {
		if err := p.maintain(ctx, db, log); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return runs, firstErr
}

// abandonStale marks abandoned the runs of stream a dead process left
// `running` past the stream's timeout, as the daemon does at start-up; a
// failure only delays that to the next command.
func abandonStale(ctx context.Context, c Config, runner *schedules.Runner, stream string) {
	timeout := schedules.DefaultTimeout
	if sched, ok := c.schedule(stream); ok {
		timeout = sched.Timeout
	}
	if _, err := runner.AbandonStale(ctx, stream, timeout); err != nil {
		runner.Log.Warn("looking for abandoned runs", "stream", stream, "err", err)
	}
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
