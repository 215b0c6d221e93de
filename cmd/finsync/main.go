// Command finsync keeps a ClickHouse warehouse in sync with financial-data
// providers. Run `finsync -h` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	finsql "github.com/finsync/finsync/sql"
	"github.com/finsync/finsync/transform"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// command is one subcommand of the CLI.
type command struct {
	name, summary string
	run           func(ctx context.Context, app *app, args []string) error
}

func commands() []command {
	return []command{
		{"migrate", "create the database and apply the schema migrations (idempotent)", runMigrate},
		{"streams", "list the streams of every provider", runStreams},
		{"run", "the daemon: run the streams on their schedules, serve webhooks, /metrics, /healthz, /readyz and a status page", runDaemon},
		{"once", "run one stream once, end to end, and print the rows loaded", runOnce},
		{"backfill", "load a date range of a stream window by window, with progress; resumes where it stopped", runBackfill},
		{"sandbox", "serve the providers' sandboxes on loopback and print the settings that point finsync at them", runSandbox},
		{"validate", "check the configuration and report every problem", runValidate},
		{"demo", "sync every stream from the sandboxes into ClickHouse and print a summary (make demo)", runDemo},
		{"report", "write an HTML report of the warehouse (charts and tables, one self-contained file)", runReport},
		{"guide", "answer the analysts' usual questions with the query guide (sql/guide) on the warehouse", runGuide},
		{"version", "print the version", runVersion},
	}
}

// app is what every command gets: where to write and how to configure.
type app struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	// trace, if set, sees every statement sent to ClickHouse (tests).
	trace func(query string, args []any, external []*ext.Table)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv}
	stopProfile := cpuProfile(os.Getenv("FINSYNC_CPUPROFILE"))
	code := a.main(ctx, os.Args[1:])
	stopProfile()
	os.Exit(code)
}

// cpuProfile writes a CPU profile of the command to path (diagnostics, as
// make bench uses it); "" profiles nothing.
func cpuProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "finsync: FINSYNC_CPUPROFILE:", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// main runs the command named by args and returns the exit code: 0 ok,
// 1 the command failed, 2 the command line was wrong.
func (a *app) main(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		a.usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, a, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(a.stderr, "finsync %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(a.stderr, "finsync: unknown command %q (run finsync -h)\n", args[0])
	return 2
}

func (a *app) usage() {
	fmt.Fprintln(a.stderr, "finsync keeps a ClickHouse warehouse in sync with financial-data providers.\n\nUsage: finsync <command> [flags]\n\nCommands:")
	w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\t%s\n", c.name, c.summary)
	}
	w.Flush()
	fmt.Fprintln(a.stderr, "\nConfiguration comes from FINSYNC_* environment variables (see README); run finsync <command> -h for its flags.")
}

// errUsage marks a wrong command line; the flag package already said why.
var errUsage = errors.New("usage")

