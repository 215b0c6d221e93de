package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/sandboxkit"
)

// sandboxOptions size the synthetic data of the sandboxes and set their
// fault knobs.
type sandboxOptions struct {
	users, companies, months int
	seed                     int64
	faults                   string // a fault matrix, see sandboxkit.Parse
	grow                     time.Duration
	now                      func() time.Time // the sandboxes' clock for grow (tests); nil: time.Now
}

func (o *sandboxOptions) define(fs *flag.FlagSet) {
	fs.IntVar(&o.users, "users", 5, "synthetic person users per tenant")
	fs.IntVar(&o.companies, "companies", 2, "synthetic company users per tenant")
	fs.IntVar(&o.months, "months", 12, "months of transactions per user")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the synthetic data")
	fs.DurationVar(&o.grow, "grow", 0, "every this long each finoOS user gets a new transaction, booked on the last day (0: the data never changes)")
	fs.StringVar(&o.faults, "faults", "", `fault matrix of every sandbox, e.g. "429:0.1,500:0.05,slow:0.05,expire:0.02,malformed:0.01,truncate:0.01,dup:0.05" (default FINSYNC_SANDBOX_FAULTS)`)
}

// withEnv takes the fault matrix from FINSYNC_SANDBOX_FAULTS when the
// -faults flag left it empty.
func (o *sandboxOptions) withEnv(lookup func(string) (string, bool)) {
	if o.faults == "" {
		o.faults, _ = lookup("FINSYNC_SANDBOX_FAULTS")
	}
}

// sandbox is the providers' fakes on one loopback listener, each under
// /<provider>.
type sandbox struct {
	names  []string // in the providers' order
	fakes  map[string]extract.Sandbox
	server *http.Server
	url    string
}

func startSandbox(addr string, o sandboxOptions) (*sandbox, error) {
	knobs, err := sandboxkit.Parse(o.faults)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	opts := extract.SandboxOptions{Users: o.users, Companies: o.companies, Months: o.months, Seed: o.seed, Faults: knobs,
		Today: time.Now().UTC().Truncate(24 * time.Hour), Grow: o.grow, Now: o.now}
	sb := &sandbox{fakes: map[string]extract.Sandbox{}, url: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	for _, p := range providers(Config{}, slog.New(slog.DiscardHandler), nil) {
		fake := p.Sandbox(opts)
		sb.names = append(sb.names, p.Name)
		sb.fakes[p.Name] = fake
		mux.Handle("/"+p.Name+"/", http.StripPrefix("/"+p.Name, fake))
	}
	sb.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go sb.server.Serve(ln)
	return sb, nil
}

func (sb *sandbox) close() {
	sb.server.Close()
	for _, f := range sb.fakes {
		f.Close()
	}
}

// baseURL is where provider name's fake is served.
func (sb *sandbox) baseURL(name string) string { return sb.url + "/" + name }

// env are the settings that point finsync at the fakes (their credentials
// are the fakes' fixed fake ones).
func (sb *sandbox) env() []string {
	var out []string
	for _, name := range sb.names {
		out = append(out, sb.fakes[name].Env(sb.baseURL(name))...)
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
	for _, name := range sb.names {
		fmt.Fprintln(a.stderr, sb.fakes[name].Describe(sb.baseURL(name)))
	}
	fmt.Fprintln(a.stderr, "point finsync at them with:")
	for _, line := range sb.env() {
		fmt.Fprintln(a.stdout, "export "+line)
	}
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
