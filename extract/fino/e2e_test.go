package fino_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fino"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

var finoTenants = []string{"sandbox-client", "sandbox-client-b"}

// finoNow is when the runs happen: the day after the sandbox's last day of
// data, 2026-02-23.
var finoNow = time.Date(2026, 2, 24, 6, 0, 0, 0, time.UTC)

// finoWorld is a sandbox and its client in a schedulestest.World.
type finoWorld struct {
	*schedulestest.World
	sandbox *finosb.Server
	streams []extract.Stream
	api     *fino.API
	url     string // the sandbox's
}

func newFinoWorld(t *testing.T, faults sandboxkit.Knobs) *finoWorld {
	t.Helper()
	return newFinoWorldWith(t, finosb.Options{Faults: faults})
}

// newFinoWorldWith is newFinoWorld with more sandbox options (tenants,
// users, months and seed are the world's).
func newFinoWorldWith(t *testing.T, opts finosb.Options) *finoWorld {
	t.Helper()
	opts.Tenants, opts.UsersPerTenant, opts.Months, opts.Seed = finoTenants, 3, 4, 7
	sb := finosb.New(opts)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { srv.Close(); sb.Close() })
	w := &finoWorld{World: schedulestest.NewWorld(t, finoNow), sandbox: sb, url: srv.URL}
	var subs []extract.Subject
	for _, tenant := range finoTenants {
		for _, u := range sb.Users(tenant) {
			subs = append(subs, extract.Subject{Provider: "fino", Tenant: tenant, Kind: "user", ID: u, Source: "config",
				FirstSeen: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)})
		}
	}
	w.AddSubjects(t, subs...)
	// Small pages, so that paging (and the faults that hit pages) happens.
	w.api = fino.NewAPI(fino.Config{BaseURL: srv.URL, ClientID: "sandbox-client", ClientSecret: "sandbox-secret", RateLimit: 1000, PageSize: 40})
	w.streams = fino.Streams(w.api)
	return w
}

func (w *finoWorld) runAll(t *testing.T) []clickhouse.Run {
	t.Helper()
	return w.RunAll(t, w.streams, finoTenants)
}

// snapshot is what a BI user sees per table: FINAL counts and amount sums
// per tenant and user.
func (w *finoWorld) snapshot(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT concat('tx ', tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL GROUP BY tenant, user_id`,
		`SELECT concat('bal ', tenant, ' ', account_id, ' ', toString(count()), ' ', toString(sum(balance))) FROM account_balances FINAL GROUP BY tenant, account_id`,
		`SELECT concat('ct ', tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(amount))) FROM contracts FINAL GROUP BY tenant, user_id`,
		`SELECT concat('acc ', tenant, ' ', user_id, ' ', toString(count())) FROM accounts FINAL GROUP BY tenant, user_id`,
	} {
		out = append(out, w.Query(t, q)...)
	}
	sort.Strings(out)
	return out
}

func TestFinoStreamsLoadTheSandboxLedger(t *testing.T) {
	w := newFinoWorld(t, sandboxkit.Knobs{})
	for _, run := range w.runAll(t) {
		if run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
			t.Errorf("%s/%s: %s, %d rejects, %s", run.Stream, run.Tenant, run.Status, run.Rejects, run.Error)
		}
	}
	for _, tenant := range finoTenants {
		for _, user := range w.sandbox.Users(tenant) {
			l, err := w.sandbox.Ledger(tenant, user)
			if err != nil {
				t.Fatal(err)
			}
			got := w.Query(t, `SELECT concat(toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, tenant, user)
			want := fmt.Sprintf("%d %s", l.Transactions, decimal.RequireFromString(l.AmountSum).StringFixed(4))
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s/%s transactions: got %v, ledger %s", tenant, user, got, want)
			}
			// Balances on chosen dates: the first, a middle and the last day of each account.
			for acc, days := range l.Balances {
				dates := make([]string, 0, len(days))
				for d := range days {
					dates = append(dates, d)
				}
				sort.Strings(dates)
				for _, d := range []string{dates[0], dates[len(dates)/2], dates[len(dates)-1]} {
					got := w.Query(t, `SELECT toString(balance) FROM account_balances FINAL WHERE tenant = ? AND account_id = ? AND balance_date = toDate(?)`, tenant, acc, d)
					want := decimal.RequireFromString(days[d]).StringFixed(4)
					if len(got) != 1 || got[0] != want {
						t.Errorf("%s balance on %s: got %v, ledger %s", acc, d, got, want)
					}
				}
			}
			var wantContracts []string
			for _, c := range l.Contracts {
				wantContracts = append(wantContracts, c.ContractID+" "+c.Interval+" "+decimal.RequireFromString(c.Amount.String()).StringFixed(4))
			}
			sort.Strings(wantContracts)
			gotContracts := w.Query(t, "SELECT concat(contract_id, ' ', `interval`, ' ', toString(amount)) FROM contracts FINAL WHERE tenant = ? AND user_id = ? ORDER BY contract_id", tenant, user)
			if strings.Join(gotContracts, "\n") != strings.Join(wantContracts, "\n") {
				t.Errorf("%s/%s contracts:\ngot  %v\nwant %v", tenant, user, gotContracts, wantContracts)
			}
		}
	}
	if n := w.Query(t, `SELECT toString(count()) FROM accounts FINAL WHERE account_type = 'checking'`); len(n) != 1 || n[0] == "0" {
		t.Errorf("no checking accounts: %v", n)
	}
	if n := w.Query(t, `SELECT toString(countIf(tenant = 'sandbox-client-b')) FROM transactions FINAL`); len(n) != 1 || n[0] == "0" {
		t.Errorf("second tenant missing: %v", n)
	}
}

