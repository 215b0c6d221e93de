package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// TestMoneyIsAddedPerCurrency: one user holds money in EUR and SEK (the
// sandboxes never mix currencies within a user), and every query that adds
// money up — the guide's, the report's, Grafana's panels for each value of
// its currency variable, the demo's spending example — keeps them apart.
// Summing across currencies would give 12.75 spent, 1075.50 held.
func TestMoneyIsAddedPerCurrency(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	// INSERT ... SELECT: the native protocol sends no client data for it.
	for _, q := range []string{
		// Last month: groceries in SEK and in EUR, a salary in EUR; FinGoal's
		// copies of the purchases (never counted: they duplicate them).
		`INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount, currency, category)
			SELECT 'fino', 'client', 'u1', 't-sek', addMonths(toStartOfMonth(today()), -1) + 2, toDecimal64(-10.5, 4), 'SEK', 'groceries' UNION ALL
			SELECT 'fino', 'client', 'u1', 't-eur', addMonths(toStartOfMonth(today()), -1) + 3, toDecimal64(-2.25, 4), 'EUR', 'groceries' UNION ALL
			SELECT 'fino', 'client', 'u1', 't-pay', addMonths(toStartOfMonth(today()), -1) + 4, toDecimal64(100, 4), 'EUR', 'salary' UNION ALL
			SELECT 'fingoal', 'fg', 'uid-1', 'fg-sek', addMonths(toStartOfMonth(today()), -1) + 2, toDecimal64(-10.5, 4), 'SEK', 'groceries' UNION ALL
			SELECT 'fingoal', 'fg', 'uid-1', 'fg-eur', addMonths(toStartOfMonth(today()), -1) + 3, toDecimal64(-2.25, 4), 'EUR', 'groceries'`,
		`INSERT INTO enrichment_submissions (provider, tenant, source_provider, source_tenant, user_id, transaction_id, currency, uid,
			enrich_transaction_id, batch_request_id, status)
			SELECT 'fingoal', 'fg', 'fino', 'client', 'u1', 't-sek', 'SEK', 'uid-1', 'fg-sek', 'b1', 'submitted' UNION ALL
			SELECT 'fingoal', 'fg', 'fino', 'client', 'u1', 't-eur', 'EUR', 'uid-1', 'fg-eur', 'b1', 'submitted'`,
		// A savings recommendation found in each purchase.
		`INSERT INTO insights (provider, tenant, user_id, module, insight_id, metric, value, value_text, transaction_ids)
			SELECT 'fingoal', 'fg', 'uid-1', 'finsight', 'f-sek', 'amount_found', toDecimal128(0.5, 6), 'Lidl Plus', ['fg-sek'] UNION ALL
			SELECT 'fingoal', 'fg', 'uid-1', 'finsight', 'f-eur', 'amount_found', toDecimal128(0.25, 6), 'Lidl Plus', ['fg-eur']`,
		`INSERT INTO insights (provider, tenant, user_id, module, insight_id, metric, value_text, transaction_ids)
			SELECT 'fingoal', 'fg', 'uid-1', 'finsight', 'f-sek', 'category', 'Groceries', ['fg-sek'] UNION ALL
			SELECT 'fingoal', 'fg', 'uid-1', 'finsight', 'f-eur', 'category', 'Groceries', ['fg-eur']`,
		// Yesterday's balances: a SEK account and two EUR ones.
		`INSERT INTO account_balances (provider, tenant, user_id, account_id, granularity, balance_date, balance, currency)
			SELECT 'fino', 'client', 'u1', 'a-sek', 'day', today() - 1, toDecimal64(1000, 4), 'SEK' UNION ALL
			SELECT 'fino', 'client', 'u1', 'a-eur', 'day', today() - 1, toDecimal64(50, 4), 'EUR' UNION ALL
			SELECT 'fino', 'client', 'u1', 'a-eur2', 'day', today() - 1, toDecimal64(25.5, 4), 'EUR'`,
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	dates := queryStrings(t, db, "SELECT toString(addMonths(toStartOfMonth(today()), -1)), toString(today() - 1)")[0]
	month, day := dates[0], dates[1]

	guide := map[string]string{}
	qs, err := guideQueries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		guide[q.name] = q.query
	}
	var spending string
	for _, e := range examples() {
		if strings.HasPrefix(e.title, "spending by category") {
			spending = e.query
		}
	}
	dash := readGrafana(t)
	if got := dash.variables(t, db, db.Database())["currency"]; strings.Join(got, " ") != "EUR SEK" {
		t.Errorf("grafana variable currency offers %v, want EUR SEK", got)
	}
	panel := func(title, currency string) string {
		for _, p := range dash.Panels {
			if strings.HasPrefix(p.Title, title) {
				sql, err := expandGrafanaMacros(onDatabase(p.Targets[0].RawSQL, db.Database()), "180d", map[string]string{"currency": currency})
				if err != nil {
					t.Fatal(err)
				}
				return sql
			}
		}
		t.Fatalf("no grafana panel %q", title)
		return ""
	}
	for _, tc := range []struct {
		name, query string
		want        []string // rows, decimals with two places
	}{
		{"guide 03", guide["03_monthly_spend_by_category"], []string{
			month + " | EUR | groceries | 2.25 | 1", month + " | SEK | groceries | 10.50 | 1"}},
		{"guide 07", guide["07_savings_recommendations"], []string{
			"Groceries | EUR | 1 | 1 | 0.25", "Groceries | SEK | 1 | 1 | 0.50"}},
		{"guide 09", guide["09_latest_balances"], []string{
			"fino | client | u1 | EUR | 2 | 75.50 | " + day, "fino | client | u1 | SEK | 1 | 1000.00 | " + day}},
		{"report cash flow", cashflowQuery, []string{"EUR | " + month + " | 100.00 | -2.25", "SEK | " + month + " | 0.00 | -10.50"}},
		{"report balance trend", balanceTrendQuery, []string{"EUR | " + day + " | 75.50", "SEK | " + day + " | 1000.00"}},
		{"grafana cash flow, EUR", panel("Monthly cash flow", "EUR"), []string{month[:7] + " | 100.00 | 2.25"}},
		{"grafana cash flow, SEK", panel("Monthly cash flow", "SEK"), []string{month[:7] + " | 0.00 | 10.50"}},
		{"grafana balance trend, EUR", panel("Balance trend", "EUR"), []string{day + " | 75.50"}},
		{"grafana balance trend, SEK", panel("Balance trend", "SEK"), []string{day + " | 1000.00"}},
		{"grafana spending by category, EUR", panel("Spending by category", "EUR"), []string{"groceries | 2.25"}},
		{"grafana spending by category, SEK", panel("Spending by category", "SEK"), []string{"groceries | 10.50"}},
		{"demo spending by category", spending, []string{"EUR | groceries | 1 | -2.25", "SEK | groceries | 1 | -10.50"}},
	} {
		if got := strings.Join(twoPlaces(queryStrings(t, db, tc.query)), "\n"); got != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\ngot  %s\nwant %s\n%s", tc.name, strings.ReplaceAll(got, "\n", "; "), strings.Join(tc.want, "; "), tc.query)
		}
	}
}

var decimalCell = regexp.MustCompile(`^-?[0-9]+\.[0-9]+$`)

// twoPlaces renders rows as "a | b | c", decimals (toString's text too)
// with two places.
func twoPlaces(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, row := range rows {
		cells := make([]string, len(row))
		for j, c := range row {
			if decimalCell.MatchString(c) {
				c = money(decimal.RequireFromString(c))
			}
			cells[j] = c
		}
		out[i] = strings.Join(cells, " | ")
	}
	return out
}
