package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/finsync/finsync/extract/fimento"
	"github.com/finsync/finsync/extract/finapi"
	"github.com/finsync/finsync/extract/fingoal"
	"github.com/finsync/finsync/extract/fino"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// Config is everything finsync reads from the environment. Any variable may
// instead be given as NAME_FILE, the path of a file holding the value
// (Docker and Kubernetes secrets); setting both is an error.
type Config struct {
	ClickHouse struct {
		Addr     string `env:"FINSYNC_CLICKHOUSE_ADDR, default=127.0.0.1:19000"`
		Database string `env:"FINSYNC_CLICKHOUSE_DATABASE, default=finsync"`
		User     string `env:"FINSYNC_CLICKHOUSE_USER, default=default"`
		Password Secret `env:"FINSYNC_CLICKHOUSE_PASSWORD"`
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
	Fino struct {
		BaseURL      string `env:"FINSYNC_FINO_BASE_URL"` // unset: the fino streams are listed but not runnable
		ClientID     string `env:"FINSYNC_FINO_CLIENT_ID"`
		ClientSecret Secret `env:"FINSYNC_FINO_CLIENT_SECRET"`
		// Tenants are TenantID header values; default: the client's own.
		Tenants []string `env:"FINSYNC_FINO_TENANTS"`
		// Users ("user" or "tenant/user") enter the subjects registry from
		// config; webhooks and operators' INSERTs add more.
		Users         []string `env:"FINSYNC_FINO_USERS"`
		WebhookSecret Secret   `env:"FINSYNC_FINO_WEBHOOK_SECRET"`
		RateLimit     float64  `env:"FINSYNC_FINO_RATE_LIMIT, default=20"` // requests per second
		// Concurrency is how many users a per-user stream reads at once
		// (within the rate limit).
		Concurrency int `env:"FINSYNC_FINO_CONCURRENCY, default=8"`
		// PageSize is the categorization page size (finoOS allows 1..1000).
		PageSize int `env:"FINSYNC_FINO_PAGE_SIZE, default=1000"`
		// Scopes are the analytics modules to read: "scope" for every
		// tenant or "tenant/scope"; a trailing * matches a prefix. Unset: all.
		Scopes []string `env:"FINSYNC_FINO_SCOPES"`
	}
	Fimento struct {
		BaseURL  string `env:"FINSYNC_FIMENTO_BASE_URL"` // unset: the fimento streams are listed but not runnable
		Name     string `env:"FINSYNC_FIMENTO_NAME"`
		Password Secret `env:"FINSYNC_FIMENTO_PASSWORD"`
		// PartnerBanks are partner-bank-id values: the tenants.
		PartnerBanks []string `env:"FINSYNC_FIMENTO_PARTNER_BANKS"`
		// Processes ("bank/processId", or "processId" with one partner
		// bank) enter the subjects registry from config.
		Processes []string `env:"FINSYNC_FIMENTO_PROCESSES"`
		// HashKey keys the hash that stands for a person (social security
		// number, company id).
		HashKey    Secret   `env:"FINSYNC_FIMENTO_HASH_KEY"`
		WebhookURL string   `env:"FINSYNC_FIMENTO_WEBHOOK_URL"` // registered with Fimento at start-up
		Paths      []string `env:"FINSYNC_FIMENTO_PATHS"`       // name=/path overrides of the assumed endpoints
		RateLimit  float64  `env:"FINSYNC_FIMENTO_RATE_LIMIT, default=10"`
	}
	Finapi struct {
		BaseURL  string `env:"FINSYNC_FINAPI_BASE_URL"`  // unset: the finapi streams are listed but not runnable
		TokenURL string `env:"FINSYNC_FINAPI_TOKEN_URL"` // default BASE_URL/oauth/token
		// Mandators are the tenants, "name:client_id:client_secret" each,
		// comma-separated: secret as a whole.
		Mandators Secret `env:"FINSYNC_FINAPI_MANDATORS"`
		// CallbackURL is the daemon's public address of its finAPI callback
		// receiver; unset: poll only.
		CallbackURL string  `env:"FINSYNC_FINAPI_CALLBACK_URL"`
		RateLimit   float64 `env:"FINSYNC_FINAPI_RATE_LIMIT, default=10"`
	}
	Fingoal struct {
		BaseURL      string `env:"FINSYNC_FINGOAL_BASE_URL"` // up to /v3; unset: the fingoal streams are listed but not runnable
		ClientID     string `env:"FINSYNC_FINGOAL_CLIENT_ID"`
		ClientSecret Secret `env:"FINSYNC_FINGOAL_CLIENT_SECRET"`
		// WebhookSecret verifies X-Webhook-Verification; default the client secret.
		WebhookSecret Secret `env:"FINSYNC_FINGOAL_WEBHOOK_SECRET"`
		// Tenants are subtenant ids; default the client id (no subtenant-id header).
		Tenants []string `env:"FINSYNC_FINGOAL_TENANTS"`
		// IDKey keys the opaque ids sent to FinGoal: a secret of at least 16
		// characters, required with the base URL. Never change it.
		IDKey       Secret        `env:"FINSYNC_FINGOAL_ID_KEY"`
		AccountType string        `env:"FINSYNC_FINGOAL_ACCOUNT_TYPE, default=checking"`
		SyncTags    bool          `env:"FINSYNC_FINGOAL_SYNC_TAGS, default=false"`
		RateLimit   float64       `env:"FINSYNC_FINGOAL_RATE_LIMIT, default=5"`
		PollTimeout time.Duration `env:"FINSYNC_FINGOAL_POLL_TIMEOUT, default=2m"`
	}
	// Shard ("i/n") makes this process one of n that split the work: it
	// runs the subjects and tenant-level runs whose stable hash falls in
	// shard i (schedules.Shard); unset: all of them.
	Shard string `env:"FINSYNC_SHARD"`
	// HTTPAddr is where the daemon serves webhooks, metrics, health and
	// its status page.
	HTTPAddr string `env:"FINSYNC_HTTP_ADDR, default=127.0.0.1:8080"`
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

// Secret is a configuration value that must never be printed or logged: it
// formats as REDACTED everywhere; Value gives the real thing to the code
// that sends it.
type Secret string

const redacted = "REDACTED"

func (s Secret) String() string                   { return redacted }
func (s Secret) GoString() string                 { return redacted }
func (s Secret) MarshalJSON() ([]byte, error)     { return []byte(`"` + redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error)     { return []byte(redacted), nil }
func (s Secret) LogValue() slog.Value             { return slog.StringValue(redacted) }
func (s *Secret) UnmarshalText(text []byte) error { *s = Secret(text); return nil }

// Value is the secret itself.
func (s Secret) Value() string { return string(s) }

// LoadConfig reads the configuration through lookup (os.LookupEnv in the
// binary) and validates it, reporting every problem at once.
func LoadConfig(ctx context.Context, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	files := &fileLookuper{lookup: lookup}
	err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: files})
	problems := append([]error{}, files.errs...)
	if err != nil {
		problems = append(problems, err)
	}
	problems = append(problems, c.Validate()...)
	var err2 error
	if c.sched, err2 = loadSchedules(c); err2 != nil {
		problems = append(problems, err2)
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("invalid configuration:\n%w", errors.Join(problems...))
	}
	return c, nil
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
	problems = append(problems, c.validateFino()...)
	if _, err := sandboxkit.Parse(c.SandboxFaults); err != nil {
		bad("FINSYNC_SANDBOX_FAULTS: %v", err)
	}
	problems = append(problems, c.validateFinapi()...)
	if c.Schedules != "" {
		if _, err := os.Stat(c.Schedules); err != nil {
			bad("FINSYNC_SCHEDULES: %v", err)
		}
	}
	problems = append(problems, c.validateFimento()...)
	problems = append(problems, c.validateFingoal()...)
	if _, ok := logLevels[c.LogLevel]; !ok {
		bad("FINSYNC_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "auto" && c.LogFormat != "text" && c.LogFormat != "json" {
		bad("FINSYNC_LOG_FORMAT=%q: want auto, text or json", c.LogFormat)
	}
	return problems
}

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
}

func (l *fileLookuper) Lookup(key string) (string, bool) {
	v, ok := l.lookup(key)
	path, fromFile := l.lookup(key + "_FILE")
	switch {
	case ok && fromFile:
		l.errs = append(l.errs, fmt.Errorf("%s and %s_FILE are both set: use one", key, key))
		return v, true
	case !fromFile:
		return v, ok
	}
	b, err := os.ReadFile(path)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("%s_FILE: %w", key, err))
		return "", false
	}
	return strings.TrimRight(string(b), "\r\n"), true
}

