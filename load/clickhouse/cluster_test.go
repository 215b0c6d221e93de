package clickhouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/transform"
)

// On the test cluster (two shards, the first with two replicas): rows
// loaded twice through the Distributed tables land once per key after
// FINAL, spread over both shards; the replicas of a shard hold the same
// rows; the pipeline's state written on one node reads the same on every
// node; a consent deletion removes a user's rows from every node.
func TestClusterReplicasAgree(t *testing.T) {
	nodes := chtest.ClusterNodes(t)
	db := chtest.NewDB(t)
	ctx := context.Background()
	if db.Cluster() == "" {
		t.Fatal("chtest gave a single-node database")
	}
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{MaxRows: 1000})
	const rows, users = 5000, 100
	for version := uint64(1); version <= 2; version++ {
		b := loader.NewBatch(ctx, transform.Transactions)
		rec := manyUsers(t, rows, users, version)
		if err := b.Append(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	state := clickhouse.NewState(db, loader)
	if err := state.SetCursor(ctx, "fino.transactions", "client-a", "2026-01-02"); err != nil {
		t.Fatal(err)
	}

	// Every node answers the same through the Distributed tables; each
	// node's own rows are its shard's.
	local := map[string]uint64{}
	for _, addr := range nodes {
		n := open(t, addr, db.Database())
		for _, table := range []string{"transactions_local", "etl_state"} {
			if err := n.Exec(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
		}
		var final, all, versions uint64
		scan(t, n, "SELECT count(), uniqExact(_version) FROM transactions FINAL", &final, &versions)
		scan(t, n, "SELECT count() FROM transactions_local", &all)
		if final != rows || versions != 1 {
			t.Errorf("%s: %d rows after FINAL in %d versions, want %d in 1", addr, final, versions, rows)
		}
		local[addr] = all
		cursor, err := clickhouse.NewState(n, nil).Cursor(ctx, "fino.transactions", "client-a")
		if err != nil || cursor != "2026-01-02" {
			t.Errorf("%s: cursor %q, %v", addr, cursor, err)
		}
	}
	shard1, replica, shard2 := local[nodes[0]], local[nodes[1]], local[nodes[2]]
	if shard1 != replica || shard1 == 0 || shard2 == 0 || shard1+shard2 != 2*rows {
		t.Errorf("local rows: shard 1 %d and %d (replicas), shard 2 %d; want equal replicas, both shards used, %d in all", shard1, replica, shard2, 2*rows)
	}
	t.Logf("%d rows loaded twice: shard 1 holds %d on each replica, shard 2 %d", rows, shard1, shard2)

	// Deleting a user's rows reaches both shards' local tables.
	if _, err := state.DeleteSubjectRows(ctx, "fino", "client-a", "user-3"); err != nil {
		t.Fatal(err)
	}
	for _, addr := range nodes {
		n := open(t, addr, db.Database())
		var left uint64
		scan(t, n, "SELECT count() FROM transactions WHERE user_id = 'user-3'", &left)
		if left != 0 {
			t.Errorf("%s: %d rows of a deleted user", addr, left)
		}
	}
}

// The Unsent reader compares each shard's rows with that shard's ledger;
// with the rows spread over both shards it still finds exactly the rows
// the ledger does not hold.
func TestClusterUnsent(t *testing.T) {
	chtest.ClusterNodes(t)
	db := chtest.NewDB(t)
	ctx := context.Background()
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{})
	b := loader.NewBatch(ctx, transform.Transactions)
	rec := manyUsers(t, 400, 40, 1)
	if err := b.Append(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	// Half the transactions are in the ledger.
	w := transform.NewRowWriter(memory.DefaultAllocator, transform.EnrichmentSubmissions)
	now := time.Now().UTC().Truncate(time.Second)
	for i := 0; i < 400; i += 2 {
		if err := w.Append("fingoal", "fg", "fino", "client-a", fmt.Sprintf("user-%d", i%40), fmt.Sprintf("tx-%06d", i), "EUR",
			"uid", "etx", "sub", "batch", "/cleanup", "submitted", "", now, "", "run", now, uint64(1)); err != nil {
			t.Fatal(err)
		}
	}
	ledger := w.Record()
	w.Release()
	lb := loader.NewBatch(ctx, transform.EnrichmentSubmissions)
	if err := lb.Append(ledger); err != nil {
		t.Fatal(err)
	}
	ledger.Release()
	if err := lb.Send(); err != nil {
		t.Fatal(err)
	}
	q := clickhouse.UnsentQuery{Table: transform.Transactions, Key: []string{"provider", "tenant", "user_id", "transaction_id"},
		Ledger: transform.EnrichmentSubmissions, LedgerKey: []string{"source_provider", "source_tenant", "user_id", "transaction_id"},
		Released: "unsent", Provider: "fingoal", Tenant: "fg", PageSize: 37}
	var got []string
	if err := db.Unsent(ctx, q, func(row []string) error { got = append(got, row[3]); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 {
		t.Fatalf("%d unsent rows, want 200", len(got))
	}
	for _, id := range got {
		var n int
		fmt.Sscanf(id, "tx-%d", &n)
		if n%2 == 0 {
			t.Fatalf("%s is in the ledger but read as unsent", id)
		}
	}
}

// manyUsers is n transactions of users users (transactions() has 7).
func manyUsers(t *testing.T, n, users int, version uint64) arrow.Record {
	t.Helper()
	w := transform.NewRowWriter(memory.DefaultAllocator, transform.Transactions)
	defer w.Release()
	fields := transform.Transactions.Schema.Fields()
	for i := range n {
		vals := make([]any, len(fields))
		for c, f := range fields {
			vals[c] = sampleValue(f, i)
		}
		vals[0], vals[1], vals[2], vals[3] = "fino", "client-a", fmt.Sprintf("user-%d", i%users), fmt.Sprintf("tx-%06d", i)
		vals[7] = decimal.New(int64(i%1000)-500, -2)
		vals[len(vals)-1] = version
		if err := w.Append(vals...); err != nil {
			t.Fatal(err)
		}
	}
	return w.Record()
}

func open(t *testing.T, addr, database string) *clickhouse.DB {
	t.Helper()
	db, err := clickhouse.Open(context.Background(), clickhouse.Options{Addr: addr, Database: database})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func scan(t *testing.T, db *clickhouse.DB, query string, dest ...any) {
	t.Helper()
	if err := db.Conn().QueryRow(context.Background(), query).Scan(dest...); err != nil {
		t.Fatalf("%s on %s: %v", query, db.Addr(), err)
	}
}
