package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	finsql "github.com/finsync/finsync/sql"
)

// runDaemon is `finsync run`: the schedules, the webhook receivers, the
// metrics and the status page, until SIGTERM or SIGINT.
func runDaemon(ctx context.Context, a *app, args []string) error {
	err := a.flags("run", summaryOf("run"), args, func(fs *flag.FlagSet) {})
	if err != nil {
		return err
	}
	c, db, _, err := a.migrated(ctx, "run", nil)
	if err != nil {
		return err
	}
	defer db.Close()
	log := a.logger(c)
	metrics := schedules.NewMetrics()
	ps := providers(c, log, metrics)
	lopts := c.loaderOptions(log)
	lopts.Observe = metrics.Inserted
	loader := clickhouse.NewLoader(db, lopts)
	state := clickhouse.NewState(db, loader)
	d := &schedules.Daemon{Runner: &schedules.Runner{Loader: loader, State: state, Log: log, Shard: c.shard(), Owner: schedules.NewOwner()},
		Global: c.sched.Global, PerProvider: c.sched.PerProvider, Metrics: metrics, Log: log}
	for _, p := range ps {
		if !p.Configured {
			continue
		}
		if subs := configSubjects(p); len(subs) > 0 {
			if err := state.AddSubjects(ctx, subs); err != nil {
				return err
			}
		}
		// Registering webhook URLs with a provider is shard 0's: once is enough.
		if p.Start != nil && c.shard().Index == 0 {
			if err := p.Start(ctx); err != nil {
				// Polling still works without the provider's webhooks.
				log.Error("provider start-up failed; its webhooks may not arrive", "provider", p.Name, "err", err)
			}
		}
	}
	d.Jobs = scheduledJobs(c, ps)
	d.AfterRuns = func(ctx context.Context, s extract.Stream) {
		// Warehouse maintenance is shard 0's, when replicas split the work.
		if c.shard().Index == 0 {
			if err := maintain(ctx, db, log, []extract.Stream{s}); err != nil {
				log.Error("maintenance failed", "stream", s.Name, "err", err)
			}
		}
	}

	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("FINSYNC_HTTP_ADDR: %w", err)
	}
	srv := newServer(daemonMux(c, ps, d, loader, state, db, metrics), daemonTimeouts())
	// The webhooks on a listener of their own, if asked: the one that faces
	// the providers, while the status page and /metrics stay inside.
	var hookLn net.Listener
	hookSrv := newServer(webhookMux(ps, c.WebhookRate, d, loader, state, metrics), daemonTimeouts())
	if c.WebhookAddr != "" {
		if hookLn, err = net.Listen("tcp", c.WebhookAddr); err != nil {
			ln.Close()
			return fmt.Errorf("FINSYNC_WEBHOOK_ADDR: %w", err)
		}
	}
	// Runs a killed predecessor left `running` are marked abandoned now,
	// not at each stream's first tick; the daemon starts before it serves,
	// so a webhook's trigger always finds it running.
	metrics.Start(version, d.Jobs)
	// A restart keeps the streams' last success: freshness alerts on
	// finsync_last_success_timestamp_seconds do not fire because of it.
	if last, err := state.LastSuccess(ctx); err != nil {
		log.Warn("the last successful runs are unknown until the next ones", "err", err)
	} else {
		metrics.SeedLastSuccess(last, d.Jobs)
	}
	d.AbandonStale(ctx)
	if recent, err := state.RecentRuns(ctx, 1); err != nil {
		log.Warn("runs missed while no daemon ran are not caught up", "err", err)
	} else {
		d.LastStarts = map[string]time.Time{}
		for stream, runs := range recent {
			if len(runs) > 0 {
				d.LastStarts[stream] = runs[0].StartedAt
			}
		}
	}
	// SIGHUP reads the schedules file again; caught from before the daemon
	// answers, so that a SIGHUP never finds the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d.Start()
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if hookLn != nil {
		go func() { served <- hookSrv.Serve(hookLn) }()
		log.Info("webhooks served apart", "http", "http://"+hookLn.Addr().String())
	}
	log.Info("finsync daemon started", "http", "http://"+ln.Addr().String(), "streams", len(d.Jobs), "schedules", c.sched.File)
	fmt.Fprintf(a.stdout, "finsync daemon: %d streams scheduled, status page and metrics on http://%s\n", len(d.Jobs), ln.Addr())

wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			c = reloadSchedules(c, ps, d, log)
		case err := <-served:
			d.Stop(c.ShutdownGrace)
			return fmt.Errorf("http server: %w", err)
		}
	}
	// From here on no run starts: not on a schedule, not for a stream's
	// remaining tenants, not from a webhook (its trigger is a no-op once
	// the daemon is stopping; receivers still record what they are sent,
	// for the next start). /readyz answers 503, /healthz and /metrics
	// serve until the runs have ended.
	log.Info("stopping: no new runs; waiting for running ones", "grace", c.ShutdownGrace)
	finished := d.Stop(c.ShutdownGrace)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if hookLn != nil {
		hookSrv.Shutdown(shutdown)
	}
	log.Info("finsync daemon stopped", "runs_finished_in_grace", finished)
	return nil
}

// scheduledJobs are the configured providers' streams with a schedule, each
// for its schedule's tenants or else every tenant of its provider.
func scheduledJobs(c Config, ps []extract.Provider) []schedules.Job {
	var jobs []schedules.Job
	for _, p := range ps {
		if !p.Configured {
			continue
		}
		for _, s := range p.Streams {
			sched, ok := c.sched.Find(s.Name)
			if !ok {
				continue
			}
			tenants := sched.Tenants
			if len(tenants) == 0 {
				tenants = p.Tenants
			}
			jobs = append(jobs, schedules.Job{Stream: s, Schedule: sched, Tenants: tenants})
		}
	}
	return jobs
}

