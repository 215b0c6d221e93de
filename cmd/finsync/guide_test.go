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
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

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
	var wantHigh []string
	wantSize := map[string]int{}
	for _, tenant := range finapiMandators {
		for _, a := range sb.finapi.Ledger(tenant) {
			if a.Type == "checking" && a.Balance(sb.finapi.Today()) > 500000 {
				wantHigh = append(wantHigh, tenant+" "+a.UserID)
				wantSize[tenant]++
			}
		}
	}
	checkSet(t, "01 high balance users", column(answers["01_high_balance_users"], 0, 1), wantHigh)
	for _, row := range answers["10_segment_sizes"] {
		if row[0] == "highBalance" && row[2] != fmt.Sprint(wantSize[row[1]]) {
			t.Errorf("10 segment sizes: highBalance %s has %s users, the ledger %d", row[1], row[2], wantSize[row[1]])
		}
	}

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

	// 03: the month's spending over all categories equals what the
	// transactions say, computed here from the base table.
	spent := map[string]decimal.Decimal{}
	for _, row := range answers["03_monthly_spend_by_category"] {
		spent[row[0]] = spent[row[0]].Add(decimal.RequireFromString(row[2]))
	}
	for _, row := range queryStrings(t, db, `SELECT toString(toStartOfMonth(booking_date)), toString(-sum(amount)) FROM transactions FINAL
		WHERE provider != 'fingoal' AND amount < 0 AND booking_date >= addMonths(toStartOfMonth(today()), -5) GROUP BY toStartOfMonth(booking_date)`) {
		if !spent[row[0]].Equal(decimal.RequireFromString(row[1])) {
			t.Errorf("03 spend in %s: %s by category, %s in the transactions", row[0], spent[row[0]], row[1])
		}
	}

	// ...and the cash flow view's net per user and month is the ledger's.
	wantNet := map[string]decimal.Decimal{}
	for _, u := range sb.fino.Users("sandbox-client") {
		l, _ := sb.fino.Ledger("sandbox-client", u)
		for day, d := range l.Days {
			k := u + " " + day[:7]
			wantNet[k] = wantNet[k].Add(decimal.RequireFromString(d.AmountSum))
		}
	}
	gotNet := queryStrings(t, db, `SELECT concat(user_id, ' ', formatDateTime(month, '%Y-%m')), toString(sum(net)) FROM v_monthly_cashflow
		WHERE provider = 'fino' GROUP BY user_id, month`)
	if len(gotNet) != len(wantNet) {
		t.Errorf("v_monthly_cashflow: %d user-months, the ledger %d", len(gotNet), len(wantNet))
	}
	for _, row := range gotNet {
		if !decimal.RequireFromString(row[1]).Equal(wantNet[row[0]]) {
			t.Errorf("v_monthly_cashflow net %s: %s, the ledger %s", row[0], row[1], wantNet[row[0]])
		}
	}

	// 04: the salary module's monthly total equals the salary transactions
	// of persons that month (finoOS categorizes the same ledger).
	for _, row := range answers["04_salary_trend"] {
		want := queryStrings(t, db, `SELECT toString(sum(amount)) FROM transactions FINAL WHERE provider = 'fino' AND category = 'salary'
			AND formatDateTime(booking_date, '%Y-%m') = ?`, row[0])
		if !decimal.RequireFromString(row[2]).Equal(decimal.RequireFromString(want[0][0])) {
			t.Errorf("04 salary %s: module %s, transactions %s", row[0], row[2], want[0][0])
		}
	}

	// 05: active contracts of the ledger, insurance ones among them.
	var wantActive []string
	for _, u := range sb.fino.Users("sandbox-client") {
		l, _ := sb.fino.Ledger("sandbox-client", u)
		for _, c := range l.Contracts {
			if c.IsActive {
				wantActive = append(wantActive, c.ContractID)
			}
		}
	}
	checkSet(t, "v_contracts_active (fino)", column(queryStrings(t, db, "SELECT contract_id FROM v_contracts_active WHERE provider = 'fino'"), 0), wantActive)
	for _, id := range column(answers["05_active_insurance_contracts"], 3) {
		if !contains(wantActive, id) {
			t.Errorf("05: contract %s is not active in the ledger", id)
		}
	}

	// 06, 07: the views answer what the base tables say.
	checkSet(t, "06 gambling", column(answers["06_gambling_risk"], 1), column(queryStrings(t, db, `SELECT DISTINCT user_id FROM insights FINAL
		WHERE module = 'person-risk-gambling' AND metric = 'gambling.count' AND value > 0 AND period >= formatDateTime(addMonths(today(), -2), '%Y-%m')`), 0))
	var recs int
	for _, row := range answers["07_savings_recommendations"] {
		var n int
		fmt.Sscan(row[1], &n)
		recs += n
	}
	if want := queryStrings(t, db, "SELECT toString(uniqExact(user_id, insight_id)) FROM insights FINAL WHERE module = 'finsight'"); fmt.Sprint(recs) != want[0][0] {
		t.Errorf("07: %d recommendations by category, %s in insights", recs, want[0][0])
	}

	// 08: every stream that ran is fresh and succeeded.
	for _, row := range answers["08_pipeline_freshness"] {
		if row[3] != "success" || row[4] == "0" {
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
	// on the demo data (the failures panel may rightly be empty).
	b, err := os.ReadFile("../../deploy/grafana/finsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ RawSQL string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) < 6 {
		t.Fatalf("deploy/grafana/finsync.json: %d panels, %v", len(dash.Panels), err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			rows := queryStrings(t, db, strings.ReplaceAll(tg.RawSQL, "finsync.", "`"+opts.Database+"`."))
			if len(rows) == 0 && !strings.Contains(p.Title, "Failed") {
				t.Errorf("grafana panel %q answers nothing on the demo data", p.Title)
			}
		}
	}

	// Re-running streams changes no answer (08 is about the runs themselves).
	for _, s := range []string{"fino.transactions", "fino.account_history", "fino.analytics.person_income", "finapi.segments.high_balance", "fingoal.enrichment"} {
		if code, stdout, stderr := run(t, env, "once", "-stream", s); code != 0 {
			t.Fatalf("once %s: exit %d\n%s\n%s", s, code, stdout, stderr)
		}
	}
	for _, q := range qs {
		if q.name == "08_pipeline_freshness" {
			continue
		}
		if again := queryStrings(t, db, q.query); fmt.Sprint(again) != fmt.Sprint(answers[q.name]) {
			t.Errorf("%s changed after re-running the streams:\nbefore %v\nafter  %v", q.name, answers[q.name], again)
		}
	}
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