// loaderOptions are the loader's settings from the configuration.
func (c Config) loaderOptions(log *slog.Logger) clickhouse.LoaderOptions {
	return clickhouse.LoaderOptions{MaxRows: c.ClickHouse.InsertMaxRows, MaxBytes: c.ClickHouse.InsertMaxBytes,
		SpillDir: c.ClickHouse.SpillDir, Logger: log}
}

func (c Config) validateFino() []error {
	f := c.Fino
	if f.BaseURL == "" {
		return nil
	}
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(f.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("FINSYNC_FINO_BASE_URL=%q: want an http(s) URL", f.BaseURL)
	}
	if f.ClientID == "" {
		bad("FINSYNC_FINO_CLIENT_ID is required with FINSYNC_FINO_BASE_URL")
	}
	if f.ClientSecret == "" {
		bad("FINSYNC_FINO_CLIENT_SECRET is required with FINSYNC_FINO_BASE_URL")
	}
	for _, t := range f.Tenants {
		// finoOS: a TenantID must be the client id or start with "<client-id>-".
		if t != f.ClientID && !strings.HasPrefix(t, f.ClientID+"-") {
			bad("FINSYNC_FINO_TENANTS: %q must be %q or start with %q", t, f.ClientID, f.ClientID+"-")
		}
	}
	for _, u := range f.Users {
		tenant, user, found := strings.Cut(u, "/")
		if !found {
			tenant, user = f.ClientID, u
		}
		if user == "" || !slices.Contains(c.finoTenants(), tenant) {
			bad("FINSYNC_FINO_USERS: %q: want user or tenant/user with a tenant of FINSYNC_FINO_TENANTS", u)
		}
	}
	if f.RateLimit <= 0 {
		bad("FINSYNC_FINO_RATE_LIMIT=%v: want requests per second > 0", f.RateLimit)
	}
	if f.Concurrency < 1 || f.Concurrency > 256 {
		bad("FINSYNC_FINO_CONCURRENCY=%d: want users read at once, 1..256", f.Concurrency)
	}
	if f.PageSize < 1 || f.PageSize > fino.MaxPageSize {
		bad("FINSYNC_FINO_PAGE_SIZE=%d: want 1..%d", f.PageSize, fino.MaxPageSize)
	}
	if scopes, err := fino.ParseScopes(f.Scopes); err != nil {
		bad("FINSYNC_FINO_SCOPES: %v", err)
	} else {
		for _, t := range scopes.Tenants() {
			if !slices.Contains(c.finoTenants(), t) {
				bad("FINSYNC_FINO_SCOPES: tenant %q is not one of FINSYNC_FINO_TENANTS", t)
			}
		}
	}
	return problems
}

