package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract/fimento"
	"github.com/finsync/finsync/extract/fingoal"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// TestQueryGuide loads the demo from sandboxes the test holds, runs every
// question of the query guide, and checks the answers against the
// sandboxes' ledgers; then re-runs streams and checks the views give the
// same answers (no double counting).
func TestQueryGuide(t *testing.T) {
	sb, err := startSandbox("127.0.0.1:0", sandboxOptions{users: 3, companies: 1, months: 5, seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn"}
	sb.into(env)
	if code, stdout, stderr := run(t, env, "demo"); code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	qs, err := guideQueries()
	if err != nil || len(qs) != 10 {
		t.Fatalf("%d guide queries, %v", len(qs), err)
	}
	answers := map[string][][]string{}
	for _, q := range qs {
		answers[q.name] = queryStrings(t, db, q.query)
		if len(answers[q.name]) == 0 {
			t.Errorf("%s: no rows on the demo data", q.name)
		}
	}

	// 01, 10: high balance = checking balance on the creation day above
	// 5000 (the default parameters), per mandator, from the finAPI ledger.
	var wantHigh, want10 []string
	for _, tenant := range finapiMandators {
		users, accounts, amount := map[string]bool{}, 0, decimal.Zero
		for _, a := range sb.finapi().Ledger(tenant) {
			if b := a.Balance(sb.finapi().Today()); a.Type == "checking" && b > 500000 {
				wantHigh = append(wantHigh, tenant+" "+a.UserID)
				users[a.UserID] = true
				accounts++
				amount = amount.Add(decimal.New(b, -2))
			}
		}
		want10 = append(want10, strings.Join([]string{"highBalance", tenant, itoa(len(users)), itoa(accounts), money(amount)}, " | "))
	}
	checkSet(t, "01 high balance users", column(answers["01_high_balance_users"], 0, 1), wantHigh)
	checkSet(t, "10 segment sizes (highBalance)", rowsText(filter(answers["10_segment_sizes"], 0, "highBalance")), want10)

	// What the sandboxes serve (their HTTP APIs, decoded here;
	// truth_test.go), not the warehouse: every transaction with its
	// currency. Money is only ever added within one currency.
	finoTxs, fimentoTxs := finoTruth(t, sb), fimentoTruth(t, sb)
	fimentoCurrency := fimentoCurrencies(t, sb)
	txs := append(append([]truthTx{}, finoTxs...), fimentoTxs...)
	// A user's transactions share one currency in the sandboxes; so do the
	// uid FinGoal knows the user by (extract/fingoal assumption 3) and its
	// recommendations.
	userCurrency, uidCurrency, currencies := map[string]string{}, map[string]string{}, map[string]bool{}
	for _, tx := range txs {
		k := tx.provider + "/" + tx.tenant + "/" + tx.user
		if c, ok := userCurrency[k]; ok && c != tx.currency {
			t.Fatalf("%s has transactions in %s and in %s", k, c, tx.currency)
		}
		userCurrency[k], currencies[tx.currency] = tx.currency, true
		uidCurrency[fingoal.Opaque([]byte(fingoalIDKey), "user", tx.provider, tx.tenant, tx.user)] = tx.currency
	}
	if len(currencies) < 2 {
		t.Fatalf("the sandboxes serve transactions in %v only: nothing shows that currencies are kept apart", currencies)
	}

	// 02, 09: from the ledgers' end-of-day balances. finoOS's account
	// history names no currency, its balances are EUR (extract/fino
	// assumption 29); a Fimento process's are in its market's currency.
	thisMonth := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1-time.Now().UTC().Day())
	var wantOverdrawn, wantTotals []string
	for _, u := range sb.fino().Users("sandbox-client") {
		l, err := sb.fino().Ledger("sandbox-client", u)
		if err != nil {
			t.Fatal(err)
		}
		total := decimal.Zero
		for account, days := range l.Balances {
			low := map[string]decimal.Decimal{}
			var last string
			for day, bal := range days {
				b := decimal.RequireFromString(bal)
				if day > last {
					last = day
				}
				if m := day[:7]; day < thisMonth.Format(time.DateOnly) && day >= thisMonth.AddDate(0, -3, 0).Format(time.DateOnly) {
					if cur, ok := low[m]; !ok || b.LessThan(cur) {
						low[m] = b
					}
				}
			}
			neg := 0
			for _, b := range low {
				if b.IsNegative() {
					neg++
				}
			}
			if neg == 3 {
				wantOverdrawn = append(wantOverdrawn, account)
			}
			total = total.Add(decimal.RequireFromString(days[last]))
		}
		if len(l.Balances) > 0 {
			wantTotals = append(wantTotals, strings.Join([]string{"fino", u, "EUR", itoa(len(l.Balances)), money(total)}, " | "))
		}
	}
	for _, bank := range sb.fimento().PartnerBanks() {
		for _, p := range sb.fimento().Processes(bank) {
			if sb.fimento().Status(bank, p) != fimento.StatusCompleted {
				continue
			}
			l, err := sb.fimento().Ledger(bank, p)
			if err != nil {
				t.Fatal(err)
			}
			var last string
			for day := range l.Balances {
				last = max(last, day)
			}
			if last != "" { // one balance per process: account "*"
				wantTotals = append(wantTotals, strings.Join([]string{"fimento", p, fimentoCurrency[p], "1", money(decimal.RequireFromString(l.Balances[last]))}, " | "))
			}
		}
	}
	checkSet(t, "02 recurring overdrafts (fino)", column(filter(answers["02_recurring_overdrafts"], 0, "fino"), 3), wantOverdrawn)
	checkSet(t, "09 latest balances", pick(answers["09_latest_balances"], 0, 2, 3, 4, 5), wantTotals)

	finoCategory := finoCategoryOf(t)
	// Fimento's categories are its own words; the common category each
	// became is the warehouse's (a fixed table, extract/fimento/categories.go),
	// and it must be one per Fimento category.
	fimentoCategory := map[string]string{}
	for _, row := range queryStrings(t, db, "SELECT DISTINCT provider_category, category FROM transactions FINAL WHERE provider = 'fimento'") {
		if c, ok := fimentoCategory[row[0]]; ok && c != row[1] {
			t.Errorf("Fimento category %q became both %q and %q", row[0], c, row[1])
		}
		fimentoCategory[row[0]] = row[1]
	}
	// The first months of the guide's six, the report's and Grafana's
	// twelve, and the gambling question's three; last month.
	sinceMonth := queryStrings(t, db, `SELECT toString(addMonths(toStartOfMonth(today()), -5)), formatDateTime(addMonths(today(), -2), '%Y-%m'),
		toString(addMonths(toStartOfMonth(today()), -11)), toString(addMonths(toStartOfMonth(today()), -1))`)[0]
	type cashflow struct {
		income, spending decimal.Decimal
		n                int
	}
	// groups are the rows v_monthly_cashflow should have: user, month,
	// common category, currency.
	groups := map[[4]string]*cashflow{}
	for _, tx := range txs {
		category := finoCategory(tx.descriptive, tx.tags)
		if tx.provider == "fimento" {
			category = fimentoCategory[tx.descriptive]
		}
		k := [4]string{tx.provider + "/" + tx.tenant + "/" + tx.user, tx.day[:7] + "-01", category, tx.currency}
		g := groups[k]
		if g == nil {
			g = &cashflow{}
			groups[k] = g
		}
		g.n++
		switch tx.amount.Sign() {
		case -1:
			g.spending = g.spending.Add(tx.amount)
		case 1:
			g.income = g.income.Add(tx.amount)
		}
	}
	// added is what a query adds up of the groups it keeps, by the key it
	// names them with (the key always holds the currency).
	added := func(keep func(k [4]string, g *cashflow) bool, key func(k [4]string) string) map[string]*cashflow {
		out := map[string]*cashflow{}
		for k, g := range groups {
			if !keep(k, g) {
				continue
			}
			s := out[key(k)]
			if s == nil {
				s = &cashflow{}
				out[key(k)] = s
			}
			s.income, s.spending, s.n = s.income.Add(g.income), s.spending.Add(g.spending), s.n+g.n
		}
		return out
	}
	var want03 []string
	for k, s := range added(func(k [4]string, g *cashflow) bool { return k[1] >= sinceMonth[0] && g.spending.IsNegative() },
		func(k [4]string) string { return k[1] + " | " + k[3] + " | " + k[2] }) {
		want03 = append(want03, strings.Join([]string{k, money(s.spending.Neg()), itoa(s.n)}, " | "))
	}
	checkSet(t, "03 monthly spend by category", rowsText(answers["03_monthly_spend_by_category"]), want03)

	// ...and the cash flow view's net per user, month and currency is the
	// ledgers' (finoOS's and Fimento's day totals).
	wantNet := map[string]decimal.Decimal{}
	for _, u := range sb.fino().Users("sandbox-client") {
		l, _ := sb.fino().Ledger("sandbox-client", u)
		for day, d := range l.Days {
			k := "fino " + u + " " + day[:7] + " " + userCurrency["fino/sandbox-client/"+u]
			wantNet[k] = wantNet[k].Add(decimal.RequireFromString(d.AmountSum))
		}
	}
	for _, bank := range sb.fimento().PartnerBanks() {
		for _, p := range sb.fimento().Processes(bank) {
			if sb.fimento().Status(bank, p) != fimento.StatusCompleted {
				continue
			}
			l, err := sb.fimento().Ledger(bank, p)
			if err != nil {
				t.Fatal(err)
			}
			for day, sum := range l.Days {
				k := "fimento " + p + " " + day[:7] + " " + fimentoCurrency[p]
				wantNet[k] = wantNet[k].Add(decimal.RequireFromString(sum))
			}
		}
	}
	gotNet := queryStrings(t, db, `SELECT concat(provider, ' ', user_id, ' ', formatDateTime(month, '%Y-%m'), ' ', currency), toString(sum(net)) FROM v_monthly_cashflow
		GROUP BY provider, user_id, month, currency`)
	if len(gotNet) != len(wantNet) {
		t.Errorf("v_monthly_cashflow: %d user-months, the ledgers %d", len(gotNet), len(wantNet))
	}
	for _, row := range gotNet {
		if !decimal.RequireFromString(row[1]).Equal(wantNet[row[0]]) {
			t.Errorf("v_monthly_cashflow net %s: %s, the ledger %s", row[0], row[1], wantNet[row[0]])
		}
	}

	// The report's cash flow: income and spending per currency and month,
	// the last twelve months.
	var wantCashflow, gotCashflow []string
	for k, s := range added(func(k [4]string, _ *cashflow) bool { return k[1] >= sinceMonth[2] }, func(k [4]string) string { return k[3] + " | " + k[1] }) {
		wantCashflow = append(wantCashflow, strings.Join([]string{k, money(s.income), money(s.spending)}, " | "))
	}
	for _, row := range queryStrings(t, db, cashflowQuery) {
		gotCashflow = append(gotCashflow, strings.Join([]string{row[0], row[1], money(decimal.RequireFromString(row[2])), money(decimal.RequireFromString(row[3]))}, " | "))
	}
	checkSet(t, "the report's cash flow", gotCashflow, wantCashflow)

	// 04: per month, the persons' salary bookings (finoOS's salary module
	// adds up exactly those).
	salary := map[string]map[string]decimal.Decimal{} // month → user → sum
	for _, tx := range finoTxs {
		if tx.person && tx.descriptive == "salary" && tx.amount.IsPositive() {
			m := tx.day[:7]
			if salary[m] == nil {
				salary[m] = map[string]decimal.Decimal{}
			}
			salary[m][tx.user] = salary[m][tx.user].Add(tx.amount)
		}
	}
	var want04 []string
	for m, users := range salary {
		total := decimal.Zero
		for _, s := range users {
			total = total.Add(s)
		}
		want04 = append(want04, strings.Join([]string{m, itoa(len(users)), money(total)}, " | "))
	}
	checkSet(t, "04 salary trend", pick(answers["04_salary_trend"], 0, 1, 2), want04)

	// 05: the ledger's active contracts, and the insurance ones among them
	// (the contract categories categories.csv maps to insurance).
	var wantActive, want05 []string
	for _, u := range sb.fino().Users("sandbox-client") {
		l, _ := sb.fino().Ledger("sandbox-client", u)
		for _, c := range l.Contracts {
			if !c.IsActive {
				continue
			}
			wantActive = append(wantActive, c.ContractID)
			if strings.HasPrefix(c.Category, "INSURANCE_") {
				want05 = append(want05, strings.Join([]string{u, c.ContractID, money(decimal.RequireFromString(c.Amount.String())), c.Interval, c.NextBookingDate}, " | "))
			}
		}
	}
	checkSet(t, "v_contracts_active (fino)", column(queryStrings(t, db, "SELECT contract_id FROM v_contracts_active WHERE provider = 'fino'"), 0), wantActive)
	checkSet(t, "05 active insurance contracts", pick(answers["05_active_insurance_contracts"], 2, 3, 4, 5, 6), want05)

	// 06: persons with gambling bookings in the last three months.
	gambling := map[string]map[string]int{} // user → month → bookings
	for _, tx := range finoTxs {
		if tx.person && tx.descriptive == "gambling" && tx.day[:7] >= sinceMonth[1] {
			if gambling[tx.user] == nil {
				gambling[tx.user] = map[string]int{}
			}
			gambling[tx.user][tx.day[:7]]++
		}
	}
	var want06, got06 []string
	for u, months := range gambling {
		n, list := 0, []string{}
		for m, c := range months {
			n += c
			list = append(list, m)
		}
		sort.Strings(list)
		want06 = append(want06, strings.Join([]string{u, money(decimal.NewFromInt(int64(n))), strings.Join(list, " ")}, " | "))
	}
	for _, row := range answers["06_gambling_risk"] {
		months := strings.Fields(strings.Trim(row[3], "[]"))
		sort.Strings(months)
		got06 = append(got06, strings.Join([]string{row[1], row[2], strings.Join(months, " ")}, " | "))
	}
	checkSet(t, "06 gambling", got06, want06)

	// 07: FinGoal's recommendations by category and currency, as its
	// sandbox lists them; a recommendation is in its user's currency.
	type recs struct {
		n      int
		users  map[string]bool
		amount decimal.Decimal
	}
	byCategory := map[[2]string]*recs{}
	for _, f := range fingoalTruth(t, sb) {
		c, ok := uidCurrency[f.user]
		if !ok {
			t.Errorf("finsight %s is for uid %s, no user of the sandboxes", f.id, f.user)
		}
		r := byCategory[[2]string{f.category, c}]
		if r == nil {
			r = &recs{users: map[string]bool{}}
			byCategory[[2]string{f.category, c}] = r
		}
		r.n, r.users[f.user], r.amount = r.n+1, true, r.amount.Add(f.amount)
	}
	var want07 []string
	for k, r := range byCategory {
		want07 = append(want07, strings.Join([]string{k[0], k[1], itoa(r.n), itoa(len(r.users)), money(r.amount)}, " | "))
	}
	checkSet(t, "07 savings recommendations", rowsText(answers["07_savings_recommendations"]), want07)

	// 08: every stream that ran is fresh and succeeded.
	for _, row := range answers["08_pipeline_freshness"] {
		if row[3] != "success" || row[4] == "0" || row[5] != "0" || row[6] != "0" || row[7] != "0" { // no failed, partial, abandoned
			t.Errorf("08 freshness: %v", row)
		}
	}

	// The report shows its charts with data: the bars' and the line's
	// colours cover a real area of the screenshot.
	report := filepath.Join(t.TempDir(), "report.html")
	if code, stdout, stderr := run(t, env, "report", "-o", report); code != 0 {
		t.Fatalf("report: exit %d\n%s\n%s", code, stdout, stderr)
	}
	_, shot := browse(t, "file://"+report, "report.png")
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	colors := map[string]color.RGBA{"income bars": {0x2d, 0xa4, 0x4e, 0}, "spending bars": {0xcf, 0x22, 0x2e, 0},
		"balance line": {0x09, 0x69, 0xda, 0}, "segment bars": {0x82, 0x50, 0xdf, 0}}
	for what, want := range colors {
		n := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y += 2 {
			for x := b.Min.X; x < b.Max.X; x += 2 {
				r, g, bl, _ := img.At(x, y).RGBA()
				if near(r>>8, want.R) && near(g>>8, want.G) && near(bl>>8, want.B) {
					n++
				}
			}
		}
		if n < 200 {
			t.Errorf("report: the %s cover %d sampled pixels; the chart looks empty", what, n)
		}
	}

	// The Grafana dashboard's panels query the views that exist and answer
	// on the demo data (the failures panel may rightly be empty). A panel
	// with a time axis filters by the dashboard's time range with the
	// plugin's macros, and a panel of money shows the currency the
	// dashboard's variable picks: the test expands both as the plugin does,
	// once per value the variable's query offers.
	dash := readGrafana(t)
	vars := dash.variables(t, db, opts.Database)
	checkSet(t, "grafana variable currency", vars["currency"], sortedKeys(currencies))
	addsMoney := regexp.MustCompile(`sum\((income|spending|net|balance|amount)\)`)
	grafana := map[string][]string{} // panel (title up to its currency) → "currency | row"
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			sql := onDatabase(tg.RawSQL, opts.Database)
			if p.Type == "timeseries" && !strings.Contains(sql, "$__timeFilter(") && !strings.Contains(sql, "$__dateFilter(") {
				t.Errorf("grafana panel %q has a time axis but ignores the dashboard's time range: %s", p.Title, tg.RawSQL)
			}
			if addsMoney.MatchString(sql) && !strings.Contains(sql, "currency = '${currency}'") {
				t.Errorf("grafana panel %q adds up money of every currency: %s", p.Title, tg.RawSQL)
			}
			rng := p.TimeFrom
			if rng == "" {
				rng = strings.TrimPrefix(dash.Time.From, "now-")
			}
			values := []string{""}
			if strings.Contains(sql, "${currency}") {
				values = vars["currency"]
			}
			panel, _, _ := strings.Cut(p.Title, " (")
			for _, currency := range values {
				sql, err := expandGrafanaMacros(sql, rng, map[string]string{"currency": currency})
				if err != nil {
					t.Fatalf("grafana panel %q: %v", p.Title, err)
				}
				rows := queryStrings(t, db, sql)
				if len(rows) == 0 && !strings.Contains(p.Title, "did not succeed") { // the demo's runs all succeed
					t.Errorf("grafana panel %q answers nothing for currency %q on the demo data", p.Title, currency)
				}
				for _, row := range rows {
					grafana[panel] = append(grafana[panel], currency+" | "+strings.Join(row, " | "))
				}
			}
		}
	}
	// Its cash flow is the report's (month as a label), its spending by
	// category last month's spending, per currency.
	var wantGrafanaCashflow, wantSpending []string
	for _, row := range wantCashflow {
		f := strings.Split(row, " | ")
		wantGrafanaCashflow = append(wantGrafanaCashflow, strings.Join([]string{f[0], f[1][:7], f[2], money(decimal.RequireFromString(f[3]).Neg())}, " | "))
	}
	checkSet(t, "grafana cash flow", grafana["Monthly cash flow"], wantGrafanaCashflow)
	for k, s := range added(func(k [4]string, g *cashflow) bool { return k[1] == sinceMonth[3] && g.spending.IsNegative() },
		func(k [4]string) string { return k[3] + " | " + k[2] }) {
		wantSpending = append(wantSpending, k+" | "+money(s.spending.Neg()))
	}
	checkSet(t, "grafana spending by category", grafana["Spending by category"], wantSpending)

	// The report's balance trend is Grafana's, every provider included, per
	// currency, and each currency's last day is what the ledgers hold.
	reportBalances := queryStrings(t, db, balanceTrendQuery)
	var gotTrend []string
	for _, row := range reportBalances {
		gotTrend = append(gotTrend, strings.Join([]string{row[0], row[1], money(decimal.RequireFromString(row[2]))}, " | "))
	}
	checkSet(t, "balance trend, the report against Grafana", gotTrend, grafana["Balance trend"])
	lastDay := map[string]string{} // currency → the report's last day
	for _, row := range reportBalances {
		lastDay[row[0]] = max(lastDay[row[0]], row[1])
	}
	lastOn := func(days map[string]string, day string) decimal.Decimal { // the balance on day, carried forward
		var last string
		for d := range days {
			if d <= day && d > last {
				last = d
			}
		}
		if last == "" {
			return decimal.Zero
		}
		return decimal.RequireFromString(days[last])
	}
	wantLast := map[string]decimal.Decimal{}
	for _, u := range sb.fino().Users("sandbox-client") {
		l, _ := sb.fino().Ledger("sandbox-client", u)
		for _, days := range l.Balances {
			wantLast["EUR"] = wantLast["EUR"].Add(lastOn(days, lastDay["EUR"]))
		}
	}
	for _, bank := range sb.fimento().PartnerBanks() {
		for _, p := range sb.fimento().Processes(bank) {
			if sb.fimento().Status(bank, p) == fimento.StatusCompleted {
				l, _ := sb.fimento().Ledger(bank, p)
				c := fimentoCurrency[p]
				wantLast[c] = wantLast[c].Add(lastOn(l.Balances, lastDay[c]))
			}
		}
	}
	if len(lastDay) != len(wantLast) || len(lastDay) < 2 {
		t.Errorf("balance trend in %d currencies, the ledgers' balances in %d", len(lastDay), len(wantLast))
	}
	for _, row := range reportBalances {
		if c := row[0]; row[1] == lastDay[c] && !decimal.RequireFromString(row[2]).Equal(wantLast[c]) {
			t.Errorf("balance trend on %s: %s %s in the report, the finoOS and Fimento ledgers %s", row[1], row[2], c, wantLast[c])
		}
	}

	// Re-running every stream (the whole demo again) changes no answer of
	// the guide and no row of any v_* view (08 and v_pipeline_freshness are
	// about the runs themselves: only their streams and statuses are kept;
	// lineage times and job ids are left out).
	views := snapshotViews(t, db)
	if len(views) < 9 {
		t.Fatalf("%d v_* views in the database", len(views))
	}
	if code, stdout, stderr := run(t, env, "demo"); code != 0 {
		t.Fatalf("demo again: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, q := range qs {
		if q.name == "08_pipeline_freshness" {
			continue
		}
		if again := queryStrings(t, db, q.query); fmt.Sprint(again) != fmt.Sprint(answers[q.name]) {
			t.Errorf("%s changed after re-running the streams:\nbefore %v\nafter  %v", q.name, answers[q.name], again)
		}
	}
	again := snapshotViews(t, db)
	for view, rows := range views {
		if len(rows) == 0 {
			t.Errorf("%s is empty on the demo data", view)
		}
		if strings.Join(again[view], "\n") != strings.Join(rows, "\n") {
			t.Errorf("%s changed after re-running every stream: %d rows before, %d after", view, len(rows), len(again[view]))
		}
	}
}

