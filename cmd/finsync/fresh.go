package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
)

// freshness is one stream and tenant as `finsync fresh` judges it.
type freshness struct {
	Stream      string     `json:"stream"`
	Tenant      string     `json:"tenant"`
	LastSuccess *time.Time `json:"last_success"` // nil: never
	AgeSeconds  *float64   `json:"age_seconds"`
	Fresh       bool       `json:"fresh"`
}

// errStale is `finsync fresh`'s answer when a stream is not fresh: exit 1.
var errStale = errors.New("not fresh")

// runFresh is `finsync fresh`: whether the named streams have succeeded
// for every tenant within a bound, for a reporting job, a cron line or an
// orchestrator's sensor to ask before it reads the warehouse.
func runFresh(ctx context.Context, a *app, args []string) error {
	var names, tenant, output string
	var within, wait time.Duration
	err := a.flags("fresh", summaryOf("fresh"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&names, "streams", "", "the streams, comma-separated (required; see finsync streams)")
		fs.DurationVar(&within, "within", 24*time.Hour, "how recent a stream's last success must be")
		fs.StringVar(&tenant, "tenant", "", "only this tenant (default: each tenant the stream runs for)")
		fs.DurationVar(&wait, "wait", 0, "ask again every 10s until the streams are fresh or this much time has passed")
		fs.StringVar(&output, "o", "text", "output: text or json")
	})
	if err != nil {
		return err
	}
	if names == "" || within <= 0 || (output != "text" && output != "json") {
		fmt.Fprintln(a.stderr, "finsync fresh: -streams is required, -within must be positive, -o is text or json")
		return errUsage
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	// Each stream with the tenants it must be fresh for.
	var streams []string
	tenants := map[string][]string{}
	ps := providers(c, a.logger(c), nil)
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		p, _, ok := findStream(ps, name)
		switch {
		case !ok:
			return unknownStream(ps, name)
		case !p.Configured:
			return fmt.Errorf("%s is not configured: set FINSYNC_%s_BASE_URL and its credentials", p.Name, strings.ToUpper(p.Name))
		}
		ts := p.Tenants
		if sched, ok := c.schedule(name); ok && len(sched.Tenants) > 0 {
			ts = sched.Tenants
		}
		if tenant != "" {
			if !slices.Contains(ts, tenant) {
				return fmt.Errorf("%s does not run for tenant %q; its tenants: %s", name, tenant, strings.Join(ts, ", "))
			}
			ts = []string{tenant}
		}
		streams, tenants[name] = append(streams, name), ts
	}
	db, err := clickhouse.Open(ctx, a.dbOptions(c))
	if err != nil {
		return err
	}
	defer db.Close()
	state := clickhouse.NewState(db, nil)
	deadline := time.Now().Add(wait)
	for {
		last, err := state.LastSuccess(ctx)
		if err != nil {
			return err
		}
		now := time.Now()
		var rows []freshness
		allFresh := true
		for _, s := range streams {
			for _, t := range tenants[s] {
				r := freshness{Stream: s, Tenant: t}
				if at, ok := last[s][t]; ok {
					age := now.Sub(at).Seconds()
					r.LastSuccess, r.AgeSeconds, r.Fresh = &at, &age, now.Sub(at) <= within
				}
				allFresh = allFresh && r.Fresh
				rows = append(rows, r)
			}
		}
		if allFresh || !now.Before(deadline) {
			if err := printFreshness(a, output, within, allFresh, rows); err != nil {
				return err
			}
			if !allFresh {
				return errStale
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(10*time.Second, time.Until(deadline))):
		}
	}
}

func printFreshness(a *app, output string, within time.Duration, fresh bool, rows []freshness) error {
	if output == "json" {
		return json.NewEncoder(a.stdout).Encode(struct {
			Fresh         bool        `json:"fresh"`
			WithinSeconds float64     `json:"within_seconds"`
			Streams       []freshness `json:"streams"`
		}{fresh, within.Seconds(), rows})
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "stream\ttenant\tlast success (UTC)\tage\tfresh")
	for _, r := range rows {
		at, age := "never", "-"
		if r.LastSuccess != nil {
			at = r.LastSuccess.UTC().Format(time.DateTime)
			age = (time.Duration(*r.AgeSeconds) * time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", r.Stream, r.Tenant, at, age, r.Fresh)
	}
	return w.Flush()
}
