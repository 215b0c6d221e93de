package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/finsync/finsync/load/clickhouse"
)

// runDemo is `finsync demo`: the sandboxes, one full sync, and a summary to read.
func runDemo(ctx context.Context, a *app, args []string) error {
	var o sandboxOptions
	var report string
	err := a.flags("demo", summaryOf("demo"), args, func(fs *flag.FlagSet) {
		o.define(fs)
		fs.StringVar(&report, "report", filepath.Join(".finsync", "out", "report.html"), "where to write the HTML report")
	})
	if err != nil {
		return err
	}
	c, db, res, err := a.migrated(ctx, "demo", nil)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintf(a.stdout, "finsync demo: ClickHouse %s at %s, database %s (%d migration(s) applied now)\n",
		res.Version, c.ClickHouse.Addr, c.ClickHouse.Database, len(res.Applied))
	// Providers not configured get the in-process sandboxes.
	var fakes []string
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		if !p.Configured {
			fakes = append(fakes, p.Name)
		}
	}
	if len(fakes) > 0 {
		o.withEnv(a.lookup)
		sb, err := startSandbox("127.0.0.1:0", o)
		if err != nil {
			return err
		}
		defer sb.close()
		env := map[string]string{}
		for _, name := range fakes {
			for _, kv := range sb.fakes[name].Env(sb.baseURL(name)) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			fmt.Fprintln(a.stdout, sb.fakes[name].Describe(sb.baseURL(name)))
		}
		// The fakes' settings over the environment's (and its NAME_FILEs).
		if c, err = LoadConfig(ctx, func(k string) (string, bool) {
			if v, ok := env[k]; ok {
				return v, true
			}
			if _, ok := env[strings.TrimSuffix(k, "_FILE")]; ok {
				return "", false
			}
			return a.lookup(k)
		}); err != nil {
			return err
		}
		c = a.demoLogLevel(c)
	}
	log := a.logger(c)
	var runs []clickhouse.Run
	var firstErr error
	for _, p := range providers(c, log, nil) {
		if !p.Configured {
			continue
		}
		fmt.Fprintf(a.stdout, "syncing %s: %d streams\n", p.Name, len(p.Streams))
		r, err := syncStreams(ctx, c, db, log, p, p.Streams, "", false)
		runs = append(runs, r...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	fmt.Fprintln(a.stdout, "\nthis sync's runs, from etl_runs:")
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	if err := printQuery(ctx, db, a.stdout, `SELECT stream, tenant, status, arrayStringConcat(arrayMap((t, n) -> concat(t, ' ', toString(n)), rows_tables, rows_counts), ', ') AS rows,
		rejects, retries, duration_ms, error FROM etl_runs FINAL WHERE has(?, run_id) ORDER BY started_at, stream, tenant, run_id`, ids); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\nthe warehouse (rows after deduplication):")
	if err := printTables(ctx, db, a.stdout); err != nil {
		return err
	}
	if err := printExamples(ctx, db, a.stdout); err != nil {
		return err
	}
	if err := writeReport(ctx, db, report, c.sched); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nthe report (charts and tables): %s\nthe analysts' questions answered: bin/finsync guide\n", report)
	return firstErr
}

// printExamples shows a few rows of the main tables, as a BI user would
// query them.
func printExamples(ctx context.Context, db *clickhouse.DB, out io.Writer) error {
	for _, q := range examples() {
		fmt.Fprintf(out, "\n%s:\n", q.title)
		if err := printQuery(ctx, db, out, q.query); err != nil {
			return fmt.Errorf("%s: %w", q.title, err)
		}
	}
	return nil
}

// examples are the demo's example queries, each with its title.
func examples() []struct{ title, query string } {
	return []struct{ title, query string }{
		{"spending by category, the largest 5 per currency (fino and Fimento; FinGoal rows are enrichments of theirs; money is never added across currencies)",
			`SELECT currency, category, count() AS transactions, sum(amount) AS total
			FROM transactions FINAL WHERE amount < 0 AND provider != 'fingoal' GROUP BY currency, category ORDER BY currency, total, category LIMIT 5 BY currency`},
		{"latest balance per account (first 5)", `SELECT user_id, account_id, argMax(balance, balance_date) AS balance, argMax(currency, balance_date) AS currency,
			max(balance_date) AS on FROM account_balances FINAL GROUP BY user_id, account_id ORDER BY user_id, account_id LIMIT 5`},
		{"active contracts (first 5)", "SELECT user_id, category, `interval`, amount, next_booking_date " +
			"FROM contracts FINAL WHERE is_active ORDER BY user_id, contract_id LIMIT 5"},
		{"finAPI segment members per type (latest job per mandator, current only)", `SELECT segment_type, tenant, count() AS members,
			uniqExact(user_id) AS users, sum(amount) AS total_amount, min(creation_date) AS created, min(expires_on) AS expires
			FROM latest_segment_members GROUP BY segment_type, tenant ORDER BY segment_type, tenant`},
		{"analytics insights per module (fino.analytics.*), with three facts of its first user", `SELECT module, facts, users,
			arrayStringConcat(arraySlice(arraySort(facts_of_first), 1, 3), '; ') AS examples
			FROM (SELECT module, count() AS facts, uniqExact(user_id) AS users FROM insights FINAL WHERE provider = 'fino' GROUP BY module) AS per_module
			ANY LEFT JOIN (SELECT module, groupArrayIf(concat(metric, if(insight_id = '', '', concat(' [', insight_id, ']')),
					if(period = '', '', concat(' ', period)), ' = ', if(isNull(value), value_text, toString(round(toFloat64(assumeNotNull(value)), 2))))
				, isNotNull(value) AND value != 0 OR value_text != '') AS facts_of_first
				FROM insights FINAL WHERE provider = 'fino'
				AND (module, user_id) IN (SELECT module, min(user_id) FROM insights WHERE provider = 'fino' GROUP BY module)
				GROUP BY module) AS first_user USING module
			ORDER BY module`},
		{"monthly salary per user (module person-income-salary, metric salary.amount; first 6)", `SELECT user_id, period AS month, value AS salary
			FROM insights FINAL WHERE module = 'person-income-salary' AND metric = 'salary.amount' ORDER BY user_id, period LIMIT 6`},
		{"users with gambling in the last 3 months", `SELECT user_id, sum(value) AS bets, arraySort(groupArray(period)) AS months FROM insights FINAL
			WHERE module = 'person-risk-gambling' AND metric = 'gambling.count' AND value > 0
			AND period >= formatDateTime(addMonths(today(), -2), '%Y-%m') GROUP BY user_id ORDER BY user_id LIMIT 5`},
		{"company liquidity: end-of-month balance per account (last 2 months)", `SELECT user_id, insight_id AS account_id, period AS month, value AS end_of_month_balance
			FROM insights FINAL WHERE module = 'company-liquidity' AND metric = 'endOfMonthBalance'
			AND period >= formatDateTime(addMonths(today(), -1), '%Y-%m') ORDER BY user_id, account_id, period LIMIT 8`},
		{"Fimento processes and why they did or did not load", `SELECT tenant AS partner_bank, subject_id AS process, if(status = '', 'loaded', status) AS status,
			substring(status_detail, 1, 90) AS detail FROM subjects FINAL WHERE provider = 'fimento' ORDER BY tenant, subject_id LIMIT 8`},
		{"Fimento insights (first 6)", `SELECT user_id AS process, metric, value, value_text FROM insights FINAL
			WHERE provider = 'fimento' AND period = '' AND raw = '' ORDER BY user_id, metric LIMIT 6`},
		{"FinGoal enrichment joined to the original transactions (view transactions_enriched, first 5 enriched)",
			`SELECT provider, user_id, booking_date, amount, currency, description, fingoal_merchant, fingoal_category, fingoal_tags
			FROM transactions_enriched WHERE enrichment_status = 'enriched' ORDER BY user_id, booking_date DESC, transaction_id LIMIT 5`},
		{"FinGoal enrichment status per source", `SELECT provider, enrichment_status, count() AS transactions
			FROM transactions_enriched GROUP BY provider, enrichment_status ORDER BY provider, enrichment_status`},
		{"FinGoal user tags (first 5 users)", `SELECT user_id, arrayStringConcat(arraySort(groupArray(tag)), ', ') AS tags
			FROM user_tags FINAL WHERE provider = 'fingoal' GROUP BY user_id ORDER BY user_id LIMIT 5`},
		{"FinGoal savings recommendations (top 3 per currency: that of the transaction each was found in)", `SELECT currency, user_id, recommendation, amount_found, finsight_date
			FROM (
				SELECT insight_id, user_id, value_text AS recommendation, value AS amount_found, observed_from AS finsight_date,
					transaction_ids[1] AS fingoal_transaction_id
				FROM insights FINAL WHERE module = 'finsight' AND metric = 'amount_found'
			) AS finsights
			ANY LEFT JOIN (
				SELECT fingoal_transaction_id, currency FROM transactions_enriched WHERE fingoal_transaction_id != ''
			) AS sources USING (fingoal_transaction_id)
			ORDER BY currency, amount_found DESC, insight_id LIMIT 3 BY currency`},
		{"rejected records", `SELECT stream, target_table, reason, count() AS n FROM etl_rejects FINAL GROUP BY stream, target_table, reason ORDER BY n DESC, stream, target_table, reason LIMIT 5`},
	}
}
