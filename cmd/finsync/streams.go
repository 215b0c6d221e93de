package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
)

// runStreams is `finsync streams`: every provider's streams, with their last runs and cursors when ClickHouse answers.
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
		for _, s := range p.Streams {
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
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%v\t%s\t%s\t%s\n", s.Name, p.Name, per, strings.Join(tables, ","), p.Configured,
				spec, enabled, last, cursor, next)
		}
	}
	return w.Flush()
}
