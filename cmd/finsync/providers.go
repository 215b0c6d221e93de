package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
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

// ProviderSettings are the providers' sections of the configuration, each
// read from its own FINSYNC_<PROVIDER>_* variables: the one list of
// providers finsync knows, in the order a sync runs them (FinGoal after
// fino and Fimento, whose transactions its enrichment sends). A provider
// joins with one field here.
type ProviderSettings struct {
	Fino    fino.Settings    `env:", prefix=FINSYNC_FINO_"`
	Fimento fimento.Settings `env:", prefix=FINSYNC_FIMENTO_"`
	Fingoal fingoal.Settings `env:", prefix=FINSYNC_FINGOAL_"`
	Finapi  finapi.Settings  `env:", prefix=FINSYNC_FINAPI_"`
}

// list is ps's fields, in order.
func (ps *ProviderSettings) list() []extract.Settings {
	v := reflect.ValueOf(ps).Elem()
	out := make([]extract.Settings, v.NumField())
	for i := range out {
		out[i] = v.Field(i).Addr().Interface().(extract.Settings) // a field that is not a Settings fails every test
	}
	return out
}

// providers builds the configured providers. m, if not nil, counts their
// HTTP requests and their waits on the rate limits.
func providers(c Config, log *slog.Logger, m *schedules.Metrics) []extract.Provider {
	setup := extract.Setup{Logger: log, HTTP: func(name string) *http.Client {
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
	}, Params: func(stream string) map[string]string {
		s, _ := c.schedule(stream)
		return s.Params
	}, Limits: c.limits()}
	if m != nil {
		setup.RateWaited = m.RateWaited
	}
	var ps []extract.Provider
	for _, s := range c.ProviderSettings.list() {
		p := s.Provider(setup)
		// A shard registers its own subjects only: registering marks a
		// subject active again, which would undo another shard's status of it.
		p.Subjects = slices.DeleteFunc(p.Subjects, func(s extract.Subject) bool {
			return !c.shard().OwnsSubject(s.Provider, s.Tenant, s.ID)
		})
		ps = append(ps, p)
	}
	return ps
}

// configSubjects are the subjects p's configuration names, for the registry.
func configSubjects(p extract.Provider) []extract.Subject {
	out := slices.Clone(p.Subjects)
	for i := range out {
		out[i].Source = clickhouse.SourceConfig
	}
	return out
}

// schedule is a stream's entry in the schedules file, if any.
func (c Config) schedule(stream string) (schedules.Schedule, bool) {
	if c.sched == nil {
		return schedules.Schedule{}, false
	}
	return c.sched.Find(stream)
}

// maintain keeps the warehouse as the providers keep their data, after
// streams ran: segment members expire with their segments (finAPI deletes
// a segment after 14 days).
func maintain(ctx context.Context, db *clickhouse.DB, log *slog.Logger, streams []extract.Stream) error {
	for _, s := range streams {
		if !slices.ContainsFunc(s.Tables, func(t transform.Table) bool { return t.Name == transform.SegmentMembers.Name }) {
			continue
		}
		ex, err := db.DeleteExpiredSegments(ctx, time.Now())
		if err == nil && (len(ex.Partitions) > 0 || ex.Rows > 0) {
			log.Info("expired segment members removed", "partitions", ex.Partitions, "rows", ex.Rows)
		}
		return err
	}
	return nil
}

// unknownStream is the error for a stream name no provider has.
func unknownStream(ps []extract.Provider, name string) error {
	var names []string
	for _, p := range ps {
		for _, s := range p.Streams {
			names = append(names, s.Name)
		}
	}
	return fmt.Errorf("no stream %q%s (run finsync streams)", name, didYouMean(name, names))
}

func findStream(ps []extract.Provider, name string) (extract.Provider, extract.Stream, bool) {
	for _, p := range ps {
		for _, s := range p.Streams {
			if s.Name == name {
				return p, s, true
			}
		}
	}
	return extract.Provider{}, extract.Stream{}, false
}
