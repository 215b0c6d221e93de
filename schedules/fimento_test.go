package schedules_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fimento"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/schedules"
)

var fimentoBanks = []string{"605c6c479691950d359bb0e9", "605c6c479691950d359bb0ea"}

// fimentoWorld is a Fimento sandbox, a private database and a runner wired
// together, with the run's log captured.
type fimentoWorld struct {
	sandbox *fimento.Sandbox
	db      *clickhouse.DB
	state   *clickhouse.State
	runner  *schedules.Runner
	streams []extract.Stream
	api     *fimento.API
	logs    *syncBuffer
	url     string
}

// syncBuffer is a bytes.Buffer for concurrent log writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFimentoWorld(t *testing.T, faults fimento.Faults) *fimentoWorld {
	t.Helper()
	sb := fimento.NewSandbox(fimento.SandboxOptions{PartnerBanks: fimentoBanks, Months: 3, Seed: 11, Faults: faults, PageSize: 20})
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { srv.Close(); sb.Close() })
	db := chtest.NewDB(t)
	logs := &syncBuffer{}
	log := slog.New(schedules.RunHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{Logger: log})
	state := clickhouse.NewState(db, loader)
	var subs []clickhouse.Subject
	for _, bank := range fimentoBanks {
		for _, p := range sb.Processes(bank) {
			subs = append(subs, clickhouse.Subject{Provider: "fimento", Tenant: bank, Kind: "process", ID: p, Source: clickhouse.SourceConfig})
		}
	}
	if err := state.AddSubjects(context.Background(), subs); err != nil {
		t.Fatal(err)
	}
	api := fimento.NewAPI(fimento.Config{BaseURL: srv.URL, Name: "sandbox-user", Password: "sandbox-password",
		HashKey: []byte("test-hash-key"), RateLimit: 1000, Logger: log})
	return &fimentoWorld{sandbox: sb, db: db, state: state, api: api, streams: fimento.Streams(api), logs: logs, url: srv.URL,
		runner: &schedules.Runner{Loader: loader, State: state, Log: log}}
}

func (w *fimentoWorld) runAll(t *testing.T) []clickhouse.Run {
	t.Helper()
	var runs []clickhouse.Run
	for _, s := range w.streams {
		for _, bank := range fimentoBanks {
			run, err := w.runner.Run(context.Background(), s, bank)
			if err != nil {
				t.Fatalf("%s/%s: %v", s.Name, bank, err)
			}
			runs = append(runs, run)
		}
	}
	return runs
}

func (w *fimentoWorld) query(t *testing.T, q string, args ...any) []string {
	t.Helper()
	return (&finoWorld{db: w.db}).query(t, q, args...)
}

// completedProcesses are the processes with data, by bank.
func (w *fimentoWorld) completedProcesses(t *testing.T) map[string][]string {
	out := map[string][]string{}
	for _, bank := range fimentoBanks {
		for _, p := range w.sandbox.Processes(bank) {
			if w.sandbox.Status(bank, p) == fimento.StatusCompleted {
				out[bank] = append(out[bank], p)
			}
		}
	}
	return out
}

