package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/finsync/finsync/load/clickhouse"
	finsql "github.com/finsync/finsync/sql"
)

// guideQuery is one question of the query guide (sql/guide).
type guideQuery struct {
	name, question, query string
}

// guideQueries reads the guide, in file order.
func guideQueries() ([]guideQuery, error) {
	files, err := fs.Glob(finsql.Guide, "guide/*.sql")
	if err != nil {
		return nil, err
	}
	var out []guideQuery
	for _, f := range files {
		b, err := fs.ReadFile(finsql.Guide, f)
		if err != nil {
			return nil, err
		}
		first, rest, _ := strings.Cut(string(b), "\n")
		out = append(out, guideQuery{name: strings.TrimSuffix(strings.TrimPrefix(f, "guide/"), ".sql"),
			question: strings.TrimSpace(strings.TrimPrefix(first, "--")), query: rest})
	}
	return out, nil
}

// runGuide is `finsync guide`: the analysts' questions, each answered by
// one query on the v_* views, run on the warehouse.
func runGuide(ctx context.Context, a *app, args []string) error {
	var rows int
	var only string
	err := a.flags("guide", summaryOf("guide"), args, func(fs *flag.FlagSet) {
		fs.IntVar(&rows, "rows", 10, "rows to print per question at most")
		fs.StringVar(&only, "q", "", "run only the questions whose file name contains this")
	})
	if err != nil {
		return err
	}
	qs, err := guideQueries()
	if err != nil {
		return err
	}
	var names []string
	for _, q := range qs {
		names = append(names, q.name)
	}
	qs = slices.DeleteFunc(qs, func(q guideQuery) bool { return !strings.Contains(q.name, only) })
	if len(qs) == 0 {
		return fmt.Errorf("no question's name contains %q; the questions: %s", only, strings.Join(names, ", "))
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	db, err := clickhouse.Open(ctx, a.dbOptions(c))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range qs {
		fmt.Fprintf(a.stdout, "\n%s (sql/guide/%s.sql)\n", q.question, q.name)
		if err := printQuery(ctx, db, a.stdout, fmt.Sprintf("SELECT * FROM (%s) LIMIT %d", q.query, rows)); err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
	}
	return nil
}