// snapshotViews reads every v_* view whole, each row as text, sorted;
// columns that record when or by which job a row was loaded are left out.
func snapshotViews(t *testing.T, db *clickhouse.DB) map[string][]string {
	t.Helper()
	volatile := map[string]bool{"extracted_at": true, "observed_at": true, "job_id": true}
	cols := map[string][]string{}
	for _, row := range queryStrings(t, db, `SELECT table, name FROM system.columns WHERE database = currentDatabase() AND startsWith(table, 'v_')
		`) {
		switch {
		case row[0] == "v_pipeline_freshness" && row[1] != "stream" && row[1] != "last_status":
		case volatile[row[1]]:
		default:
			cols[row[0]] = append(cols[row[0]], fmt.Sprintf("`%s`", row[1]))
		}
	}
	out := map[string][]string{}
	for view, c := range cols {
		out[view] = rowsText(queryStrings(t, db, fmt.Sprintf("SELECT %s FROM %s", strings.Join(c, ", "), view)))
		sort.Strings(out[view])
	}
	return out
}

// grafanaDashboard is what the tests read of deploy/grafana/finsync.json.
type grafanaDashboard struct {
	Time       struct{ From string }
	Templating struct {
		List []struct{ Name, Type, Query string }
	}
	Panels []grafanaPanel // the ClickHouse panels
	// Prometheus are the PromQL expressions of the daemon panels, by
	// panel title.
	Prometheus map[string]string
}