func (w *fimentoWorld) snapshot(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT concat('tx ', tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL GROUP BY tenant, user_id`,
		`SELECT concat('bal ', tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(balance))) FROM account_balances FINAL GROUP BY tenant, user_id`,
		`SELECT concat('acc ', tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(assumeNotNull(balance)))) FROM accounts FINAL GROUP BY tenant, user_id`,
		`SELECT concat('ins ', tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(ifNull(value, toDecimal128(0, 6))))) FROM insights FINAL GROUP BY tenant, user_id`,
	} {
		out = append(out, w.query(t, q)...)
	}
	sort.Strings(out)
	return out
}

func TestFimentoCompletedProcessesLoadTheLedger(t *testing.T) {
	w := newFimentoWorld(t, fimento.Faults{})
	for _, run := range w.runAll(t) {
		if run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
			t.Errorf("%s/%s: %s, %d rejects, %s", run.Stream, run.Tenant, run.Status, run.Rejects, run.Error)
		}
	}
	completed := w.completedProcesses(t)
	var n int
	for bank, procs := range completed {
		for _, p := range procs {
			n++
			l, err := w.sandbox.Ledger(bank, p)
			if err != nil {
				t.Fatal(err)
			}
			got := w.query(t, `SELECT concat(toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, bank, p)
			want := fmt.Sprintf("%d %s", l.Transactions, decimal.RequireFromString(l.AmountSum).StringFixed(4))
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s/%s transactions: got %v, ledger %s", bank, p, got, want)
			}
			// Every booking day's sum: the dates are read as written, in Swedish time.
			gotDays := w.query(t, `SELECT concat(toString(booking_date), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ? GROUP BY booking_date ORDER BY booking_date`, bank, p)
			var wantDays []string
			for d, sum := range l.Days {
				wantDays = append(wantDays, d+" "+decimal.RequireFromString(sum).StringFixed(4))
			}
			sort.Strings(wantDays)
			if strings.Join(gotDays, "\n") != strings.Join(wantDays, "\n") {
				t.Errorf("%s/%s: daily sums differ from the ledger", bank, p)
			}
			gotBal := w.query(t, `SELECT concat(toString(balance_date), ' ', toString(balance)) FROM account_balances FINAL WHERE tenant = ? AND user_id = ? AND account_id = '*' AND granularity = 'day' ORDER BY balance_date`, bank, p)
			var wantBal []string
			for d, b := range l.Balances {
				wantBal = append(wantBal, d+" "+decimal.RequireFromString(b).StringFixed(4))
			}
			sort.Strings(wantBal)
			if len(gotBal) == 0 || strings.Join(gotBal, "\n") != strings.Join(wantBal, "\n") {
				t.Errorf("%s/%s: %d daily balances, ledger %d, or they differ", bank, p, len(gotBal), len(wantBal))
			}
			gotAcc := w.query(t, `SELECT concat(account_id, ' ', account_type, ' ', toString(balance)) FROM accounts FINAL WHERE tenant = ? AND user_id = ? ORDER BY account_id`, bank, p)
			var wantAcc []string
			for id, b := range l.Accounts {
				kind := "checking"
				if strings.Contains(strings.Join(gotAcc, " "), id+" savings") {
					kind = "savings"
				}
				wantAcc = append(wantAcc, id+" "+kind+" "+decimal.RequireFromString(b).StringFixed(4))
			}
			sort.Strings(wantAcc)
			if strings.Join(gotAcc, "\n") != strings.Join(wantAcc, "\n") {
				t.Errorf("%s/%s accounts:\ngot  %v\nwant %v", bank, p, gotAcc, wantAcc)
			}
			for cat, sum := range l.Categories {
				got := w.query(t, `SELECT toString(value) FROM insights FINAL WHERE tenant = ? AND user_id = ? AND module = 'fimento-insights' AND metric = ?`, bank, p, "categorisation."+cat+".sum")
				if want := decimal.RequireFromString(sum).StringFixed(6); len(got) != 1 || got[0] != want {
					t.Errorf("%s/%s insight categorisation.%s.sum: %v, ledger %s", bank, p, cat, got, want)
				}
			}
		}
	}
	if n < 4 {
		t.Fatalf("only %d completed processes", n)
	}
	// The keyed person reference joins the good SSN's processes across banks.
	refs := w.query(t, `SELECT DISTINCT value_text FROM insights FINAL WHERE metric = 'person_ref'`)
	if len(refs) != 1 || !strings.HasPrefix(refs[0], "hmac-sha256:") || refs[0] != fimento.PersonRef([]byte("test-hash-key"), fimento.GoodSSN) {
		t.Errorf("person refs: %v", refs)
	}
	// Processes in other states loaded nothing and say why.
	for _, bank := range fimentoBanks {
		subs, err := w.state.Subjects(context.Background(), "fimento", bank, "process")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			status := w.sandbox.Status(bank, s.ID)
			rows := w.query(t, `SELECT toString(count()) FROM transactions FINAL WHERE user_id = ?`, s.ID)
			switch status {
			case fimento.StatusCompleted:
				if s.Status != "" || rows[0] == "0" {
					t.Errorf("completed %s: registry %q, %s rows", s.ID, s.Status, rows[0])
				}
			case fimento.StatusCustomerDenied:
				if s.Status != clickhouse.StatusRevoked || !strings.Contains(s.StatusDetail, "customerDeniedConsent") || rows[0] != "0" {
					t.Errorf("denied %s: registry %q %q, %s rows", s.ID, s.Status, s.StatusDetail, rows[0])
				}
			default:
				if s.Status != "skipped" || !strings.Contains(s.StatusDetail, status) || rows[0] != "0" {
					t.Errorf("%s %s: registry %q %q, %s rows", status, s.ID, s.Status, s.StatusDetail, rows[0])
				}
				if status == fimento.StatusAuthError && !strings.Contains(s.StatusDetail, "denied sharing consent") {
					t.Errorf("authError %s: detail %q lacks the bank's message", s.ID, s.StatusDetail)
				}
			}
		}
	}
	runs := w.query(t, `SELECT error FROM etl_runs FINAL WHERE stream = 'fimento.transactions'`)
	if len(runs) != 2 || !strings.Contains(runs[0], "skipped 2 subject(s)") || !strings.Contains(runs[0], "deleted the rows of 1 subject(s)") {
		t.Errorf("etl_runs errors: %q", runs)
	}
}

