package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
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
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	db, err := clickhouse.Open(ctx, a.dbOptions(c))
	if err != nil {
		return err
	}
	defer db.Close()
	qs, err := guideQueries()
	if err != nil {
		return err
	}
	for _, q := range qs {
		if !strings.Contains(q.name, only) {
			continue
		}
		fmt.Fprintf(a.stdout, "\n%s (sql/guide/%s.sql)\n", q.question, q.name)
		if err := printQuery(ctx, db, a.stdout, fmt.Sprintf("SELECT * FROM (%s) LIMIT %d", q.query, rows)); err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
	}
	return nil
}
