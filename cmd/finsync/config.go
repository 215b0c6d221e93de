package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// Config is everything finsync reads from the environment. Any variable may
// instead be given as NAME_FILE, the path of a file holding the value
// (Docker and Kubernetes secrets); setting both is an error.
type Config struct {
	ClickHouse struct {
		Addr     string         `env:"FINSYNC_CLICKHOUSE_ADDR, default=127.0.0.1:19000"`
		Database string         `env:"FINSYNC_CLICKHOUSE_DATABASE, default=finsync"`
		User     string         `env:"FINSYNC_CLICKHOUSE_USER, default=default"`
		Password extract.Secret `env:"FINSYNC_CLICKHOUSE_PASSWORD"`
		// TLS speaks TLS to ClickHouse (its secure native port), verifying
		// the server's certificate.
		TLS bool `env:"FINSYNC_CLICKHOUSE_TLS, default=false"`
		// Cluster is the ClickHouse cluster (remote_servers) the warehouse
		// spans; unset: one server.
		Cluster string `env:"FINSYNC_CLICKHOUSE_CLUSTER"`
		// One INSERT's budget. The loader streams an INSERT in blocks, so
		// these bound the INSERT's size, not memory.
		InsertMaxRows  int   `env:"FINSYNC_INSERT_MAX_ROWS, default=250000"`
		InsertMaxBytes int64 `env:"FINSYNC_INSERT_MAX_BYTES, default=1073741824"`
		// SpillDir, if set, holds what an INSERT sent beyond the 32 MiB
		// kept in memory, so that large INSERTs are retried too.
		SpillDir string `env:"FINSYNC_SPILL_DIR"`
	}
	// Memory is the process's budget and the limits on what one provider
	// response may make it hold (memory.go).
	Memory struct {
		Budget   extract.ByteSize `env:"FINSYNC_MEMORY_BUDGET, default=1280MiB"`
		Record   extract.ByteSize `env:"FINSYNC_MAX_RECORD_BYTES, default=1MiB"`
		Field    extract.ByteSize `env:"FINSYNC_MAX_FIELD_BYTES, default=256KiB"`
		Elements int              `env:"FINSYNC_MAX_PAGE_ELEMENTS, default=100000"`
		Document extract.ByteSize `env:"FINSYNC_MAX_DOCUMENT_BYTES, default=16MiB"`
	}
	// The providers' settings: FINSYNC_FINO_*, FINSYNC_FIMENTO_*, ...
	ProviderSettings
	// Shard ("i/n") makes this process one of n that split the work: it
	// runs the subjects and tenant-level runs whose stable hash falls in
	// shard i (schedules.Shard); unset: all of them.
	Shard string `env:"FINSYNC_SHARD"`
	// HTTPAddr is where the daemon serves webhooks, metrics, health and
	// its status page.
	HTTPAddr string `env:"FINSYNC_HTTP_ADDR, default=127.0.0.1:8080"`
	// WebhookAddr, if set, serves the webhook receivers there instead:
	// the address that faces the providers, while the status page and
	// /metrics stay on HTTPAddr.
	WebhookAddr string `env:"FINSYNC_WEBHOOK_ADDR"`
	// WebhookRate caps each provider's webhooks per second (0: no cap).
	WebhookRate float64 `env:"FINSYNC_WEBHOOK_RATE, default=20"`
	// RunToken, if set, turns on the status page's "run now" buttons: a
	// POST /run must carry it. Unset: no button, and /run refuses.
	RunToken extract.Secret `env:"FINSYNC_RUN_TOKEN"`
	// ShutdownGrace is how long the daemon lets running runs finish on
	// SIGTERM before it cancels them.
	ShutdownGrace time.Duration `env:"FINSYNC_SHUTDOWN_GRACE, default=30s"`
	// InsecureSkipVerify turns off TLS certificate verification for the
	// providers and ClickHouse: for local testing only, and every command
	// warns about it.
	InsecureSkipVerify bool `env:"FINSYNC_INSECURE_SKIP_VERIFY, default=false"`
	// SandboxFaults is the fault matrix of the sandboxes `finsync demo` and
	// `finsync sandbox` start (sandboxkit.Parse); unset: no faults.
	SandboxFaults string `env:"FINSYNC_SANDBOX_FAULTS"`
	// Schedules is the path of the schedules file; unset: the built-in one
	// (schedules/default.yaml).
	Schedules string `env:"FINSYNC_SCHEDULES"`
	LogLevel  string `env:"FINSYNC_LOG_LEVEL, default=info"`  // debug, info, warn, error
	LogFormat string `env:"FINSYNC_LOG_FORMAT, default=auto"` // auto (text on a terminal, else JSON), text, json

	// sched is the parsed schedules file (LoadConfig reads it).
	sched *schedules.Schedules
}