// personalDataFree fails the test if any String or Array(String) column of
// any table of the database, or the logs, holds the sandbox's personal data.
func personalDataFree(t *testing.T, w *fimentoWorld) int {
	t.Helper()
	pii := w.sandbox.PersonalData()
	cols := w.query(t, `SELECT concat(table, '.', name) FROM system.columns WHERE database = ? AND (type = 'String' OR type = 'Array(String)' OR type = 'Nullable(String)')`, w.db.Database())
	if len(cols) < 50 {
		t.Fatalf("only %d string columns found", len(cols))
	}
	for _, c := range cols {
		table, col, _ := strings.Cut(c, ".")
		expr := "`" + col + "`"
		if strings.HasPrefix(w.query(t, `SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = ?`, w.db.Database(), table, col)[0], "Array") {
			expr = "arrayStringConcat(" + expr + ", ' ')"
		}
		for _, v := range pii {
			got := w.query(t, "SELECT toString(count()) FROM `"+table+"` WHERE positionCaseInsensitiveUTF8("+expr+", ?) > 0", v)
			if got[0] != "0" {
				t.Errorf("%s holds %q in %s rows", c, v, got[0])
			}
		}
	}
	logs := w.logs.String()
	if len(logs) == 0 {
		t.Fatal("no logs captured")
	}
	for _, v := range pii {
		if strings.Contains(strings.ToLower(logs), strings.ToLower(v)) {
			t.Errorf("the logs hold %q", v)
		}
	}
	return len(cols)
}

func TestFimentoNoPersonalDataLands(t *testing.T) {
	w := newFimentoWorld(t, fimento.Faults{Seed: 5, Malformed: 0.05})
	w.runAll(t)
	if got := w.query(t, `SELECT toString(count()) FROM etl_rejects`); got[0] == "0" {
		t.Fatal("no rejects: the scan would not cover raw reject payloads")
	}
	cols := personalDataFree(t, w)
	t.Logf("%d string columns scanned for %d personal values; %d bytes of logs", cols, len(w.sandbox.PersonalData()), len(w.logs.String()))
}

