package extract

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sethvargo/go-envconfig"

	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/transform"
)

// Settings is one provider's configuration as read from its environment
// variables (FINSYNC_<PROVIDER>_*): an env-tagged struct the root
// configuration embeds with the provider's prefix. Each provider package
// has one; cmd/finsync lists them.
type Settings interface {
	// Validate lists every problem with the settings, naming the variables.
	Validate() []error
	// Provider builds the provider these settings describe.
	Provider(s Setup) Provider
}

// Setup is what a provider gets from the process that runs it.
type Setup struct {
	Logger *slog.Logger
	// HTTP returns the HTTP client of the named provider (nil: the
	// client's default); the daemon's counts the provider's requests.
	HTTP func(provider string) *http.Client
	// RateWaited, if set, returns what the named provider's clients tell
	// of their waits on its rate limiter (ClientOptions.RateWaited).
	RateWaited func(provider string) func(time.Duration)
	// Params returns a stream's params from the schedules file (nil: none
	// known yet).
	Params func(stream string) map[string]string
	// Memory allocates the streams' records (nil: the default).
	Memory memory.Allocator
	// Limits bound the elements of the pages the providers' clients stream
	// (ClientOptions.Limits; zero fields: DefaultLimits').
	Limits Limits
}

// Provider is one data provider as configured: everything finsync needs to
// list, schedule, run and fake it.
type Provider struct {
	Name string
	// Configured says its base URL is set: an unconfigured provider's
	// streams are listed but not runnable.
	Configured bool
	Streams    []Stream
	// Tenants are the tenants its streams run for by default.
	Tenants []string
	// Subjects are the registry subjects its configuration names.
	Subjects []Subject
	// Webhook, if set, builds the provider's receiver, which the daemon
	// mounts at /webhooks/<Name>.
	Webhook func(h Hooks) http.Handler
	// Check, if set, authenticates for tenant with the provider: whether
	// the settings reach it (`finsync validate -connect`).
	Check func(ctx context.Context, tenant string) error
	// Start, if set, runs when the daemon starts (registering its webhook
	// URL with the provider).
	Start func(ctx context.Context) error
	// Sandbox starts the provider's fake server (the demo, `finsync
	// sandbox`, tests).
	Sandbox func(o SandboxOptions) Sandbox
	// Schedules are its streams' built-in schedules: a layer of the
	// schedules file (schedules.Layer), from extract/<name>/schedules.yaml.
	Schedules []byte
}

// Hooks are what a webhook receiver may do with what a provider tells it.
// The daemon implements them on the warehouse; the same Hooks go to every
// provider.
type Hooks struct {
	// Subject enters a subject into the registry.
	Subject func(ctx context.Context, s Subject) error
	// Trigger starts a triggered run (Request.Triggered) of a stream for a
	// tenant now: it collects what is pending and creates nothing.
	Trigger func(ctx context.Context, stream, tenant string)
	// JobStatus is the status of a stream's async job in the warehouse's
	// state, "" if unknown: whether a job a webhook names is one of ours.
	JobStatus func(ctx context.Context, stream, tenant, id string) (string, error)
	// Job records an async job a webhook announced.
	Job func(ctx context.Context, stream, tenant string, j Job) error
	// Insert loads rows a webhook carried now, returning once ClickHouse
	// accepted them; Version gives their _version.
	Insert  func(ctx context.Context, t transform.Table, rec arrow.Record) error
	Version func() uint64
}

// SandboxOptions size a sandbox's synthetic data and set its fault knobs;
// each provider maps them onto its own fake.
type SandboxOptions struct {
	Users, Companies, Months int // per tenant; months of history
	Seed                     int64
	Faults                   sandboxkit.Knobs
	Today                    time.Time // the day the demo runs (UTC midnight)
	// Grow books new transactions as time passes, one per user every Grow
	// (finoOS only); 0: the data never changes. Now is the clock of that
	// and of Fimento's processes (default time.Now): a test that stops it
	// freezes the data.
	Grow time.Duration
	Now  func() time.Time
}

// Sandbox is a running fake of one provider.
type Sandbox interface {
	http.Handler
	// Env are the FINSYNC_<PROVIDER>_* settings that point finsync at the
	// fake served at baseURL (its fixed fake credentials included).
	Env(baseURL string) []string
	// Describe says where the fake is and what it holds, for a person.
	Describe(baseURL string) string
	// Sensitive are the values that must never reach logs or ClickHouse in
	// clear: the credentials Env hands out, and personal identifiers of its
	// synthetic data.
	Sensitive() []string
	Close()
}

// Problems collects what is wrong with a provider's settings. Variables
// are named without the provider's Prefix (e.g. "BASE_URL"); messages
// carry the whole name.
type Problems struct {
	Prefix string // e.g. FINSYNC_FINO_
	errs   []error
}

// Add records a problem; format's %[1]s... are the caller's.
func (p *Problems) Add(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

// Var is a variable's whole name.
func (p *Problems) Var(name string) string { return p.Prefix + name }

// URL records a problem unless v, the value of variable name, is empty or
// an http(s) URL. A URL that may carry a token in its query is shown
// without it.
func (p *Problems) URL(name, v string) {
	if v == "" {
		return
	}
	if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return
	}
	shown := "(unparsable)"
	if u, err := url.Parse(v); err == nil {
		u.RawQuery = ""
		shown = u.Redacted()
	}
	p.Add("%s=%q: want an http(s) URL", p.Var(name), shown)
}

// Required records that variable name, which set is false for, is
// required with the base URL; why, if not empty, follows.
func (p *Problems) Required(set bool, name, why string) {
	if set {
		return
	}
	if why != "" {
		why = ": " + why
	}
	p.Add("%s is required with %s%s", p.Var(name), p.Var("BASE_URL"), why)
}

// Entries records, in one problem, the entries of list variable name that
// ok refuses, and what it wants instead.
func (p *Problems) Entries(name string, entries []string, ok func(string) bool, want string) {
	var bad []string
	for _, e := range entries {
		if !ok(e) {
			bad = append(bad, strconv.Quote(e))
		}
	}
	if len(bad) > 5 {
		bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
	}
	if len(bad) > 0 {
		p.Add("%s: %s: %s", p.Var(name), strings.Join(bad, ", "), want)
	}
}

// RateLimit records a rate limit that is not positive.
func (p *Problems) RateLimit(v float64) {
	if v <= 0 {
		p.Add("%s=%v: want requests per second > 0", p.Var("RATE_LIMIT"), v)
	}
}

// Errors are the problems recorded.
func (p *Problems) Errors() []error { return p.errs }

// Client is the HTTP client of the named provider (nil: the default).
func (s Setup) Client(provider string) *http.Client {
	if s.HTTP == nil {
		return nil
	}
	return s.HTTP(provider)
}

// Waited is s.RateWaited's func for provider, or nil.
func (s Setup) Waited(provider string) func(time.Duration) {
	if s.RateWaited == nil {
		return nil
	}
	return s.RateWaited(provider)
}

// Defaults is a Settings struct T as an empty environment gives it: every
// field its env tag's default. A provider's API takes its defaults from
// here, so each default is written once, in the tag.
func Defaults[T any]() T {
	var v T
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &v, Lookuper: envconfig.MapLookuper(nil)}); err != nil {
		panic(fmt.Sprintf("the env tags of %T: %v", v, err)) // a programming error, found by any test
	}
	return v
}
