package fimento_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fimento"
	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"
	"github.com/finsync/finsync/extract/fingoal"
	fgsb "github.com/finsync/finsync/extract/fingoal/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

var fimentoBanks = []string{"605c6c479691950d359bb0e9", "605c6c479691950d359bb0ea"}

// fimentoWorld is a Fimento sandbox and its client in a
// schedulestest.World on the wall clock, with the run's log captured.
type fimentoWorld struct {
	*schedulestest.World
	sandbox *fimentosb.Server
	streams []extract.Stream
	api     *fimento.API
	logs    *schedulestest.SyncBuffer
	base    string // the sandbox's URL
}

func newFimentoWorld(t *testing.T, faults sandboxkit.Knobs) *fimentoWorld {
	t.Helper()
	return newFimentoWorldWith(t, fimentosb.Options{Faults: faults})
}

// newFimentoWorldWith is newFimentoWorld with more sandbox options (banks,
// months, seed and page size are the world's).
func newFimentoWorldWith(t *testing.T, opts fimentosb.Options) *fimentoWorld {
	t.Helper()
	opts.PartnerBanks, opts.Months, opts.Seed, opts.PageSize = fimentoBanks, 3, 11, 20
	sb := fimentosb.New(opts)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { srv.Close(); sb.Close() })
	logs := &schedulestest.SyncBuffer{}
	log := slog.New(schedules.RunHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	w := &fimentoWorld{World: schedulestest.NewLoggedWorld(t, time.Time{}, log), sandbox: sb, logs: logs, base: srv.URL}
	var subs []extract.Subject
	for _, bank := range fimentoBanks {
		for _, p := range sb.Processes(bank) {
			subs = append(subs, extract.Subject{Provider: "fimento", Tenant: bank, Kind: "process", ID: p, Source: clickhouse.SourceConfig})
		}
	}
	w.AddSubjects(t, subs...)
	w.api = fimento.NewAPI(fimento.Config{BaseURL: srv.URL, Name: "sandbox-user", Password: "sandbox-password",
		HashKey: []byte("test-hash-key"), RateLimit: 1000, Logger: log})
	w.streams = fimento.Streams(w.api)
	return w
}

func (w *fimentoWorld) runAll(t *testing.T) []clickhouse.Run {
	t.Helper()
	return w.RunAll(t, w.streams, fimentoBanks)
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
		out = append(out, w.Query(t, q)...)
	}
	sort.Strings(out)
	return out
}

