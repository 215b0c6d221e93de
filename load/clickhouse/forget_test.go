package clickhouse_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
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
		// FinGoal's copies: the ledger maps gone's transaction x to uid-gone
		// (and kept's y to uid-kept) under the enriching tenant fg.
		`INSERT INTO enrichment_submissions (provider, tenant, source_provider, source_tenant, user_id, transaction_id, uid,
			enrich_transaction_id, batch_request_id, status)
			SELECT 'fingoal', 'fg', 'p', 't', 'gone', 'x', 'uid-gone', 'etx-gone', 'b1', 'submitted' UNION ALL
			SELECT 'fingoal', 'fg', 'p', 't', 'kept', 'y', 'uid-kept', 'etx-kept', 'b1', 'submitted'`,
		`INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount)
			SELECT 'fingoal', 'fg', 'uid-gone', 'etx-gone', toDate('2026-01-01'), toDecimal64(1, 4) UNION ALL
			SELECT 'fingoal', 'fg', 'uid-kept', 'etx-kept', toDate('2026-01-01'), toDecimal64(1, 4)`,
		`INSERT INTO user_tags (provider, tenant, user_id, tag, state) SELECT 'fingoal', 'fg', 'uid-gone', 'groceries_user', 'current'`,
		`INSERT INTO insights (provider, tenant, user_id, module, metric) SELECT 'fingoal', 'fg', 'uid-gone', 'finsight', 'amount_found'`,
		`INSERT INTO etl_rejects (stream, run_id, record_key, provider, tenant, raw, rejected_at)
			SELECT 's', 'r', 'b1/etx-gone', 'fingoal', 'fg', 'garbled', now() UNION ALL
			SELECT 's', 'r', 'b1/', 'fingoal', 'fg', '{"uid":"uid-gone","tags":"x"}', now() UNION ALL
			SELECT 's', 'r', 'b1/etx-kept', 'fingoal', 'fg', '{"uid":"uid-kept"}', now() UNION ALL
			SELECT 's', 'r', 'uid-gone/b2/etx-2', 'fingoal', 'fg', '', now() UNION ALL
			SELECT 's', 'r', 'p/t/gone/x', 'fingoal', 'fg', '', now()`,
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	start := time.Now()
	del, err := state.DeleteSubjectRows(ctx, "p", "t", "gone")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted from %d tables in %v", len(del.Tables), time.Since(start))
	var n uint64
	if len(del.Derived) != 1 || del.Derived[0].Provider != "fingoal" || del.Derived[0].Tenant != "fg" || del.Derived[0].ID != "uid-gone" {
		t.Errorf("copies: %+v", del.Derived)
	}
	for q, want := range map[string]uint64{
		`SELECT count() FROM transactions WHERE user_id = 'gone'`:                1, // the other provider's
		`SELECT count() FROM transactions WHERE user_id IN ('kept', 'uid-kept')`: 2,
		`SELECT count() FROM transactions WHERE user_id = 'uid-gone'`:            0,
		`SELECT count() FROM insights`:                                           0,
		`SELECT count() FROM user_tags`:                                          0,
		`SELECT count() FROM etl_rejects`:                                        2, // kept/1 and b1/etx-kept
		`SELECT count() FROM etl_rejects WHERE position(raw, 'uid-gone') > 0`:    0,
		`SELECT count() FROM enrichment_submissions`:                             1,
		`SELECT count() FROM enrichment_submissions WHERE uid = 'uid-gone'`:      0,
	} {
		if err := db.Conn().QueryRow(ctx, q).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d, want %d (%v)", q, n, want, err)
		}
	}
	sub := extract.Subject{Provider: "p", Tenant: "t", Kind: "process", ID: "gone", Source: clickhouse.SourceConfig}
	revoked := sub
	revoked.Status, revoked.StatusDetail = extract.SubjectRevoked, "consent revoked"
	for _, s := range []extract.Subject{revoked, sub} {
		if err := state.AddSubjects(ctx, []extract.Subject{s}); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := state.Subjects(ctx, "p", "t", "process")
	if err != nil || len(subs) != 1 || subs[0].Status != extract.SubjectRevoked || subs[0].StatusDetail != "consent revoked" {
		t.Fatalf("registry: %+v %v", subs, err)
	}
}