// LoadConfig reads the configuration through lookup (os.LookupEnv in the
// binary) and validates it, reporting every problem at once, each naming
// its variable; a value that does not parse is reported alone (the
// variable then counts as unset), not with the problems it would cause.
func LoadConfig(ctx context.Context, lookup func(string) (string, bool)) (Config, error) {
	files := &fileLookuper{lookup: lookup, unset: map[string]bool{}}
	var c Config
	var problems []error
	for {
		c, files.errs, files.last = Config{}, nil, ""
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: files})
		if err == nil {
			break
		}
		if files.last == "" || files.unset[files.last] {
			problems = append(problems, err) // not a value's fault: report it as it is
			break
		}
		v, _ := lookup(files.last)
		problems = append(problems, fmt.Errorf("%s=%q: %s", files.last, v, wantOf(err)))
		files.unset[files.last] = true
	}
	problems = append(problems, files.errs...)
	problems = append(problems, c.Validate()...)
	var err error
	if c.sched, err = loadSchedules(c); err != nil {
		problems = append(problems, err)
	} else {
		problems = append(problems, c.checkScheduleTenants()...)
		problems = append(problems, c.checkMemory()...)
	}
	// A variable whose file could not be read is not also "required".
	problems = slices.DeleteFunc(problems, func(p error) bool {
		for name := range files.unreadable {
			if strings.HasPrefix(p.Error(), name+" ") {
				return true
			}
		}
		return false
	})
	if len(problems) > 0 {
		return c, fmt.Errorf("invalid configuration:\n%w", errors.Join(problems...))
	}
	return c, nil
}

