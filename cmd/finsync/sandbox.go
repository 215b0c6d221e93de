package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"
	finapisb "github.com/finsync/finsync/extract/finapi/sandbox"
	fgsb "github.com/finsync/finsync/extract/fingoal/sandbox"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
)

// sandboxOptions size the synthetic data of the sandboxes and set their
// fault knobs.
type sandboxOptions struct {
	users, companies, months int
	seed                     int64
	faults                   string // a fault matrix, see sandboxkit.Parse
}

func (o *sandboxOptions) define(fs *flag.FlagSet) {
	fs.IntVar(&o.users, "users", 5, "synthetic person users per tenant")
	fs.IntVar(&o.companies, "companies", 2, "synthetic company users per tenant")
	fs.IntVar(&o.months, "months", 12, "months of transactions per user")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the synthetic data")
	fs.StringVar(&o.faults, "faults", "", `fault matrix of every sandbox, e.g. "429:0.1,500:0.05,slow:0.05,expire:0.02,malformed:0.01,truncate:0.01,dup:0.05" (default FINSYNC_SANDBOX_FAULTS)`)
}

// withEnv takes the fault matrix from FINSYNC_SANDBOX_FAULTS when the
// -faults flag left it empty.
func (o *sandboxOptions) withEnv(lookup func(string) (string, bool)) {
	if o.faults == "" {
		o.faults, _ = lookup("FINSYNC_SANDBOX_FAULTS")
	}
}

// sandbox is the providers' fake servers on one loopback listener: finoOS
// at the root (its paths start with /api/), finAPI under /finapi, Fimento
// under /fimento, FinGoal under /fingoal (its own paths start with /v3).
type sandbox struct {
	fino    *finosb.Server
	finapi  *finapisb.Server
	fimento *fimentosb.Server
	fingoal *fgsb.Server
	server  *http.Server
	url     string
}

// finapiMandators are the finAPI sandbox's tenants.
var finapiMandators = []string{"mandator-a", "mandator-b"}

// fimentoPrefix is where the Fimento sandbox is mounted.
const fimentoPrefix = "/fimento"

// fimentoHashKey is the hash key the sandbox settings use (a fake one).
const fimentoHashKey = "sandbox-hash-key-not-a-secret"

// fingoalIDKey keys the opaque ids the sandbox settings send FinGoal (a fake
// one; a real one is a secret).
const fingoalIDKey = "sandbox-id-key-not-a-secret"

func startSandbox(addr string, o sandboxOptions) (*sandbox, error) {
	knobs, err := sandboxkit.Parse(o.faults)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	today := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	f := finosb.New(finosb.Options{UsersPerTenant: o.users, CompaniesPerTenant: o.companies, LifeEvents: true, Months: o.months, Seed: o.seed,
		Today: today, Faults: knobs})
	fa := finapisb.New(finapisb.Options{Tenants: finapiMandators, UsersPerTenant: 4 * o.users, Seed: o.seed,
		Today: time.Now().UTC().Truncate(24 * time.Hour), Faults: knobs})
	// Two partner banks, and at least one process of each scenario per bank.
	fm := fimentosb.New(fimentosb.Options{PartnerBanks: []string{"605c6c479691950d359bb0e9", "605c6c479691950d359bb0ea"},
		ProcessesPerBank: max(o.users, 5), Months: min(o.months, 24), Seed: o.seed, Today: today, Faults: knobs})
	// Batches are enriched a moment after their submission, as FinGoal's are.
	fg := fgsb.New(fgsb.Options{ResultDelay: 300 * time.Millisecond, Faults: knobs})
	mux := http.NewServeMux()
	mux.Handle("/", f)
	mux.Handle("/finapi/", http.StripPrefix("/finapi", fa))
	mux.Handle(fimentoPrefix+"/", http.StripPrefix(fimentoPrefix, fm))
	mux.Handle("/fingoal/", http.StripPrefix("/fingoal", fg))
	sb := &sandbox{fino: f, finapi: fa, fimento: fm, fingoal: fg, server: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, url: "http://" + ln.Addr().String()}
	go sb.server.Serve(ln)
	return sb, nil
}