func TestFimentoCompletedProcessesLoadTheLedger(t *testing.T) {
	w := newFimentoWorld(t, sandboxkit.Knobs{})
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
			got := w.Query(t, `SELECT concat(toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, bank, p)
			want := fmt.Sprintf("%d %s", l.Transactions, decimal.RequireFromString(l.AmountSum).StringFixed(4))
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s/%s transactions: got %v, ledger %s", bank, p, got, want)
			}
			// Every booking day's sum: the dates are read as written, in Swedish time.
			gotDays := w.Query(t, `SELECT concat(toString(booking_date), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ? GROUP BY booking_date ORDER BY booking_date`, bank, p)
			var wantDays []string
			for d, sum := range l.Days {
				wantDays = append(wantDays, d+" "+decimal.RequireFromString(sum).StringFixed(4))
			}
			sort.Strings(wantDays)
			if strings.Join(gotDays, "\n") != strings.Join(wantDays, "\n") {
				t.Errorf("%s/%s: daily sums differ from the ledger", bank, p)
			}
			gotBal := w.Query(t, `SELECT concat(toString(balance_date), ' ', toString(balance)) FROM account_balances FINAL WHERE tenant = ? AND user_id = ? AND account_id = '*' AND granularity = 'day' ORDER BY balance_date`, bank, p)
			var wantBal []string
			for d, b := range l.Balances {
				wantBal = append(wantBal, d+" "+decimal.RequireFromString(b).StringFixed(4))
			}
			sort.Strings(wantBal)
			if len(gotBal) == 0 || strings.Join(gotBal, "\n") != strings.Join(wantBal, "\n") {
				t.Errorf("%s/%s: %d daily balances, ledger %d, or they differ", bank, p, len(gotBal), len(wantBal))
			}
			gotAcc := w.Query(t, `SELECT concat(account_id, ' ', account_type, ' ', toString(balance)) FROM accounts FINAL WHERE tenant = ? AND user_id = ? ORDER BY account_id`, bank, p)
			var wantAcc []string
			for acc, b := range l.Accounts {
				id := fimento.AccountID(acc.Bank, acc.Number)
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
				got := w.Query(t, `SELECT toString(value) FROM insights FINAL WHERE tenant = ? AND user_id = ? AND module = 'fimento-insights' AND metric = ?`, bank, p, "categorisation."+cat+".sum")
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
	refs := w.Query(t, `SELECT DISTINCT value_text FROM insights FINAL WHERE metric = 'person_ref'`)
	if len(refs) != 1 || !strings.HasPrefix(refs[0], "hmac-sha256:") || refs[0] != fimento.PersonRef([]byte("test-hash-key"), fimentosb.GoodSSN) {
		t.Errorf("person refs: %v", refs)
	}
	// Processes in other states loaded nothing and say why.
	for _, bank := range fimentoBanks {
		subs, err := w.State.Subjects(context.Background(), "fimento", bank, "process")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			status := w.sandbox.Status(bank, s.ID)
			rows := w.Query(t, `SELECT toString(count()) FROM transactions FINAL WHERE user_id = ?`, s.ID)
			switch status {
			case fimento.StatusCompleted:
				if s.Status != "" || rows[0] == "0" {
					t.Errorf("completed %s: registry %q, %s rows", s.ID, s.Status, rows[0])
				}
			case fimento.StatusCustomerDenied:
				if s.Status != extract.SubjectRevoked || !strings.Contains(s.StatusDetail, "customerDeniedConsent") || rows[0] != "0" {
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
	runs := w.Query(t, `SELECT error FROM etl_runs FINAL WHERE stream = 'fimento.transactions'`)
	if len(runs) != 2 || !strings.Contains(runs[0], "skipped 2 subject(s)") || !strings.Contains(runs[0], "deleted the rows of 1 subject(s)") {
		t.Errorf("etl_runs errors: %q", runs)
	}
}

// personalDataFree fails the test if any String or Array(String) column of
// any table of the database, or the logs, holds the sandbox's personal data.
func personalDataFree(t *testing.T, w *fimentoWorld) int {
	t.Helper()
	pii := w.sandbox.PersonalData()
	cols := w.Query(t, `SELECT concat(table, '.', name) FROM system.columns WHERE database = ? AND (type = 'String' OR type = 'Array(String)' OR type = 'Nullable(String)')`, w.DB.Database())
	if len(cols) < 50 {
		t.Fatalf("only %d string columns found", len(cols))
	}
	for _, c := range cols {
		table, col, _ := strings.Cut(c, ".")
		expr := "`" + col + "`"
		if strings.HasPrefix(w.Query(t, `SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = ?`, w.DB.Database(), table, col)[0], "Array") {
			expr = "arrayStringConcat(" + expr + ", ' ')"
		}
		for _, v := range pii {
			got := w.Query(t, "SELECT toString(count()) FROM `"+table+"` WHERE positionCaseInsensitiveUTF8("+expr+", ?) > 0", v)
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
	w := newFimentoWorld(t, sandboxkit.Knobs{Seed: 5, Malformed: 0.05})
	w.runAll(t)
	if got := w.Query(t, `SELECT toString(count()) FROM etl_rejects`); got[0] == "0" {
		t.Fatal("no rejects: the scan would not cover raw reject payloads")
	}
	// The sandbox's free text names its customers ("Swish från <first>
	// <last> <ssn>", "Astrids sparkonto"): what landed of it is redacted.
	swish := w.Query(t, `SELECT DISTINCT description FROM transactions WHERE startsWith(description, 'Swish från') ORDER BY description`)
	named := w.Query(t, `SELECT DISTINCT name FROM accounts WHERE position(name, '[redacted]') > 0 ORDER BY name`)
	if len(swish) == 0 || len(named) == 0 {
		t.Fatalf("no free text naming a customer landed (descriptions %v, account names %v): the scan would prove nothing", swish, named)
	}
	for _, d := range swish {
		if d != "Swish från [redacted] [redacted] [redacted]" {
			t.Errorf("description %q is not redacted", d)
		}
	}
	t.Logf("redacted free text: %q, %q", swish, named)
	cols := personalDataFree(t, w)
	t.Logf("%d string columns scanned for %d personal values; %d bytes of logs", cols, len(w.sandbox.PersonalData()), len(w.logs.String()))
}

// fingoalOver is a FinGoal sandbox and client enriching what a world
// loaded, into the same database through the same runner; its webhook
// receiver lands what webhooks carry.
type fingoalOver struct {
	sandbox *fgsb.Server
	api     *fingoal.API
	tenant  string
	idKey   []byte
	hook    http.Handler
	secret  string
}

func newFingoalOver(t *testing.T, w *schedulestest.World, knobs sandboxkit.Knobs) *fingoalOver {
	t.Helper()
	sb := fgsb.New(fgsb.Options{Faults: knobs})
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { srv.Close(); sb.Close() })
	id, secret := sb.Credentials()
	f := &fingoalOver{sandbox: sb, tenant: id, idKey: []byte("fimento-test-id-key-0123"), secret: secret}
	f.api = fingoal.NewAPI(fingoal.Config{BaseURL: srv.URL + "/v3", ClientID: id, ClientSecret: secret, IDKey: string(f.idKey),
		RateLimit: 1000, SyncTags: true, PollInitial: 5 * time.Millisecond, PollMax: 20 * time.Millisecond, PollTimeout: 10 * time.Second})
	f.hook = fingoal.WebhookHandler(fingoal.WebhookConfig{Secret: secret, API: f.api, Hooks: extract.Hooks{Subject: schedules.RecordSubject(w.State),
		Job: schedules.RecordJob(w.State), Version: w.State.Version,
		Insert: w.Loader.Insert}})
	return f
}

// run runs one FinGoal stream (by name suffix) for the client's tenant.
func (f *fingoalOver) run(t *testing.T, r *schedules.Runner, name string) clickhouse.Run {
	t.Helper()
	for _, s := range fingoal.Streams(f.api) {
		if s.Name == name {
			run, err := r.Run(context.Background(), s, f.tenant)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return run
		}
	}
	t.Fatalf("no stream %s", name)
	return clickhouse.Run{}
}

// webhook posts a signed webhook body to the receiver.
func (f *fingoalOver) webhook(t *testing.T, body string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/fingoal", strings.NewReader(body))
	req.Header.Set(fingoal.SignatureHeader, fingoal.Sign(f.secret, []byte(body)))
	rr := httptest.NewRecorder()
	f.hook.ServeHTTP(rr, req)
	if rr.Code != http.StatusNoContent {
		t.Fatalf("webhook %s: %d %s", body, rr.Code, rr.Body)
	}
}

// Revoking consent in the sandbox removes that process's rows on the next
// run, and every copy FinGoal made of them (enriched transactions, the
// person's tags and savings recommendations, rejects, the ledger), records
// that it did, and the process is never extracted again.
func TestFimentoRevocationDeletesTheSubject(t *testing.T) {
	w := newFimentoWorld(t, sandboxkit.Knobs{})
	w.runAll(t)
	bank := fimentoBanks[0]
	victim := w.completedProcesses(t)[bank][0]
	other := w.completedProcesses(t)[bank][1]

	// FinGoal enriches what Fimento loaded (some items come back malformed:
	// rejects keyed batch/transaction), tags the users, and recommends.
	fg := newFingoalOver(t, w.World, sandboxkit.Knobs{Seed: 4, Malformed: 0.1})
	fg.run(t, w.Runner, fingoal.StreamEnrichment)
	fg.run(t, w.Runner, fingoal.StreamUserTags)
	uid := fingoal.Opaque(fg.idKey, "user", "fimento", bank, victim)
	fg.webhook(t, `{"finsights":[{"finsight_id":"fs-1","uniqueId":"c:t","user_id":"`+uid+`","transaction_id":"t","recommendation":"Save","amountFound":1.5}]}`)
	fg.webhook(t, `{"userTags":{"uid":"`+uid+`","created":["saver_user"],"deleted":[]}}`)

	count := func(p string) string {
		var parts []string
		for _, table := range []string{"transactions", "account_balances", "accounts", "insights"} {
			parts = append(parts, w.Query(t, "SELECT toString(count()) FROM "+table+" FINAL WHERE user_id = ?", p)[0])
		}
		return strings.Join(parts, "/")
	}
	copies := func() string {
		return strings.Join([]string{
			w.Query(t, "SELECT toString(count()) FROM transactions FINAL WHERE provider = 'fingoal' AND user_id = ?", uid)[0],
			w.Query(t, "SELECT toString(count()) FROM user_tags FINAL WHERE user_id = ?", uid)[0],
			w.Query(t, "SELECT toString(count()) FROM insights FINAL WHERE provider = 'fingoal' AND user_id = ?", uid)[0],
			w.Query(t, "SELECT toString(count()) FROM enrichment_submissions FINAL WHERE source_provider = 'fimento' AND user_id = ?", victim)[0],
			w.Query(t, `SELECT toString(count()) FROM etl_rejects WHERE provider = 'fingoal' AND (position(raw, ?) > 0 OR record_key IN
				(SELECT concat(batch_request_id, '/', enrich_transaction_id) FROM enrichment_submissions WHERE user_id = ?))`, uid, victim)[0],
		}, "/")
	}
	before, otherBefore, copiesBefore := count(victim), count(other), copies()
	if strings.Contains(before, "/0") || strings.HasPrefix(before, "0/") {
		t.Fatalf("victim has rows %s before", before)
	}
	if strings.Contains(copiesBefore, "/0") || strings.HasPrefix(copiesBefore, "0/") {
		t.Fatalf("FinGoal's copies of the victim before (enriched/tags/finsights/ledger/rejects): %s", copiesBefore)
	}
	otherCopies := w.Query(t, "SELECT toString(count()) FROM transactions FINAL WHERE provider = 'fingoal' AND user_id = ?",
		fingoal.Opaque(fg.idKey, "user", "fimento", bank, other))[0]
	if err := w.api.SetTestConsent(context.Background(), bank, victim, fimento.ConsentRevoked); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run, err := w.Runner.Run(context.Background(), w.streams[1], bank) // fimento.insights finds it first
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
	if got := copies(); got != "0/0/0/0/0" {
		t.Fatalf("FinGoal's copies of the victim after the run (enriched/tags/finsights/ledger/rejects): %s, before %s", got, copiesBefore)
	}
	if got := w.Query(t, "SELECT toString(count()) FROM transactions FINAL WHERE provider = 'fingoal' AND user_id = ?",
		fingoal.Opaque(fg.idKey, "user", "fimento", bank, other))[0]; got != otherCopies || got == "0" {
		t.Fatalf("another process's FinGoal copies: %s, before %s", got, otherCopies)
	}
	// Nothing of the victim is left anywhere: neither its id nor its
	// FinGoal uid, in any String column of any table, except the registry
	// (which keeps it revoked, so it is never read again) and etl_runs
	// (which records the deletion).
	for _, c := range w.Query(t, `SELECT concat(table, '.', name, '.', type) FROM system.columns WHERE database = ? AND type LIKE '%String%'
		AND table NOT IN ('subjects', 'etl_runs', 'schema_migrations') AND NOT startsWith(table, 'v_') AND table NOT IN ('transactions_enriched', 'current_segment_members', 'latest_segment_members')`, w.DB.Database()) {
		parts := strings.SplitN(c, ".", 3)
		expr := "`" + parts[1] + "`"
		if strings.HasPrefix(parts[2], "Array") {
			expr = "arrayStringConcat(" + expr + ", ' ')"
		}
		if n := w.Query(t, "SELECT toString(count()) FROM `"+parts[0]+"` WHERE position("+expr+", ?) > 0 OR position("+expr+", ?) > 0", victim, uid)[0]; n != "0" {
			t.Errorf("%s.%s still holds the victim in %s rows", parts[0], parts[1], n)
		}
	}
	copySubs, _ := w.State.Subjects(context.Background(), "fingoal", fg.tenant, "user")
	for _, s := range copySubs {
		if s.ID == uid && (s.Status != extract.SubjectRevoked || !strings.Contains(s.StatusDetail, victim)) {
			t.Errorf("the victim's FinGoal user in the registry: %q %q", s.Status, s.StatusDetail)
		}
	}
	// Later FinGoal runs neither read the copy again nor send anything anew.
	received := len(fg.sandbox.Received())
	fg.run(t, w.Runner, fingoal.StreamEnrichment)
	fg.run(t, w.Runner, fingoal.StreamUserTags)
	if got := copies(); got != "0/0/0/0/0" || len(fg.sandbox.Received()) != received {
		t.Fatalf("after later FinGoal runs: copies %s, FinGoal received %d transactions (before %d)", got, len(fg.sandbox.Received()), received)
	}
	if !strings.Contains(run.Error, "deleted the rows of 2 subject(s)") && !strings.Contains(run.Error, "deleted the rows of 1 subject(s)") {
		t.Errorf("run error %q does not record the deletion", run.Error)
	}
	subs, _ := w.State.Subjects(context.Background(), "fimento", bank, "process")
	for _, s := range subs {
		if s.ID == victim && (s.Status != extract.SubjectRevoked || !strings.Contains(s.StatusDetail, "rows deleted from")) {
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
	if err := w.State.AddSubjects(context.Background(), []extract.Subject{{Provider: "fimento", Tenant: bank, Kind: "process", ID: victim, Source: clickhouse.SourceWebhook}}); err != nil {
		t.Fatal(err)
	}
	requests := w.api.Stats().Requests
	for _, s := range w.streams {
		if _, err := w.Runner.Run(context.Background(), s, bank); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(victim); got != "0/0/0/0" {
		t.Fatalf("victim re-extracted: %s", got)
	}
	t.Logf("deletion run took %v; later runs made %d requests", took, w.api.Stats().Requests-requests)

	// A process Fimento no longer knows (404) goes the same way, but only
	// once a later run, past the quarantine's grace, gets the same answer:
	// one 404 may be a glitch.
	otherBefore = count(other)
	if err := w.api.DeleteProcess(context.Background(), bank, other); err != nil {
		t.Fatal(err)
	}
	status := func() (string, string) {
		subs, _ := w.State.Subjects(context.Background(), "fimento", bank, "process")
		for _, s := range subs {
			if s.ID == other {
				return s.Status, s.StatusDetail
			}
		}
		return "", ""
	}
	now := time.Now().UTC()
	for _, step := range []struct {
		at     time.Time
		status string
		rows   string
	}{
		{now, extract.SubjectQuarantined, otherBefore},
		{now.Add(23 * time.Hour), extract.SubjectQuarantined, otherBefore},
		{now.Add(25 * time.Hour), extract.SubjectRevoked, "0/0/0/0"},
	} {
		w.SetNow(step.at)
		run, err := w.Runner.Run(context.Background(), w.streams[0], bank)
		if err != nil {
			t.Fatal(err)
		}
		if st, detail := status(); st != step.status || count(other) != step.rows {
			t.Fatalf("%s after the 404: registry %q %q, rows %s (before %s); run: %s", step.at.Sub(now), st, detail, count(other), otherBefore, run.Error)
		}
	}
	w.SetNow(time.Time{})
}

// One 404 deletes nothing: the subject is quarantined, an answer lifts the
// quarantine, finsync reactivate-style entries too; and a path that
// answers 404 for every process is a configuration error, not mass
// deletion.
func TestFimentoOneNotFoundDeletesNothing(t *testing.T) {
	w := newFimentoWorld(t, sandboxkit.Knobs{})
	w.runAll(t)
	bank := fimentoBanks[0]
	procs := w.completedProcesses(t)[bank]
	rows := func() string {
		return w.Query(t, "SELECT toString(count()) FROM transactions FINAL WHERE provider = 'fimento'")[0]
	}
	before := rows()
	statuses := func() map[string]string {
		subs, _ := w.State.Subjects(context.Background(), "fimento", bank, "process")
		m := map[string]string{}
		for _, s := range subs {
			m[s.ID] = s.Status
		}
		return m
	}
	statusesBefore := statuses()
	// Every process answers 404 (a wrong path, a maintenance page): the
	// run fails and nothing is quarantined or deleted.
	paths := fimento.DefaultPaths()
	paths.Process = "/no-such-path/{processId}"
	broken := fimento.NewAPI(fimento.Config{BaseURL: w.base, Name: "sandbox-user", Password: "sandbox-password",
		HashKey: []byte("test-hash-key"), RateLimit: 1000, Paths: paths})
	run, err := w.Runner.Run(context.Background(), fimento.Streams(broken)[0], bank)
	if err == nil || run.Status != "failed" || !strings.Contains(run.Error, "deletions; nothing was quarantined or deleted") {
		t.Fatalf("a path answering 404 for all: %s %q %v", run.Status, run.Error, err)
	}
	if got := statuses(); !maps.Equal(got, statusesBefore) {
		t.Errorf("the registry after a configuration error: %v, before %v", got, statusesBefore)
	}
	if rows() != before {
		t.Errorf("rows %s, before %s", rows(), before)
	}

	// One process answers 404: quarantined, its rows stay; once it answers
	// again the quarantine is lifted.
	victim := procs[0]
	status := func() (string, string) {
		subs, _ := w.State.Subjects(context.Background(), "fimento", bank, "process")
		for _, s := range subs {
			if s.ID == victim {
				return s.Status, s.StatusDetail
			}
		}
		return "", ""
	}
	w.sandbox.Hide(bank, victim, true)
	run, err = w.Runner.Run(context.Background(), w.streams[0], bank)
	if st, detail := status(); err != nil || st != extract.SubjectQuarantined || !strings.Contains(run.Error, "quarantined 1 subject(s)") || rows() != before {
		t.Fatalf("one 404: registry %q %q, rows %s (before %s); run %q %v", st, detail, rows(), before, run.Error, err)
	}
	w.sandbox.Hide(bank, victim, false)
	run, err = w.Runner.Run(context.Background(), w.streams[0], bank)
	if st, detail := status(); err != nil || st != extract.SubjectActive || !strings.Contains(run.Error, "lifted the quarantine of 1 subject(s)") {
		t.Fatalf("answering again: registry %q %q; run %q %v", st, detail, run.Error, err)
	}
}

// held is s with a Run that, once the inner one handed over its records
// (the runner loads them only after Run returns), says so and waits.
func held(s extract.Stream, reached chan<- string, release <-chan struct{}) extract.Stream {
	inner := s.Run
	s.Run = func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
		cursor, err := inner(ctx, req, out)
		reached <- s.Name
		<-release
		return cursor, err
	}
	return s
}

// Runs of one provider's streams may overlap (the daemon allows
// provider.fimento: 2), and so may FinGoal's enrichment: a run that read a
// subject before another run found it revoked loads its rows after their
// deletion. Those rows do not survive the run that loaded them.
func TestRevocationRacingOtherRunsLeavesNothing(t *testing.T) {
	w := newFimentoWorld(t, sandboxkit.Knobs{})
	w.runAll(t)
	bank := fimentoBanks[0]
	victim, other := w.completedProcesses(t)[bank][0], w.completedProcesses(t)[bank][1]
	fg := newFingoalOver(t, w.World, sandboxkit.Knobs{Seed: 4, Malformed: 0.1})
	uid := fingoal.Opaque(fg.idKey, "user", "fimento", bank, victim)
	rows := func(id string) string {
		return w.Query(t, `SELECT toString(count()) FROM (SELECT user_id FROM transactions UNION ALL SELECT user_id FROM account_balances
			UNION ALL SELECT user_id FROM accounts UNION ALL SELECT user_id FROM insights UNION ALL SELECT user_id FROM user_tags
			UNION ALL SELECT user_id FROM enrichment_submissions UNION ALL SELECT splitByChar('/', record_key)[1] AS user_id FROM etl_rejects)
			WHERE user_id = ?`, id)[0]
	}
	kept := func() string {
		return w.Query(t, "SELECT toString(count()) FROM transactions FINAL WHERE provider = 'fimento' AND user_id = ?", other)[0]
	}
	otherBefore := kept()

	// fimento.transactions re-reads the victim, fingoal.enrichment sends and
	// collects its transactions; both are held before their loads.
	reached, release := make(chan string, 2), make(chan struct{})
	var fgEnrichment extract.Stream
	for _, s := range fingoal.Streams(fg.api) {
		if s.Name == fingoal.StreamEnrichment {
			fgEnrichment = s
		}
	}
	runs := make(chan clickhouse.Run, 2)
	go func() {
		run, _ := w.Runner.Run(context.Background(), held(w.streams[0], reached, release), bank)
		runs <- run
	}()
	go func() {
		run, _ := w.Runner.Run(context.Background(), held(fgEnrichment, reached, release), fg.tenant)
		runs <- run
	}()
	for range 2 {
		select {
		case <-reached:
		case <-time.After(60 * time.Second):
			t.Fatal("the held runs did not get to their loads")
		}
	}
	if got := w.Query(t, "SELECT toString(count()) FROM enrichment_submissions FINAL WHERE user_id = ? AND status = 'submitted'", victim)[0]; got == "0" {
		t.Fatal("the enrichment committed no ledger row of the victim")
	}
	// Meanwhile the customer revokes, and fimento.insights deletes the
	// victim's rows (and FinGoal's copies, what of them is loaded yet).
	if err := w.api.SetTestConsent(context.Background(), bank, victim, fimento.ConsentRevoked); err != nil {
		t.Fatal(err)
	}
	if run, err := w.Runner.Run(context.Background(), w.streams[1], bank); err != nil || !strings.Contains(run.Error, "deleted the rows of 1 subject(s)") {
		t.Fatalf("the revoking run: %v %q", err, run.Error)
	}
	close(release)
	var notes []string
	for range 2 {
		run := <-runs
		if run.Status != clickhouse.RunSuccess {
			t.Fatalf("%s: %s %s", run.Stream, run.Status, run.Error)
		}
		notes = append(notes, run.Stream+": "+run.Error)
	}
	if got := rows(victim) + "/" + rows(uid); got != "0/0" {
		t.Fatalf("rows of the revoked process / of its FinGoal copy after the racing runs loaded: %s; notes %q", got, notes)
	}
	if got := kept(); got != otherBefore || got == "0" {
		t.Errorf("another process's transactions: %s, before %s", got, otherBefore)
	}
	for _, n := range notes {
		if !strings.Contains(n, "deleted again the rows of 1 revoked subject(s)") {
			t.Errorf("run note %q does not say it deleted the late rows", n)
		}
	}
}

func TestFimentoFaultsGiveTheCleanWarehouse(t *testing.T) {
	clean := newFimentoWorld(t, sandboxkit.Knobs{})
	clean.runAll(t)
	cleanSnap := strings.Join(clean.snapshot(t), "\n")
	all := sandboxkit.Knobs{Seed: 3, RateLimit: 0.1, ServerError: 0.1, TokenExpiry: 0.05, Truncated: 0.1, Latency: time.Millisecond}
	tests := []struct {
		name     string
		faults   sandboxkit.Knobs
		injected func(sandboxkit.Counts) int64
	}{
		{"429 with Retry-After", sandboxkit.Knobs{Seed: 1, RateLimit: 0.2}, func(c sandboxkit.Counts) int64 { return c.RateLimited }},
		{"5xx", sandboxkit.Knobs{Seed: 1, ServerError: 0.2}, func(c sandboxkit.Counts) int64 { return c.ServerErrors }},
		{"token expiry", sandboxkit.Knobs{Seed: 1, TokenExpiry: 0.1}, func(c sandboxkit.Counts) int64 { return c.TokensExpired }},
		{"malformed JSON bodies", sandboxkit.Knobs{Seed: 1, Truncated: 0.15}, func(c sandboxkit.Counts) int64 { return c.Truncated }},
		{"everything at once", all, func(c sandboxkit.Counts) int64 {
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
	w := schedulestest.NewWorld(t, time.Time{})
	bank := fimentoBanks[0]
	clock := &fakeClock{t: time.Date(2026, 2, 24, 6, 0, 0, 0, time.UTC)}
	sb := fimentosb.New(fimentosb.Options{PartnerBanks: []string{bank}, Seed: 2, Now: clock.Now, Step: time.Minute, WebhookPoll: time.Hour})
	srv := httptest.NewServer(sb)
	defer func() { srv.Close(); sb.Close() }()
	api := fimento.NewAPI(fimento.Config{BaseURL: srv.URL, Name: "sandbox-user", Password: "sandbox-password", HashKey: []byte("k"), Now: clock.Now})
	receiver := httptest.NewServer(fimento.WebhookHandler([]string{bank}, extract.Hooks{Subject: schedules.RecordSubject(w.State)}, api.Known, nil))
	defer receiver.Close()
	// Fimento signs nothing: a forged id is checked (one GET), answered
	// like any other, and records nothing.
	for _, forged := range []string{"aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"} {
		resp, err := http.Post(receiver.URL, "application/json", strings.NewReader(`{"_id":"`+forged+`","partnerBank":"`+bank+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("a forged id: %s", resp.Status)
		}
	}
	if subs, _ := w.State.Subjects(context.Background(), "fimento", bank, "process"); len(subs) != 0 {
		t.Fatalf("forged ids recorded: %+v", subs)
	}
	if err := api.AddWebhook(context.Background(), receiver.URL); err != nil {
		t.Fatal(err)
	}
	slow := sb.Processes(bank)[3]
	if got := sb.Status(bank, slow); got != fimento.StatusCreated {
		t.Fatalf("slow process starts in %q", got)
	}
	clock.Advance(90 * time.Second) // one step on: consentLinkOpened
	sb.Tick()
	subs, err := w.State.Subjects(context.Background(), "fimento", bank, "process")
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].ID != slow || subs[0].Source != clickhouse.SourceWebhook {
		t.Fatalf("registry after the webhook: %+v", subs)
	}
	if _, err := w.Runner.Run(context.Background(), fimento.Streams(api)[0], bank); err != nil {
		t.Fatal(err)
	}
	if got := w.Query(t, `SELECT toString(count()) FROM transactions`); got[0] != "0" {
		t.Fatalf("a process in consentLinkOpened loaded %s rows", got[0])
	}
	clock.Advance(20 * time.Minute) // completed by now
	sb.Tick()
	if _, err := w.Runner.Run(context.Background(), fimento.Streams(api)[0], bank); err != nil {
		t.Fatal(err)
	}
	l, err := sb.Ledger(bank, slow)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Query(t, `SELECT toString(count()) FROM transactions FINAL`); got[0] != fmt.Sprint(l.Transactions) {
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

// Fields Fimento adds that finsync does not read land in raw: a
// transaction's and an account's own in their rows' raw, the process's and
// the insights document's as insights rows of their own, all without the
// customer's identifiers.
func TestFimentoUnknownFieldsLandInRaw(t *testing.T) {
	w := newFimentoWorldWith(t, fimentosb.Options{ExtraFields: true})
	for _, run := range w.runAll(t) {
		if run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
			t.Fatalf("%s/%s: %s, %d rejects, %s", run.Stream, run.Tenant, run.Status, run.Rejects, run.Error)
		}
	}
	completed := 0
	for _, ps := range w.completedProcesses(t) {
		completed += len(ps)
	}
	absent := schedulestest.Equals(nil)
	for _, tc := range []struct {
		what, query string
		checks      []schedulestest.RawCheck
	}{
		{"transactions", `SELECT raw FROM transactions FINAL`, []schedulestest.RawCheck{{Path: []string{"merchantLogo"}, OK: schedulestest.IsString}}},
		{"accounts", `SELECT raw FROM accounts FINAL`, []schedulestest.RawCheck{{Path: []string{"accountLogo"}, OK: schedulestest.IsString}}},
		{"insights.riskScore", `SELECT raw FROM insights FINAL WHERE metric = 'insights.riskScore' AND toString(value) = '0.125000'`,
			[]schedulestest.RawCheck{{Path: nil, OK: schedulestest.Equals(0.125)}}},
		{"insights.merchantSummary", `SELECT raw FROM insights FINAL WHERE metric = 'insights.merchantSummary'`, []schedulestest.RawCheck{
			{Path: []string{"topMerchant"}, OK: schedulestest.Equals("ICA Maxi")},
			{Path: []string{"contact", "firstName"}, OK: absent},
			{Path: []string{"contact", "lastName"}, OK: absent},
		}},
		{"insights.merchantSummary.topMerchant", `SELECT concat('"', value_text, '"') FROM insights FINAL WHERE metric = 'insights.merchantSummary.topMerchant'`,
			[]schedulestest.RawCheck{{Path: nil, OK: schedulestest.Equals("ICA Maxi")}}},
		{"process.customerSegment", `SELECT raw FROM insights FINAL WHERE metric = 'process.customerSegment' AND value_text = 'retail'`,
			[]schedulestest.RawCheck{{Path: nil, OK: schedulestest.Equals("retail")}}},
		{"process.kyc", `SELECT raw FROM insights FINAL WHERE metric = 'process.kyc'`, []schedulestest.RawCheck{
			{Path: []string{"level"}, OK: schedulestest.Equals(2.0)},
			{Path: []string{"ssn"}, OK: absent},
		}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			raws := w.Query(t, tc.query)
			schedulestest.CheckRaws(t, tc.what, raws, tc.checks...)
			if strings.Contains(tc.what, ".") && len(raws) != completed {
				t.Errorf("%d rows, want one per completed process (%d)", len(raws), completed)
			}
		})
	}
	personalDataFree(t, w)
}