// finoTenants are the configured tenants, or the client's own.
func (c Config) finoTenants() []string {
	if len(c.Fino.Tenants) > 0 {
		return c.Fino.Tenants
	}
	return []string{c.Fino.ClientID}
}

// finapiTenants parses FINSYNC_FINAPI_MANDATORS.
func (c Config) finapiTenants() ([]finapi.Tenant, error) {
	var out []finapi.Tenant
	for _, m := range strings.Split(c.Finapi.Mandators.Value(), ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		parts := strings.SplitN(m, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			// Never echo the entry: it holds a secret.
			return nil, fmt.Errorf("FINSYNC_FINAPI_MANDATORS: entry %d is not name:client_id:client_secret", len(out)+1)
		}
		out = append(out, finapi.Tenant{Name: parts[0], ClientID: parts[1], ClientSecret: parts[2]})
	}
	return out, nil
}

func (c Config) validateFinapi() []error {
	var problems []error
	f := c.Finapi
	if f.BaseURL == "" {
		return problems
	}
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	for name, v := range map[string]string{"FINSYNC_FINAPI_BASE_URL": f.BaseURL, "FINSYNC_FINAPI_TOKEN_URL": f.TokenURL, "FINSYNC_FINAPI_CALLBACK_URL": f.CallbackURL} {
		if u, err := url.Parse(v); v != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			bad("%s=%q: want an http(s) URL", name, v)
		}
	}
	tenants, err := c.finapiTenants()
	switch {
	case err != nil:
		problems = append(problems, err)
	case len(tenants) == 0:
		bad("FINSYNC_FINAPI_MANDATORS is required with FINSYNC_FINAPI_BASE_URL")
	}
	if f.RateLimit <= 0 {
		bad("FINSYNC_FINAPI_RATE_LIMIT=%v: want requests per second > 0", f.RateLimit)
	}
	return problems
}

