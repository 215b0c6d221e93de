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
	"maps"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
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
		{"fresh", "exit 0 when the named streams succeeded within a bound, 1 when not (for reporting jobs; -wait polls)", runFresh},
		{"reactivate", "lift a subject's quarantine or revocation (finsync quarantines a subject its provider answered 404 for)", runReactivate},
		{"healthcheck", "exit 0 when the daemon at FINSYNC_HTTP_ADDR answers /healthz (the image's HEALTHCHECK)", runHealthcheck},
		{"version", "print the version", runVersion},
	}
}

// app is what every command gets: where to write and how to configure.
type app struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	// environ lists the environment (os.Environ), for the names finsync
	// does not know; nil: not checked.
	environ func() []string
	// trace, if set, sees every statement sent to ClickHouse (tests).
	trace func(query string, args []any, external []*ext.Table)
	// setMemoryLimit applies FINSYNC_MEMORY_BUDGET (debug.SetMemoryLimit
	// in the binary; nil in tests, whose commands share one process).
	setMemoryLimit func(int64) int64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv, environ: os.Environ, setMemoryLimit: debug.SetMemoryLimit}
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
// 1 the command failed, 2 the command line was wrong, 3 a run did not
// start because another process runs its stream for the tenant
// (schedules.Busy).
func (a *app) main(ctx context.Context, args []string) int {
	switch {
	case len(args) == 0:
		a.usage(a.stderr)
		return 2
	case slices.Contains([]string{"-h", "-help", "--help", "help"}, args[0]):
		a.usage(a.stdout) // asked for: the answer, not a complaint
		return 0
	case args[0] == "-version" || args[0] == "--version":
		args[0] = "version"
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
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
		if busy := (*schedules.Busy)(nil); errors.As(err, &busy) {
			return 3
		}
		return 1
	}
	fmt.Fprintf(a.stderr, "finsync: unknown command %q%s (run finsync -h)\n", args[0], didYouMean(args[0], names))
	return 2
}

// didYouMean is ", did you mean X?" for the closest of names to s, or "".
func didYouMean(s string, names []string) string {
	if best := closest(s, names); best != "" {
		return fmt.Sprintf(", did you mean %s?", best)
	}
	return ""
}

// closest is the first of names nearest to s, when a few edits away, else "".
func closest(s string, names []string) string {
	best, dist := "", 4
	for _, n := range names {
		if d := editDistance(s, n); d < dist {
			best, dist = n, d
		}
	}
	return best
}

func (a *app) usage(out io.Writer) {
	fmt.Fprintln(out, "finsync keeps a ClickHouse warehouse in sync with financial-data providers.\n\nUsage: finsync <command> [flags]\n\nCommands:")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\t%s\n", c.name, c.summary)
	}
	w.Flush()
	fmt.Fprintln(out, "\nExamples:\n  finsync demo                       the sandboxes, one full sync and a summary\n"+
		"  finsync validate                   check the FINSYNC_* settings\n"+
		"  finsync once -stream fino.accounts one stream, once\n"+
		"  finsync fresh -streams fino.transactions -within 6h -wait 30m\n"+
		"\nConfiguration comes from FINSYNC_* environment variables (README: Configuration; finsync validate\nchecks them); finsync <command> -h shows a command's flags. finsync --version prints the version.")
}

// errUsage marks a wrong command line; the flag package already said why.
var errUsage = errors.New("usage")

