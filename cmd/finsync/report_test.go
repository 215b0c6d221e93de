package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// The report reads well: amounts with thousands separators and their
// currency, charts with gridlines and labelled ticks, the month under way
// marked partial, and the freshness table stalest first with each
// stream's status as the status page judges it.
func TestReportReadsWell(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for _, q := range []string{
		// A salary last month and one this month, so far.
		`INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount, currency, category)
			SELECT 'fino', 'client', 'u1', 't-last', addMonths(toStartOfMonth(today()), -1) + 2, toDecimal64(12345.67, 4), 'EUR', 'salary' UNION ALL
			SELECT 'fino', 'client', 'u1', 't-spend', addMonths(toStartOfMonth(today()), -1) + 3, toDecimal64(-1500, 4), 'EUR', 'rent' UNION ALL
			SELECT 'fino', 'client', 'u1', 't-now', toStartOfMonth(today()), toDecimal64(2000, 4), 'EUR', 'salary'`,
		`INSERT INTO account_balances (provider, tenant, user_id, account_id, granularity, balance_date, balance, currency)
			SELECT 'fino', 'client', 'u1', 'a1', 'day', today() - 2, toDecimal64(20500, 4), 'EUR' UNION ALL
			SELECT 'fino', 'client', 'u1', 'a1', 'day', today() - 1, toDecimal64(21250.5, 4), 'EUR'`,
		// fino.accounts (every 6 hours) last succeeded 3 days ago: stale;
		// fino.transactions failed after a success an hour ago: failing;
		// fingoal.finsights succeeded 10 minutes ago: ok.
		runRow("fino.accounts", "success", now.Add(-72*time.Hour)),
		runRow("fino.transactions", "success", now.Add(-time.Hour)),
		runRow("fino.transactions", "failed", now.Add(-30*time.Minute)),
		runRow("fingoal.finsights", "success", now.Add(-10*time.Minute)),
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	c, err := LoadConfig(ctx, lookupFrom(nil))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := writeReport(ctx, db, path, c.sched); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	_, png := browse(t, "file://"+path, "report-axes.png")
	checkNotBlank(t, png)
	month := now.Format("2006-01")
	for _, want := range []string{
		"income: 12,345.67 EUR", // a bar's value
		`>10,000 EUR</text>`,    // a y tick
		`class="grid"`,
		`>` + now.AddDate(0, 0, -1).Format(time.DateOnly) + `: 21,250.50 EUR</text>`, // the balance line's last value
		month + `<tspan class="partial"`, `>(partial)</tspan>`,
		`fill="url(#cashflow-EUR-hatch-0)"><title>` + month + ` income: 2,000.00 EUR (partial month, so far)</title>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks %s", want)
		}
	}
	rows := regexp.MustCompile(`<tr class="fresh" data-stream="([^"]+)" data-health="([^"]+)">`).FindAllStringSubmatch(html, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1]+" "+r[2])
	}
	if want := "fino.accounts stale, fino.transactions failing, fingoal.finsights ok"; strings.Join(got, ", ") != want {
		t.Errorf("freshness rows %v, want %s", got, want)
	}
}

// runRow is an INSERT of a finished run of stream.
func runRow(stream, status string, at time.Time) string {
	return fmt.Sprintf("INSERT INTO etl_runs (stream, run_id, tenant, status, started_at, finished_at, _version) "+
		"SELECT '%s', '%s-%d', 't', '%s', toDateTime(%d), toDateTime(%d), toUInt64(%d)", stream, stream, at.Unix(), status, at.Unix(), at.Unix()+1, at.UnixNano())
}

func TestThousands(t *testing.T) {
	for _, tc := range []struct {
		v      float64
		places int
		want   string
	}{{12345.678, 2, "12,345.68"}, {-1234567, 0, "-1,234,567"}, {999, 0, "999"}, {0.5, 2, "0.50"}, {-0.001, 2, "0.00"}, {1000, 1, "1,000.0"}} {
		if got := thousands(tc.v, tc.places); got != tc.want {
			t.Errorf("thousands(%v, %d) = %s, want %s", tc.v, tc.places, got, tc.want)
		}
	}
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		places int
		want   string
	}{
		{0, 12345.67, 2, "[0 5000 10000 15000] 0"},
		{0, 1, 0, "[0 1] 0"}, // counts: no tick between whole numbers
		{20500, 21250.5, 2, "[20400 20600 20800 21000 21200 21400] 0"},
		{0, 0.9, 2, "[0 0.2 0.4 0.6 0.8 1] 1"},
	} {
		ts, dec := ticks(tc.lo, tc.hi, 5, tc.places)
		if got := fmt.Sprint(ts, " ", dec); got != tc.want {
			t.Errorf("ticks(%v, %v): %s, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}
