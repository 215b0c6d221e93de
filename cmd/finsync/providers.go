package main

import (
	"context"
	"crypto/tls"

	"github.com/apache/arrow/go/v17/arrow"
	"log/slog"
	"net/http"
	"slices"
	"strings"
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
	subjects   []extract.Subject
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
		finoP.subjects = append(finoP.subjects, extract.Subject{Provider: "fino", Tenant: tenant, Kind: "user", ID: user, Source: "config"})
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
			fimentoP.subjects = append(fimentoP.subjects, extract.Subject{Provider: "fimento", Tenant: bank, Kind: fimento.SubjectKind, ID: id, Source: "config"})
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
		ps[i].subjects = slices.DeleteFunc(ps[i].subjects, func(s extract.Subject) bool {
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
