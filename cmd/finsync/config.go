package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/sethvargo/go-envconfig"

	"github.com/finsync/finsync/load/clickhouse"
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
		// One INSERT's budget: the loader's memory is bounded by these.
		InsertMaxRows  int   `env:"FINSYNC_INSERT_MAX_ROWS, default=500000"`
		InsertMaxBytes int64 `env:"FINSYNC_INSERT_MAX_BYTES, default=16777216"`
	}
	LogLevel  string `env:"FINSYNC_LOG_LEVEL, default=info"`  // debug, info, warn, error
	LogFormat string `env:"FINSYNC_LOG_FORMAT, default=auto"` // auto (text on a terminal, else JSON), text, json
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
	if len(problems) > 0 {
		return c, fmt.Errorf("invalid configuration:\n%w", errors.Join(problems...))
	}
	return c, nil
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

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
	if c.ClickHouse.InsertMaxRows < 1000 {
		bad("FINSYNC_INSERT_MAX_ROWS=%d: want at least 1000 (small inserts make ClickHouse throttle with Too many parts)", c.ClickHouse.InsertMaxRows)
	}
	if c.ClickHouse.InsertMaxBytes < 1<<20 {
		bad("FINSYNC_INSERT_MAX_BYTES=%d: want at least 1048576", c.ClickHouse.InsertMaxBytes)
	}
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