func TestFinoFaultsChangeNothingButRejects(t *testing.T) {
	clean := newFinoWorld(t, sandboxkit.Knobs{})
	clean.runAll(t)
	cleanSnap := strings.Join(clean.snapshot(t), "\n")
	all := sandboxkit.Knobs{Seed: 3, RateLimit: 0.1, ServerError: 0.05, TokenExpiry: 0.02, Truncated: 0.05,
		Duplicate: 0.1, Malformed: 0.01, Latency: time.Millisecond}
	tests := []struct {
		name     string
		faults   sandboxkit.Knobs
		retries  bool // the knob makes the client retry
		injected func(sandboxkit.Counts) int64
	}{
		{"429 with Retry-After", sandboxkit.Knobs{Seed: 1, RateLimit: 0.2}, true, func(c sandboxkit.Counts) int64 { return c.RateLimited }},
		{"5xx", sandboxkit.Knobs{Seed: 1, ServerError: 0.2}, true, func(c sandboxkit.Counts) int64 { return c.ServerErrors }},
		{"token expiry", sandboxkit.Knobs{Seed: 1, TokenExpiry: 0.05}, false, func(c sandboxkit.Counts) int64 { return c.TokensExpired }},
		{"truncated bodies", sandboxkit.Knobs{Seed: 1, Truncated: 0.1}, true, func(c sandboxkit.Counts) int64 { return c.Truncated }},
		{"duplicate records", sandboxkit.Knobs{Seed: 1, Duplicate: 0.3}, false, func(c sandboxkit.Counts) int64 { return c.Duplicated }},
		{"latency", sandboxkit.Knobs{Seed: 1, Latency: 5 * time.Millisecond}, false, nil},
		{"malformed records", sandboxkit.Knobs{Seed: 1, Malformed: 0.01}, false, func(c sandboxkit.Counts) int64 { return c.Malformed }},
		{"everything at once", all, true, func(c sandboxkit.Counts) int64 { return c.RateLimited * c.Truncated * c.Duplicated * c.Malformed }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFinoWorld(t, tc.faults)
			var retries uint64
			for _, r := range w.runAll(t) {
				retries += r.Retries
			}
			injected := w.sandbox.Injected()
			if tc.injected != nil && tc.injected(injected) == 0 {
				t.Fatalf("the fault never happened: %+v", injected)
			}
			if tc.retries && retries == 0 {
				t.Fatalf("no retries recorded (injected %+v)", injected)
			}
			// The run rows in the warehouse record the retries.
			if got := w.Query(t, `SELECT toString(sum(retries)) FROM etl_runs FINAL`); got[0] != fmt.Sprint(retries) {
				t.Errorf("etl_runs records %v retries, the runs %d", got, retries)
			}
			// Every malformed record is a reject with its reason and raw
			// payload; nothing else is.
			var malformed, malformedTx int
			for _, tenant := range finoTenants {
				for _, u := range w.sandbox.Users(tenant) {
					l, _ := w.sandbox.Ledger(tenant, u)
					malformed += len(l.MalformedTransactions) + len(l.MalformedContracts) + len(l.MalformedBalances)
					malformedTx += len(l.MalformedTransactions)
				}
			}
			if got := w.Query(t, `SELECT toString(count()) FROM etl_rejects FINAL WHERE raw != '' AND reason != ''`); got[0] != fmt.Sprint(malformed) {
				t.Fatalf("etl_rejects holds %v rows, want the %d malformed records", got, malformed)
			}
			if malformed == 0 {
				// Nothing rejected: the warehouse equals the fault-free one.
				if snap := strings.Join(w.snapshot(t), "\n"); snap != cleanSnap {
					t.Fatalf("the warehouse differs from the fault-free run")
				}
				return
			}
			// Otherwise it lacks exactly the rejected records.
			cleanTx := mustAtoi(t, clean.Query(t, `SELECT toString(count()) FROM transactions FINAL`)[0])
			gotTx := mustAtoi(t, w.Query(t, `SELECT toString(count()) FROM transactions FINAL`)[0])
			if gotTx != cleanTx-malformedTx {
				t.Errorf("transactions: %d, fault-free %d, malformed %d", gotTx, cleanTx, malformedTx)
			}
			t.Logf("%d retries, %d rejects, injected %+v", retries, malformed, injected)
		})
	}
}