// RevokedWithRows finds the revoked subjects whose rows are back (a run
// loaded them after their deletion) and the revoked sources of copies a
// ledger owner made, and nothing else.
func TestRevokedWithRows(t *testing.T) {
	db := chtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, clickhouse.LoaderOptions{}))
	if got, err := state.RevokedWithRows(ctx, "p", "t", true); err != nil || len(got) != 0 {
		t.Fatalf("empty warehouse: %+v %v", got, err)
	}
	var subs []extract.Subject
	for _, id := range []string{"back", "clean", "rejected", "copied"} {
		subs = append(subs, extract.Subject{Provider: "p", Tenant: "t", Kind: "process", ID: id, Source: clickhouse.SourceConfig,
			Status: extract.SubjectRevoked, StatusDetail: "consent revoked"})
	}
	subs = append(subs, extract.Subject{Provider: "p", Tenant: "t", Kind: "process", ID: "active", Source: clickhouse.SourceConfig})
	if err := state.AddSubjects(ctx, subs); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount)
			SELECT 'p', 't', 'back', 'x', toDate('2026-01-01'), toDecimal64(1, 4) UNION ALL
			SELECT 'p', 't', 'active', 'y', toDate('2026-01-01'), toDecimal64(1, 4) UNION ALL
			SELECT 'p', 'other-tenant', 'clean', 'z', toDate('2026-01-01'), toDecimal64(1, 4)`,
		`INSERT INTO etl_rejects (stream, run_id, record_key, provider, tenant, rejected_at) SELECT 's', 'r', 'rejected/1', 'p', 't', now()`,
		`INSERT INTO enrichment_submissions (provider, tenant, source_provider, source_tenant, user_id, transaction_id, uid, status)
			SELECT 'fingoal', 'fg', 'p', 't', 'copied', 'x', 'uid-copied', 'pending'`,
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(subs []extract.Subject) string {
		var out []string
		for _, s := range subs {
			out = append(out, s.Provider+"/"+s.Tenant+"/"+s.ID)
		}
		return strings.Join(out, ",")
	}
	got, err := state.RevokedWithRows(ctx, "p", "t", false)
	if err != nil || ids(got) != "p/t/back,p/t/copied,p/t/rejected" {
		t.Errorf("revoked with rows: %s %v", ids(got), err)
	}
	got, err = state.RevokedWithRows(ctx, "fingoal", "fg", true)
	if err != nil || ids(got) != "p/t/copied" {
		t.Errorf("revoked sources of FinGoal's copies: %s %v", ids(got), err)
	}
	if got, err = state.RevokedWithRows(ctx, "fingoal", "fg", false); err != nil || len(got) != 0 {
		t.Errorf("without the ledger: %s %v", ids(got), err)
	}
}

// A subject without rows (a forged webhook's id, a process that never
// loaded) is deleted with SELECTs only: no mutation, which 18.16 would run
// over every part of every table.
func TestDeletingASubjectWithoutRowsMutatesNothing(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	if err := db.Conn().Exec(ctx, `INSERT INTO transactions (provider, tenant, user_id, transaction_id, booking_date, amount)
		SELECT 'p', 't', 'real', 'x', toDate('2026-01-01'), toDecimal64(1, 4)`); err != nil {
		t.Fatal(err)
	}
	mutations := func() uint64 {
		var n uint64
		if err := db.Conn().QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ?", db.Database()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	st := clickhouse.NewState(db, nil)
	del, err := st.DeleteSubjectRows(ctx, "p", "t", "forged-id")
	if err != nil || len(del.Tables) != 0 || mutations() != 0 {
		t.Fatalf("deleting a subject without rows: tables %v, %v, %d mutations", del.Tables, err, mutations())
	}
	if del, err := st.DeleteSubjectRows(ctx, "p", "t", "real"); err != nil || len(del.Tables) != 1 || mutations() == 0 {
		t.Fatalf("deleting a subject with rows: tables %v, %v, %d mutations", del.Tables, err, mutations())
	}
}