func (sb *sandbox) close() {
	sb.server.Close()
	sb.fino.Close()
	sb.fimento.Close()
	sb.finapi.Close()
	sb.fingoal.Close()
}

// fingoalURL is FINSYNC_FINGOAL_BASE_URL for the sandbox.
func (sb *sandbox) fingoalURL() string { return sb.url + "/fingoal/v3" }

// finapiMandators is FINSYNC_FINAPI_MANDATORS for the sandbox.
func (sb *sandbox) finapiMandators() string {
	var m []string
	for _, t := range finapiMandators {
		id, secret := finapisb.Credentials(t)
		m = append(m, t+":"+id+":"+secret)
	}
	return strings.Join(m, ",")
}

// env are the settings that point finsync at the sandbox (its credentials
// are the sandbox's fixed fake ones).
func (sb *sandbox) env() []string {
	const client = "sandbox-client"
	fgID, fgSecret := sb.fingoal.Credentials()
	return []string{
		"FINSYNC_FINO_BASE_URL=" + sb.url,
		"FINSYNC_FINO_CLIENT_ID=" + client,
		"FINSYNC_FINO_CLIENT_SECRET=sandbox-secret",
		"FINSYNC_FINO_USERS=" + strings.Join(sb.fino.Users(client), ","),
		"FINSYNC_FINAPI_BASE_URL=" + sb.url + "/finapi",
		"FINSYNC_FINAPI_MANDATORS=" + sb.finapiMandators(),
		"FINSYNC_FIMENTO_BASE_URL=" + sb.url + fimentoPrefix,
		"FINSYNC_FIMENTO_NAME=sandbox-user",
		"FINSYNC_FIMENTO_PASSWORD=sandbox-password",
		"FINSYNC_FIMENTO_HASH_KEY=" + fimentoHashKey,
		"FINSYNC_FIMENTO_PARTNER_BANKS=" + strings.Join(sb.fimento.PartnerBanks(), ","),
		"FINSYNC_FIMENTO_PROCESSES=" + strings.Join(sb.fimentoProcesses(), ","),
		"FINSYNC_FINGOAL_BASE_URL=" + sb.fingoalURL(),
		"FINSYNC_FINGOAL_CLIENT_ID=" + fgID,
		"FINSYNC_FINGOAL_CLIENT_SECRET=" + fgSecret,
		"FINSYNC_FINGOAL_ID_KEY=" + fingoalIDKey,
		"FINSYNC_FINGOAL_SYNC_TAGS=true",
	}
}

// fimentoProcesses are the sandbox's processes as bank/processId.
func (sb *sandbox) fimentoProcesses() []string {
	var out []string
	for _, bank := range sb.fimento.PartnerBanks() {
		for _, p := range sb.fimento.Processes(bank) {
			out = append(out, bank+"/"+p)
		}
	}
	return out
}

func runSandbox(ctx context.Context, a *app, args []string) error {
	var addr string
	var o sandboxOptions
	err := a.flags("sandbox", summaryOf("sandbox"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", "127.0.0.1:18080", "loopback address to listen on")
		o.define(fs)
	})
	if err != nil {
		return err
	}
	o.withEnv(a.lookup)
	sb, err := startSandbox(addr, o)
	if err != nil {
		return err
	}
	defer sb.close()
	fmt.Fprintf(a.stderr, "finoOS sandbox on %s, finAPI on %s/finapi, Fimento on %s%s, FinGoal on %s; point finsync at them with:\n", sb.url, sb.url, sb.url, fimentoPrefix, sb.fingoalURL())
	for _, line := range sb.env() {
		fmt.Fprintln(a.stdout, "export "+line)
	}
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