func (c Config) validateFimento() []error {
	f := c.Fimento
	if f.BaseURL == "" {
		return nil
	}
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(f.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("FINSYNC_FIMENTO_BASE_URL=%q: want an http(s) URL", f.BaseURL)
	}
	if f.Name == "" {
		bad("FINSYNC_FIMENTO_NAME is required with FINSYNC_FIMENTO_BASE_URL")
	}
	if f.Password == "" {
		bad("FINSYNC_FIMENTO_PASSWORD is required with FINSYNC_FIMENTO_BASE_URL")
	}
	if len(f.HashKey) < 16 {
		bad("FINSYNC_FIMENTO_HASH_KEY is required with FINSYNC_FIMENTO_BASE_URL: at least 16 characters (it keys the hash that stands for a person)")
	}
	if len(f.PartnerBanks) == 0 {
		bad("FINSYNC_FIMENTO_PARTNER_BANKS is required with FINSYNC_FIMENTO_BASE_URL: the partner-bank-id values to sync")
	}
	for _, p := range f.Processes {
		if _, _, ok := c.fimentoProcess(p); !ok {
			bad("FINSYNC_FIMENTO_PROCESSES: %q: want bank/processId with a bank of FINSYNC_FIMENTO_PARTNER_BANKS (or processId with one partner bank)", p)
		}
	}
	if f.WebhookURL != "" {
		if u, err := url.Parse(f.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("FINSYNC_FIMENTO_WEBHOOK_URL=%q: want an http(s) URL", redactURL(f.WebhookURL))
		}
	}
	if _, err := fimento.ParsePaths(f.Paths); err != nil {
		bad("FINSYNC_FIMENTO_PATHS: %v", err)
	}
	if f.RateLimit <= 0 {
		bad("FINSYNC_FIMENTO_RATE_LIMIT=%v: want requests per second > 0", f.RateLimit)
	}
	return problems
}