// envNames are the variables finsync reads: the env tags of Config, with
// the prefixes of the structs that hold them, and FINSYNC_CPUPROFILE.
func envNames() map[string]bool {
	names := map[string]bool{"FINSYNC_CPUPROFILE": true}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("env")
			name, opts, _ := strings.Cut(tag, ",")
			switch {
			case f.Type.Kind() == reflect.Struct && (!ok || strings.TrimSpace(name) == ""):
				_, p, _ := strings.Cut(opts, "prefix=")
				p, _, _ = strings.Cut(p, ",")
				walk(f.Type, prefix+strings.TrimSpace(p))
			case ok:
				names[prefix+strings.TrimSpace(name)] = true
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return names
}

// unknownVariables are the FINSYNC_* names in environ that finsync does
// not read (NAME_FILE counts as NAME), each with the closest it does.
func unknownVariables(environ []string) []error {
	known := envNames()
	var problems []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		base := strings.TrimSuffix(name, "_FILE")
		if !strings.HasPrefix(name, "FINSYNC_") || known[name] || known[base] {
			continue
		}
		names := slices.Collect(maps.Keys(known))
		slices.Sort(names) // the same suggestion every time among equals
		if best := closest(base, names); best != "" {
			problems = append(problems, fmt.Errorf("%s is not a finsync variable: did you mean %s?", name, best+strings.TrimPrefix(name, base)))
		} else {
			problems = append(problems, fmt.Errorf("%s is not a finsync variable (README: Configuration)", name))
		}
	}
	slices.SortFunc(problems, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return problems
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// wantOf says what a value envconfig could not decode should be.
func wantOf(err error) string {
	switch msg := err.Error(); {
	case strings.Contains(msg, "ParseBool"):
		return "want true or false"
	case strings.Contains(msg, "ParseFloat"):
		return "want a number"
	case strings.Contains(msg, "ParseInt"), strings.Contains(msg, "ParseUint"):
		return "want a whole number"
	case strings.Contains(msg, "time: "):
		return "want a duration (like 30s, 2m, 1h)"
	default:
		_, last, _ := strings.Cut(msg, ": ")
		return last
	}
}

// checkScheduleTenants reports schedules naming a tenant their provider is
// not configured with (in tenants or per_tenant).
func (c Config) checkScheduleTenants() []error {
	var problems []error
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		for _, s := range p.Streams {
			sched, ok := c.sched.Find(s.Name)
			if !ok || !p.Configured {
				continue
			}
			bad := func(where schedules.Schedule, t string) {
				if !slices.Contains(p.Tenants, t) {
					problems = append(problems, fmt.Errorf("%s:%d: %s: tenant %q is not one of %s's configured tenants %v", where.File, where.Line, s.Name, t, p.Name, p.Tenants))
				}
			}
			for _, t := range sched.Tenants {
				bad(sched, t)
			}
			for _, t := range slices.Sorted(maps.Keys(sched.PerTenant)) {
				bad(sched.PerTenant[t], t)
			}
		}
	}
	return problems
}

var (
	identifier  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	clusterName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Validate lists every problem with c.
func (c Config) Validate() []error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if host, port, err := net.SplitHostPort(c.ClickHouse.Addr); err != nil || host == "" {
		bad("FINSYNC_CLICKHOUSE_ADDR=%q: want host:port", c.ClickHouse.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("FINSYNC_CLICKHOUSE_ADDR=%q: port must be 1-65535", c.ClickHouse.Addr)
	}
	if !identifier.MatchString(c.ClickHouse.Database) {
		bad("FINSYNC_CLICKHOUSE_DATABASE=%q: want letters, digits and underscores, not starting with a digit", c.ClickHouse.Database)
	}
	if c.ClickHouse.Cluster != "" && !clusterName.MatchString(c.ClickHouse.Cluster) {
		bad("FINSYNC_CLICKHOUSE_CLUSTER=%q: want a cluster name of the servers' remote_servers (letters, digits, _ . -)", c.ClickHouse.Cluster)
	}
	if _, err := schedules.ParseShard(c.Shard); err != nil {
		bad("FINSYNC_SHARD: %v", err)
	}
	if c.ClickHouse.InsertMaxRows < 1000 {
		bad("FINSYNC_INSERT_MAX_ROWS=%d: want at least 1000 (small inserts make ClickHouse throttle with Too many parts)", c.ClickHouse.InsertMaxRows)
	}
	if c.ClickHouse.InsertMaxBytes < 1<<20 {
		bad("FINSYNC_INSERT_MAX_BYTES=%d: want at least 1048576", c.ClickHouse.InsertMaxBytes)
	}
	if _, err := sandboxkit.Parse(c.SandboxFaults); err != nil {
		bad("FINSYNC_SANDBOX_FAULTS: %v", err)
	}
	if c.Schedules != "" {
		if _, err := os.Stat(c.Schedules); err != nil {
			bad("FINSYNC_SCHEDULES: %v", err)
		}
	}
	for _, p := range c.ProviderSettings.list() {
		problems = append(problems, p.Validate()...)
	}
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
		bad("FINSYNC_HTTP_ADDR=%q: want host:port (127.0.0.1:8080, or :8080 for every interface)", c.HTTPAddr)
	}
	if _, port, err := net.SplitHostPort(c.WebhookAddr); c.WebhookAddr != "" && (err != nil || port == "") {
		bad("FINSYNC_WEBHOOK_ADDR=%q: want host:port (e.g. :8443)", c.WebhookAddr)
	}
	if c.WebhookRate < 0 || math.IsNaN(c.WebhookRate) || math.IsInf(c.WebhookRate, 0) {
		bad("FINSYNC_WEBHOOK_RATE=%v: want webhooks a second per provider, 0 for no cap", c.WebhookRate)
	}
	if n := len(c.RunToken.Value()); n > 0 && n < minRunToken {
		// Never the value: it is a secret.
		bad("FINSYNC_RUN_TOKEN: %d characters, want at least %d (e.g. openssl rand -hex 16)", n, minRunToken)
	}
	if _, ok := logLevels[c.LogLevel]; !ok {
		bad("FINSYNC_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "auto" && c.LogFormat != "text" && c.LogFormat != "json" {
		bad("FINSYNC_LOG_FORMAT=%q: want auto, text or json", c.LogFormat)
	}
	return problems
}

// minRunToken is the shortest FINSYNC_RUN_TOKEN accepted: anyone who can
// reach the status page may try to guess it.
const minRunToken = 16

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// clickhouseOptions are the loader's connection options.
func (c Config) clickhouseOptions() clickhouse.Options {
	return clickhouse.Options{
		Addr:     c.ClickHouse.Addr,
		Database: c.ClickHouse.Database,
		Username: c.ClickHouse.User,
		Password: c.ClickHouse.Password.Value(),
		TLS:      c.ClickHouse.TLS, InsecureSkipVerify: c.InsecureSkipVerify,
		Cluster: c.ClickHouse.Cluster,
	}
}

// fileLookuper resolves NAME from the environment or from the file named by
// NAME_FILE, collecting the errors envconfig's Lookup cannot return.
type fileLookuper struct {
	lookup func(string) (string, bool)
	errs   []error
	// last is the last variable found: the one envconfig failed on, when
	// it fails to decode a value. unset are variables read as unset (their
	// value did not decode); unreadable those whose file could not be read.
	last       string
	unset      map[string]bool
	unreadable map[string]bool
}

func (l *fileLookuper) Lookup(key string) (string, bool) {
	if l.unset[key] {
		return "", false
	}
	v, ok := l.lookup(key)
	path, fromFile := l.lookup(key + "_FILE")
	switch {
	case ok && fromFile:
		l.errs = append(l.errs, fmt.Errorf("%s and %s_FILE are both set: use one", key, key))
	case fromFile:
		b, err := os.ReadFile(path)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("%s_FILE: %w", key, err))
			if l.unreadable == nil {
				l.unreadable = map[string]bool{}
			}
			l.unreadable[key] = true
			return "", false
		}
		v, ok = strings.TrimRight(string(b), "\r\n"), true
	}
	if ok {
		l.last = key
	}
	return v, ok
}