func TestFinoSecondRunReadsOnlyTheLookback(t *testing.T) {
	w := newFinoWorld(t, sandboxkit.Knobs{})
	stream := w.streams[0] // fino.transactions
	tenant := finoTenants[0]
	start := time.Now()
	first, err := w.Runner.Run(context.Background(), stream, tenant)
	if err != nil {
		t.Fatal(err)
	}
	firstTook := time.Since(start)
	before := w.snapshot(t)
	requests := w.api.Stats().Requests
	start = time.Now()
	second, err := w.Runner.Run(context.Background(), stream, tenant)
	if err != nil {
		t.Fatal(err)
	}
	secondTook := time.Since(start)
	secondRequests := w.api.Stats().Requests - requests
	if after := w.snapshot(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("a run without new data changed the warehouse")
	}
	firstRows, secondRows := first.Rows["transactions"], second.Rows["transactions"]
	if firstRows == 0 || secondRows*20 > firstRows {
		t.Fatalf("second run loaded %d rows, first %d: the cursor did not narrow the window", secondRows, firstRows)
	}
	t.Logf("first run: %d rows in %v; second run: %d rows, %d requests in %v", firstRows, firstTook, secondRows, secondRequests, secondTook)
	cursor, _ := w.State.Cursor(context.Background(), stream.Name, tenant)
	if want := "2026-02-24 synced-before 2026-02-24T06:00:00Z"; cursor != want {
		t.Errorf("cursor %q, want %q", cursor, want)
	}

	// A user who enters the registry after the cursor's day was never read:
	// the next run reads its whole history, and the others' lookback only.
	var created struct {
		UserID string `json:"userId"`
	}
	resp := sandboxCall(t, w.url, http.MethodPost, "/api/users")
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err := w.State.AddSubjects(context.Background(), []extract.Subject{{Provider: "fino", Tenant: tenant, Kind: "user",
		ID: created.UserID, Source: "webhook", FirstSeen: time.Date(2026, 2, 24, 10, 0, 0, 0, time.UTC)}}); err != nil {
		t.Fatal(err)
	}
	third, err := w.Runner.Run(context.Background(), stream, tenant)
	if err != nil {
		t.Fatal(err)
	}
	l, err := w.sandbox.Ledger(tenant, created.UserID)
	if err != nil {
		t.Fatal(err)
	}
	got := w.Query(t, `SELECT toString(count()) FROM transactions FINAL WHERE user_id = ?`, created.UserID)
	if got[0] != fmt.Sprint(l.Transactions) || third.Rows["transactions"] < uint64(l.Transactions) {
		t.Fatalf("new user: %v rows in the warehouse, ledger %d, run loaded %d", got, l.Transactions, third.Rows["transactions"])
	}
}

