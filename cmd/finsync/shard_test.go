package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/transform"
)

// Two finsync processes with FINSYNC_SHARD=0/2 and 1/2, run one after the
// other on every stream of the demo (in the demo's order: FinGoal after the
// providers it enriches), load the same warehouse as one process without
// FINSYNC_SHARD; no provider request is made by both (each subject's and
// each tenant-level run's requests come from one process), and the
// sandboxes created as many jobs and received as many transactions.
func TestShardsSplitTheWork(t *testing.T) {
	var one, two demoResult
	t.Run("load", func(l *testing.T) {
		l.Run("one process", func(l *testing.T) { l.Parallel(); one = loadDemo(l, t, demoLoad{shards: []string{""}}) })
		l.Run("two shards", func(l *testing.T) { l.Parallel(); two = loadDemo(l, t, demoLoad{shards: []string{"0/2", "1/2"}}) })
	})
	if t.Failed() {
		return
	}

	want, got := fingerprint(t, one.db), fingerprint(t, two.db)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: %s with two shards, %s with one", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s with two shards only", k, got[k])
		}
	}
	if one.finapiJobs != two.finapiJobs || one.fingoalBatches != two.fingoalBatches || one.fingoalReceived != two.fingoalReceived {
		t.Errorf("jobs at the sandboxes: finAPI %d, FinGoal batches %d (%d transactions) with two shards; %d, %d (%d) with one",
			two.finapiJobs, two.fingoalBatches, two.fingoalReceived, one.finapiJobs, one.fingoalBatches, one.fingoalReceived)
	}
	if one.finapiJobs == 0 || one.fingoalBatches == 0 {
		t.Errorf("the demo created no jobs (finAPI %d, FinGoal %d)", one.finapiJobs, one.fingoalBatches)
	}

	// No request about a subject twice: what each shard asked for, the
	// other did not. (Tenant-level requests carry the tenant in a header or
	// token, not in the path: their runs and jobs are counted above.)
	a, b := two.requests[0], two.requests[1]
	var both []string
	for k := range a {
		if b[k] > 0 && subjectRequest(k) {
			both = append(both, k)
		}
	}
	sort.Strings(both)
	if len(both) > 0 {
		t.Errorf("%d requests made by both shards, e.g. %v", len(both), both[:min(5, len(both))])
	}
	// Per-subject requests (deterministic paths) add up to one process's.
	for k, n := range one.requests[0] {
		if subjectRequest(k) && a[k]+b[k] != n {
			t.Errorf("%s: %d + %d requests with two shards, %d with one", k, a[k], b[k], n)
		}
	}
	// A user's rows of per-subject streams came from one shard, and both
	// shards loaded some users.
	rowsOf := map[int]uint64{}
	for _, tb := range []transform.Table{transform.Transactions, transform.Accounts, transform.AccountBalances, transform.Contracts, transform.Insights, transform.UserTags} {
		q := "SELECT provider, tenant, user_id, groupUniqArray(run_id) FROM " + tb.Name + " FINAL WHERE provider IN ('fino', 'fimento') OR " +
			"(provider = 'fingoal' AND ? = 'user_tags') GROUP BY provider, tenant, user_id"
		for _, row := range queryStrings(t, two.db, q, tb.Name) {
			shards := map[int]bool{}
			for _, id := range strings.Fields(strings.Trim(row[3], "[]")) {
				shards[two.shardOfRun[id]] = true
			}
			if len(shards) != 1 {
				t.Errorf("%s: rows of %s/%s/%s came from shards %v", tb.Name, row[0], row[1], row[2], shards)
			}
			for s := range shards {
				rowsOf[s]++
			}
		}
	}
	if rowsOf[0] == 0 || rowsOf[1] == 0 {
		t.Errorf("users per shard: %v; want both shards to have some", rowsOf)
	}
	// A tenant-level stream ran for a tenant in one shard only.
	for _, row := range queryStrings(t, two.db, "SELECT stream, tenant, groupUniqArray(run_id) FROM etl_runs FINAL GROUP BY stream, tenant") {
		shards := map[int]bool{}
		for _, id := range strings.Fields(strings.Trim(row[2], "[]")) {
			shards[two.shardOfRun[id]] = true
		}
		if _, s, _ := findStream(providers(Config{}, slog.New(slog.DiscardHandler), nil), row[0]); s.SubjectKind == "" && len(shards) != 1 {
			t.Errorf("%s for %s ran in shards %v", row[0], row[1], shards)
		}
	}
	t.Logf("one process: %d requests; two shards: %d + %d requests, (user, table) groups %d + %d; finAPI jobs %d, FinGoal batches %d (%d transactions) either way",
		total(one.requests[0]), total(a), total(b), rowsOf[0], rowsOf[1], one.finapiJobs, one.fingoalBatches, one.fingoalReceived)
}

// demoLoad says how loadDemo loads the demo.
type demoLoad struct {
	shards []string          // FINSYNC_SHARD of each process, run one after the other on each stream
	env    map[string]string // more settings (a cluster)
	opts   *clickhouse.Options
	// after, if set, runs after each stream's runs.
	after func(stream string)
}