type grafanaPanel struct {
	Title, Type, TimeFrom string
	Targets               []struct{ RawSQL, Expr string }
}

func readGrafana(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/finsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil || len(d.Panels) < 6 {
		t.Fatalf("deploy/grafana/finsync.json: %d panels, %v", len(d.Panels), err)
	}
	all := d.Panels
	d.Panels, d.Prometheus = nil, map[string]string{}
	for _, p := range all {
		if len(p.Targets) == 1 && p.Targets[0].Expr != "" {
			d.Prometheus[p.Title] = p.Targets[0].Expr
		} else {
			d.Panels = append(d.Panels, p)
		}
	}
	return d
}

// variableQueries are the queries of the dashboard's query variables, by
// name, on database.
func (d grafanaDashboard) variableQueries(database string) map[string]string {
	out := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out[v.Name] = onDatabase(v.Query, database)
		}
	}
	return out
}

// variables are the values Grafana offers for each query variable: its
// query's answer on database.
func (d grafanaDashboard) variables(t *testing.T, db *clickhouse.DB, database string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, q := range d.variableQueries(database) {
		out[name] = column(queryStrings(t, db, q), 0)
		if len(out[name]) == 0 {
			t.Fatalf("grafana variable %s offers no value: %s", name, q)
		}
	}
	return out
}

