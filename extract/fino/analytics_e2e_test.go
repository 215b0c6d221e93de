package fino_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fino"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules/schedulestest"
)

// analyticsWorld is one tenant with persons (with life events) and
// companies, every fino stream, and a real ClickHouse.
type analyticsWorld struct {
	*schedulestest.World
	sandbox            *finosb.Server
	api                *fino.API
	url                string           // the sandbox's
	streams            []extract.Stream // fino.Streams then AnalyticsStreams
	persons, companies []string

	mu   sync.Mutex
	hits map[string]int // requests the sandbox got, by URL path
}

const analyticsTenant = "sandbox-client"

func newAnalyticsWorld(t *testing.T, opts finosb.Options, scopes fino.Scopes) *analyticsWorld {
	t.Helper()
	opts.Tenants, opts.UsersPerTenant, opts.CompaniesPerTenant, opts.Months, opts.Seed, opts.LifeEvents =
		[]string{analyticsTenant}, 3, 2, 4, 11, true
	sb := finosb.New(opts)
	w := &analyticsWorld{sandbox: sb, hits: map[string]int{}}
	server := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.hits[r.URL.Path]++
		w.mu.Unlock()
		sb.ServeHTTP(rw, r)
	}))
	t.Cleanup(func() { server.Close(); sb.Close() })
	w.url = server.URL
	w.World = schedulestest.NewWorld(t, finoNow)
	var subs []extract.Subject
	for _, u := range sb.Users(analyticsTenant) {
		subs = append(subs, extract.Subject{Provider: "fino", Tenant: analyticsTenant, Kind: "user", ID: u, Source: "config",
			FirstSeen: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)})
	}
	users := sb.Users(analyticsTenant)
	w.persons, w.companies = users[:3], users[3:]
	w.AddSubjects(t, subs...)
	w.api = fino.NewAPI(fino.Config{BaseURL: w.url, ClientID: "sandbox-client", ClientSecret: "sandbox-secret", RateLimit: 1000, Scopes: scopes})
	w.streams = append(fino.Streams(w.api), fino.AnalyticsStreams(w.api)...)
	return w
}

func (w *analyticsWorld) run(t *testing.T, only func(extract.Stream) bool) map[string]clickhouse.Run {
	t.Helper()
	runs := map[string]clickhouse.Run{}
	for _, s := range w.streams {
		if only != nil && !only(s) {
			continue
		}
		runs[s.Name] = w.Run(t, s, analyticsTenant)
	}
	return runs
}

// pairs runs a query of two String columns (key, decimal value) into a map,
// values normalized so 12.500000 and 12.5000 compare equal.
func (w *analyticsWorld) pairs(t *testing.T, q string, args ...any) map[string]string {
	t.Helper()
	rows, err := w.DB.Conn().Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		if d, err := decimal.NewFromString(v); err == nil {
			v = d.String()
		}
		out[k] = v
	}
	return out
}

// sameFacts compares insights with the ledger's computation: every key the
// ledger has must be in insights with its value, and insights may add only
// zeros (months without bookings).
func sameFacts(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Errorf("%s: the ledger has nothing to compare with", what)
	}
	sameSet(t, what, got, want)
}

// sameSet is sameFacts for a figure the ledger may not have at all (a user
// never overdrawn, no rent above 900 €).
func sameSet(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s: insights %q, ledger %q", what, k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && v != "0" {
			t.Errorf("%s %s: insights %q, the ledger has nothing", what, k, v)
		}
	}
}