// A later run reads only the users whose bank logins synced since the run
// before started (less an hour's margin), per finoOS's synchronization
// status; a cursor of before that rule reads everybody.
func TestFinoRunSkipsUsersNotSyncedSince(t *testing.T) {
	var synced atomic.Int64 // lastSynchronization of every login, Unix seconds
	w := newFinoWorldWith(t, finosb.Options{SyncedAt: func() time.Time { return time.Unix(synced.Load(), 0) }})
	ctx := context.Background()
	for _, s := range w.streams {
		if s.Name != "fino.transactions" && s.Name != "fino.account_history" {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			tenant := finoTenants[0]
			run := func(syncedAt time.Time) (rows uint64, requests int64) {
				t.Helper()
				synced.Store(syncedAt.Unix())
				before := w.api.Stats().Requests
				r, err := w.Runner.Run(ctx, s, tenant)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range r.Rows {
					rows += n
				}
				return rows, w.api.Stats().Requests - before
			}
			// The runs start at 06:00 (the world's clock).
			if rows, _ := run(time.Date(2026, 2, 24, 5, 30, 0, 0, time.UTC)); rows == 0 {
				t.Fatal("the first run loaded nothing")
			}
			if rows, requests := run(time.Date(2026, 2, 24, 4, 59, 0, 0, time.UTC)); rows != 0 || requests != 1 {
				t.Fatalf("nobody synced since the last run: %d rows, %d requests; want 0 rows and the one status page", rows, requests)
			}
			// (History re-reads from the cursor day on, which has no data yet.)
			if rows, requests := run(time.Date(2026, 2, 24, 5, 1, 0, 0, time.UTC)); requests != 1+3 || s.Name == "fino.transactions" && rows == 0 {
				t.Fatalf("synced within the margin: %d rows, %d requests; want every user read (1 status + 3 users)", rows, requests)
			}
			if err := w.State.SetCursor(ctx, s.Name, tenant, "2026-02-24"); err != nil {
				t.Fatal(err)
			}
			if rows, requests := run(time.Date(2026, 2, 24, 4, 0, 0, 0, time.UTC)); requests != 3 || s.Name == "fino.transactions" && rows == 0 {
				t.Fatalf("old cursor: %d rows, %d requests; want every user read without asking the status", rows, requests)
			}
		})
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A user announced by finoOS's analysis-complete webhook enters the
// registry, and the next run extracts it with the analysis's correlation id
// as the rows' source job.
func TestFinoWebhookBringsANewUser(t *testing.T) {
	w := schedulestest.NewWorld(t, finoNow)
	receiver := httptest.NewServer(fino.WebhookHandler("hook-secret", extract.Hooks{Subject: schedules.RecordSubject(w.State)}, nil))
	defer receiver.Close()
	const tenant = "sandbox-client"
	sb := finosb.New(finosb.Options{UsersPerTenant: 2, Months: 2, Seed: 9,
		AnalysisDuration: 10 * time.Millisecond, WebhookURL: receiver.URL, WebhookSecret: "hook-secret"})
	srv := httptest.NewServer(sb)
	defer func() { srv.Close(); sb.Close() }()
	user := sb.Users(tenant)[1]

	// Trigger the analysis as an app would.
	resp := sandboxCall(t, srv.URL, http.MethodPost, "/api/users/"+user+"/trigger-analysis")
	resp.Body.Close()
	correlation := resp.Header.Get("Finoos-Correlation-Id")
	if correlation == "" {
		t.Fatalf("no correlation id (status %d)", resp.StatusCode)
	}

	var subs []extract.Subject
	var err error
	for deadline := time.Now().Add(10 * time.Second); len(subs) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if subs, err = w.State.Subjects(context.Background(), "fino", tenant, "user"); err != nil {
			t.Fatal(err)
		}
	}
	if len(subs) != 1 || subs[0].ID != user || subs[0].CorrelationID != correlation || subs[0].Source != clickhouse.SourceWebhook {
		t.Fatalf("registry after the webhook: %+v", subs)
	}

	api := fino.NewAPI(fino.Config{BaseURL: srv.URL, ClientID: "sandbox-client", ClientSecret: "sandbox-secret"})
	w.Run(t, fino.Streams(api)[0], tenant)
	got := w.Query(t, `SELECT concat(user_id, ' ', source_job_id, ' ', toString(count() > 0)) FROM transactions FINAL GROUP BY user_id, source_job_id`)
	if len(got) != 1 || got[0] != user+" "+correlation+" 1" {
		t.Fatalf("transactions by user and job: %v", got)
	}
}

