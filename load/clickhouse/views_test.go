package clickhouse_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// v_account_balance_daily fills the days an account's provider did not
// report with the last reported balance (reported = 0), per account, from
// its first to its last reported day; a re-reported day counts in its
// latest version, other granularities not at all. v_account_balance_latest
// is the newest day's balance. On every server version (18.16 included).
func TestBalanceViewsFillGaps(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	batch, err := db.Conn().PrepareBatch(ctx, "INSERT INTO account_balances (provider, tenant, user_id, account_id, granularity, "+
		"balance_date, balance, currency, source_job_id, run_id, extracted_at, _version)")
	if err != nil {
		t.Fatal(err)
	}
	row := func(tenant, account, granularity, day, balance string, version uint64) {
		d, _ := time.Parse(time.DateOnly, day)
		if err := batch.Append("fino", tenant, "u1", account, granularity, d, decimal.RequireFromString(balance), "EUR", "", "r",
			time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), version); err != nil {
			t.Fatal(err)
		}
	}
	row("t1", "acc-a", "day", "2026-01-01", "100.00", 1)
	row("t1", "acc-a", "day", "2026-01-02", "110.50", 1)
	row("t1", "acc-a", "day", "2026-01-02", "111.00", 2) // re-reported later
	// 01-03 and 01-04 missing
	row("t1", "acc-a", "day", "2026-01-05", "-20.00", 1)
	row("t1", "acc-a", "day", "2026-01-06", "5.25", 1)
	row("t1", "acc-a", "month_end", "2026-01-31", "999.00", 1) // not a day
	row("t2", "acc-a", "day", "2026-01-03", "7.00", 1)         // the same id elsewhere
	// acc-b: a gap across a month boundary
	row("t1", "acc-b", "day", "2026-01-30", "1.00", 1)
	row("t1", "acc-b", "day", "2026-02-02", "2.00", 1)
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	got := func(q string) []string {
		r, err := db.Conn().Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	daily := got(`SELECT concat(tenant, ' ', account_id, ' ', toString(balance_date), ' ', toString(balance), ' ', toString(reported))
		FROM v_account_balance_daily ORDER BY tenant, account_id, balance_date`)
	want := []string{
		"t1 acc-a 2026-01-01 100.0000 1",
		"t1 acc-a 2026-01-02 111.0000 1",
		"t1 acc-a 2026-01-03 111.0000 0",
		"t1 acc-a 2026-01-04 111.0000 0",
		"t1 acc-a 2026-01-05 -20.0000 1",
		"t1 acc-a 2026-01-06 5.2500 1",
		"t1 acc-b 2026-01-30 1.0000 1",
		"t1 acc-b 2026-01-31 1.0000 0",
		"t1 acc-b 2026-02-01 1.0000 0",
		"t1 acc-b 2026-02-02 2.0000 1",
		"t2 acc-a 2026-01-03 7.0000 1",
	}
	if strings.Join(daily, "\n") != strings.Join(want, "\n") {
		t.Errorf("v_account_balance_daily:\n%s\nwant\n%s", strings.Join(daily, "\n"), strings.Join(want, "\n"))
	}
	latest := got(`SELECT concat(tenant, ' ', account_id, ' ', toString(as_of), ' ', toString(balance)) FROM v_account_balance_latest ORDER BY tenant, account_id`)
	if want := "t1 acc-a 2026-01-06 5.2500,t1 acc-b 2026-02-02 2.0000,t2 acc-a 2026-01-03 7.0000"; strings.Join(latest, ",") != want {
		t.Errorf("v_account_balance_latest: %v, want %s", latest, want)
	}
}