// flags parses a command's flags, with -h printing its usage.
func (a *app) flags(name, summary string, args []string, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: finsync %s [flags]\n\n%s\n", name, summary)
		if hasFlags(fs) {
			fmt.Fprintln(a.stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "finsync %s: unexpected argument %q\n", name, fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func summaryOf(name string) string {
	for _, c := range commands() {
		if c.name == name {
			return c.summary
		}
	}
	return ""
}

// dbOptions are the ClickHouse connection options of c for this app.
func (a *app) dbOptions(c Config) clickhouse.Options {
	o := c.clickhouseOptions()
	o.Trace = a.trace
	return o
}

// config loads and validates the configuration.
func (a *app) config(ctx context.Context) (Config, error) { return LoadConfig(ctx, a.lookup) }

func (a *app) logger(c Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevels[c.LogLevel]}
	// Lines logged within a run carry its stream, tenant and run id.
	var h slog.Handler = slog.NewTextHandler(a.stderr, opts)
	if c.LogFormat == "json" || (c.LogFormat == "auto" && !isTerminal(a.stderr)) {
		h = slog.NewJSONHandler(a.stderr, opts)
	}
	log := slog.New(schedules.RunHandler(h))
	if c.InsecureSkipVerify {
		log.Warn(insecureWarning)
	}
	return log
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runVersion(ctx context.Context, a *app, args []string) error {
	if err := a.flags("version", summaryOf("version"), args, nil); err != nil {
		return err
	}
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(a.stdout, "finsync %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// insecureWarning is said by every command while certificates go unchecked.
const insecureWarning = "FINSYNC_INSECURE_SKIP_VERIFY is set: TLS certificates of the providers and ClickHouse are NOT verified; use it for local testing only"

func runValidate(ctx context.Context, a *app, args []string) error {
	if err := a.flags("validate", summaryOf("validate"), args, nil); err != nil {
		return err
	}
	c, err := a.config(ctx)
	if err != nil {
		return err
	}
	if c.InsecureSkipVerify {
		fmt.Fprintln(a.stderr, "WARNING: "+insecureWarning)
	}
	fmt.Fprintln(a.stdout, "configuration ok")
	return nil
}

func runMigrate(ctx context.Context, a *app, args []string) error {
	c, db, res, err := a.migrated(ctx, "migrate", args)
	if err != nil {
		return err
	}
	db.Close()
	fmt.Fprintf(a.stdout, "database %s on ClickHouse %s at %s: %d migration(s) applied, schema matches the %d tables\n",
		c.ClickHouse.Database, res.Version, c.ClickHouse.Addr, len(res.Applied), len(transform.Tables()))
	for _, s := range res.Skipped {
		fmt.Fprintf(a.stdout, "skipped %s\n", s)
	}
	return nil
}

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
	if c.Fino.BaseURL == "" || c.Finapi.BaseURL == "" || c.Fimento.BaseURL == "" || c.Fingoal.BaseURL == "" {
		o.withEnv(a.lookup)
		sb, err := startSandbox("127.0.0.1:0", o)
		if err != nil {
			return err
		}
		defer sb.close()
		if c.Fino.BaseURL == "" {
			c.Fino.BaseURL, c.Fino.ClientID, c.Fino.ClientSecret = sb.url, "sandbox-client", "sandbox-secret"
			c.Fino.Users = sb.fino.Users(c.Fino.ClientID)
			fmt.Fprintf(a.stdout, "finoOS sandbox on %s with %d users\n", sb.url, len(c.Fino.Users))
		}
		if c.Finapi.BaseURL == "" {
			c.Finapi.BaseURL, c.Finapi.Mandators = sb.url+"/finapi", Secret(sb.finapiMandators())
			fmt.Fprintf(a.stdout, "finAPI sandbox on %s/finapi with %d mandators\n", sb.url, len(finapiMandators))
		}
		if c.Fimento.BaseURL == "" {
			c.Fimento.BaseURL, c.Fimento.Name, c.Fimento.Password = sb.url+fimentoPrefix, "sandbox-user", "sandbox-password"
			c.Fimento.HashKey, c.Fimento.PartnerBanks, c.Fimento.Processes = fimentoHashKey, sb.fimento.PartnerBanks(), sb.fimentoProcesses()
			fmt.Fprintf(a.stdout, "Fimento sandbox on %s%s with %d processes (completed, authError, denied consent, in progress)\n",
				sb.url, fimentoPrefix, len(c.Fimento.Processes))
		}
		if c.Fingoal.BaseURL == "" {
			id, secret := sb.fingoal.Credentials()
			c.Fingoal.BaseURL, c.Fingoal.ClientID, c.Fingoal.ClientSecret = sb.fingoalURL(), id, Secret(secret)
			if c.Fingoal.IDKey == "" {
				c.Fingoal.IDKey = fingoalIDKey
			}
			// A manual tag refresh, so the demo shows tags at once instead of
			// after FinGoal's next twice-daily tagging run.
			c.Fingoal.SyncTags = true
			fmt.Fprintf(a.stdout, "FinGoal sandbox on %s (enriches what fino loaded)\n", sb.fingoalURL())
		}
	}
	log := a.logger(c)
	var runs []clickhouse.Run
	var firstErr error
	for _, p := range providers(c, log, nil) {
		if !p.configured {
			continue
		}
		fmt.Fprintf(a.stdout, "syncing %s: %d streams\n", p.name, len(p.streams))
		r, err := syncStreams(ctx, c, db, log, p, p.streams, "")
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
	if err := writeReport(ctx, db, report); err != nil {
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

// printQuery prints any result as an aligned table, or "(none)" when it
// has no rows (a header over nothing reads like a failure).
func printQuery(ctx context.Context, db *clickhouse.DB, out io.Writer, query string, args ...any) error {
	rows, err := db.Conn().Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	n := 0
	for ; rows.Next(); n++ {
		cells, err := scanStrings(rows)
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintln(w, "  "+strings.Join(rows.Columns(), "\t")+"\t")
		}
		fmt.Fprintln(w, "  "+strings.Join(cells, "\t")+"\t")
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	return w.Flush()
}

// scanStrings scans the current row, whatever its column types, as text.
func scanStrings(rows driver.Rows) ([]string, error) {
	types := rows.ColumnTypes()
	dest := make([]any, len(types))
	for i, ct := range types {
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	cells := make([]string, len(dest))
	for i, d := range dest {
		cells[i] = cell(reflect.ValueOf(d).Elem().Interface())
	}
	return cells, nil
}

func cell(v any) string {
	switch v := v.(type) {
	case time.Time:
		if v.Hour() == 0 && v.Minute() == 0 && v.Second() == 0 {
			return v.Format(time.DateOnly)
		}
		return v.UTC().Format(time.DateTime)
	case decimal.Decimal:
		return v.StringFixed(2)
	}
	// Nullable columns scan into pointers.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		return cell(rv.Elem().Interface())
	}
	return fmt.Sprint(v)
}

// migrated is the start of every command that writes: parse the command's
// flags, load the configuration, apply the migrations and check the tables
// against the Arrow schema. The caller closes the returned database.
func (a *app) migrated(ctx context.Context, name string, args []string) (Config, *clickhouse.DB, clickhouse.MigrateResult, error) {
	var res clickhouse.MigrateResult
	if err := a.flags(name, summaryOf(name), args, nil); err != nil {
		return Config{}, nil, res, err
	}
	c, err := a.config(ctx)
	if err != nil {
		return c, nil, res, err
	}
	res, err = clickhouse.Migrate(ctx, a.dbOptions(c), finsql.Files, a.logger(c))
	if err != nil {
		return c, nil, res, err
	}
	db, err := clickhouse.Open(ctx, a.dbOptions(c))
	if err != nil {
		return c, nil, res, err
	}
	if err := db.CheckSchema(ctx, transform.Tables()); err != nil {
		db.Close()
		return c, nil, res, err
	}
	return c, db, res, nil
}

// printTables prints every table of the common schema with its row count
// (after deduplication) and, per provider, where the table has one.
func printTables(ctx context.Context, db *clickhouse.DB, out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "table\trows\tby provider\t")
	for _, t := range transform.Tables() {
		_, hasProvider := t.Schema.FieldsByName("provider")
		query := "SELECT '', count() FROM " + t.Name + " FINAL"
		if hasProvider {
			query = "SELECT provider, count() FROM " + t.Name + " FINAL GROUP BY provider"
		}
		rows, err := db.Conn().Query(ctx, query)
		if err != nil {
			return fmt.Errorf("counting %s: %w", t.Name, err)
		}
		var total uint64
		var parts []string
		for rows.Next() {
			var provider string
			var n uint64
			if err := rows.Scan(&provider, &n); err != nil {
				rows.Close()
				return err
			}
			total += n
			if provider != "" {
				parts = append(parts, fmt.Sprintf("%s %d", provider, n))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "%s\t%d\t%s\t\n", t.Name, total, strings.Join(parts, ", "))
	}
	return w.Flush()
}