// Revoking consent in the sandbox removes that process's rows on the next
// run, records that it did, and the process is never extracted again.
func TestFimentoRevocationDeletesTheSubject(t *testing.T) {
	w := newFimentoWorld(t, fimento.Faults{})
	w.runAll(t)
	bank := fimentoBanks[0]
	victim := w.completedProcesses(t)[bank][0]
	other := w.completedProcesses(t)[bank][1]
	count := func(p string) string {
		var parts []string
		for _, table := range []string{"transactions", "account_balances", "accounts", "insights"} {
			parts = append(parts, w.query(t, "SELECT toString(count()) FROM "+table+" FINAL WHERE user_id = ?", p)[0])
		}
		return strings.Join(parts, "/")
	}
	before, otherBefore := count(victim), count(other)
	if strings.Contains(before, "/0") || strings.HasPrefix(before, "0/") {
		t.Fatalf("victim has rows %s before", before)
	}
	if err := w.api.SetTestConsent(context.Background(), bank, victim, fimento.ConsentRevoked); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run, err := w.runner.Run(context.Background(), w.streams[1], bank) // fimento.insights finds it first
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if got := count(victim); got != "0/0/0/0" {
		t.Fatalf("victim's rows after the run: %s (before %s)", got, before)
	}
	if got := count(other); got != otherBefore {
		t.Fatalf("another process's rows changed: %s, before %s", got, otherBefore)
	}
	if !strings.Contains(run.Error, "deleted the rows of 2 subject(s)") && !strings.Contains(run.Error, "deleted the rows of 1 subject(s)") {
		t.Errorf("run error %q does not record the deletion", run.Error)
	}
	subs, _ := w.state.Subjects(context.Background(), "fimento", bank, "process")
	for _, s := range subs {
		if s.ID == victim && (s.Status != clickhouse.StatusRevoked || !strings.Contains(s.StatusDetail, "rows deleted from")) {
			t.Errorf("victim in the registry: %q %q", s.Status, s.StatusDetail)
		}
	}
	deleted := 0
	for _, line := range strings.Split(w.logs.String(), "\n") {
		if strings.Contains(line, "subject's rows deleted") {
			deleted++
			if !strings.Contains(line, `"run":"`) || strings.Count(line, `"stream":`) != 1 || strings.Count(line, `"tenant":`) != 1 {
				t.Errorf("the deletion's log line lacks the run id or repeats the stream: %s", line)
			}
		}
	}
	if deleted == 0 {
		t.Error("no log line records the deletion")
	}
	// Registering it again (config, webhook) keeps it revoked, and no run
	// asks Fimento for it again.
	if err := w.state.AddSubjects(context.Background(), []clickhouse.Subject{{Provider: "fimento", Tenant: bank, Kind: "process", ID: victim, Source: clickhouse.SourceWebhook}}); err != nil {
		t.Fatal(err)
	}
	requests := w.api.Stats().Requests
	for _, s := range w.streams {
		if _, err := w.runner.Run(context.Background(), s, bank); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(victim); got != "0/0/0/0" {
		t.Fatalf("victim re-extracted: %s", got)
	}
	t.Logf("deletion run took %v; later runs made %d requests", took, w.api.Stats().Requests-requests)

	// A process deleted at Fimento (404) goes the same way.
	if err := w.api.DeleteProcess(context.Background(), bank, other); err != nil {
		t.Fatal(err)
	}
	if _, err := w.runner.Run(context.Background(), w.streams[0], bank); err != nil {
		t.Fatal(err)
	}
	if got := count(other); got != "0/0/0/0" {
		t.Fatalf("deleted process's rows: %s", got)
	}
}

func TestFimentoFaultsGiveTheCleanWarehouse(t *testing.T) {
	clean := newFimentoWorld(t, fimento.Faults{})
	clean.runAll(t)
	cleanSnap := strings.Join(clean.snapshot(t), "\n")
	all := fimento.Faults{Seed: 3, RateLimit: 0.1, ServerError: 0.1, TokenExpiry: 0.05, Truncated: 0.1, Latency: time.Millisecond}
	tests := []struct {
		name     string
		faults   fimento.Faults
		injected func(fimento.FaultCounts) int64
	}{
		{"429 with Retry-After", fimento.Faults{Seed: 1, RateLimit: 0.2}, func(c fimento.FaultCounts) int64 { return c.RateLimited }},
		{"5xx", fimento.Faults{Seed: 1, ServerError: 0.2}, func(c fimento.FaultCounts) int64 { return c.ServerErrors }},
		{"token expiry", fimento.Faults{Seed: 1, TokenExpiry: 0.1}, func(c fimento.FaultCounts) int64 { return c.TokensExpired }},
		{"malformed JSON bodies", fimento.Faults{Seed: 1, Truncated: 0.15}, func(c fimento.FaultCounts) int64 { return c.Truncated }},
		{"everything at once", all, func(c fimento.FaultCounts) int64 {
			return c.RateLimited * c.ServerErrors * c.TokensExpired * c.Truncated
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFimentoWorld(t, tc.faults)
			var retries uint64
			for _, r := range w.runAll(t) {
				retries += r.Retries
			}
			if injected := w.sandbox.Injected(); tc.injected(injected) == 0 {
				t.Fatalf("the fault never happened: %+v", injected)
			}
			if snap := strings.Join(w.snapshot(t), "\n"); snap != cleanSnap {
				t.Fatalf("the warehouse differs from the fault-free one:\n%s\nclean:\n%s", snap, cleanSnap)
			}
			t.Logf("%d retries, injected %+v", retries, w.sandbox.Injected())
		})
	}
}

// The process-updated webhook brings a new process into the registry, and
// registering the daemon's URL at start-up goes through the documented
// endpoint.
func TestFimentoWebhookBringsAProcess(t *testing.T) {
	db := chtest.NewDB(t)
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{})
	state := clickhouse.NewState(db, loader)
	bank := fimentoBanks[0]
	receiver := httptest.NewServer(fimento.WebhookHandler([]string{bank}, schedules.RecordSubject(state), nil))
	defer receiver.Close()
	clock := &fakeClock{t: time.Date(2026, 2, 24, 6, 0, 0, 0, time.UTC)}
	sb := fimento.NewSandbox(fimento.SandboxOptions{PartnerBanks: []string{bank}, Seed: 2, Now: clock.Now, Step: time.Minute, WebhookPoll: time.Hour})
	srv := httptest.NewServer(sb)
	defer func() { srv.Close(); sb.Close() }()
	api := fimento.NewAPI(fimento.Config{BaseURL: srv.URL, Name: "sandbox-user", Password: "sandbox-password", HashKey: []byte("k"), Now: clock.Now})
	if err := api.AddWebhook(context.Background(), receiver.URL); err != nil {
		t.Fatal(err)
	}
	slow := sb.Processes(bank)[3]
	if got := sb.Status(bank, slow); got != fimento.StatusCreated {
		t.Fatalf("slow process starts in %q", got)
	}
	clock.Advance(90 * time.Second) // one step on: consentLinkOpened
	sb.Tick()
	subs, err := state.Subjects(context.Background(), "fimento", bank, "process")
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].ID != slow || subs[0].Source != clickhouse.SourceWebhook {
		t.Fatalf("registry after the webhook: %+v", subs)
	}
	runner := &schedules.Runner{Loader: loader, State: state}
	if _, err := runner.Run(context.Background(), fimento.Streams(api)[0], bank); err != nil {
		t.Fatal(err)
	}
	if got := query(t, db, `SELECT toString(count()) FROM transactions`); got[0] != "0" {
		t.Fatalf("a process in consentLinkOpened loaded %s rows", got[0])
	}
	clock.Advance(20 * time.Minute) // completed by now
	sb.Tick()
	if _, err := runner.Run(context.Background(), fimento.Streams(api)[0], bank); err != nil {
		t.Fatal(err)
	}
	l, err := sb.Ledger(bank, slow)
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, db, `SELECT toString(count()) FROM transactions FINAL`); got[0] != fmt.Sprint(l.Transactions) {
		t.Fatalf("completed slow process: %s rows, ledger %d", got[0], l.Transactions)
	}
	if sb.WebhooksSent() < 2 {
		t.Errorf("%d webhooks sent", sb.WebhooksSent())
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
