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
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract/fimento"
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
	for _, kv := range sb.env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
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
		for _, a := range sb.finapi.Ledger(tenant) {
			if b := a.Balance(sb.finapi.Today()); a.Type == "checking" && b > 500000 {
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

	// 02, 09: from the finoOS ledger's end-of-day balances.
	thisMonth := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1-time.Now().UTC().Day())
	var wantOverdrawn, wantTotals []string
	for _, u := range sb.fino.Users("sandbox-client") {
		l, err := sb.fino.Ledger("sandbox-client", u)
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
			wantTotals = append(wantTotals, u+" "+total.StringFixed(2))
		}
	}
	checkSet(t, "02 recurring overdrafts (fino)", column(filter(answers["02_recurring_overdrafts"], 0, "fino"), 3), wantOverdrawn)
	var gotTotals []string
	for _, row := range filter(answers["09_latest_balances"], 0, "fino") {
		gotTotals = append(gotTotals, row[2]+" "+decimal.RequireFromString(row[4]).StringFixed(2))
	}
	checkSet(t, "09 latest balances (fino)", gotTotals, wantTotals)

	// 03–07 from what the sandboxes serve (their HTTP APIs, decoded here;
	// truth_test.go), not from the warehouse.
	finoTxs, fimentoTxs := finoTruth(t, sb), fimentoTruth(t, sb)
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
	sinceMonth := queryStrings(t, db, "SELECT toString(addMonths(toStartOfMonth(today()), -5)), formatDateTime(addMonths(today(), -2), '%Y-%m')")[0]
	type cashflow struct {
		spending decimal.Decimal
		n        int
	}
	groups := map[[3]string]*cashflow{} // user, month, category
	for _, tx := range append(append([]truthTx{}, finoTxs...), fimentoTxs...) {
		category := finoCategory(tx.descriptive, tx.tags)
		if tx.provider == "fimento" {
			category = fimentoCategory[tx.descriptive]
		}
		k := [3]string{tx.provider + "/" + tx.tenant + "/" + tx.user, tx.day[:7] + "-01", category}
		g := groups[k]
		if g == nil {
			g = &cashflow{}
			groups[k] = g
		}
		g.n++
		if tx.amount.IsNegative() {
			g.spending = g.spending.Add(tx.amount)
		}
	}
	spent := map[[2]string]*cashflow{}
	for k, g := range groups {
		if k[1] < sinceMonth[0] || !g.spending.IsNegative() {
			continue
		}
		s := spent[[2]string{k[1], k[2]}]
		if s == nil {
			s = &cashflow{}
			spent[[2]string{k[1], k[2]}] = s
		}
		s.spending, s.n = s.spending.Sub(g.spending), s.n+g.n
	}
	var want03 []string
	for k, s := range spent {
		want03 = append(want03, strings.Join([]string{k[0], k[1], money(s.spending), itoa(s.n)}, " | "))
	}
	checkSet(t, "03 monthly spend by category", rowsText(answers["03_monthly_spend_by_category"]), want03)

	// ...and the cash flow view's net per user and month is the ledgers'
	// (finoOS's and Fimento's day totals).
	wantNet := map[string]decimal.Decimal{}
	for _, u := range sb.fino.Users("sandbox-client") {
		l, _ := sb.fino.Ledger("sandbox-client", u)
		for day, d := range l.Days {
			k := "fino " + u + " " + day[:7]
			wantNet[k] = wantNet[k].Add(decimal.RequireFromString(d.AmountSum))
		}
	}
	for _, bank := range sb.fimento.PartnerBanks() {
		for _, p := range sb.fimento.Processes(bank) {
			if sb.fimento.Status(bank, p) != fimento.StatusCompleted {
				continue
			}
			l, err := sb.fimento.Ledger(bank, p)
			if err != nil {
				t.Fatal(err)
			}
			for day, sum := range l.Days {
				k := "fimento " + p + " " + day[:7]
				wantNet[k] = wantNet[k].Add(decimal.RequireFromString(sum))
			}
		}
	}
	gotNet := queryStrings(t, db, `SELECT concat(provider, ' ', user_id, ' ', formatDateTime(month, '%Y-%m')), toString(sum(net)) FROM v_monthly_cashflow
		GROUP BY provider, user_id, month`)
	if len(gotNet) != len(wantNet) {
		t.Errorf("v_monthly_cashflow: %d user-months, the ledgers %d", len(gotNet), len(wantNet))
	}
	for _, row := range gotNet {
		if !decimal.RequireFromString(row[1]).Equal(wantNet[row[0]]) {
			t.Errorf("v_monthly_cashflow net %s: %s, the ledger %s", row[0], row[1], wantNet[row[0]])
		}
	}

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
	for _, u := range sb.fino.Users("sandbox-client") {
		l, _ := sb.fino.Ledger("sandbox-client", u)
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

	// 07: FinGoal's recommendations by category, as its sandbox lists them.
	type recs struct {
		n      int
		users  map[string]bool
		amount decimal.Decimal
	}
	byCategory := map[string]*recs{}
	for _, f := range fingoalTruth(t, sb) {
		r := byCategory[f.category]
		if r == nil {
			r = &recs{users: map[string]bool{}}
			byCategory[f.category] = r
		}
		r.n, r.users[f.user], r.amount = r.n+1, true, r.amount.Add(f.amount)
	}
	var want07 []string
	for c, r := range byCategory {
		want07 = append(want07, strings.Join([]string{c, itoa(r.n), itoa(len(r.users)), money(r.amount)}, " | "))
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
	// plugin's macros, which the test expands as the plugin does.
	b, err := os.ReadFile("../../deploy/grafana/finsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Time   struct{ From string }
		Panels []struct {
			Title, Type, TimeFrom string
			Targets               []struct{ RawSQL string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) < 6 {
		t.Fatalf("deploy/grafana/finsync.json: %d panels, %v", len(dash.Panels), err)
	}
	var grafanaBalances [][]string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			sql := strings.ReplaceAll(tg.RawSQL, "finsync.", "`"+opts.Database+"`.")
			if p.Type == "timeseries" && !strings.Contains(sql, "$__timeFilter(") && !strings.Contains(sql, "$__dateFilter(") {
				t.Errorf("grafana panel %q has a time axis but ignores the dashboard's time range: %s", p.Title, tg.RawSQL)
			}
			rng := p.TimeFrom
			if rng == "" {
				rng = strings.TrimPrefix(dash.Time.From, "now-")
			}
			sql, err := expandGrafanaMacros(sql, rng)
			if err != nil {
				t.Fatalf("grafana panel %q: %v", p.Title, err)
			}
			rows := queryStrings(t, db, sql)
			if len(rows) == 0 && !strings.Contains(p.Title, "did not succeed") { // the demo's runs all succeed
				t.Errorf("grafana panel %q answers nothing on the demo data", p.Title)
			}
			if strings.HasPrefix(p.Title, "Balance trend") {
				grafanaBalances = rows
			}
		}
	}
	// The report's balance trend is Grafana's, every provider included, and
	// its last day is what the ledgers hold.
	reportBalances := queryStrings(t, db, balanceTrendQuery)
	if len(reportBalances) == 0 || len(reportBalances) != len(grafanaBalances) {
		t.Errorf("balance trend: %d days in the report, %d in Grafana", len(reportBalances), len(grafanaBalances))
	}
	for i := range min(len(reportBalances), len(grafanaBalances)) {
		r, g := reportBalances[i], grafanaBalances[i]
		if r[0] != g[0] || !decimal.RequireFromString(r[1]).Equal(decimal.RequireFromString(g[1])) {
			t.Errorf("balance trend differs: report %v, Grafana %v", r, g)
			break
		}
	}
	if n := len(reportBalances); n > 0 {
		day, wantTotal := reportBalances[n-1][0], decimal.Zero
		lastOn := func(days map[string]string) decimal.Decimal { // the balance on day, carried forward
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
		for _, u := range sb.fino.Users("sandbox-client") {
			l, _ := sb.fino.Ledger("sandbox-client", u)
			for _, days := range l.Balances {
				wantTotal = wantTotal.Add(lastOn(days))
			}
		}
		fimentoDays := 0
		for _, bank := range sb.fimento.PartnerBanks() {
			for _, p := range sb.fimento.Processes(bank) {
				if sb.fimento.Status(bank, p) == fimento.StatusCompleted {
					l, _ := sb.fimento.Ledger(bank, p)
					wantTotal = wantTotal.Add(lastOn(l.Balances))
					fimentoDays += len(l.Balances)
				}
			}
		}
		if got := decimal.RequireFromString(reportBalances[n-1][1]); !got.Equal(wantTotal) || fimentoDays == 0 {
			t.Errorf("balance trend on %s: %s in the report, the finoOS and Fimento ledgers %s", day, got, wantTotal)
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

// expandGrafanaMacros expands the ClickHouse data source's time-range
// macros for a range of the last rng ("7d", "180d", "24h").
func expandGrafanaMacros(sql, rng string) (string, error) {
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
	if strings.Contains(sql, "$__") {
		return "", fmt.Errorf("a macro the test does not expand: %s", sql)
	}
	return sql, nil
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
