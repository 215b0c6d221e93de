// Package extracttest is the test kit of the provider packages: the
// conformance suite every provider's streams pass against its own sandbox,
// with fakes of what the runner hands a stream (no database: the
// provider's end-to-end tests with ClickHouse use schedules/schedulestest).
package extracttest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/sethvargo/go-envconfig"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/transform"
)

// Conformance runs every stream of the provider that settings describe
// against the provider's sandbox, for every tenant, and checks what any
// stream owes the runner:
//   - a run succeeds, and hands over records of its own tables' schemas only;
//   - every reject names one of its tables and carries a key and a reason
//     (the sandbox serves some records malformed);
//   - an empty window is no error;
//   - a context cancelled while the run talks to the provider stops it
//     with the context's error, promptly;
//   - every Arrow buffer a run allocated is released (a checked allocator
//     ends at zero);
//   - a redirect of the token request (307, 308, 302), or of a data
//     request to another host, is refused with a Permanent error naming it,
//     and the other host receives nothing: no secret, token or tenant.
//
// The sandbox's settings (extract.Sandbox.Env) are read into settings
// through prefix, the provider's variable prefix (FINSYNC_FINO_).
func Conformance(t *testing.T, settings extract.Settings, prefix string) {
	fake := settings.Provider(extract.Setup{}).Sandbox(extract.SandboxOptions{Users: 2, Companies: 1, Months: 2, Seed: 1,
		Faults: sandboxkit.Knobs{Seed: 1, Malformed: 0.05}, Today: time.Now().UTC().Truncate(24 * time.Hour)})
	defer fake.Close()
	var armed atomic.Pointer[context.CancelFunc] // cancels a run at its next request
	var requests atomic.Int64
	var redirect atomic.Pointer[redirecting] // sends requests elsewhere
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if rd := redirect.Load(); rd != nil && rd.token == (r.Header.Get("Authorization") == "") {
			rd.sent.Add(1)
			http.Redirect(w, r, rd.to+r.URL.Path, rd.status)
			return
		}
		if cancel := armed.Swap(nil); cancel != nil {
			(*cancel)()
			// Answer only once the client gave up: an answer racing the
			// cancellation could win, and a run whose work is then done
			// rightly ends without error.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	env := map[string]string{}
	for _, kv := range fake.Env(srv.URL) {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, prefix) {
			t.Fatalf("the sandbox's setting %s is not one of %s*", k, prefix)
		}
		env[k] = v
	}
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: settings,
		Lookuper: envconfig.PrefixLookuper(prefix, envconfig.MapLookuper(env))}); err != nil {
		t.Fatal(err)
	}
	if errs := settings.Validate(); len(errs) > 0 {
		t.Fatalf("the sandbox's settings are invalid: %v", errors.Join(errs...))
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	p := settings.Provider(extract.Setup{Memory: mem})
	if !p.Configured || len(p.Streams) == 0 || len(p.Tenants) == 0 {
		t.Fatalf("%s with its sandbox's settings: configured %v, %d streams, %d tenants", p.Name, p.Configured, len(p.Streams), len(p.Tenants))
	}
	for _, s := range p.Streams {
		t.Run(s.Name, func(t *testing.T) {
			if s.Provider != p.Name || !strings.HasPrefix(s.Name, p.Name+".") || len(s.Tables) == 0 {
				t.Errorf("stream %q of provider %q writes %d tables", s.Name, s.Provider, len(s.Tables))
			}
			for _, tenant := range p.Tenants {
				w := &world{t: t, s: s, tenant: tenant, subjects: p.Subjects, jobs: map[string]extract.Job{}}
				now := time.Now().UTC()
				if _, err := w.run(context.Background(), extract.Window{To: now}); err != nil {
					t.Errorf("%s: %v", tenant, err)
				}
				for _, r := range w.out.rejects {
					if !slices.ContainsFunc(s.Tables, func(tb transform.Table) bool { return tb.Name == r.Table }) || r.Key == "" || r.Reason == "" {
						t.Errorf("%s: a reject without its table, key or reason: table %q key %q reason %q", tenant, r.Table, r.Key, r.Reason)
					}
				}
				if _, err := w.run(context.Background(), extract.Window{From: now, To: now}); err != nil {
					t.Errorf("%s, an empty window: %v", tenant, err)
				}

				ctx, cancel := context.WithCancel(context.Background())
				before := requests.Load()
				armed.Store(&cancel)
				start := time.Now()
				_, err := w.run(ctx, extract.Window{To: now})
				armed.Store(nil)
				cancel()
				if requests.Load() > before && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: cancelled at its first request, the run ended with %v, not context.Canceled", tenant, err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("%s: cancelled at its first request, the run took %s", tenant, d)
				}
			}
		})
	}
	mem.AssertSize(t, 0)

	t.Run("redirects", func(t *testing.T) {
		var got atomic.Int64
		attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Add(1)
			w.Write([]byte(`{"access_token":"stolen","expires_in":3600}`))
		}))
		defer attacker.Close()
		defer redirect.Store(nil)
		for _, token := range []bool{true, false} {
			for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
				rd := &redirecting{token: token, status: status, to: attacker.URL}
				redirect.Store(rd)
				p := settings.Provider(extract.Setup{}) // a token cache of its own
				tenant := p.Tenants[0]
				check := func(what string, err error) {
					var perm *extract.Permanent
					if !errors.As(err, &perm) || !strings.Contains(err.Error(), "redirect refused") || !strings.Contains(err.Error(), "to "+attacker.URL) {
						t.Errorf("%s, %d to another host: %v, want a Permanent error naming the redirect", what, status, err)
					}
				}
				if token {
					check("the token request", p.Check(context.Background(), tenant))
				}
				// Every stream whose requests were redirected fails.
				for _, s := range p.Streams {
					w := &world{t: t, s: s, tenant: tenant, subjects: p.Subjects, jobs: map[string]extract.Job{}}
					before := rd.sent.Load()
					if _, err := w.run(context.Background(), extract.Window{To: time.Now().UTC()}); rd.sent.Load() > before {
						check(s.Name, err)
					}
				}
				if rd.sent.Load() == 0 {
					t.Errorf("token request %v, %d: no request was redirected", token, status)
				}
				if n := got.Load(); n > 0 {
					t.Fatalf("token request %v, %d: the other host received %d requests", token, status, n)
				}
			}
		}
	})
}