// onDatabase points the dashboard's SQL (database finsync) at database.
func onDatabase(sql, database string) string {
	return strings.ReplaceAll(sql, "finsync.", quoteIdent(database)+".")
}

// expandGrafanaMacros expands the dashboard's variables (${name}, one
// value each: none is multi-valued) and the ClickHouse data source's
// time-range macros for a range of the last rng ("7d", "180d", "24h").
func expandGrafanaMacros(sql, rng string, vars map[string]string) (string, error) {
	for name, value := range vars {
		sql = strings.ReplaceAll(sql, "${"+name+"}", value)
	}
	var d time.Duration
	days, isDays := strings.CutSuffix(rng, "d")
	n, err := strconv.Atoi(days)
	if isDays && err == nil {
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(rng)
	}
	if err != nil {
		return "", fmt.Errorf("time range %q: %w", rng, err)
	}
	from := fmt.Sprintf("now() - %d", int64(d.Seconds()))
	for macro, expand := range map[string]func(col string) string{
		"$__timeFilter(": func(col string) string { return fmt.Sprintf("%s >= toDateTime(%s) AND %s <= now()", col, from, col) },
		"$__dateFilter(": func(col string) string { return fmt.Sprintf("%s >= toDate(%s) AND %s <= today()", col, from, col) },
	} {
		for {
			i := strings.Index(sql, macro)
			if i < 0 {
				break
			}
			j := strings.Index(sql[i:], ")")
			sql = sql[:i] + expand(strings.TrimSpace(sql[i+len(macro):i+j])) + sql[i+j+1:]
		}
	}
	if strings.Contains(sql, "$__") || strings.Contains(sql, "${") {
		return "", fmt.Errorf("a macro or variable the test does not expand: %s", sql)
	}
	return sql, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// queryStrings runs q and returns every cell as text (toString in SQL).
func queryStrings(t *testing.T, db *clickhouse.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Conn().Query(context.Background(), "SELECT * FROM ("+q+")", args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		row, err := scanStrings(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, row)
	}
	return out
}

// pick is the rows' columns cols, each row as "a | b | c".
func pick(rows [][]string, cols ...int) []string {
	var out []string
	for _, r := range rows {
		var parts []string
		for _, c := range cols {
			parts = append(parts, r[c])
		}
		out = append(out, strings.Join(parts, " | "))
	}
	return out
}

func column(rows [][]string, cols ...int) []string {
	var out []string
	for _, r := range rows {
		var parts []string
		for _, c := range cols {
			parts = append(parts, r[c])
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

func filter(rows [][]string, col int, value string) [][]string {
	var out [][]string
	for _, r := range rows {
		if r[col] == value {
			out = append(out, r)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func checkSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(got)
	sort.Strings(want)
	if len(want) == 0 {
		t.Errorf("%s: the ledger gives nothing to compare; the demo data is too thin", what)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot  %v\nwant %v", what, got, want)
	}
}

func near(a uint32, b uint8) bool { return a+24 >= uint32(b) && a <= uint32(b)+24 }