// sandboxCall calls the finoOS sandbox's API as an app would, with a token
// of the sandbox's client in its own tenant.
func sandboxCall(t *testing.T, base, method, path string) *http.Response {
	t.Helper()
	resp, err := http.PostForm(base+"/api/auth", url.Values{"client_id": {"sandbox-client"},
		"client_secret": {"sandbox-secret"}, "grant_type": {"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	return resp
}

// A registry entry finoOS does not know (a deleted user) is skipped and
// marked in the registry; the others load, and the run succeeds.
func TestFinoUnknownUserIsSkipped(t *testing.T) {
	w := newFinoWorld(t, sandboxkit.Knobs{})
	tenant := finoTenants[0]
	if err := w.State.AddSubjects(context.Background(), []extract.Subject{{Provider: "fino", Tenant: tenant, Kind: "user",
		ID: "deleted-user", Source: clickhouse.SourceInsert, FirstSeen: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}}); err != nil {
		t.Fatal(err)
	}
	run, err := w.Runner.Run(context.Background(), w.streams[0], tenant)
	if err != nil || run.Status != clickhouse.RunSuccess || !strings.Contains(run.Error, "skipped 1 subject") {
		t.Fatalf("run %s (%s): %v", run.Status, run.Error, err)
	}
	want := 0
	for _, u := range w.sandbox.Users(tenant) {
		l, _ := w.sandbox.Ledger(tenant, u)
		want += l.Transactions
	}
	if got := w.Query(t, `SELECT toString(count()) FROM transactions FINAL`); got[0] != fmt.Sprint(want) {
		t.Errorf("%v transactions, want the other users' %d", got, want)
	}
	subs, _ := w.State.Subjects(context.Background(), "fino", tenant, "user")
	for _, s := range subs {
		if (s.ID == "deleted-user") != (s.Status == "skipped") {
			t.Errorf("subject %s has status %q (%s)", s.ID, s.Status, s.StatusDetail)
		}
	}
}

// A finoOS that writes its booking timestamps as local midnight with an
// offset ("2026-11-03T00:00:00+01:00", 23:00 UTC the day before) has every
// booking land on the day the sandbox's ledger booked it, in any zone; the
// cursor stays a UTC day and a second run changes nothing.
func TestFinoLocalTimestampsLandOnTheLedgersDays(t *testing.T) {
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Pacific/Kiritimati"} {
		t.Run(zone, func(t *testing.T) {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			w := newFinoWorldWith(t, finosb.Options{LocalTimestamps: loc})
			stream := w.streams[0] // fino.transactions
			for _, tenant := range finoTenants {
				run, err := w.Runner.Run(context.Background(), stream, tenant)
				if err != nil || run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
					t.Fatalf("%s: %s, %d rejects, %s, %v", tenant, run.Status, run.Rejects, run.Error, err)
				}
			}
			days := func() []string {
				return w.Query(t, `SELECT concat(tenant, ' ', user_id, ' ', toString(booking_date), ' ', toString(count()), ' ', toString(sum(amount)))
					FROM transactions FINAL GROUP BY tenant, user_id, booking_date ORDER BY tenant, user_id, booking_date`)
			}
			var want []string
			for _, tenant := range finoTenants {
				for _, user := range w.sandbox.Users(tenant) {
					l, err := w.sandbox.Ledger(tenant, user)
					if err != nil {
						t.Fatal(err)
					}
					for d, dt := range l.Days {
						want = append(want, fmt.Sprintf("%s %s %s %d %s", tenant, user, d, dt.Transactions, decimal.RequireFromString(dt.AmountSum).StringFixed(4)))
					}
				}
			}
			sort.Strings(want)
			got := days()
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("booking days differ from the ledger's (%d days, ledger %d); first of each:\n%s\n%s", len(got), len(want), first(got), first(want))
			}
			if n := w.Query(t, `SELECT toString(countIf(value_date != booking_date)) FROM transactions FINAL`); n[0] != "0" {
				t.Errorf("%s rows with a value date other than the booking day (the sandbox books both on one day)", n[0])
			}
			cursor, _ := w.State.Cursor(context.Background(), stream.Name, finoTenants[0])
			if want := "2026-02-24 synced-before 2026-02-24T06:00:00Z"; cursor != want {
				t.Errorf("cursor %q, want %q", cursor, want)
			}
			if _, err := w.Runner.Run(context.Background(), stream, finoTenants[0]); err != nil {
				t.Fatal(err)
			}
			if again := days(); strings.Join(again, "\n") != strings.Join(got, "\n") {
				t.Errorf("the incremental run changed the booking days")
			}
		})
	}
}

