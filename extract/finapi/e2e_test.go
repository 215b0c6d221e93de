package finapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/finapi"
	finapisb "github.com/finsync/finsync/extract/finapi/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

var finapiTenants = []string{"mandator-a", "mandator-b"}

// finapiWorld is a finAPI sandbox and its client in a schedulestest.World,
// whose clock starts at 09:00 of the sandbox's today.
type finapiWorld struct {
	*schedulestest.World
	sandbox *finapisb.Server
	api     *finapi.API
	streams map[string]extract.Stream
}

func newFinapiWorld(t *testing.T, sopts finapisb.Options, cfg finapi.Config) *finapiWorld {
	t.Helper()
	sopts.Tenants, sopts.UsersPerTenant, sopts.Seed = finapiTenants, 24, 3
	sb := finapisb.New(sopts)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { srv.Close(); sb.Close() })
	w := &finapiWorld{World: schedulestest.NewWorld(t, sb.Today().Add(9*time.Hour)), sandbox: sb, streams: map[string]extract.Stream{}}
	cfg.BaseURL, cfg.RateLimit, cfg.PageSize = srv.URL, 1000, 7 // small pages: paging happens
	if cfg.Params.HighBalance.AccountType == "" {
		cfg.Params = finapi.DefaultParams()
	}
	if cfg.PollInitial == 0 {
		cfg.PollInitial, cfg.PollMax = 5*time.Millisecond, 20*time.Millisecond
	}
	for _, tenant := range finapiTenants {
		id, secret := finapisb.Credentials(tenant)
		cfg.Tenants = append(cfg.Tenants, finapi.Tenant{Name: tenant, ClientID: id, ClientSecret: secret})
	}
	cfg.Now = w.Now
	w.api = finapi.NewAPI(cfg)
	for _, s := range finapi.Streams(w.api) {
		w.streams[s.Name] = s
	}
	return w
}

func (w *finapiWorld) run(t *testing.T, seg finapi.Segment, tenant string) (clickhouse.Run, error) {
	t.Helper()
	return w.Runner.Run(context.Background(), w.streams[seg.Stream], tenant)
}

// members reads "user/account amount" of one segment type per tenant.
func (w *finapiWorld) members(t *testing.T, seg finapi.Segment, tenant string) []string {
	return w.Query(t, `SELECT concat(user_id, '/', account_id, ' ', toString(amount)) FROM segment_members FINAL
		WHERE tenant = ? AND segment_type = ? ORDER BY user_id, account_id`, tenant, seg.Type)
}

// The expectations below are computed from the sandbox's ledger by code of
// their own (day-by-day balance walks), not by the sandbox's functions.

// eodBalances is an account's end-of-day balance for every day of the
// ledger through day last.
func eodBalances(a finapisb.LedgerAccount, last time.Time) map[string]int64 {
	out := map[string]int64{}
	if len(a.Transactions) == 0 {
		return out
	}
	bal := a.Opening
	i := 0
	for d := a.Transactions[0].Day; !d.After(last); d = d.AddDate(0, 0, 1) {
		for ; i < len(a.Transactions) && a.Transactions[i].Day.Equal(d); i++ {
			bal += a.Transactions[i].Amount
		}
		out[d.Format(time.DateOnly)] = bal
	}
	return out
}

func fixed4(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d00", sign, cents/100, cents%100)
}

// monthsBefore are the n complete months before day's month, oldest first.
func monthsBefore(day time.Time, n int) []time.Time {
	var out []time.Time
	for i := n; i >= 1; i-- {
		out = append(out, time.Date(day.Year(), day.Month()-time.Month(i), 1, 0, 0, 0, 0, time.UTC))
	}
	return out
}