// redirecting: the requests carrying no Authorization (token) or those
// carrying one are answered status, Location to plus their path.
type redirecting struct {
	token  bool
	status int
	to     string
	sent   atomic.Int64 // redirects answered
}

// world is what the runner hands one run of a stream, held in memory.
type world struct {
	t        *testing.T
	s        extract.Stream
	tenant   string
	subjects []extract.Subject
	cursor   string
	out      output

	mu   sync.Mutex
	jobs map[string]extract.Job
}

// run runs the stream once over window w, from the cursor of the last run.
func (w *world) run(ctx context.Context, win extract.Window) (string, error) {
	req := extract.Request{Tenant: w.tenant, Window: win, Cursor: w.cursor,
		Lineage: transform.Lineage{Provider: w.s.Provider, Tenant: w.tenant, RunID: "conformance",
			ExtractedAt: time.Now().UTC().Truncate(time.Second), Version: uint64(time.Now().UnixNano())}}
	if w.s.SubjectKind != "" {
		for _, sub := range w.subjects {
			if sub.Kind == w.s.SubjectKind && sub.Tenant == w.tenant {
				req.Subjects = append(req.Subjects, sub)
			}
		}
		req.Registry = registry{}
	}
	if w.s.Async {
		w.mu.Lock()
		for _, j := range w.jobs {
			if j.Status == extract.JobActive {
				req.Jobs = append(req.Jobs, j)
			}
		}
		w.mu.Unlock()
		req.JobLog = w
	}
	if w.s.Reads != nil {
		req.Ledger = ledger{t: w.t, table: w.s.Reads.Ledger}
	}
	if w.s.ReadsOwn {
		req.Own = own{}
	}
	w.out.t, w.out.s = w.t, w.s
	cursor, err := w.s.Run(ctx, req, &w.out)
	if err == nil {
		w.cursor = cursor
	}
	return cursor, err
}

// Put keeps a job's state (extract.JobLog).
func (w *world) Put(_ context.Context, j extract.Job) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jobs[j.ID] = j
	return nil
}

// output checks and counts what a run hands over; it retains nothing.
type output struct {
	t       *testing.T
	s       extract.Stream
	mu      sync.Mutex
	rows    int64
	rejects []extract.Reject
}

func (o *output) Records(tb transform.Table, rec arrow.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !slices.ContainsFunc(o.s.Tables, func(x transform.Table) bool { return x.Name == tb.Name }) {
		o.t.Errorf("records for %s, not one of the stream's tables", tb.Name)
	} else if !rec.Schema().Equal(tb.Schema) {
		o.t.Errorf("records for %s with schema %s, want %s", tb.Name, rec.Schema(), tb.Schema)
	}
	o.rows += rec.NumRows()
	return nil
}

func (o *output) Reject(r extract.Reject) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejects = append(o.rejects, r)
	return nil
}

type registry struct{}

func (registry) Skip(context.Context, extract.Subject, string) error   { return nil }
func (registry) Forget(context.Context, extract.Subject, string) error { return nil }
func (registry) Gone(context.Context, extract.Subject, string) error   { return nil }
func (registry) Read(extract.Subject)                                  {}

// ledger is an empty warehouse: nothing is unsent.
type ledger struct {
	t     *testing.T
	table transform.Table
}

func (ledger) Unsent(context.Context, func([]string) error) error { return nil }
func (l ledger) Commit(_ context.Context, rec arrow.Record) error {
	if !rec.Schema().Equal(l.table.Schema) {
		l.t.Errorf("ledger rows with schema %s, want %s's", rec.Schema(), l.table.Name)
	}
	return nil
}
func (ledger) Register(context.Context, []extract.Subject) error { return nil }
func (ledger) Stalled(context.Context, uint64, string)           {}

// own is a stream's empty earlier output.
type own struct{}

func (own) Lookup(context.Context, extract.Lookup, func([]string) error) error { return nil }