func first(rows []string) string {
	if len(rows) == 0 {
		return "(none)"
	}
	return rows[0]
}

// finoOS does not always tag a transfer between the user's own accounts
// internal_transfer, and banks print the holder's name their own way
// ("SCHROEDER, JUERGEN" for Jürgen Schröder): such a partner still lands
// as OwnAccount, compared with the holders of the user's accounts, while
// other counterparties keep their names.
func TestFinoBankSpelledOwnersLandAsOwnAccount(t *testing.T) {
	w := newFinoWorldWith(t, finosb.Options{BankSpelledOwners: true})
	stream := w.streams[0] // fino.transactions alone: the holders are read for it
	for _, tenant := range finoTenants {
		run, err := w.Runner.Run(context.Background(), stream, tenant)
		if err != nil || run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
			t.Fatalf("%s: %s, %d rejects, %s, %v", tenant, run.Status, run.Rejects, run.Error, err)
		}
	}
	var spellings int
	for _, tenant := range finoTenants {
		for _, user := range w.sandbox.Users(tenant) {
			rec, err := w.sandbox.Records(tenant, user, true, "")
			if err != nil {
				t.Fatal(err)
			}
			own := map[string]int{} // the holder as the bank spelled it → transactions
			var total int
			for _, raw := range rec.Categorizations {
				var c fino.Categorization
				if err := json.Unmarshal(raw, &c); err != nil {
					t.Fatal(err)
				}
				if slices.Contains(c.Tags, "internal_transfer") {
					t.Fatalf("the knob left a tag: %s", raw)
				}
				if p := c.Transaction.PaymentPartner; p != nil && slices.Contains(ownTags, c.DescriptiveTag) {
					own[p.Name]++
					total++
				}
			}
			if len(own) < 2 || own[rec.Owner] == total {
				t.Fatalf("%s/%s: the sandbox spelled its owner %q only as %v", tenant, user, rec.Owner, own)
			}
			spellings += len(own)
			for name := range own {
				if n := w.Query(t, `SELECT toString(count()) FROM transactions FINAL WHERE tenant = ? AND user_id = ? AND counterparty_name = ?`,
					tenant, user, name); n[0] != "0" {
					t.Errorf("%s/%s: %s rows name the holder %q", tenant, user, n[0], name)
				}
			}
			got := w.Query(t, `SELECT concat(toString(countIf(counterparty_name = ?)), ' ', toString(countIf(counterparty_name NOT IN ('', ?))))
				FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, fino.OwnAccount, fino.OwnAccount, tenant, user)
			if own, others, _ := strings.Cut(got[0], " "); own != strconv.Itoa(total) || others == "0" {
				t.Errorf("%s/%s: %s own-account rows, want %d; %s named counterparties (want some)", tenant, user, own, total, others)
			}
		}
	}
	t.Logf("%d spellings of the holders, none in counterparty_name", spellings)
}

// ownTags are the sandbox's own-account transfers once their
// internal_transfer tag is gone.
var ownTags = []string{"savings_transfer", "credit_card_settlement", "transfer"}

// A finoOS announcing a billion pages over empty ones: the run ends at the
// first empty page (within the pages totalElements fills) with every row,
// and records the contradiction as one reject per user.
func TestFinoHostileTotalPagesEndPromptly(t *testing.T) {
	clean := newFinoWorld(t, sandboxkit.Knobs{})
	hostile := newFinoWorldWith(t, finosb.Options{TotalPages: 1_000_000_000})
	for _, w := range []*finoWorld{clean, hostile} {
		for _, tenant := range finoTenants {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			start := time.Now()
			run, err := w.Runner.Run(ctx, w.streams[0], tenant) // fino.transactions
			cancel()
			if d := time.Since(start); err != nil || run.Status != clickhouse.RunSuccess || d > 15*time.Second {
				t.Fatalf("%s/%s: %s after %s (%v %s)", w.streams[0].Name, tenant, run.Status, d.Round(time.Millisecond), err, run.Error)
			}
		}
	}
	q := `SELECT concat(tenant, ' ', user_id, ' ', toString(count()), ' ', toString(sum(amount))) FROM transactions FINAL GROUP BY tenant, user_id ORDER BY tenant, user_id`
	if got, want := hostile.Query(t, q), clean.Query(t, q); len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("transactions:\ngot  %v\nwant %v", got, want)
	}
	var users []string
	for _, tenant := range finoTenants {
		for _, u := range hostile.sandbox.Users(tenant) {
			if l, _ := hostile.sandbox.Ledger(tenant, u); l.Transactions > 0 {
				users = append(users, "user/"+u)
			}
		}
	}
	sort.Strings(users)
	rejects := `SELECT record_key FROM etl_rejects FINAL WHERE position(reason, 'totalPages 1000000000 contradicts totalElements') > 0 ORDER BY record_key`
	if got := hostile.Query(t, rejects); strings.Join(got, " ") != strings.Join(users, " ") {
		t.Errorf("rejects naming the contradiction: %v, want one per user with transactions %v", got, users)
	}
	if got := clean.Query(t, `SELECT toString(count()) FROM etl_rejects`); got[0] != "0" {
		t.Errorf("the honest sandbox's run rejected %s", got[0])
	}
}

// Transactions finoOS categorizes late, without a new sync of the user,
// pass the incremental runs by: the user is skipped while nobody synced
// (assumption 49), and once the user syncs their booking days are behind
// the lookback. A reconciliation reads every user's last 35 days and
// loads them, counting exactly those rows as missed; a second finds none;
// neither moves the cursor back.
func TestFinoReconciliationFindsLateCategorizations(t *testing.T) {
	var synced atomic.Int64 // every login's lastSynchronization, Unix seconds
	var categorized atomic.Bool
	lateFrom, lateTo := time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	var lateUser atomic.Value
	lateUser.Store("")
	w := newFinoWorldWith(t, finosb.Options{
		SyncedAt: func() time.Time { return time.Unix(synced.Load(), 0) },
		CategorizedAt: func(tenant, user string, booked time.Time) time.Time {
			if user == lateUser.Load() && !booked.Before(lateFrom) && !booked.After(lateTo) && !categorized.Load() {
				return time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) // not yet
			}
			return time.Time{}
		}})
	ctx := context.Background()
	stream, tenant := w.streams[0], finoTenants[0] // fino.transactions
	user := w.sandbox.Users(tenant)[0]
	lateUser.Store(user)
	l, err := w.sandbox.Ledger(tenant, user)
	if err != nil {
		t.Fatal(err)
	}
	late := 0
	for day, dt := range l.Days {
		if d, _ := time.Parse(time.DateOnly, day); !d.Before(lateFrom) && !d.After(lateTo) {
			late += dt.Transactions
		}
	}
	if late == 0 {
		t.Fatal("the sandbox user has no transactions on the late days")
	}
	landed := func() (all, lateDays int) {
		t.Helper()
		all = mustAtoi(t, w.Query(t, `SELECT toString(count()) FROM transactions FINAL WHERE tenant = ? AND user_id = ?`, tenant, user)[0])
		lateDays = mustAtoi(t, w.Query(t, `SELECT toString(count()) FROM transactions FINAL WHERE tenant = ? AND user_id = ? AND booking_date BETWEEN ? AND ?`,
			tenant, user, lateFrom.Format(time.DateOnly), lateTo.Format(time.DateOnly))[0])
		return all, lateDays
	}
	cursor := func() string {
		t.Helper()
		c, err := w.State.Cursor(ctx, stream.Name, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	at := func(now, syncedAt time.Time) {
		w.SetNow(now)
		synced.Store(syncedAt.Unix())
	}

	// The first run reads everything finoOS has categorized by then.
	at(finoNow, finoNow.Add(-30*time.Minute))
	w.Run(t, stream, tenant)
	if all, lateDays := landed(); all != l.Transactions-late || lateDays != 0 {
		t.Fatalf("first run: %d rows of the user, %d on the late days; want %d and 0", all, lateDays, l.Transactions-late)
	}
	// finoOS categorizes the late days; nobody syncs: the next run skips
	// everybody. The user then syncs, and the run after reads from the
	// cursor less the lookback: past the late days.
	categorized.Store(true)
	at(time.Date(2026, 3, 3, 6, 0, 0, 0, time.UTC), finoNow.Add(-30*time.Minute))
	w.Run(t, stream, tenant)
	at(time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC))
	w.Run(t, stream, tenant)
	if _, lateDays := landed(); lateDays != 0 {
		t.Fatalf("the incremental runs found %d late rows: the scenario does not test reconciliation", lateDays)
	}
	incremental := cursor()

	sched := reconcileSchedule(t, stream.Name)
	at(time.Date(2026, 3, 8, 3, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC))
	run, err := w.Runner.RunReconcile(ctx, stream, tenant, sched)
	if err != nil {
		t.Fatal(err)
	}
	if all, lateDays := landed(); all != l.Transactions || lateDays != late {
		t.Fatalf("after the reconciliation: %d rows of the user (ledger %d), %d on the late days (want %d)", all, l.Transactions, lateDays, late)
	}
	note := fmt.Sprintf("reconciliation: %d row(s) incremental runs had missed (natural keys new to transactions)", late)
	if !run.Reconcile || run.Missed != uint64(late) || run.Error != note || !strings.HasSuffix(run.ID, clickhouse.ReconcileSuffix) {
		t.Fatalf("reconciliation: %s missed %d (want %d), %q", run.ID, run.Missed, late, run.Error)
	}
	recorded := w.Query(t, `SELECT error FROM etl_runs FINAL WHERE run_id = ?`, run.ID)
	if len(recorded) != 1 || recorded[0] != note {
		t.Errorf("etl_runs: %q, want %q", recorded, note)
	}
	reconciled := cursor()
	if reconciled < incremental || !strings.HasPrefix(reconciled, "2026-03-08 ") {
		t.Errorf("cursor %q after the reconciliation, %q before", reconciled, incremental)
	}

	// A second one, on a clock set back before the cursor: nothing more to
	// find, and the cursor stays.
	at(time.Date(2026, 3, 5, 3, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC))
	again, err := w.Runner.RunReconcile(ctx, stream, tenant, sched)
	if err != nil {
		t.Fatal(err)
	}
	if again.Missed != 0 || again.Rows["transactions"] == 0 || !strings.HasPrefix(again.Error, "reconciliation: 0 row(s)") {
		t.Errorf("second reconciliation: missed %d of %d rows, %q", again.Missed, again.Rows["transactions"], again.Error)
	}
	if c := cursor(); c != reconciled {
		t.Errorf("cursor %q after the second reconciliation, %q before", c, reconciled)
	}
	t.Logf("%d late rows of %d: missed by the incremental runs, found by the reconciliation (%d rows loaded); the second loaded %d, missed 0",
		late, l.Transactions, run.Rows["transactions"], again.Rows["transactions"])
	if all, _ := landed(); all != l.Transactions {
		t.Errorf("%d rows of the user after reloading, ledger %d", all, l.Transactions)
	}
}

// reconcileSchedule is stream's schedule with a reconciliation over 35 days.
func reconcileSchedule(t *testing.T, stream string) schedules.Schedule {
	t.Helper()
	ss, err := schedules.Parse("t.yaml", []byte("defaults:\n  jitter: 0s\nstreams:\n  "+stream+":\n    schedule: \"@yearly\"\n"+
		"    reconcile: \"0 3 * * 0\"\n    reconcile_lookback: 35d\n"), map[string]schedules.ParamsCheck{stream: nil})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ss.Find(stream)
	return s
}