// Banks print the customer folded, transliterated, upper-case, the number
// spaced or dashed ("AKERLUND MARTA 19950309 6316"): none of those forms
// lands either (the sandbox lists them among its personal data).
func TestFimentoBankSpellingsAreRedacted(t *testing.T) {
	w := newFimentoWorldWith(t, fimentosb.Options{BankSpellings: true})
	w.runAll(t)
	texts := w.Query(t, `SELECT DISTINCT description FROM transactions WHERE match(description, '^(?i)(swish|insattning)') ORDER BY description`)
	if len(texts) < 4 {
		t.Fatalf("want the Swish texts in four spellings, got %q", texts)
	}
	for _, d := range texts {
		if !strings.Contains(d, "[redacted]") || strings.Count(d, "[redacted]") < 2 {
			t.Errorf("description %q keeps an identifier", d)
		}
	}
	t.Logf("redacted: %q", texts)
	personalDataFree(t, w)
}

// An insights document is loaded as one: one with a string over the field
// limit is rejected, its first bytes (scrubbed) and the limit it broke
// kept; the process's other data loads.
func TestFimentoInsightsOverTheFieldLimitAreRejected(t *testing.T) {
	w := newFimentoWorld(t, sandboxkit.Knobs{HugeField: 300 << 10})
	for _, run := range w.runAll(t) {
		if run.Status != clickhouse.RunSuccess {
			t.Fatalf("%s/%s: %s, %s", run.Stream, run.Tenant, run.Status, run.Error)
		}
	}
	completed := 0
	for _, ps := range w.completedProcesses(t) {
		completed += len(ps)
	}
	rejects := w.Query(t, `SELECT concat(toString(length(raw)), ' ', reason) FROM etl_rejects FINAL WHERE target_table = 'insights'`)
	if len(rejects) != completed || completed == 0 {
		t.Fatalf("%d insights rejects, want one per completed process (%d)", len(rejects), completed)
	}
	for _, r := range rejects {
		if n, _, _ := strings.Cut(r, " "); len(n) > 4 || !strings.Contains(r, "FINSYNC_MAX_FIELD_BYTES") {
			t.Errorf("reject %.200s: want at most 4 KiB of raw and the field limit", r)
		}
	}
	if n := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE startsWith(metric, 'insights.')`); n[0] != "0" {
		t.Errorf("%s rows from insights documents loaded", n[0])
	}
	if n := w.Query(t, `SELECT toString(count()) FROM transactions FINAL`); n[0] == "0" {
		t.Error("no transaction loaded")
	}
	personalDataFree(t, w)
}