func expectedMembers(seg finapi.Segment, p finapi.Params, ledger []finapisb.LedgerAccount, created time.Time) []string {
	var out []string
	add := func(a finapisb.LedgerAccount, amount int64) {
		out = append(out, a.UserID+"/"+a.AccountID+" "+fixed4(amount))
	}
	threshold := func(s string) int64 {
		var f float64
		fmt.Sscan(s, &f)
		return int64(math.Round(f * 100))
	}
	for _, a := range ledger {
		bal := eodBalances(a, created)
		switch seg {
		case finapi.HighBalance:
			if b := bal[created.Format(time.DateOnly)]; a.Type == p.HighBalance.AccountType && b > threshold(p.HighBalance.Threshold) {
				add(a, b)
			}
		case finapi.LowBalance:
			if a.Type != p.LowBalance.AccountType {
				continue
			}
			lowest, every := int64(math.MaxInt64), true
			for _, m := range monthsBefore(created, p.LowBalance.Months) {
				low := int64(math.MaxInt64)
				for d := m; d.Month() == m.Month(); d = d.AddDate(0, 0, 1) {
					low = min(low, bal[d.Format(time.DateOnly)])
				}
				every, lowest = every && low < threshold(p.LowBalance.Threshold), min(lowest, low)
			}
			if every {
				add(a, lowest)
			}
		case finapi.IncomeSpending:
			months := monthsBefore(created, p.IncomeSpending.Months)
			var net int64
			n := 0
			for _, tx := range a.Transactions {
				if !tx.Day.Before(months[0]) && tx.Day.Before(months[len(months)-1].AddDate(0, 1, 0)) && tx.Amount != 0 {
					net, n = net+tx.Amount, n+1
				}
			}
			if n > 0 {
				add(a, net)
			}
		case finapi.InsuranceSpending:
			months := monthsBefore(created, 12)
			var sum int64
			n := 0
			for _, tx := range a.Transactions {
				if tx.Label == "INSURANCES" && !tx.Day.Before(months[0]) && tx.Day.Before(months[11].AddDate(0, 1, 0)) {
					sum, n = sum+tx.Amount, n+1
				}
			}
			if n > 0 {
				add(a, sum)
			}
		case finapi.FinancialBreakdown:
			months := monthsBefore(created, p.FinancialBreakdown.Months)
			var sum int64
			n := 0
			for _, tx := range a.Transactions {
				in := !tx.Day.Before(months[0]) && tx.Day.Before(months[len(months)-1].AddDate(0, 1, 0))
				for _, g := range p.FinancialBreakdown.LabelGroups {
					if in && tx.Label == g {
						sum, n = sum+tx.Amount, n+1
					}
				}
			}
			if n > 0 {
				add(a, sum)
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestFinapiSegmentsMatchTheLedger(t *testing.T) {
	w := newFinapiWorld(t, finapisb.Options{}, finapi.Config{})
	p := finapi.DefaultParams()
	for _, seg := range finapi.Segments() {
		for _, tenant := range finapiTenants {
			run, err := w.run(t, seg, tenant)
			if err != nil || run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
				t.Fatalf("%s/%s: %s, %d rejects, %v", seg.Stream, tenant, run.Status, run.Rejects, err)
			}
			want := expectedMembers(seg, p, w.sandbox.Ledger(tenant), w.sandbox.Today())
			got := w.members(t, seg, tenant)
			if len(want) == 0 {
				t.Fatalf("%s/%s: the ledger gives no members; the test data is too thin", seg.Type, tenant)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s/%s members:\ngot  %v\nwant %v", seg.Type, tenant, got, want)
			}
		}
	}

	// Type-specific metrics, spot-checked against the ledger.
	tenant := finapiTenants[0]
	ledger := w.sandbox.Ledger(tenant)
	byAccount := map[string]finapisb.LedgerAccount{}
	for _, a := range ledger {
		byAccount[a.AccountID] = a
	}
	months := monthsBefore(w.sandbox.Today(), 12)
	rows := w.Query(t, `SELECT concat(account_id, '\t', metrics, '\t', toString(duration_in_month), '\t', toString(expires_on), '\t', toString(creation_date))
		FROM segment_members FINAL WHERE tenant = ? AND segment_type = 'financialBreakdown'`, tenant)
	for _, row := range rows {
		f := strings.Split(row, "\t")
		var m struct{ Breakdowns []finapi.Breakdown }
		if err := json.Unmarshal([]byte(f[1]), &m); err != nil {
			t.Fatal(err)
		}
		if f[2] != "12" || f[4] != w.sandbox.Today().Format(time.DateOnly) || f[3] != w.sandbox.Today().AddDate(0, 0, 14).Format(time.DateOnly) {
			t.Errorf("breakdown row %s: duration %s, created %s, expires %s", f[0], f[2], f[4], f[3])
		}
		for _, b := range m.Breakdowns {
			sums := make([]int64, 12)
			for _, tx := range byAccount[f[0]].Transactions {
				for i, mo := range months {
					if tx.Label == b.LabelGroup && tx.Day.Year() == mo.Year() && tx.Day.Month() == mo.Month() {
						sums[i] += tx.Amount
					}
				}
			}
			var total int64
			lo, hi := sums[0], sums[0]
			for _, s := range sums {
				total, lo, hi = total+s, min(lo, s), max(hi, s)
			}
			got := fmt.Sprintf("%s %s %s %s", b.Total, b.Min, b.Max, b.Monthly[3].Amount)
			want := fmt.Sprintf("%s %s %s %s", fixed4(total)[:len(fixed4(total))-2], fixed4(lo)[:len(fixed4(lo))-2], fixed4(hi)[:len(fixed4(hi))-2], fixed4(sums[3])[:len(fixed4(sums[3]))-2])
			if got != want {
				t.Errorf("breakdown %s %s: total min max month4 %s, ledger %s", f[0], b.LabelGroup, got, want)
			}
		}
	}
	counts := w.Query(t, `SELECT concat(account_id, ' ', toString(visitParamExtractUInt(metrics, 'incomingCount')), ' ', toString(visitParamExtractUInt(metrics, 'outgoingCount')))
		FROM segment_members FINAL WHERE tenant = ? AND segment_type = 'incomeSpendingSummary'`, tenant)
	last := monthsBefore(w.sandbox.Today(), 1)[0]
	for _, c := range counts {
		var id string
		var in, out int
		fmt.Sscan(c, &id, &in, &out)
		wantIn, wantOut := 0, 0
		for _, tx := range byAccount[id].Transactions {
			if tx.Day.Year() == last.Year() && tx.Day.Month() == last.Month() {
				if tx.Amount > 0 {
					wantIn++
				} else if tx.Amount < 0 {
					wantOut++
				}
			}
		}
		if in != wantIn || out != wantOut {
			t.Errorf("income/spending %s: %d in %d out, ledger %d in %d out", id, in, out, wantIn, wantOut)
		}
	}
	ins := w.Query(t, `SELECT metrics FROM segment_members FINAL WHERE tenant = ? AND segment_type = 'insuranceSpending' LIMIT 1`, tenant)
	if len(ins) != 1 || !strings.Contains(ins[0], `"frequency"`) || !strings.Contains(ins[0], `"provider"`) {
		t.Errorf("insurance metrics: %v", ins)
	}
	// A second run of every stream creates new jobs (new snapshots); the
	// FINAL rows of each job stay as they were.
	if n := w.sandbox.JobsCreated(""); n != 10 {
		t.Errorf("%d jobs created, want 10 (5 types × 2 mandators)", n)
	}
}

func TestFinapiJobSurvivesARestartAndLoadsOnce(t *testing.T) {
	w := newFinapiWorld(t, finapisb.Options{ReadyPolls: -1}, finapi.Config{PollTimeout: 200 * time.Millisecond})
	tenant := finapiTenants[0]
	run, err := w.run(t, finapi.HighBalance, tenant)
	if run.Status != clickhouse.RunPartial || err == nil || !strings.Contains(run.Error, "not ready") {
		t.Fatalf("first run: %s %q %v", run.Status, run.Error, err)
	}
	jobs, err := w.State.Jobs(context.Background(), finapi.HighBalance.Stream, tenant, extract.JobActive)
	if err != nil || len(jobs) != 1 || !strings.Contains(jobs[0].Params, `"threshold":5000`) {
		t.Fatalf("active jobs after the first run: %+v %v", jobs, err)
	}
	// Still not ready: the second run polls the same job, creates none.
	if run, _ := w.run(t, finapi.HighBalance, tenant); run.Status != clickhouse.RunPartial {
		t.Fatalf("second run: %s", run.Status)
	}
	if err := w.sandbox.MakeReady(jobs[0].ID); err != nil {
		t.Fatal(err)
	}
	run, err = w.run(t, finapi.HighBalance, tenant)
	if err != nil || run.Status != clickhouse.RunSuccess {
		t.Fatalf("third run: %s %v", run.Status, err)
	}
	if n := w.sandbox.JobsCreated(""); n != 1 {
		t.Errorf("%d jobs created, want 1", n)
	}
	want := expectedMembers(finapi.HighBalance, finapi.DefaultParams(), w.sandbox.Ledger(tenant), w.sandbox.Today())
	raw := w.Query(t, `SELECT toString(count()) FROM segment_members WHERE job_id = ?`, jobs[0].ID)
	if raw[0] != fmt.Sprint(len(want)) || run.Rows["segment_members"] != uint64(len(want)) {
		t.Errorf("rows without FINAL %v, run rows %v, want %d", raw, run.Rows, len(want))
	}
	done, _ := w.State.Jobs(context.Background(), finapi.HighBalance.Stream, tenant, extract.JobDone)
	if len(done) != 1 || done[0].ID != jobs[0].ID {
		t.Errorf("done jobs: %+v", done)
	}
	// The next run makes a new snapshot (which this sandbox never finishes).
	if w.run(t, finapi.HighBalance, tenant); w.sandbox.JobsCreated("") != 2 {
		t.Errorf("fourth run: %d jobs, want 2", w.sandbox.JobsCreated(""))
	}
}

func TestFinapiLostAndExpiredJobs(t *testing.T) {
	w := newFinapiWorld(t, finapisb.Options{ReadyPolls: -1}, finapi.Config{PollTimeout: 100 * time.Millisecond})
	tenant := finapiTenants[1]
	w.run(t, finapi.LowBalance, tenant)
	ids := w.sandbox.JobIDs()
	if len(ids) != 1 {
		t.Fatalf("jobs %v", ids)
	}
	// finAPI forgets the job: 400 marks it lost, the next run creates another.
	w.sandbox.Forget(ids[0])
	run, err := w.run(t, finapi.LowBalance, tenant)
	if err == nil || run.Status != clickhouse.RunPartial || !strings.Contains(run.Error, "next run creates a new one") {
		t.Fatalf("run on a lost job: %s %q", run.Status, run.Error)
	}
	lost, _ := w.State.Jobs(context.Background(), finapi.LowBalance.Stream, tenant, extract.JobLost)
	if len(lost) != 1 || lost[0].ID != ids[0] {
		t.Fatalf("lost jobs %+v", lost)
	}
	w.run(t, finapi.LowBalance, tenant)
	if n := w.sandbox.JobsCreated(""); n != 2 {
		t.Fatalf("%d jobs created, want 2", n)
	}
	// Fifteen days later the pending job is past finAPI's lifetime: it is
	// marked expired without a request, and the run after creates a new one.
	w.SetNow(w.Now().AddDate(0, 0, 15))
	w.sandbox.SetToday(w.sandbox.Today().AddDate(0, 0, 15))
	if run, _ := w.run(t, finapi.LowBalance, tenant); run.Status != clickhouse.RunSuccess {
		t.Fatalf("run over an expired job: %s %s", run.Status, run.Error)
	}
	expired, _ := w.State.Jobs(context.Background(), finapi.LowBalance.Stream, tenant, extract.JobExpired)
	active, _ := w.State.Jobs(context.Background(), finapi.LowBalance.Stream, tenant, extract.JobActive)
	if len(expired) != 1 || len(active) != 0 {
		t.Fatalf("expired %+v, active %+v", expired, active)
	}
}

func TestFinapiCallbackWakesThePoll(t *testing.T) {
	mux := httptest.NewServer(nil)
	defer mux.Close()
	w := newFinapiWorld(t, finapisb.Options{ReadyPolls: -1, ReadyAfter: 300 * time.Millisecond},
		finapi.Config{CallbackURL: mux.URL, PollInitial: time.Minute, PollMax: time.Minute, PollTimeout: 2 * time.Minute})
	var started []string
	mux.Config.Handler = finapi.CallbackHandler(w.api, extract.Hooks{JobStatus: schedules.JobStatus(w.State), Trigger: func(_ context.Context, stream, tenant string) { started = append(started, stream) }})
	begin := time.Now()
	run, err := w.run(t, finapi.InsuranceSpending, finapiTenants[0])
	if err != nil || run.Status != clickhouse.RunSuccess || run.Rows["segment_members"] == 0 {
		t.Fatalf("run: %s %v %v", run.Status, run.Rows, err)
	}
	// Without the callback the second poll would come a minute later.
	if took := time.Since(begin); took > 30*time.Second {
		t.Errorf("the callback did not wake the poll: the run took %s", took)
	}
	if len(started) != 0 {
		t.Errorf("a run was polling, yet the handler asked for another: %v", started)
	}
}

// A callback starts work only for a job finsync is waiting for: one for an
// unknown or done job starts nothing (and a triggered run creates no job
// anyway), and finAPI's callback for an active job has the daemon collect
// it at once. The sandbox counts the jobs created.
func TestFinapiCallbackCollectsOnlyActiveJobs(t *testing.T) {
	hook := httptest.NewServer(nil)
	defer hook.Close()
	// Jobs become ready only when the test says; a run waits 200 ms for them.
	w := newFinapiWorld(t, finapisb.Options{ReadyPolls: -1},
		finapi.Config{CallbackURL: hook.URL, PollTimeout: 200 * time.Millisecond})
	stream := w.streams[finapi.HighBalance.Stream]
	d := &schedules.Daemon{Runner: w.Runner, Jobs: []schedules.Job{{Stream: stream, Tenants: finapiTenants, Schedule: schedulestest.Yearly(t, stream.Name)}}}
	d.Start()
	defer d.Stop(time.Minute)
	hook.Config.Handler = finapi.CallbackHandler(w.api, extract.Hooks{JobStatus: schedules.JobStatus(w.State),
		Trigger: func(_ context.Context, stream, tenant string) { d.Trigger(stream, tenant) }})
	tenant := finapiTenants[0]
	runs := func() int {
		n := 0
		fmt.Sscan(w.Query(t, "SELECT toString(count()) FROM etl_runs FINAL WHERE stream = ? AND status != 'running'", stream.Name)[0], &n)
		return n
	}
	callback := func(job string) {
		t.Helper()
		resp, err := http.Post(hook.URL+"?tenant="+tenant+"&segmentType=highBalance", "application/json",
			strings.NewReader(`{"jobId":"`+job+`","segmentType":"highBalance"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("callback for %s: %d", job, resp.StatusCode)
		}
	}
	settle := func(wantRuns int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for runs() < wantRuns && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // a run that should not start has had time to
		if got := runs(); got != wantRuns {
			t.Fatalf("%d runs, want %d", got, wantRuns)
		}
	}

	// The scheduled run creates a job, which is not ready in time: partial.
	if run, _ := w.run(t, finapi.HighBalance, tenant); run.Status != clickhouse.RunPartial {
		t.Fatalf("first run: %s %s", run.Status, run.Error)
	}
	active, _ := w.State.Jobs(context.Background(), stream.Name, tenant, extract.JobActive)
	if len(active) != 1 || w.sandbox.JobsCreated("highBalance") != 1 {
		t.Fatalf("active jobs %+v, %d created", active, w.sandbox.JobsCreated("highBalance"))
	}
	// A forged callback: nothing runs, nothing is created.
	callback("no-such-job")
	settle(1)
	// A triggered run for a mandator without a pending job creates none.
	if !d.Trigger(stream.Name, finapiTenants[1]) {
		t.Fatal("trigger refused")
	}
	settle(2)
	if n := w.sandbox.JobsCreated("highBalance"); n != 1 {
		t.Fatalf("%d jobs created after a forged callback and a triggered run, want 1", n)
	}
	// finAPI calls back for the active job: the daemon collects it at once.
	if err := w.sandbox.MakeReady(active[0].ID); err != nil {
		t.Fatal(err)
	}
	settle(3)
	if st, _ := w.State.JobStatus(context.Background(), stream.Name, tenant, active[0].ID); st != extract.JobDone {
		t.Fatalf("job after its callback: %q", st)
	}
	if len(w.members(t, finapi.HighBalance, tenant)) == 0 {
		t.Fatal("the callback's run loaded no members")
	}
	// Calling back again for the collected job starts nothing.
	callback(active[0].ID)
	settle(3)
	if n := w.sandbox.JobsCreated(""); n != 1 {
		t.Errorf("%d jobs created in all, want 1", n)
	}
}

func TestFinapiFaultsLoseNothing(t *testing.T) {
	clean := newFinapiWorld(t, finapisb.Options{}, finapi.Config{})
	knobs := sandboxkit.Knobs{Seed: 11, RateLimit: 0.15, ServerError: 0.15, TokenExpiry: 0.1, Truncated: 0.15, Malformed: 0.1}
	faulty := newFinapiWorld(t, finapisb.Options{Faults: knobs}, finapi.Config{})
	tenant := finapiTenants[0]
	var malformed []string
	for _, seg := range finapi.Segments() {
		if _, err := clean.run(t, seg, tenant); err != nil {
			t.Fatal(err)
		}
		// Faults may end a run early (partial): the next run resumes its job.
		var run clickhouse.Run
		for range 5 {
			before := len(faulty.sandbox.JobIDs())
			run, _ = faulty.run(t, seg, tenant)
			if ids := faulty.sandbox.JobIDs(); len(ids) > before {
				for _, id := range ids {
					malformed = append(malformed, faulty.sandbox.Malformed(id)...)
				}
			}
			if run.Status == clickhouse.RunSuccess {
				break
			}
		}
		if run.Status != clickhouse.RunSuccess {
			t.Fatalf("%s never succeeded: %s", seg.Type, run.Error)
		}
	}
	if c := faulty.sandbox.Injected(); c.RateLimited == 0 || c.ServerErrors == 0 || c.TokensExpired == 0 || c.Truncated == 0 || len(malformed) == 0 {
		t.Fatalf("the faults did not happen: %+v, malformed %v", c, malformed)
	}
	// Every member but the malformed users landed; those are in etl_rejects.
	q := `SELECT concat(segment_type, ' ', user_id, '/', account_id, ' ', toString(amount), ' ', metrics) FROM segment_members FINAL WHERE NOT has(?, user_id) ORDER BY 1`
	if got, want := faulty.Query(t, q, malformed), clean.Query(t, q, malformed); strings.Join(got, "\n") != strings.Join(want, "\n") || len(want) == 0 {
		t.Errorf("faulty run differs from the clean one:\ngot  %d rows\nwant %d rows", len(got), len(want))
	}
	rejected := faulty.Query(t, `SELECT DISTINCT splitByChar('/', record_key)[2] FROM etl_rejects WHERE reason LIKE 'user does not match%'`)
	sort.Strings(rejected)
	sort.Strings(malformed)
	if strings.Join(rejected, ",") != strings.Join(dedupe(malformed), ",") {
		t.Errorf("rejected users %v, malformed %v", rejected, malformed)
	}
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func TestExpiredSegmentMembersLeaveTheViewAndTheTable(t *testing.T) {
	// Jobs created 14 and 15 days before the server's today: the first
	// expires today (still current), the second yesterday.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var counts []string
	w := schedulestest.NewWorld(t, time.Time{})
	for _, age := range []int{14, 15, 40} {
		sb := finapisb.New(finapisb.Options{Tenants: []string{fmt.Sprint("m", age)}, UsersPerTenant: 10, Seed: 3, Today: today.AddDate(0, 0, -age)})
		srv := httptest.NewServer(sb)
		defer srv.Close()
		defer sb.Close()
		id, secret := finapisb.Credentials(fmt.Sprint("m", age))
		api := finapi.NewAPI(finapi.Config{BaseURL: srv.URL, Params: finapi.DefaultParams(), PollInitial: time.Millisecond,
			Tenants: []finapi.Tenant{{Name: fmt.Sprint("m", age), ClientID: id, ClientSecret: secret}},
			Now:     func() time.Time { return today.AddDate(0, 0, -age) }})
		w.SetNow(today.AddDate(0, 0, -age))
		if _, err := w.Runner.Run(context.Background(), finapi.Streams(api)[0], fmt.Sprint("m", age)); err != nil {
			t.Fatal(err)
		}
	}
	counts = w.Query(t, `SELECT concat(tenant, ' ', toString(count())) FROM current_segment_members GROUP BY tenant ORDER BY tenant`)
	if strings.Join(counts, ",") != "m14 "+w.Query(t, `SELECT toString(count()) FROM segment_members FINAL WHERE tenant = 'm14'`)[0] {
		t.Fatalf("current members per tenant: %v (want only m14's)", counts)
	}
	ex, err := w.DB.DeleteExpiredSegments(context.Background(), today)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Partitions) == 0 && ex.Rows == 0 {
		t.Fatalf("nothing deleted: %+v", ex)
	}
	// Mutations run in the background on 18.16: wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := w.Query(t, `SELECT toString(count()) FROM segment_members WHERE expires_on < toDate(?)`, today.Format(time.DateOnly))
		if left[0] == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s expired rows left after %+v", left[0], ex)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := w.Query(t, `SELECT DISTINCT tenant FROM segment_members`); strings.Join(got, ",") != "m14" {
		t.Errorf("tenants left: %v", got)
	}
}

// recorded is a run's status and error as etl_runs holds them.
func (w *finapiWorld) recorded(t *testing.T, run clickhouse.Run) (status, errText string) {
	t.Helper()
	row := w.Query(t, `SELECT concat(status, '\t', error) FROM etl_runs FINAL WHERE run_id = ?`, run.ID)
	if len(row) != 1 {
		t.Fatalf("run %s: %d rows in etl_runs", run.ID, len(row))
	}
	status, errText, _ = strings.Cut(row[0], "\t")
	return status, errText
}

// jobsIn are the ids of the stream's jobs for tenant with status.
func (w *finapiWorld) jobsIn(t *testing.T, seg finapi.Segment, tenant, status string) []string {
	t.Helper()
	jobs, err := w.State.Jobs(context.Background(), seg.Stream, tenant, status)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// usersOf are the distinct users of members ("user/account amount"), in order.
func usersOf(members []string) []string {
	var users []string
	for _, m := range members {
		u, _, _ := strings.Cut(m, "/")
		if len(users) == 0 || users[len(users)-1] != u {
			users = append(users, u)
		}
	}
	return users
}

// membersOf keeps the members of the users listed.
func membersOf(members, users []string) []string {
	var out []string
	for _, m := range members {
		u, _, _ := strings.Cut(m, "/")
		for _, v := range users {
			if u == v {
				out = append(out, m)
			}
		}
	}
	return out
}

// finAPI may cap the page size below what finsync asks (the world asks 7)
// and leave out totalPages and even totalElements: a short page is no proof
// of the end, so a run reads on until the users announced are in, or until
// a page comes back empty. Fewer users than announced end the run partial
// with the job still active (the next run reads it again, creating none); a
// server that serves the same page whatever the number, or more pages than
// Config.MaxPages, fails the run instead of looping.
func TestFinapiPagingReadsEveryUser(t *testing.T) {
	seg, tenant := finapi.IncomeSpending, finapiTenants[0]
	tests := []struct {
		name     string
		sandbox  finapisb.Options
		maxPages int
		status   string
		users    func(all []string) []string // the users whose rows land
		errText  func(all []string) string   // in etl_runs.error; "" for none
		check    string                      // the run's Inconsistent
	}{
		{name: "capped size", sandbox: finapisb.Options{MaxPageSize: 3}, status: clickhouse.RunSuccess},
		{name: "capped size, no totalPages", sandbox: finapisb.Options{MaxPageSize: 3, OmitTotalPages: true},
			status: clickhouse.RunSuccess},
		{name: "capped size, no totals", sandbox: finapisb.Options{MaxPageSize: 3, OmitTotalPages: true, OmitTotalElements: true},
			status: clickhouse.RunSuccess},
		{name: "no totals, full pages", sandbox: finapisb.Options{OmitTotalPages: true, OmitTotalElements: true},
			status: clickhouse.RunSuccess},
		{name: "fewer users than announced", sandbox: finapisb.Options{MaxPageSize: 3, OmitTotalPages: true, MissingUsers: 2},
			status: clickhouse.RunPartial, check: "total_elements",
			users: func(all []string) []string { return all[:len(all)-2] },
			errText: func(all []string) string {
				return fmt.Sprintf("received %d users, finAPI announced totalElements %d", len(all)-2, len(all))
			}},
		{name: "the same page whatever the number", sandbox: finapisb.Options{IgnorePageNumber: true, OmitTotalPages: true, OmitTotalElements: true},
			status:  clickhouse.RunFailed,
			users:   func(all []string) []string { return all[:7] },
			errText: func([]string) string { return "page 1 repeats page 0" }},
		{name: "more pages than allowed", sandbox: finapisb.Options{MaxPageSize: 3, OmitTotalPages: true, OmitTotalElements: true}, maxPages: 2,
			status:  clickhouse.RunFailed,
			users:   func(all []string) []string { return all[:6] },
			errText: func([]string) string { return "stopped after 2 pages and 6 users" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFinapiWorld(t, tc.sandbox, finapi.Config{MaxPages: tc.maxPages})
			want := expectedMembers(seg, finapi.DefaultParams(), w.sandbox.Ledger(tenant), w.sandbox.Today())
			all := usersOf(want)
			if len(all) < 10 {
				t.Fatalf("%d users in the segment; the test data is too thin to page", len(all))
			}
			if tc.users != nil {
				want = membersOf(want, tc.users(all))
			}
			wantErr := ""
			if tc.errText != nil {
				wantErr = tc.errText(all)
			}
			// A run that did not load everything leaves the job active: the
			// second run reads the same job again, the rows stay as they were.
			runs := 1
			if tc.status != clickhouse.RunSuccess {
				runs = 2
			}
			for i := range runs {
				run, _ := w.run(t, seg, tenant)
				status, errText := w.recorded(t, run)
				if status != tc.status || (wantErr == "") != (errText == "") || !strings.Contains(errText, wantErr) || run.Rejects != 0 || run.Inconsistent != tc.check {
					t.Fatalf("run %d: %s %q, %d rejects, inconsistent %q; want %s %q %q", i+1, status, errText, run.Rejects, run.Inconsistent, tc.status, wantErr, tc.check)
				}
				if got := w.members(t, seg, tenant); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("run %d: %d members, want %d:\ngot  %v\nwant %v", i+1, len(got), len(want), got, want)
				}
			}
			done, active := w.jobsIn(t, seg, tenant, extract.JobDone), w.jobsIn(t, seg, tenant, extract.JobActive)
			if tc.status == clickhouse.RunSuccess && (len(done) != 1 || len(active) != 0) ||
				tc.status != clickhouse.RunSuccess && (len(done) != 0 || len(active) != 1) {
				t.Errorf("jobs done %v, active %v", done, active)
			}
			if n := w.sandbox.JobsCreated(""); n != 1 {
				t.Errorf("%d jobs created, want 1", n)
			}
		})
	}
}

// daemonRun runs the stream once for tenant through a daemon that reports
// to m, a minute after the last run (the newest in etl_runs), and returns
// the run as etl_runs holds it.
func (w *finapiWorld) daemonRun(t *testing.T, m *schedules.Metrics, seg finapi.Segment, tenant string) clickhouse.Run {
	t.Helper()
	w.SetNow(w.Now().Add(time.Minute))
	d := &schedules.Daemon{Runner: w.Runner, Metrics: m, Jobs: []schedules.Job{{Stream: w.streams[seg.Stream], Tenants: []string{tenant},
		Schedule: schedules.Schedule{Stream: seg.Stream, Timeout: time.Minute}}}}
	d.Start()
	if !d.Tick(seg.Stream, tenant) {
		t.Fatal("tick refused")
	}
	// Stop starts nothing more: let the run end first.
	var run clickhouse.Run
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runs, err := w.State.RecentRuns(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if r := runs[seg.Stream]; len(r) == 1 && r[0].StartedAt.Equal(w.Now()) && r[0].Status != clickhouse.RunRunning {
			run = r[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end in 30 s: %+v", runs[seg.Stream])
		}
	}
	d.Stop(time.Minute)
	return run
}

// metric is the value of one series on m's /metrics, 0 when absent.
func metric(t *testing.T, m *schedules.Metrics, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// A result whose creationDate is more than a day from the day finsync
// created its job, or that is past finAPI's 14 days already, is not
// loaded: the run fails naming both dates, the job stays active (the next
// run reads it again and bills nothing new), and
// finsync_inconsistent_results_total counts each such run.
func TestFinapiResultDatesMustMatchTheJob(t *testing.T) {
	seg, tenant := finapi.HighBalance, finapiTenants[0]
	day := 24 * time.Hour
	tests := []struct {
		name  string
		shift time.Duration // of creationDate from the job's creation day
		age   time.Duration // from the job's creation to its collection
		fail  string        // in etl_runs.error besides both dates; "" for success
	}{
		{name: "the same day", shift: 0},
		{name: "a day earlier", shift: -day},
		{name: "a day later", shift: day},
		{name: "three weeks old", shift: -21 * day, fail: "more than a day"},
		{name: "two days later", shift: 2 * day, fail: "more than a day"},
		{name: "a day earlier, collected on the 14th day", shift: -day, age: 13*day + 20*time.Hour, fail: "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFinapiWorld(t, finapisb.Options{ReadyPolls: -1, CreationDateShift: tc.shift},
				finapi.Config{PollTimeout: 100 * time.Millisecond})
			// The first run creates the job, which is not ready in time.
			if run, _ := w.run(t, seg, tenant); run.Status != clickhouse.RunPartial {
				t.Fatalf("first run: %s %s", run.Status, run.Error)
			}
			active := w.jobsIn(t, seg, tenant, extract.JobActive)
			if len(active) != 1 {
				t.Fatalf("active jobs %v", active)
			}
			created := w.Now().Format(time.DateOnly)
			creationDate := w.sandbox.Today().Add(tc.shift).Format(time.DateOnly)
			w.SetNow(w.Now().Add(tc.age))
			if err := w.sandbox.MakeReady(active[0]); err != nil {
				t.Fatal(err)
			}
			m := schedules.NewMetrics()
			series := `finsync_inconsistent_results_total{check="result_date",stream="` + seg.Stream + `",tenant="` + tenant + `"}`
			runs := 1
			if tc.fail != "" {
				runs = 2 // the second reads the same job again
			}
			for i := range runs {
				run := w.daemonRun(t, m, seg, tenant)
				if tc.fail == "" {
					if run.Status != clickhouse.RunSuccess || run.Error != "" {
						t.Fatalf("run: %s %q", run.Status, run.Error)
					}
					continue
				}
				if run.Status != clickhouse.RunFailed || !strings.Contains(run.Error, tc.fail) ||
					!strings.Contains(run.Error, "creationDate "+creationDate) || !strings.Contains(run.Error, "created "+created) {
					t.Fatalf("run %d: %s %q; want failed naming creationDate %s, created %s and %q", i+2, run.Status, run.Error, creationDate, created, tc.fail)
				}
			}
			got := w.members(t, seg, tenant)
			want := expectedMembers(seg, finapi.DefaultParams(), w.sandbox.Ledger(tenant), w.sandbox.Today())
			done, stillActive := w.jobsIn(t, seg, tenant, extract.JobDone), w.jobsIn(t, seg, tenant, extract.JobActive)
			wantCount := 0.0
			if tc.fail == "" {
				if strings.Join(got, "\n") != strings.Join(want, "\n") || len(done) != 1 || len(stillActive) != 0 {
					t.Errorf("%d members (want %d), jobs done %v, active %v", len(got), len(want), done, stillActive)
				}
			} else {
				wantCount = float64(runs)
				if len(got) != 0 || len(done) != 0 || len(stillActive) != 1 {
					t.Errorf("%d members loaded, jobs done %v, active %v; want none loaded, the job active", len(got), done, stillActive)
				}
			}
			if n := w.sandbox.JobsCreated(""); n != 1 {
				t.Errorf("%d jobs created, want 1", n)
			}
			if v := metric(t, m, series); v != wantCount {
				t.Errorf("%s = %v, want %v", series, v, wantCount)
			}
		})
	}
}

// Fields finAPI may add to a user object (next to userId and accounts) are
// kept in segment_members.raw: each row's raw is its user object with only
// that row's account, so it stays bounded however many accounts the user
// has. metrics keeps the account's own fields.
func TestFinapiUnknownUserFieldsKeptInRaw(t *testing.T) {
	seg, tenant := finapi.IncomeSpending, finapiTenants[0]
	tests := []struct {
		name  string
		extra map[string]any
	}{
		{"none", nil},
		{"segmentVersion", map[string]any{"segmentVersion": "2"}},
		{"an object and a number", map[string]any{"profile": map[string]any{"tier": "gold", "since": "2024-01"}, "score": 7.5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFinapiWorld(t, finapisb.Options{ExtraUserFields: tc.extra}, finapi.Config{})
			if run, err := w.run(t, seg, tenant); err != nil || run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
				t.Fatalf("run: %s %q, %d rejects", run.Status, run.Error, run.Rejects)
			}
			want := expectedMembers(seg, finapi.DefaultParams(), w.sandbox.Ledger(tenant), w.sandbox.Today())
			if len(usersOf(want)) == len(want) {
				t.Fatal("no user has two accounts in the segment; the test data is too thin")
			}
			rows := w.Query(t, `SELECT concat(user_id, '\t', account_id, '\t', metrics, '\t', raw) FROM segment_members FINAL
				WHERE tenant = ? AND segment_type = ?`, tenant, seg.Type)
			if len(rows) != len(want) {
				t.Fatalf("%d rows, want %d", len(rows), len(want))
			}
			wantExtra := []byte("{}")
			if tc.extra != nil {
				wantExtra, _ = json.Marshal(tc.extra)
			}
			for _, row := range rows {
				f := strings.SplitN(row, "\t", 4)
				var raw map[string]json.RawMessage
				if err := json.Unmarshal([]byte(f[3]), &raw); err != nil {
					t.Fatalf("raw %s: %v", f[3], err)
				}
				var user string
				var accounts []map[string]json.RawMessage
				json.Unmarshal(raw["userId"], &user)
				json.Unmarshal(raw["accounts"], &accounts)
				var account, count string
				if len(accounts) == 1 {
					json.Unmarshal(accounts[0]["accountId"], &account)
					count = string(accounts[0]["incomingCount"])
				}
				delete(raw, "userId")
				delete(raw, "accounts")
				extra, _ := json.Marshal(raw)
				if user != f[0] || account != f[1] || count == "" || string(extra) != string(wantExtra) {
					t.Fatalf("row %s/%s: raw %s; want the user with only this account (as received) and %s", f[0], f[1], f[3], wantExtra)
				}
				for k := range tc.extra {
					if strings.Contains(f[2], `"`+k+`"`) {
						t.Errorf("row %s/%s: the user's %s is in metrics %s", f[0], f[1], k, f[2])
					}
				}
			}
		})
	}
}

// A tenant's own params in the schedules file (per_tenant) reach the job
// the daemon creates for it: its segment is the ledger's under its
// threshold, the other mandator's under the stream's.
func TestFinapiTenantParamsReachTheJob(t *testing.T) {
	w := newFinapiWorld(t, finapisb.Options{}, finapi.Config{})
	s := w.streams[finapi.HighBalance.Stream]
	ss, err := schedules.Parse("t.yaml", []byte("streams:\n  "+s.Name+":\n    schedule: \"@yearly\"\n    params: {account_type: checking, threshold: 5000}\n"+
		"    per_tenant:\n      mandator-b: {params: {threshold: 200}}\n"), map[string]schedules.ParamsCheck{s.Name: s.CheckParams})
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := ss.Find(s.Name)
	d := &schedules.Daemon{Runner: w.Runner, Jobs: []schedules.Job{{Stream: s, Schedule: sched, Tenants: finapiTenants}}}
	d.Start()
	if !d.Tick(s.Name, "") {
		t.Fatal("the tick did not start")
	}
	defer d.Stop(time.Minute)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		done := w.Query(t, "SELECT concat(tenant, ' ', status) FROM etl_runs FINAL WHERE stream = ? AND status != 'running' ORDER BY tenant", s.Name)
		if len(done) == 2 {
			if done[0] != "mandator-a success" || done[1] != "mandator-b success" {
				t.Fatalf("runs: %v", done)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runs did not finish in 60 s: %v", done)
		}
	}
	for tenant, threshold := range map[string]string{"mandator-a": "5000", "mandator-b": "200"} {
		p := finapi.DefaultParams()
		p.HighBalance.Threshold = threshold
		want := expectedMembers(finapi.HighBalance, p, w.sandbox.Ledger(tenant), w.sandbox.Today())
		if got := w.members(t, finapi.HighBalance, tenant); len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s members (threshold %s):\ngot  %v\nwant %v", tenant, threshold, got, want)
		}
		jobs, err := w.State.Jobs(context.Background(), s.Name, tenant, extract.JobDone)
		if err != nil || len(jobs) != 1 || !strings.Contains(jobs[0].Params, `"threshold":`+threshold) {
			t.Errorf("%s: jobs %+v %v, want threshold %s", tenant, jobs, err, threshold)
		}
	}
	p := finapi.DefaultParams()
	if len(expectedMembers(finapi.HighBalance, p, w.sandbox.Ledger("mandator-b"), w.sandbox.Today())) == len(w.members(t, finapi.HighBalance, "mandator-b")) {
		t.Error("the thresholds give the same segment: the test proves nothing")
	}
}

// A user over the field limit in a result page (read whole) is rejected
// with its first bytes and the limit it broke; the page's other users
// load. Before, the 300 KiB note landed in segment_members.raw.
func TestFinapiUserOverTheLimitsIsRejected(t *testing.T) {
	seg, tenant := finapi.IncomeSpending, finapiTenants[0]
	w := newFinapiWorld(t, finapisb.Options{Faults: sandboxkit.Knobs{HugeField: 300 << 10}}, finapi.Config{})
	run, err := w.run(t, seg, tenant)
	if err != nil || run.Status != clickhouse.RunSuccess || run.Rejects != 1 {
		t.Fatalf("run: %s %q, %d rejects (%v); want success with one reject", run.Status, run.Error, run.Rejects, err)
	}
	rej := w.Query(t, `SELECT concat(record_key, '\t', reason, '\t', toString(length(raw))) FROM etl_rejects FINAL WHERE stream = ?`, seg.Stream)
	if len(rej) != 1 || !strings.Contains(rej[0], "FINSYNC_MAX_FIELD_BYTES") {
		t.Fatalf("rejects %v, want one naming FINSYNC_MAX_FIELD_BYTES", rej)
	}
	f := strings.Split(rej[0], "\t")
	if n, _ := strconv.Atoi(f[2]); n == 0 || n > 4<<10+16 || !strings.Contains(f[0], "/") {
		t.Errorf("reject key %q, raw of %s bytes; want the job/user key and 4 KiB (closed into JSON)", f[0], f[2])
	}
	if n := w.Query(t, `SELECT toString(max(length(raw))) FROM segment_members`); n[0] == "0" || len(n[0]) > 5 {
		t.Errorf("the longest raw loaded is %s bytes", n[0])
	}
	user := strings.TrimPrefix(f[0], f[0][:strings.Index(f[0], "/")+1])
	want := 0
	for _, m := range expectedMembers(seg, finapi.DefaultParams(), w.sandbox.Ledger(tenant), w.sandbox.Today()) {
		if !strings.HasPrefix(m, user+"/") {
			want++
		}
	}
	if got := len(w.members(t, seg, tenant)); got != want || want == 0 {
		t.Errorf("%d members loaded, want the %d of every other user", got, want)
	}
}