// loaderOptions are the loader's settings from the configuration.
func (c Config) loaderOptions(log *slog.Logger) clickhouse.LoaderOptions {
	return clickhouse.LoaderOptions{MaxRows: c.ClickHouse.InsertMaxRows, MaxBytes: c.ClickHouse.InsertMaxBytes,
		SpillDir: c.ClickHouse.SpillDir, Logger: log}
}

// loadSchedules reads the built-in schedules (schedules/default.yaml and
// each provider's), overlaid by FINSYNC_SCHEDULES if set, and checks them
// against the streams finsync has.
func loadSchedules(c Config) (*schedules.Schedules, error) {
	layers := []schedules.Layer{{Name: "schedules/default.yaml (built in)", Data: schedules.DefaultFile}}
	known := map[string]schedules.ParamsCheck{}
	reconciles := map[string]bool{}
	c.sched = nil
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		layers = append(layers, schedules.Layer{Name: "extract/" + p.Name + "/schedules.yaml (built in)", Data: p.Schedules})
		for _, s := range p.Streams {
			known[s.Name] = s.CheckParams
			reconciles[s.Name] = s.Reconciles
		}
	}
	if c.Schedules != "" {
		data, err := os.ReadFile(c.Schedules)
		if err != nil {
			return nil, fmt.Errorf("FINSYNC_SCHEDULES: %w", err)
		}
		layers = append(layers, schedules.Layer{Name: c.Schedules, Data: data})
	}
	ss, err := schedules.ParseLayers(layers, known)
	if ss != nil {
		err = errors.Join(err, ss.CheckReconcile(func(stream string) bool { return reconciles[stream] }))
	}
	if ss != nil && c.Schedules == "" {
		ss.File = "the built-in schedules"
	}
	return ss, err
}

// shard is FINSYNC_SHARD parsed (Validate reported a bad one).
func (c Config) shard() schedules.Shard {
	s, _ := schedules.ParseShard(c.Shard)
	return s
}
