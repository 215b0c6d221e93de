package finapi

import (
	_ "embed"
	"fmt"
	"net/http"
	"strings"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/finapi/sandbox"
)

// schedulesFile are the streams' built-in schedules.
//
//go:embed schedules.yaml
var schedulesFile []byte

// Settings are finAPI's FINSYNC_FINAPI_* variables.
type Settings struct {
	BaseURL  string `env:"BASE_URL"`  // unset: the finapi streams are listed but not runnable
	TokenURL string `env:"TOKEN_URL"` // default BASE_URL/oauth/token
	// Mandators are the tenants, "name:client_id:client_secret" each,
	// comma-separated: secret as a whole.
	Mandators extract.Secret `env:"MANDATORS"`
	// CallbackURL is the daemon's public address of its finAPI callback
	// receiver; unset: poll only.
	CallbackURL string  `env:"CALLBACK_URL"`
	RateLimit   float64 `env:"RATE_LIMIT, default=10"`
}

// Validate lists every problem with the settings; none without a base URL.
func (f *Settings) Validate() []error {
	if f.BaseURL == "" {
		return nil
	}
	p := extract.Problems{Prefix: "FINSYNC_FINAPI_"}
	p.URL("BASE_URL", f.BaseURL)
	p.URL("TOKEN_URL", f.TokenURL)
	p.URL("CALLBACK_URL", f.CallbackURL)
	if tenants, err := f.tenants(); err != nil {
		p.Add("%w", err)
	} else {
		p.Required(len(tenants) > 0, "MANDATORS", "")
	}
	p.RateLimit(f.RateLimit)
	return p.Errors()
}

// tenants parses FINSYNC_FINAPI_MANDATORS.
func (f *Settings) tenants() ([]Tenant, error) {
	var out []Tenant
	for _, m := range strings.Split(f.Mandators.Value(), ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		parts := strings.SplitN(m, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			// Never echo the entry: it holds a secret.
			return nil, fmt.Errorf("FINSYNC_FINAPI_MANDATORS: entry %d is not name:client_id:client_secret", len(out)+1)
		}
		out = append(out, Tenant{Name: parts[0], ClientID: parts[1], ClientSecret: parts[2]})
	}
	return out, nil
}

// Provider is finAPI as the settings describe it; the segment streams'
// params come from the schedules file (Setup.Params).
func (f *Settings) Provider(s extract.Setup) extract.Provider {
	mandators, _ := f.tenants() // Validate reported a bad list
	params := DefaultParams()
	if s.Params != nil {
		for _, seg := range Segments() {
			params.Apply(seg, s.Params(seg.Stream)) // the schedules file's check reported the problems
		}
	}
	api := NewAPI(Config{BaseURL: f.BaseURL, TokenURL: f.TokenURL, Tenants: mandators, Params: params,
		CallbackURL: f.CallbackURL, RateLimit: f.RateLimit, Logger: s.Logger, HTTP: s.Client(provider), RateWaited: s.Waited(provider), Memory: s.Memory, Limits: s.Limits})
	p := extract.Provider{Name: provider, Sandbox: newFake, Schedules: schedulesFile, Check: api.clients.Authenticate, Configured: f.BaseURL != "", Streams: Streams(api),
		Webhook: func(h extract.Hooks) http.Handler { return CallbackHandler(api, h) }}
	for _, m := range mandators {
		p.Tenants = append(p.Tenants, m.Name)
	}
	return p
}

// Fake is finAPI's sandbox as the demo, `finsync sandbox` and the
// conformance tests run it.
type Fake struct{ *sandbox.Server }

// sandboxMandators are the sandbox's tenants.
var sandboxMandators = []string{"mandator-a", "mandator-b"}

func newFake(o extract.SandboxOptions) extract.Sandbox {
	return Fake{sandbox.New(sandbox.Options{Tenants: sandboxMandators, UsersPerTenant: 4 * o.Users, Seed: o.Seed,
		Today: o.Today, Faults: o.Faults})}
}

func (f Fake) Env(baseURL string) []string {
	var m []string
	for _, t := range sandboxMandators {
		id, secret := sandbox.Credentials(t)
		m = append(m, t+":"+id+":"+secret)
	}
	return []string{"FINSYNC_FINAPI_BASE_URL=" + baseURL, "FINSYNC_FINAPI_MANDATORS=" + strings.Join(m, ",")}
}

func (f Fake) Describe(baseURL string) string {
	return fmt.Sprintf("finAPI sandbox on %s with %d mandators", baseURL, len(sandboxMandators))
}

func (f Fake) Sensitive() []string {
	var out []string
	for _, t := range sandboxMandators {
		_, secret := sandbox.Credentials(t)
		out = append(out, secret)
	}
	return out
}