// reloadSchedules reads the schedules file (every layer) again, with the
// checks of the start, and swaps the daemon's schedules for it; a file with
// problems is reported and the old schedules stay. It returns c with the
// schedules in force.
func reloadSchedules(c Config, ps []extract.Provider, d *schedules.Daemon, log *slog.Logger) Config {
	next := c
	var err error
	if next.sched, err = loadSchedules(c); err == nil {
		err = errors.Join(next.checkScheduleTenants()...)
	}
	if err != nil {
		log.Error("schedules not reloaded: the file has problems; the old schedules stay", "file", c.Schedules, "err", err)
		return c
	}
	jobs := scheduledJobs(next, ps)
	ch, err := d.Reload(jobs)
	if err != nil {
		log.Error("schedules not reloaded", "err", err)
		return c
	}
	if d.Metrics != nil {
		// Streams and tenants added start at zero too; the others keep
		// their counts.
		d.Metrics.Start(version, jobs)
	}
	log.Info("schedules reloaded", "file", next.sched.File, "added", len(ch.Added), "removed", len(ch.Removed), "changed", len(ch.Changed),
		"streams_added", ch.Added, "streams_removed", ch.Removed, "streams_changed", ch.Changed)
	if next.sched.Global != c.sched.Global || !maps.Equal(next.sched.PerProvider, c.sched.PerProvider) {
		log.Warn("concurrency limits change at the next start, not on reload", "global", c.sched.Global, "per_provider", c.sched.PerProvider)
		next.sched.Global, next.sched.PerProvider = c.sched.Global, c.sched.PerProvider
	}
	return next
}

// serverTimeouts bound what one client may hold of the daemon's HTTP
// servers, which face the providers' webhooks.
type serverTimeouts struct {
	Header, Read, Write, Idle time.Duration
}

// daemonTimeouts: a whole request (a webhook's body, at most 1 MiB) in 30 s,
// a response (the status page's queries, a webhook's insert) in 60 s, an
// idle keep-alive connection closed after 120 s.
func daemonTimeouts() serverTimeouts {
	return serverTimeouts{Header: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}
}

// newServer serves h within t: without ReadTimeout a body trickled a byte
// at a time held its connection and goroutine forever.
func newServer(h http.Handler, t serverTimeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.Header, ReadTimeout: t.Read, WriteTimeout: t.Write,
		IdleTimeout: t.Idle, MaxHeaderBytes: 64 << 10}
}

// webhookMux serves the configured providers' webhook receivers at
// /webhooks/<provider>, each at most rate requests a second (0: unlimited).
func webhookMux(ps []extract.Provider, rate float64, d *schedules.Daemon, loader *clickhouse.Loader, state *clickhouse.State, m *schedules.Metrics) *http.ServeMux {
	mux := http.NewServeMux()
	hooks := extract.Hooks{
		Subject: schedules.RecordSubject(state),
		Trigger: func(_ context.Context, stream, tenant string) {
			d.Trigger(stream, tenant)
		},
		JobStatus: schedules.JobStatus(state),
		Job:       schedules.RecordJob(state),
		// Rows a webhook carried are written at once, as the runner writes
		// a stream's ledger rows.
		Insert:  loader.Insert,
		Version: state.Version,
	}
	for _, p := range ps {
		if p.Configured && p.Webhook != nil {
			mux.Handle("/webhooks/"+p.Name, m.Webhook(p.Name, limitRate(rate, p.Webhook(hooks))))
		}
	}
	return mux
}

// limitRate answers 429 past perSecond requests a second (a burst of ten
// seconds' worth passes): whoever floods a receiver, forged or not, costs
// the provider's API and ClickHouse no more than that. Each provider
// retries a webhook or is polled by the schedules, so one refused is late,
// not lost.
func limitRate(perSecond float64, h http.Handler) http.Handler {
	if perSecond <= 0 {
		return h
	}
	lim := rate.NewLimiter(rate.Limit(perSecond), max(1, int(10*perSecond)))
	retry := strconv.Itoa(max(1, int(math.Ceil(1/perSecond))))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !lim.Allow() {
			w.Header().Set("Retry-After", retry)
			http.Error(w, "too many webhooks: try again later", http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// daemonMux serves /metrics, /healthz, /readyz, the status page and its
// POST /run (never on the webhooks' listener) and, unless
// FINSYNC_WEBHOOK_ADDR puts them apart, the webhooks.
func daemonMux(c Config, ps []extract.Provider, d *schedules.Daemon, loader *clickhouse.Loader, state *clickhouse.State, db *clickhouse.DB, m *schedules.Metrics) *http.ServeMux {
	mux := http.NewServeMux()
	if c.WebhookAddr == "" {
		mux.Handle("/webhooks/", webhookMux(ps, c.WebhookRate, d, loader, state, m))
	}
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		pending, err := db.Pending(ctx, finsql.Files)
		switch {
		case d.Stopping():
			http.Error(w, "stopping: no new runs start", http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, "ClickHouse unreachable at "+c.ClickHouse.Addr+": "+err.Error(), http.StatusServiceUnavailable)
		case len(pending) > 0:
			http.Error(w, fmt.Sprintf("migrations not applied: %v (run finsync migrate)", pending), http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	mux.Handle("GET /{$}", statusPage(c, d, state))
	mux.Handle("/run", runNow(c, d))
	return mux
}