// flags parses a command's flags, with -h printing its usage.
func (a *app) flags(name, summary string, args []string, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	// Help asked for goes to stdout; after a wrong flag, to stderr.
	asked := slices.ContainsFunc(args, func(s string) bool { return s == "-h" || s == "-help" || s == "--help" })
	fs.Usage = func() {
		out := a.stderr
		if asked {
			out = a.stdout
			fs.SetOutput(out)
		}
		fmt.Fprintf(out, "Usage: finsync %s [flags]\n\n%s\n", name, summary)
		if hasFlags(fs) {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
		fmt.Fprintln(out, "\nEnvironment: the FINSYNC_* settings (README: Configuration).")
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

// config loads the configuration; FINSYNC_* names it does not know are
// warned about (validate refuses them).
func (a *app) config(ctx context.Context) (Config, error) {
	c, err := LoadConfig(ctx, a.lookup)
	if err == nil && a.setMemoryLimit != nil {
		a.setMemoryLimit(int64(c.Memory.Budget))
	}
	if err == nil && a.environ != nil {
		for _, p := range unknownVariables(a.environ()) {
			fmt.Fprintln(a.stderr, "WARNING: "+p.Error())
		}
	}
	return c, err
}

// demoLogLevel is c with warn as the log level unless FINSYNC_LOG_LEVEL is
// set: the demo's summary says what each run did, and a line per run would
// bury it; warnings and errors still show.
func (a *app) demoLogLevel(c Config) Config {
	if _, set := a.lookup("FINSYNC_LOG_LEVEL"); !set {
		c.LogLevel = "warn"
	}
	return c
}

func (a *app) logger(c Config) *slog.Logger { return newLogger(a.stderr, isTerminal(a.stderr), c) }

// newLogger logs to w as c says; tty says whether w ends on a terminal.
func newLogger(w io.Writer, tty bool, c Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevels[c.LogLevel]}
	// Lines logged within a run carry its stream, tenant and run id.
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.LogFormat == "json" || (c.LogFormat == "auto" && !tty) {
		h = slog.NewJSONHandler(w, opts)
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
	var showSchedules, connect bool
	if err := a.flags("validate", summaryOf("validate"), args, func(fs *flag.FlagSet) {
		fs.BoolVar(&showSchedules, "schedules", false, "also print the effective schedules: the built-in ones with FINSYNC_SCHEDULES over them")
		fs.BoolVar(&connect, "connect", false, "also reach ClickHouse and authenticate with every configured provider and tenant")
	}); err != nil {
		return err
	}
	c, err := LoadConfig(ctx, a.lookup) // unknown names are refused here, not warned about
	var problems []error
	if a.environ != nil {
		problems = unknownVariables(a.environ())
	}
	if err != nil {
		return errors.Join(append([]error{err}, problems...)...)
	}
	if c.InsecureSkipVerify {
		fmt.Fprintln(a.stderr, "WARNING: "+insecureWarning)
	}
	var configured []string
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		if p.Configured {
			configured = append(configured, p.Name)
		}
	}
	if len(configured) == 0 {
		problems = append(problems, errors.New("no provider is configured: set FINSYNC_<PROVIDER>_BASE_URL and its credentials (README: Configuration); `finsync demo` runs every provider against its sandbox"))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n%w", errors.Join(problems...))
	}
	fmt.Fprintf(a.stdout, "configuration ok: %s configured, schedules from %s\n", strings.Join(configured, ", "), c.sched.File)
	if showSchedules {
		printSchedules(a.stdout, c.sched)
	}
	if connect {
		return a.connect(ctx, c)
	}
	return nil
}

// connect reaches ClickHouse and authenticates with every configured
// provider and tenant, a line each, saying what to fix.
func (a *app) connect(ctx context.Context, c Config) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	failed := 0
	line := func(what string, err error, fix string) {
		if err == nil {
			fmt.Fprintf(a.stdout, "%s: ok%s\n", what, fix)
			return
		}
		failed++
		fmt.Fprintf(a.stdout, "%s: %v%s\n", what, err, fix)
	}
	opts := a.dbOptions(c)
	opts.Database = "system" // reachable before finsync migrate creates the database
	what := "ClickHouse at " + c.ClickHouse.Addr
	if db, err := clickhouse.Open(ctx, opts); err != nil {
		fix := " (check FINSYNC_CLICKHOUSE_ADDR, _USER, _PASSWORD, _TLS)"
		if httpAnswers(ctx, c.ClickHouse.Addr) {
			fix = " (that is ClickHouse's HTTP port: finsync speaks the native protocol, port 9000 or 9440 with TLS)"
		}
		line(what, err, fix)
	} else {
		line(what, nil, fmt.Sprintf(" (ClickHouse %s)", db.Version()))
		db.Close()
	}
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		if !p.Configured || p.Check == nil {
			continue
		}
		for _, t := range p.Tenants {
			line(fmt.Sprintf("%s tenant %s", p.Name, t), p.Check(ctx, t), "")
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of the connections failed", failed)
	}
	return nil
}

// httpAnswers says whether addr speaks HTTP (ClickHouse's HTTP port where
// the native one was meant).
func httpAnswers(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ping", nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// printSchedules prints the effective schedules as a schedules file would
// hold them (cron in UTC unless CRON_TZ=).
func printSchedules(out io.Writer, ss *schedules.Schedules) {
	fmt.Fprintf(out, "\nconcurrency:\n  global: %d\n", ss.Global)
	for _, p := range slices.Sorted(maps.Keys(ss.PerProvider)) {
		fmt.Fprintf(out, "  provider.%s: %d\n", p, ss.PerProvider[p])
	}
	fmt.Fprintln(out, "streams:")
	for _, s := range ss.Streams {
		fmt.Fprintf(out, "  %s:\n    schedule: %q\n    enabled: %v\n    catchup: %v\n    window: %s\n    lookback: %s\n    timeout: %s\n    jitter: %s\n",
			s.Stream, s.Spec, s.Enabled, s.Catchup, s.Window, s.Lookback, s.Timeout, s.Jitter)
		if s.Reconcile != "" {
			fmt.Fprintf(out, "    reconcile: %q\n    reconcile_lookback: %s\n", s.Reconcile, s.ReconcileLookback)
		}
		if len(s.Tenants) > 0 {
			fmt.Fprintf(out, "    tenants: [%s]\n", strings.Join(s.Tenants, ", "))
		}
		if len(s.Params) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(s.Params)) {
				kv = append(kv, k+": "+s.Params[k])
			}
			fmt.Fprintf(out, "    params: {%s}\n", strings.Join(kv, ", "))
		}
		if ovs := tenantOverrides(s); len(ovs) > 0 {
			fmt.Fprintln(out, "    per_tenant:")
			for _, o := range ovs {
				fmt.Fprintf(out, "      %s:\n", o.Tenant)
				for _, kv := range o.Settings {
					fmt.Fprintf(out, "        %s: %s\n", kv[0], kv[1])
				}
			}
		}
	}
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
	if name == "demo" {
		c = a.demoLogLevel(c)
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