// TestAnalyticsModulesMatchTheLedger checks, for every module, a value of
// insights against the same figure computed independently by SQL over the
// transactions and balances the sandbox served through the other streams.
func TestAnalyticsModulesMatchTheLedger(t *testing.T) {
	w := newAnalyticsWorld(t, finosb.Options{}, fino.Scopes{})
	for name, run := range w.run(t, nil) {
		if run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
			t.Errorf("%s: %s, %d rejects, %s", name, run.Status, run.Rejects, run.Error)
		}
	}
	month := `formatDateTime(booking_date, '%Y-%m')`
	// insights are a metric's values, keyed "user insight_id period";
	// monthly ones leave out the whole-range overview.
	insightsWhere := func(module, metric, cond string) map[string]string {
		return w.pairs(t, `SELECT concat(user_id, ' ', insight_id, ' ', period), toString(value) FROM insights FINAL
			WHERE module = ? AND metric = ? AND `+cond, module, metric)
	}
	insights := func(module, metric string) map[string]string { return insightsWhere(module, metric, "1") }
	monthly := func(module, metric string) map[string]string { return insightsWhere(module, metric, "period != ''") }
	// ledger sums (or counts) a user's transactions matching cond per month.
	ledger := func(users []string, agg, cond string) map[string]string {
		return w.pairs(t, `SELECT concat(user_id, '  ', `+month+`), toString(`+agg+`) FROM transactions FINAL
			WHERE has(?, user_id) AND (`+cond+`) GROUP BY user_id, `+month, users)
	}
	// Complete months are those before the sandbox's last, partial one.
	perMonth := func(users []string, cond string) map[string]string {
		sums := w.pairs(t, `SELECT concat(user_id, '  '), toString(sum(amount)) FROM transactions FINAL
			WHERE has(?, user_id) AND booking_date < toDate('2026-02-01') AND (`+cond+`) GROUP BY user_id`, users)
		for k, v := range sums {
			sums[k] = decimal.RequireFromString(v).Div(decimal.NewFromInt(3)).Round(2).String()
		}
		return sums
	}

	person := []struct{ module, metric, agg, cond string }{
		{"person-income-salary", "salary.amount", "sum(amount)", "provider_category = 'salary'"},
		{"person-income-pension", "pension.amount", "sum(amount)", "provider_category = 'pension'"},
		{"person-income-child-benefit", "childBenefit.amount", "sum(amount)", "provider_category = 'child_benefit'"},
		{"person-income-parental-allowance", "parentalAllowance.amount", "sum(amount)", "provider_category = 'parental_allowance'"},
		{"person-income-rental", "rental.amount", "sum(amount)", "provider_category = 'rental_income'"},
		{"person-income-investment", "investment.amount", "sum(amount)", "provider_category = 'interest'"},
		{"person-income-loan", "loan.amount", "sum(amount)", "provider_category = 'loan_disbursement'"},
		{"person-income-alimony", "alimony.count", "count()", "provider_category = 'alimony'"},
		{"person-income-self-employment", "selfEmployment.amount", "sum(amount)", "provider_category = 'self_employment'"},
		{"person-income-other", "other.amount", "sum(amount)", "provider_category = 'refund'"},
		{"person-spending-rent", "rent.amount", "sum(amount)", "provider_category = 'rent'"},
		{"person-spending-investment", "investment.amount", "sum(amount)", "provider_category = 'savings_transfer' AND amount < 0"},
		{"person-spending-insurance", "insurance.amount", "sum(amount)", "provider_category LIKE 'insurance_%'"},
		{"person-spending-credit", "credit.amount", "sum(amount)", "provider_category = 'loan_instalment'"},
		{"person-spending-credit-card", "creditCard.amount", "sum(amount)", "provider_category = 'credit_card_billing'"},
		{"person-spending-other", "other.count", "count()", `provider_category IN ('broadcasting_fee', 'streaming', 'mobile_phone', 'gym', 'groceries',
			'restaurant', 'online_shopping', 'fuel', 'drugstore', 'cash_withdrawal', 'bank_fees')
			AND account_id IN (SELECT account_id FROM accounts FINAL WHERE account_type != 'credit_card')`},
		{"person-risk-back-debit", "backDebit.count", "count()", "provider_category = 'return_debit'"},
		{"person-risk-garnishment", "garnishment.count", "count()", "provider_category = 'garnishment'"},
		{"person-risk-collection", "collection.count", "count()", "provider_category = 'debt_collection'"},
		{"person-risk-gambling", "gambling.amount", "sum(amount)", "provider_category = 'gambling'"},
		{"company-cash", "incomings.sum", "sum(amount)", "provider_category = 'cash_deposit'"},
		{"company-credit", "amount", "sum(amount)", "provider_category = 'loan_instalment'"},
		{"company-insurance", "amount", "sum(amount)", "provider_category = 'insurance_business'"},
		{"company-investment", "amount", "sum(amount)", "provider_category = 'securities_savings'"},
		{"company-internal-booking", "amount", "sum(amount)", "provider_category = 'internal_transfer' AND amount < 0"},
	}
	for _, c := range person {
		users := w.persons
		if strings.HasPrefix(c.module, "company-") {
			users = w.companies
		}
		sameFacts(t, c.module+" "+c.metric, monthly(c.module, c.metric), ledger(users, c.agg, c.cond))
	}

	// Overdraft days: end-of-day balances below zero of current accounts.
	sameSet(t, "person-risk-overdraft-amount overdraftAmount.days", insights("person-risk-overdraft-amount", "overdraftAmount.days"),
		w.pairs(t, `SELECT concat(user_id, '  ', formatDateTime(balance_date, '%Y-%m')), toString(count()) FROM account_balances FINAL
			WHERE granularity = 'day' AND balance < 0 AND has(?, user_id)
			AND account_id IN (SELECT account_id FROM accounts FINAL WHERE account_type = 'checking') GROUP BY user_id, formatDateTime(balance_date, '%Y-%m')`, w.persons))

	// Household budget and the person cockpit: complete-month averages.
	salary := perMonth(w.persons, "provider_category = 'salary'")
	sameFacts(t, "person-household-budget income.salary", insights("person-household-budget", "income.salary"), salary)
	sameFacts(t, "cockpit-person householdBudget.income.salary", insights("cockpit-person", "householdBudget.income.salary"), salary)
	sameFacts(t, "person-living-situation housingRent.monthlyAmount", insights("person-living-situation", "housingRent.monthlyAmount"),
		perMonth(w.persons, "provider_category = 'rent'"))

	// Adult check: HIGH_RENT exactly for the users paying at least 900 € rent.
	sameSet(t, "person-adult-check HIGH_RENT", w.pairs(t, `SELECT concat(user_id, ' ', insight_id, ' '), text FROM (SELECT user_id, insight_id, value_text AS text
		FROM insights FINAL WHERE module = 'person-adult-check' AND insight_id = 'HIGH_RENT')`),
		w.pairs(t, `SELECT DISTINCT concat(user_id, ' HIGH_RENT '), 'VERY_STRONG' FROM transactions FINAL
			WHERE has(?, user_id) AND provider_category = 'rent' AND amount <= -900`, w.persons))
	if got := w.pairs(t, `SELECT user_id, value_text FROM insights FINAL WHERE module = 'person-adult-check' AND metric = 'decision'`); len(got) != len(w.persons) {
		t.Errorf("adult check decisions: %v", got)
	}

	// Liquidity: end-of-month, min and max balances are the account
	// history's; they land in account_balances too, on the month's last day.
	for _, b := range []struct{ metric, granularity, agg string }{
		{"endOfMonthBalance", "month_end", "argMax(balance, balance_date)"}, {"minBalance", "month_min", "min(balance)"}, {"maxBalance", "month_max", "max(balance)"},
	} {
		want := w.pairs(t, `SELECT concat(user_id, ' ', account_id, ' ', formatDateTime(balance_date, '%Y-%m')), toString(`+b.agg+`) FROM account_balances FINAL
			WHERE granularity = 'day' AND has(?, user_id) GROUP BY user_id, account_id, formatDateTime(balance_date, '%Y-%m')`, w.companies)
		sameFacts(t, "company-liquidity "+b.metric, insights("company-liquidity", b.metric), want)
		sameFacts(t, "account_balances "+b.granularity, w.pairs(t, `SELECT concat(user_id, ' ', account_id, ' ', formatDateTime(balance_date, '%Y-%m')), toString(balance)
			FROM account_balances FINAL WHERE granularity = ? AND toDayOfMonth(balance_date + 1) = 1`, b.granularity), want)
	}

	// Foreign payments: incoming sums per country of the partner's IBAN.
	sameFacts(t, "company-foreign-payment incomings.sum", insightsWhere("company-foreign-payment", "incomings.sum", "insight_id != ''"),
		w.pairs(t, `SELECT concat(user_id, ' ', substring(counterparty_iban, 1, 2), ' '), toString(sum(amount)) FROM transactions FINAL
			WHERE has(?, user_id) AND amount > 0 AND counterparty_iban != '' AND substring(counterparty_iban, 1, 2) != 'DE'
			GROUP BY user_id, substring(counterparty_iban, 1, 2)`, w.companies))

	// Company risk: returned debits per account and month.
	sameFacts(t, "company-risk backDebit.count", insights("company-risk", "backDebit.count"),
		w.pairs(t, `SELECT concat(user_id, ' ', account_id, ' ', `+month+`), toString(count()) FROM transactions FINAL
			WHERE has(?, user_id) AND provider_category = 'return_debit' GROUP BY user_id, account_id, `+month, w.companies))

	// Staff and the company cockpit: distinct payees of payroll.
	employees := w.pairs(t, `SELECT concat(user_id, '  '), toString(uniqExact(counterparty_iban)) FROM transactions FINAL
		WHERE has(?, user_id) AND provider_category = 'salary_payment' GROUP BY user_id`, w.companies)
	sameFacts(t, "company-staff employees.maxNumberOfEmployees", insights("company-staff", "employees.maxNumberOfEmployees"), employees)
	sameFacts(t, "cockpit-company staff.employees.maxNumberOfEmployees", insights("cockpit-company", "staff.employees.maxNumberOfEmployees"), employees)
	sameFacts(t, "company-staff salary.totalMonthlyExpenses", insights("company-staff", "salary.totalMonthlyExpenses"),
		perMonth(w.companies, "provider_category = 'salary_payment'"))

	// Customers: each partner's total over the observed range.
	sameFacts(t, "company-customer-supplier sum", w.pairs(t, `SELECT concat(user_id, ' ', insight_id, ' '), toString(value) FROM insights FINAL
		WHERE module = 'company-customer-supplier' AND metric = 'sum' AND period = '' AND startsWith(insight_id, 'customers/')`),
		w.pairs(t, `SELECT concat(user_id, ' customers/', counterparty_iban, ' '), toString(sum(amount)) FROM transactions FINAL
			WHERE has(?, user_id) AND provider_category = 'revenue' GROUP BY user_id, counterparty_iban`, w.companies))

	// Top categories: monthly amount per descriptive tag.
	sameFacts(t, "company-top-category amount", w.pairs(t, `SELECT concat(user_id, ' ', insight_id, ' ', period), toString(value) FROM insights FINAL
		WHERE module = 'company-top-category' AND metric = 'amount' AND length(period) = 7`),
		w.pairs(t, `SELECT concat(user_id, ' ', provider_category, ' ', `+month+`), toString(sum(amount)) FROM transactions FINAL
			WHERE has(?, user_id) GROUP BY user_id, provider_category, `+month, w.companies))

	// The BI questions of the issue, each one WHERE module AND metric.
	if got := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE module = 'person-income-salary' AND metric = 'salary.amount'`); got[0] != "12" {
		t.Errorf("monthly salary per user: %v rows, want 3 users × 4 months", got)
	}
	if got := w.Query(t, `SELECT toString(uniqExact(user_id)) FROM insights FINAL WHERE module = 'person-risk-gambling'
		AND metric = 'gambling.count' AND period >= '2025-12' AND value > 0`); got[0] != "3" {
		t.Errorf("users gambling in the last 3 months: %v", got)
	}
	// Every module of the table landed something.
	for _, m := range fino.Modules() {
		if got := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE module = ?`, m.Name); got[0] == "0" {
			t.Errorf("module %s: no insights", m.Name)
		}
	}
}