func (c Config) validateFingoal() []error {
	f := c.Fingoal
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if f.RateLimit <= 0 {
		bad("FINSYNC_FINGOAL_RATE_LIMIT=%v: want requests per second > 0", f.RateLimit)
	}
	if f.PollTimeout <= 0 {
		bad("FINSYNC_FINGOAL_POLL_TIMEOUT=%s: want a positive duration", f.PollTimeout)
	}
	if f.AccountType == "" {
		bad("FINSYNC_FINGOAL_ACCOUNT_TYPE must not be empty (FinGoal requires accountType)")
	}
	if f.BaseURL == "" {
		return problems
	}
	if u, err := url.Parse(f.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("FINSYNC_FINGOAL_BASE_URL=%q: want an http(s) URL", f.BaseURL)
	}
	if f.ClientID == "" {
		bad("FINSYNC_FINGOAL_CLIENT_ID is required with FINSYNC_FINGOAL_BASE_URL")
	}
	if f.ClientSecret == "" {
		bad("FINSYNC_FINGOAL_CLIENT_SECRET is required with FINSYNC_FINGOAL_BASE_URL")
	}
	if len(f.IDKey) < fingoal.MinIDKey {
		bad("FINSYNC_FINGOAL_ID_KEY is required with FINSYNC_FINGOAL_BASE_URL: a secret of at least %d characters (it keys the opaque ids FinGoal gets; never change it)", fingoal.MinIDKey)
	} else if f.IDKey.Value() == f.ClientID || f.IDKey == f.ClientSecret {
		bad("FINSYNC_FINGOAL_ID_KEY must not be the client id or secret: FinGoal knows those, and could recompute the opaque ids")
	}
	return problems
}

// loadSchedules reads the schedules file (FINSYNC_SCHEDULES, or the one
// built in) and checks it against the streams finsync has.
func loadSchedules(c Config) (*schedules.Schedules, error) {
	name, data := "schedules/default.yaml (built in)", schedules.DefaultFile
	if c.Schedules != "" {
		var err error
		if data, err = os.ReadFile(c.Schedules); err != nil {
			return nil, fmt.Errorf("FINSYNC_SCHEDULES: %w", err)
		}
		name = c.Schedules
	}
	known := map[string]schedules.ParamsCheck{}
	c.sched = nil
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		for _, s := range p.streams {
			known[s.Name] = nil
			if p.params != nil {
				known[s.Name] = p.params(s.Name)
			}
		}
	}
	return schedules.Parse(name, data, known)
}

// fimentoProcess splits a configured process into its partner bank and id.
func (c Config) fimentoProcess(p string) (bank, id string, ok bool) {
	bank, id, found := strings.Cut(p, "/")
	if !found {
		if len(c.Fimento.PartnerBanks) != 1 {
			return "", "", false
		}
		bank, id = c.Fimento.PartnerBanks[0], p
	}
	return bank, id, id != "" && slices.Contains(c.Fimento.PartnerBanks, bank)
}

// redactURL drops the query of a URL that may carry a token.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		u.RawQuery = ""
		return u.Redacted()
	}
	return "(unparsable)"
}

// fingoalTenants are the configured subtenants, or the client's own id.
func (c Config) fingoalTenants() []string {
	if len(c.Fingoal.Tenants) > 0 {
		return c.Fingoal.Tenants
	}
	return []string{c.Fingoal.ClientID}
}

// fingoalConfig is the FinGoal client's configuration.
func (c Config) fingoalConfig(log *slog.Logger) fingoal.Config {
	f := c.Fingoal
	return fingoal.Config{BaseURL: f.BaseURL, ClientID: f.ClientID, ClientSecret: f.ClientSecret.Value(), Tenants: c.fingoalTenants(),
		IDKey: f.IDKey.Value(), AccountType: f.AccountType, SyncTags: f.SyncTags, RateLimit: f.RateLimit,
		PollTimeout: f.PollTimeout, Logger: log}
}

// fingoalWebhookSecret is the key of FinGoal's webhook signatures.
func (c Config) fingoalWebhookSecret() string {
	if c.Fingoal.WebhookSecret != "" {
		return c.Fingoal.WebhookSecret.Value()
	}
	return c.Fingoal.ClientSecret.Value()
}

// shard is FINSYNC_SHARD parsed (Validate reported a bad one).
func (c Config) shard() schedules.Shard {
	s, _ := schedules.ParseShard(c.Shard)
	return s
}