// demoResult is what a demo load left.
type demoResult struct {
	db                                          *clickhouse.DB
	requests                                    []map[string]int // per process: "METHOD /path" → count
	shardOfRun                                  map[string]int   // run id → index of the process that ran it
	finapiJobs, fingoalBatches, fingoalReceived int
	secondsPerProcess                           []float64
}

// loadDemo runs every stream of the demo once with `finsync once`, in the
// demo's order, once per process of l.shards, against sandboxes of its own
// (TestQueryGuide's data: every guide question has answers), into a new
// database; the sandboxes and the database live until owner ends.
func loadDemo(t, owner *testing.T, l demoLoad) demoResult {
	t.Helper()
	sb, err := startSandbox("127.0.0.1:0", sandboxOptions{users: 3, companies: 1, months: 5, seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(sb.close)
	counter := &requestCounter{h: sb.server.Handler, n: map[string]int{}}
	srv := httptest.NewServer(counter)
	owner.Cleanup(srv.Close)

	opts := chtest.Options(t)
	if l.opts != nil {
		opts = *l.opts
	}
	owner.Cleanup(func() { chtest.DropDatabase(owner, opts) })
	env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database,
		"FINSYNC_CLICKHOUSE_CLUSTER": opts.Cluster, "FINSYNC_LOG_LEVEL": "warn"}
	for _, kv := range sb.env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = strings.ReplaceAll(v, sb.url, srv.URL)
	}
	maps.Copy(env, l.env)
	res := demoResult{requests: make([]map[string]int, len(l.shards)), shardOfRun: map[string]int{}}
	for i := range res.requests {
		res.requests[i] = map[string]int{}
	}
	var db *clickhouse.DB
	for _, p := range providers(Config{}, slog.New(slog.DiscardHandler), nil) {
		for _, s := range p.Streams {
			for i, shard := range l.shards {
				env["FINSYNC_SHARD"] = shard
				before := counter.snapshot()
				if code, stdout, stderr := run(t, env, "once", "-stream", s.Name); code != 0 {
					t.Fatalf("shard %q: once -stream %s: exit %d\n%s\n%s", shard, s.Name, code, stdout, stderr)
				}
				for k, n := range counter.snapshot() {
					if d := n - before[k]; d > 0 {
						res.requests[i][k] += d
					}
				}
				if db == nil {
					if db, err = clickhouse.Open(context.Background(), opts); err != nil {
						t.Fatal(err)
					}
					owner.Cleanup(func() { db.Close() })
				}
				for _, row := range queryStrings(t, db, "SELECT run_id FROM etl_runs FINAL") {
					if _, ok := res.shardOfRun[row[0]]; !ok {
						res.shardOfRun[row[0]] = i
					}
				}
			}
			if l.after != nil {
				l.after(s.Name)
			}
		}
	}
	res.db = db
	res.finapiJobs = sb.finapi().JobsCreated("")
	res.fingoalBatches = len(sb.fingoal().Batches())
	for _, n := range sb.fingoal().Received() {
		res.fingoalReceived += n
	}
	return res
}

// requestCounter counts the requests a handler serves by method and path.
type requestCounter struct {
	h  http.Handler
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// authRequest is a token or login request: each process gets its own.
func authRequest(k string) bool {
	return strings.Contains(k, "token") || strings.Contains(k, "login") || strings.Contains(k, "/auth")
}

// subjectRequest is a request about one subject whose path holds only
// the sandboxes' deterministic ids (users, processes).
func subjectRequest(k string) bool {
	return !authRequest(k) && (strings.Contains(k, "/users/") || strings.Contains(k, "/process"))
}

// fingerprint is, per table and provider, the row count after FINAL and a
// hash of the rows' business columns: what two loads of the same data
// share whatever their run ids, times and the providers' job ids.
func fingerprint(t *testing.T, db *clickhouse.DB) map[string]string {
	t.Helper()
	skip := map[string]bool{"source_job_id": true, "run_id": true, "extracted_at": true, "_version": true,
		"job_id": true, "raw": true, "submission_id": true, "batch_request_id": true, "submitted_at": true, "guid": true, "observed_at": true}
	out := map[string]string{}
	for _, tb := range transform.Tables() {
		if _, ok := tb.Schema.FieldsByName("provider"); !ok || tb.Name == transform.EtlRejects.Name {
			continue
		}
		var cols []string
		for _, f := range tb.Schema.Fields() {
			if !skip[f.Name] && !(tb.Name == transform.Subjects.Name && f.Name != "provider" && f.Name != "tenant" && f.Name != "kind" && f.Name != "subject_id" && f.Name != "status") {
				cols = append(cols, "toString(`"+f.Name+"`)")
			}
		}
		q := fmt.Sprintf("SELECT provider, toString(count()), toString(groupBitXor(cityHash64(%s))) FROM %s FINAL GROUP BY provider", strings.Join(cols, ", "), tb.Name)
		for _, row := range queryStrings(t, db, q) {
			out[tb.Name+"/"+row[0]] = row[1] + " rows, hash " + row[2]
		}
	}
	return out
}
