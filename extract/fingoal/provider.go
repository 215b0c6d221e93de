package fingoal

import (
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fingoal/sandbox"
)

// schedulesFile are the streams' built-in schedules.
//
//go:embed schedules.yaml
var schedulesFile []byte

// Settings are FinGoal's FINSYNC_FINGOAL_* variables.
type Settings struct {
	BaseURL      string         `env:"BASE_URL"` // up to /v3; unset: the fingoal streams are listed but not runnable
	ClientID     string         `env:"CLIENT_ID"`
	ClientSecret extract.Secret `env:"CLIENT_SECRET"`
	// WebhookSecret verifies X-Webhook-Verification; default the client secret.
	WebhookSecret extract.Secret `env:"WEBHOOK_SECRET"`
	// Tenants are subtenant ids; default the client id (no subtenant-id header).
	Tenants []string `env:"TENANTS"`
	// IDKey keys the opaque ids sent to FinGoal: a secret of at least 16
	// characters, required with the base URL. Never change it.
	IDKey       extract.Secret `env:"ID_KEY"`
	AccountType string         `env:"ACCOUNT_TYPE, default=checking"`
	SyncTags    bool           `env:"SYNC_TAGS, default=false"`
	RateLimit   float64        `env:"RATE_LIMIT, default=5"`
	PollTimeout time.Duration  `env:"POLL_TIMEOUT, default=2m"`
	// ReleasePendingAfter sends pending transactions again once they have
	// waited this long for FinGoal's lost answer; 0: never.
	ReleasePendingAfter time.Duration `env:"RELEASE_PENDING_AFTER, default=0s"`
}

// Validate lists every problem with the settings.
func (f *Settings) Validate() []error {
	p := extract.Problems{Prefix: "FINSYNC_FINGOAL_"}
	p.RateLimit(f.RateLimit)
	if f.PollTimeout <= 0 {
		p.Add("FINSYNC_FINGOAL_POLL_TIMEOUT=%s: want a positive duration", f.PollTimeout)
	}
	if f.ReleasePendingAfter < 0 {
		p.Add("FINSYNC_FINGOAL_RELEASE_PENDING_AFTER=%s: want a duration, 0 for never", f.ReleasePendingAfter)
	}
	if f.AccountType == "" {
		p.Add("FINSYNC_FINGOAL_ACCOUNT_TYPE must not be empty (FinGoal requires accountType)")
	}
	if f.BaseURL == "" {
		return p.Errors()
	}
	p.URL("BASE_URL", f.BaseURL)
	p.Required(f.ClientID != "", "CLIENT_ID", "")
	p.Required(f.ClientSecret != "", "CLIENT_SECRET", "")
	p.Required(len(f.IDKey) >= MinIDKey, "ID_KEY", fmt.Sprintf("a secret of at least %d characters (it keys the opaque ids FinGoal gets; never change it)", MinIDKey))
	if len(f.IDKey) >= MinIDKey && (f.IDKey.Value() == f.ClientID || f.IDKey == f.ClientSecret) {
		p.Add("FINSYNC_FINGOAL_ID_KEY must not be the client id or secret: FinGoal knows those, and could recompute the opaque ids")
	}
	return p.Errors()
}

// Provider is FinGoal as the settings describe it.
func (f *Settings) Provider(s extract.Setup) extract.Provider {
	tenants := f.Tenants
	if len(tenants) == 0 {
		tenants = []string{f.ClientID}
	}
	api := NewAPI(Config{BaseURL: f.BaseURL, ClientID: f.ClientID, ClientSecret: f.ClientSecret.Value(), Tenants: tenants,
		IDKey: f.IDKey.Value(), AccountType: f.AccountType, SyncTags: f.SyncTags, RateLimit: f.RateLimit,
		PollTimeout: f.PollTimeout, ReleasePendingAfter: f.ReleasePendingAfter, Logger: s.Logger, HTTP: s.Client(provider), RateWaited: s.Waited(provider), Memory: s.Memory, Limits: s.Limits})
	secret := f.WebhookSecret
	if secret == "" {
		secret = f.ClientSecret
	}
	return extract.Provider{Name: provider, Sandbox: newFake, Schedules: schedulesFile, Check: api.clients.Authenticate, Configured: f.BaseURL != "", Streams: Streams(api), Tenants: tenants,
		Webhook: func(h extract.Hooks) http.Handler {
			return WebhookHandler(WebhookConfig{Secret: secret.Value(), API: api, Hooks: h, Logger: s.Logger})
		}}
}

// Fake is FinGoal's sandbox as the demo, `finsync sandbox` and the
// conformance tests run it.
type Fake struct{ *sandbox.Server }

func newFake(o extract.SandboxOptions) extract.Sandbox {
	// Batches are enriched a moment after their submission, as FinGoal's are.
	return Fake{sandbox.New(sandbox.Options{ResultDelay: 300 * time.Millisecond, Faults: o.Faults})}
}

// sandboxIDKey keys the opaque ids the sandbox settings send FinGoal (a
// fake one; a real one is a secret).
const sandboxIDKey = "sandbox-id-key-not-a-secret"

func (f Fake) Env(baseURL string) []string {
	id, secret := f.Credentials()
	// A manual tag refresh, so the demo shows tags at once instead of
	// after FinGoal's next twice-daily tagging run.
	return []string{"FINSYNC_FINGOAL_BASE_URL=" + baseURL + "/v3", "FINSYNC_FINGOAL_CLIENT_ID=" + id,
		"FINSYNC_FINGOAL_CLIENT_SECRET=" + secret, "FINSYNC_FINGOAL_ID_KEY=" + sandboxIDKey, "FINSYNC_FINGOAL_SYNC_TAGS=true"}
}

func (f Fake) Describe(baseURL string) string {
	return fmt.Sprintf("FinGoal sandbox on %s/v3 (enriches what fino loaded)", baseURL)
}

func (f Fake) Sensitive() []string {
	_, secret := f.Credentials()
	return []string{secret, sandboxIDKey}
}
