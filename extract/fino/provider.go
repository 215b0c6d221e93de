package fino

import (
	_ "embed"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fino/sandbox"
)

// schedulesFile are the streams' built-in schedules.
//
//go:embed schedules.yaml
var schedulesFile []byte

// Settings are fino's FINSYNC_FINO_* variables.
type Settings struct {
	BaseURL      string         `env:"BASE_URL"` // unset: the fino streams are listed but not runnable
	ClientID     string         `env:"CLIENT_ID"`
	ClientSecret extract.Secret `env:"CLIENT_SECRET"`
	// Tenants are TenantID header values; default: the client's own.
	Tenants []string `env:"TENANTS"`
	// Users ("user" or "tenant/user") enter the subjects registry from
	// config; webhooks and operators' INSERTs add more.
	Users         []string       `env:"USERS"`
	WebhookSecret extract.Secret `env:"WEBHOOK_SECRET"`
	RateLimit     float64        `env:"RATE_LIMIT, default=20"` // requests per second
	// Concurrency is how many users a per-user stream reads at once
	// (within the rate limit).
	Concurrency int `env:"CONCURRENCY, default=8"`
	// PageSize is the categorization page size (finoOS allows 1..1000).
	PageSize int `env:"PAGE_SIZE, default=1000"`
	// Scopes are the analytics modules to read: "scope" for every tenant
	// or "tenant/scope"; a trailing * matches a prefix. Unset: all.
	Scopes []string `env:"SCOPES"`
}

// Validate lists every problem with the settings; none without a base URL.
func (f *Settings) Validate() []error {
	if f.BaseURL == "" {
		return nil
	}
	p := extract.Problems{Prefix: "FINSYNC_FINO_"}
	p.URL("BASE_URL", f.BaseURL)
	p.Required(f.ClientID != "", "CLIENT_ID", "")
	p.Required(f.ClientSecret != "", "CLIENT_SECRET", "")
	if strings.HasSuffix(strings.TrimRight(f.BaseURL, "/"), "/api") {
		p.Add("FINSYNC_FINO_BASE_URL=%q: leave out /api: finsync adds /api/... itself", f.BaseURL)
	}
	// finoOS: a TenantID must be the client id or start with "<client-id>-".
	p.Entries("TENANTS", f.Tenants, func(t string) bool { return t == f.ClientID || strings.HasPrefix(t, f.ClientID+"-") },
		fmt.Sprintf("want %q or a name starting with %q", f.ClientID, f.ClientID+"-"))
	p.Entries("USERS", f.Users, func(u string) bool { s, ok := f.user(u); return ok && s.ID != "" },
		"want user or tenant/user with a tenant of FINSYNC_FINO_TENANTS")
	p.RateLimit(f.RateLimit)
	if f.Concurrency < 1 || f.Concurrency > 256 {
		p.Add("FINSYNC_FINO_CONCURRENCY=%d: want users read at once, 1..256", f.Concurrency)
	}
	if f.PageSize < 1 || f.PageSize > MaxPageSize {
		p.Add("FINSYNC_FINO_PAGE_SIZE=%d: want 1..%d", f.PageSize, MaxPageSize)
	}
	if scopes, err := ParseScopes(f.Scopes); err != nil {
		p.Add("FINSYNC_FINO_SCOPES: %v", err)
	} else {
		for _, t := range scopes.Tenants() {
			if !slices.Contains(f.tenants(), t) {
				p.Add("FINSYNC_FINO_SCOPES: tenant %q is not one of FINSYNC_FINO_TENANTS", t)
			}
		}
	}
	return p.Errors()
}

// tenants are the configured tenants, or the client's own.
func (f *Settings) tenants() []string {
	if len(f.Tenants) > 0 {
		return f.Tenants
	}
	return []string{f.ClientID}
}

// user is a configured user ("user" or "tenant/user") as a subject, and
// whether its tenant is one of the configured ones.
func (f *Settings) user(u string) (extract.Subject, bool) {
	tenant, user, found := strings.Cut(u, "/")
	if !found {
		tenant, user = f.ClientID, u
	}
	return extract.Subject{Provider: provider, Tenant: tenant, Kind: "user", ID: user}, slices.Contains(f.tenants(), tenant)
}

// Provider is finoOS as the settings describe it.
func (f *Settings) Provider(s extract.Setup) extract.Provider {
	scopes, _ := ParseScopes(f.Scopes) // Validate reported errors; all modules on
	api := NewAPI(Config{BaseURL: f.BaseURL, ClientID: f.ClientID, ClientSecret: f.ClientSecret.Value(), RateLimit: f.RateLimit,
		Concurrency: f.Concurrency, PageSize: f.PageSize, Scopes: scopes, Logger: s.Logger, HTTP: s.Client(provider), RateWaited: s.Waited(provider), Memory: s.Memory, Limits: s.Limits})
	p := extract.Provider{Name: provider, Sandbox: newFake, Schedules: schedulesFile, Check: api.clients.Authenticate, Configured: f.BaseURL != "", Streams: append(Streams(api), AnalyticsStreams(api)...),
		Tenants: f.tenants()}
	// finoOS echoes the secret in every webhook: without one there is no
	// receiver (every webhook would be refused).
	if f.WebhookSecret != "" {
		p.Webhook = func(h extract.Hooks) http.Handler { return WebhookHandler(f.WebhookSecret.Value(), h, s.Logger) }
	}
	for _, u := range f.Users {
		if sub, ok := f.user(u); ok && sub.ID != "" {
			p.Subjects = append(p.Subjects, sub)
		}
	}
	return p
}

// Fake is finoOS's sandbox as the demo, `finsync sandbox` and the
// conformance tests run it.
type Fake struct{ *sandbox.Server }

func newFake(o extract.SandboxOptions) extract.Sandbox {
	// finoOS analyses complete days: the data ends yesterday.
	return Fake{sandbox.New(sandbox.Options{UsersPerTenant: o.Users, CompaniesPerTenant: o.Companies, LifeEvents: true,
		Months: o.Months, Seed: o.Seed, Today: o.Today.AddDate(0, 0, -1), Faults: o.Faults,
		GrowEvery: o.Grow, Now: o.Now})}
}

// The sandbox's client credentials (its defaults).
const sandboxClient, sandboxSecret = "sandbox-client", "sandbox-secret"

func (f Fake) Env(baseURL string) []string {
	return []string{"FINSYNC_FINO_BASE_URL=" + baseURL, "FINSYNC_FINO_CLIENT_ID=" + sandboxClient,
		"FINSYNC_FINO_CLIENT_SECRET=" + sandboxSecret, "FINSYNC_FINO_USERS=" + strings.Join(f.Users(sandboxClient), ",")}
}

func (f Fake) Describe(baseURL string) string {
	return fmt.Sprintf("finoOS sandbox on %s with %d users", baseURL, len(f.Users(sandboxClient)))
}

func (f Fake) Sensitive() []string { return []string{sandboxSecret} }