// TestAnalyticsMissingScopeIsOneNote: finoOS answers 403 for a module the
// client lacks; the run succeeds, asks no further user and records one
// etl_rejects row. A module left out of FINSYNC_FINO_SCOPES asks nothing.
func TestAnalyticsMissingScopeIsOneNote(t *testing.T) {
	scopes, err := fino.ParseScopes([]string{"person-*", "cockpits", "company-cash"})
	if err != nil {
		t.Fatal(err)
	}
	w := newAnalyticsWorld(t, finosb.Options{DeniedScopes: []string{"person-adult-check", "person-risk-backDebit"}}, scopes)
	before := w.api.Stats().Requests
	runs := w.run(t, func(s extract.Stream) bool {
		return strings.HasPrefix(s.Name, "fino.analytics.company_") && s.Name != "fino.analytics.company_cash_transactions"
	})
	if n := w.api.Stats().Requests - before; n != 0 {
		t.Errorf("disabled company modules made %d requests", n)
	}
	runs = w.run(t, func(s extract.Stream) bool { return strings.HasPrefix(s.Name, "fino.analytics.") })
	adult := runs["fino.analytics.person_adult_check"]
	if adult.Status != clickhouse.RunSuccess || adult.Rejects != 1 {
		t.Fatalf("adult check run: %s, %d rejects, %s", adult.Status, adult.Rejects, adult.Error)
	}
	got := w.Query(t, `SELECT concat(stream, ' | ', reason) FROM etl_rejects FINAL WHERE target_table = 'insights'`)
	if len(got) != 1 || !strings.Contains(got[0], "fino.analytics.person_adult_check") || !strings.Contains(got[0], "403") {
		t.Errorf("etl_rejects: %v, want one 403 note for the adult check", got)
	}
	for _, c := range []struct{ module, metric, want string }{
		{"person-adult-check", "decision", "0"},            // 403
		{"person-risk-back-debit", "backDebit.count", "0"}, // left out of the risk document
		{"company-liquidity", "endOfMonthBalance", "0"},    // not in FINSYNC_FINO_SCOPES
		{"person-risk-gambling", "gambling.count", "12"},   // 3 persons × 4 months
		{"company-cash", "incomings.sum", "10"},            // 2 companies × (overview + 4 months)
	} {
		got := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE module = ? AND metric = ?`, c.module, c.metric)
		if got[0] != c.want {
			t.Errorf("%s %s: %s rows, want %s", c.module, c.metric, got[0], c.want)
		}
	}
}

// TestAnalyticsOtherPathOfAnEndpoint: a finoOS that answers 404 on
// /cash-transactions (the Company Analytics page's name) is asked
// /cashflow (the Quick Start's) and the data lands the same; the path that
// answered is kept, so later users are asked it directly.
func TestAnalyticsOtherPathOfAnEndpoint(t *testing.T) {
	w := newAnalyticsWorld(t, finosb.Options{UnservedPaths: []string{"/analysis/company/cash-transactions"}}, fino.Scopes{})
	runs := w.run(t, func(s extract.Stream) bool { return s.Name == "fino.analytics.company_cash_transactions" })
	if run := runs["fino.analytics.company_cash_transactions"]; run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
		t.Fatalf("run: %s, %d rejects, %s", run.Status, run.Rejects, run.Error)
	}
	if got := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE module = 'company-cash' AND metric = 'incomings.sum'`); got[0] != "10" {
		t.Errorf("company-cash incomings.sum: %s rows, want 2 companies × (overview + 4 months)", got[0])
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var first, other int
	for path, n := range w.hits {
		switch {
		case strings.HasSuffix(path, "/analysis/company/cash-transactions"):
			first += n
		case strings.HasSuffix(path, "/analysis/company/cashflow"):
			other += n
		}
	}
	if first != 1 || other != len(w.companies) {
		t.Errorf("requests: %d to /cash-transactions (want 1), %d to /cashflow (want %d)", first, other, len(w.companies))
	}
}

// TestAnalyticsBadMonthsAreRejectedAlone: months served with a string
// amount become etl_rejects rows with their raw text; their siblings load.
func TestAnalyticsBadMonthsAreRejectedAlone(t *testing.T) {
	w := newAnalyticsWorld(t, finosb.Options{Faults: sandboxkit.Knobs{Seed: 5, Malformed: 0.2}}, fino.Scopes{})
	var rejects uint64
	for name, run := range w.run(t, func(s extract.Stream) bool { return strings.HasPrefix(s.Name, "fino.analytics.person_") }) {
		if run.Status != clickhouse.RunSuccess {
			t.Errorf("%s: %s %s", name, run.Status, run.Error)
		}
		rejects += run.Rejects
	}
	injected := w.sandbox.Injected().Malformed
	if injected == 0 || rejects != uint64(injected) {
		t.Fatalf("%d rejects for %d malformed months", rejects, injected)
	}
	got := w.Query(t, `SELECT toString(count()) FROM etl_rejects FINAL WHERE target_table = 'insights' AND reason LIKE '%not a month%' AND raw LIKE '%"amount":"abc"%'`)
	if got[0] != fmt.Sprint(injected) {
		t.Errorf("etl_rejects with the bad months: %v, want %d", got, injected)
	}
	// Salary months that were not damaged all landed: 12 minus the bad ones.
	bad := w.Query(t, `SELECT toString(count()) FROM etl_rejects FINAL WHERE reason LIKE 'person-income-salary:%'`)
	good := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE module = 'person-income-salary' AND metric = 'salary.amount'`)
	if mustAtoi(t, bad[0])+mustAtoi(t, good[0]) != 12 {
		t.Errorf("salary months: %s rejected + %s loaded, want 12", bad[0], good[0])
	}
}

// Fields finoOS adds that finsync does not read land in raw, scrubbed as
// before: a record's own, and those of the object around the records (the
// account detection and its accountsOverview, the contract list, a person
// income document) under "_wrapper" in each of its rows.
func TestFinoUnknownFieldsLandInRaw(t *testing.T) {
	w := newAnalyticsWorld(t, finosb.Options{ExtraFields: true}, fino.Scopes{})
	streams := []string{"fino.transactions", "fino.accounts", "fino.contracts", "fino.analytics.person_income", "fino.analytics.company_staff"}
	for name, run := range w.run(t, func(s extract.Stream) bool { return slices.Contains(streams, s.Name) }) {
		if run.Status != clickhouse.RunSuccess || run.Rejects != 0 {
			t.Fatalf("%s: %s, %d rejects, %s", name, run.Status, run.Rejects, run.Error)
		}
	}
	absent := schedulestest.Equals(nil)
	for _, tc := range []struct {
		what, query string
		checks      []schedulestest.RawCheck
	}{
		{"transactions", `SELECT raw FROM transactions FINAL`, []schedulestest.RawCheck{
			{Path: []string{"transaction", "merchantLogo"}, OK: schedulestest.IsString},
			{Path: []string{"categoryIcon"}, OK: schedulestest.IsString},
			{Path: []string{"transaction", "paymentPartner", "name"}, OK: absent}, // scrubbed as before
		}},
		{"accounts", `SELECT raw FROM accounts FINAL`, []schedulestest.RawCheck{
			{Path: []string{"accountLogo"}, OK: schedulestest.IsString},
			{Path: []string{"owner"}, OK: absent},
			{Path: []string{"_wrapper", "detectedAt"}, OK: schedulestest.IsString},
			{Path: []string{"_wrapper", "accountsOverview", "summary", "accounts"}, OK: func(v any) bool { n, _ := v.(float64); return n > 0 }},
			{Path: []string{"_wrapper", "accountsOverview", "accountsView"}, OK: absent}, // the records are not repeated
			{Path: []string{"_wrapper", "owner"}, OK: absent},                            // a person's name, scrubbed like an account's
		}},
		{"contracts", `SELECT raw FROM contracts FINAL`, []schedulestest.RawCheck{
			{Path: []string{"contractLogo"}, OK: schedulestest.IsString},
			{Path: []string{"_wrapper", "generatedAt"}, OK: schedulestest.IsString},
			{Path: []string{"_wrapper", "contracts"}, OK: absent},
		}},
		{"person income", `SELECT raw FROM insights FINAL WHERE module = 'person-income-salary' AND metric = 'salary.average'`, []schedulestest.RawCheck{
			{Path: []string{"trend"}, OK: schedulestest.Equals("stable")},
			{Path: []string{"_wrapper", "modelVersion"}, OK: schedulestest.Equals("2026.2")},
			{Path: []string{"_wrapper", "salary"}, OK: absent},
			{Path: []string{"_wrapper", "observedTimespan"}, OK: absent},
		}},
		{"company staff", `SELECT raw FROM insights FINAL WHERE module = 'company-staff' AND metric = 'salary.totalMonthly'`, []schedulestest.RawCheck{
			{Path: []string{"modelVersion"}, OK: schedulestest.Equals("2026.2")}, // the whole document is the raw
		}},
	} {
		t.Run(tc.what, func(t *testing.T) { schedulestest.CheckRaws(t, tc.what, w.Query(t, tc.query), tc.checks...) })
	}
	// The account holder, whom the detection now names beside the accounts
	// too, is in no raw payload of theirs.
	for _, u := range w.persons {
		var d struct {
			Owner string `json:"owner"`
		}
		resp := sandboxCall(t, w.url, http.MethodGet, "/api/users/"+u+"/account-detection")
		err := json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil || d.Owner == "" {
			t.Fatalf("no owner beside %s's accounts: %v", u, err)
		}
		for _, table := range []string{"transactions", "accounts", "contracts", "insights"} {
			n := w.Query(t, "SELECT toString(count()) FROM "+table+" WHERE user_id = ? AND position(raw, ?) > 0", u, d.Owner)
			if n[0] != "0" {
				t.Errorf("%s holds %q in %s raw payloads", table, d.Owner, n[0])
			}
		}
	}
}

// An analytics document is loaded as one: one with a string over the field
// limit is rejected for each of its modules, its first bytes and the limit
// it broke kept, and the run goes on.
func TestAnalyticsDocumentOverTheFieldLimitIsRejected(t *testing.T) {
	w := newAnalyticsWorld(t, finosb.Options{Faults: sandboxkit.Knobs{HugeField: 300 << 10}}, fino.Scopes{})
	for name, run := range w.run(t, func(s extract.Stream) bool { return s.Name == "fino.analytics.person_income" }) {
		if run.Status != clickhouse.RunSuccess || run.Rejects == 0 {
			t.Fatalf("%s: %s, %d rejects, %s; want success with the documents rejected", name, run.Status, run.Rejects, run.Error)
		}
	}
	rejects := w.Query(t, `SELECT concat(toString(length(raw)), ' ', reason) FROM etl_rejects FINAL WHERE target_table = 'insights'`)
	for _, r := range rejects {
		if n, _, _ := strings.Cut(r, " "); mustAtoi(t, n) > 4<<10+16 || !strings.Contains(r, "FINSYNC_MAX_FIELD_BYTES") {
			t.Errorf("reject %.200s: want 4 KiB of raw and the field limit", r)
		}
	}
	if n := w.Query(t, `SELECT toString(count()) FROM insights FINAL WHERE module LIKE 'person-income%'`); n[0] != "0" || len(rejects) == 0 {
		t.Errorf("%s person income rows loaded, %d rejects", n[0], len(rejects))
	}
}
