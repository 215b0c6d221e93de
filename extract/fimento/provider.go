package fimento

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fimento/sandbox"
)

// schedulesFile are the streams' built-in schedules.
//
//go:embed schedules.yaml
var schedulesFile []byte

// Settings are Fimento's FINSYNC_FIMENTO_* variables.
type Settings struct {
	BaseURL  string         `env:"BASE_URL"` // unset: the fimento streams are listed but not runnable
	Name     string         `env:"NAME"`
	Password extract.Secret `env:"PASSWORD"`
	// PartnerBanks are partner-bank-id values: the tenants.
	PartnerBanks []string `env:"PARTNER_BANKS"`
	// Processes ("bank/processId", or "processId" with one partner bank)
	// enter the subjects registry from config.
	Processes []string `env:"PROCESSES"`
	// HashKey keys the hash that stands for a person (social security
	// number, company id).
	HashKey    extract.Secret `env:"HASH_KEY"`
	WebhookURL string         `env:"WEBHOOK_URL"` // registered with Fimento at start-up
	Paths      []string       `env:"PATHS"`       // name=/path overrides of the assumed endpoints
	RateLimit  float64        `env:"RATE_LIMIT, default=10"`
}

// Validate lists every problem with the settings; none without a base URL.
func (f *Settings) Validate() []error {
	if f.BaseURL == "" {
		return nil
	}
	p := extract.Problems{Prefix: "FINSYNC_FIMENTO_"}
	p.URL("BASE_URL", f.BaseURL)
	p.Required(f.Name != "", "NAME", "")
	p.Required(f.Password != "", "PASSWORD", "")
	p.Required(len(f.HashKey) >= 16, "HASH_KEY", "at least 16 characters (it keys the hash that stands for a person)")
	p.Required(len(f.PartnerBanks) > 0, "PARTNER_BANKS", "the partner-bank-id values to sync")
	p.Entries("PROCESSES", f.Processes, func(proc string) bool { _, ok := f.process(proc); return ok },
		"want bank/processId with a bank of FINSYNC_FIMENTO_PARTNER_BANKS (or processId with one partner bank)")
	p.URL("WEBHOOK_URL", f.WebhookURL)
	if _, err := ParsePaths(f.Paths); err != nil {
		p.Add("FINSYNC_FIMENTO_PATHS: %v", err)
	}
	p.RateLimit(f.RateLimit)
	return p.Errors()
}

// process is a configured process as a subject, and whether it names a
// configured partner bank.
func (f *Settings) process(p string) (extract.Subject, bool) {
	bank, id, found := strings.Cut(p, "/")
	if !found {
		if len(f.PartnerBanks) != 1 {
			return extract.Subject{}, false
		}
		bank, id = f.PartnerBanks[0], p
	}
	return extract.Subject{Provider: provider, Tenant: bank, Kind: SubjectKind, ID: id}, id != "" && slices.Contains(f.PartnerBanks, bank)
}

// Provider is Fimento as the settings describe it.
func (f *Settings) Provider(s extract.Setup) extract.Provider {
	paths, _ := ParsePaths(f.Paths) // Validate reported errors
	api := NewAPI(Config{BaseURL: f.BaseURL, Name: f.Name, Password: f.Password.Value(), HashKey: []byte(f.HashKey.Value()),
		Paths: paths, RateLimit: f.RateLimit, Logger: s.Logger, HTTP: s.Client(provider), RateWaited: s.Waited(provider), Memory: s.Memory, Limits: s.Limits})
	p := extract.Provider{Name: provider, Sandbox: newFake, Schedules: schedulesFile, Check: api.clients.Authenticate, Configured: f.BaseURL != "", Streams: Streams(api), Tenants: f.PartnerBanks,
		Webhook: func(h extract.Hooks) http.Handler { return WebhookHandler(f.PartnerBanks, h, api.Known, s.Logger) }}
	if f.WebhookURL != "" {
		p.Start = func(ctx context.Context) error { return api.AddWebhook(ctx, f.WebhookURL) }
	}
	for _, proc := range f.Processes {
		if sub, ok := f.process(proc); ok {
			p.Subjects = append(p.Subjects, sub)
		}
	}
	return p
}

// Fake is Fimento's sandbox as the demo, `finsync sandbox` and the
// conformance tests run it.
type Fake struct{ *sandbox.Server }

func newFake(o extract.SandboxOptions) extract.Sandbox {
	// Two partner banks, and at least one process of each scenario per
	// bank; the data ends yesterday.
	return Fake{sandbox.New(sandbox.Options{PartnerBanks: []string{"605c6c479691950d359bb0e9", "605c6c479691950d359bb0ea"},
		ProcessesPerBank: max(o.Users, 5), Months: min(o.Months, 24), Seed: o.Seed, Today: o.Today.AddDate(0, 0, -1), Faults: o.Faults, Now: o.Now})}
}

// The sandbox's API user (its defaults), and the fake hash key its
// settings use.
const sandboxUser, sandboxPassword, sandboxHashKey = "sandbox-user", "sandbox-password", "sandbox-hash-key-not-a-secret"

// processes are the sandbox's processes as bank/processId.
func (f Fake) processes() []string {
	var out []string
	for _, bank := range f.PartnerBanks() {
		for _, p := range f.Processes(bank) {
			out = append(out, bank+"/"+p)
		}
	}
	return out
}

func (f Fake) Env(baseURL string) []string {
	return []string{"FINSYNC_FIMENTO_BASE_URL=" + baseURL, "FINSYNC_FIMENTO_NAME=" + sandboxUser,
		"FINSYNC_FIMENTO_PASSWORD=" + sandboxPassword, "FINSYNC_FIMENTO_HASH_KEY=" + sandboxHashKey,
		"FINSYNC_FIMENTO_PARTNER_BANKS=" + strings.Join(f.PartnerBanks(), ","),
		"FINSYNC_FIMENTO_PROCESSES=" + strings.Join(f.processes(), ",")}
}

func (f Fake) Describe(baseURL string) string {
	return fmt.Sprintf("Fimento sandbox on %s with %d processes (completed, authError, denied consent, in progress)", baseURL, len(f.processes()))
}

func (f Fake) Sensitive() []string {
	return append([]string{sandboxPassword, sandboxHashKey}, f.PersonalData()...)
}
