package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// DeleteSubjectRows deletes one subject's rows everywhere and only those,
// and returns once the mutations are done; a revoked subject stays revoked
// when registered again.
func TestDeleteSubjectRows(t *testing.T) {
	db := chtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// INSERT ... SELECT: the native protocol sends no client data for it.
	for _, q := range []string{
		`INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount)
			SELECT 'p', 't', 'gone', 'x', toDate('2026-01-01'), toDecimal64(1, 4) UNION ALL
			SELECT 'p', 't', 'kept', 'y', toDate('2026-01-01'), toDecimal64(1, 4) UNION ALL
			SELECT 'other', 't', 'gone', 'z', toDate('2026-01-01'), toDecimal64(1, 4)`,
		`INSERT INTO insights (provider, tenant, user_id, module, metric) SELECT 'p', 't', 'gone', 'm', 'a'`,
		`INSERT INTO etl_rejects (stream, run_id, record_key, provider, tenant, rejected_at)
			SELECT 's', 'r', 'gone/1', 'p', 't', now() UNION ALL SELECT 's', 'r', 'kept/1', 'p', 't', now()`,
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	start := time.Now()
	tables, err := state.DeleteSubjectRows(ctx, "p", "t", "gone")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted from %d tables in %v", len(tables), time.Since(start))
	var n uint64
	for q, want := range map[string]uint64{
		`SELECT count() FROM transactions WHERE user_id = 'gone'`: 1, // the other provider's
		`SELECT count() FROM transactions WHERE user_id = 'kept'`: 1,
		`SELECT count() FROM insights`:                            0,
		`SELECT count() FROM etl_rejects`:                         1,
	} {
		if err := db.Conn().QueryRow(ctx, q).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d, want %d (%v)", q, n, want, err)
		}
	}
	sub := clickhouse.Subject{Provider: "p", Tenant: "t", Kind: "process", ID: "gone", Source: clickhouse.SourceConfig}
	revoked := sub
	revoked.Status, revoked.StatusDetail = clickhouse.StatusRevoked, "consent revoked"
	for _, s := range []clickhouse.Subject{revoked, sub} {
		if err := state.AddSubjects(ctx, []clickhouse.Subject{s}); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := state.Subjects(ctx, "p", "t", "process")
	if err != nil || len(subs) != 1 || subs[0].Status != clickhouse.StatusRevoked || subs[0].StatusDetail != "consent revoked" {
		t.Fatalf("registry: %+v %v", subs, err)
	}
}
