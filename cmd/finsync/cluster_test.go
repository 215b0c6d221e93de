package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/transform"
)

// The whole demo loaded into the test cluster (make test-cluster: cluster
// finsync of deploy/clickhouse/cluster.sh, nodes ch1 ch2 ch3, shard 1 =
// ch1 + ch2, shard 2 = ch3) in cluster mode, with ch2 stopped after the
// first stream and started again after the finoOS streams: ch2 catches up
// and then holds what ch1 holds, table by table; and every view and every
// question of the query guide answers as on a single server loaded from
// the same sandboxes.
func TestClusterDemo(t *testing.T) {
	nodes := chtest.ClusterNodes(t)
	cluster := chtest.Options(t)
	cluster.Addr = nodes[0]
	single := chtest.Options(t)
	single.Cluster, single.Addr = "", os.Getenv("FINSYNC_TEST_SINGLE_ADDR")
	if single.Addr == "" {
		single.Addr = "127.0.0.1:19000"
	}
	script := func(args ...string) {
		t.Helper()
		out, err := exec.Command("../../deploy/clickhouse/cluster.sh", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %v: %v\n%s", args, err, out)
		}
	}
	var stopped, restarted time.Time
	var rowsWhileDown uint64
	var startup, catchUp time.Duration
	lastFino := ""
	for _, s := range providers(Config{}, slog.New(slog.DiscardHandler), nil)[0].Streams {
		lastFino = s.Name
	}
	var ch1, ch2 *clickhouse.DB
	onCluster := loadDemo(t, t, demoLoad{shards: []string{""}, opts: &cluster, after: func(stream string) {
		switch stream {
		case "fino.transactions":
			ch1 = openNode(t, nodes[0], cluster.Database)
			script("stop", "ch2")
			stopped = time.Now()
			// Whatever happens, ch2 is up again before the database is dropped.
			t.Cleanup(func() { script("start", "ch2") })
		case lastFino:
			// Still down: what ch1 got meanwhile, ch2 must fetch.
			rowsWhileDown = localRows(t, ch1)
			restarting := time.Now()
			script("start", "ch2")
			restarted = time.Now()
			startup = restarted.Sub(restarting)
			ch2 = openNode(t, nodes[1], cluster.Database)
			// Caught up: nothing left to fetch or merge, the same rows as ch1
			// (which may have merged meanwhile).
			for {
				var queue uint64
				if err := ch2.Conn().QueryRow(context.Background(), "SELECT count() FROM system.replication_queue WHERE database = currentDatabase()").Scan(&queue); err != nil {
					t.Fatal(err)
				}
				if queue == 0 && localRows(t, ch2) == localRows(t, ch1) {
					break
				}
				if time.Since(restarted) > 2*time.Minute {
					t.Fatalf("ch2 has %d rows and %d queued 2 minutes after its restart, ch1 %d rows:\nch1 %v\nch2 %v", localRows(t, ch2), queue, localRows(t, ch1),
						tableDigests(t, ch1), tableDigests(t, ch2))
				}
				time.Sleep(50 * time.Millisecond)
			}
			catchUp = time.Since(restarted)
		}
	}})
	onSingle := loadDemo(t, t, demoLoad{shards: []string{""}, opts: &single})
	if ch2 == nil {
		t.Fatal("ch2 was never restarted")
	}

	// Replicas agree: after the load, ch2 holds exactly ch1's rows.
	var perNode []string
	for i, addr := range nodes {
		n := openNode(t, addr, cluster.Database)
		for _, table := range localTables(t, n) {
			if err := n.Exec(context.Background(), "SYSTEM SYNC REPLICA "+table); err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
		}
		perNode = append(perNode, fmt.Sprintf("ch%d %d", i+1, localRows(t, n)))
	}
	a, b := tableDigests(t, ch1), tableDigests(t, ch2)
	for _, table := range slices.Sorted(maps.Keys(a)) {
		if a[table] != b[table] {
			t.Errorf("%s: ch1 has %s, its replica ch2 %s", table, a[table], b[table])
		}
	}

	// The warehouse and the BI layer answer as a single server does.
	want, got := fingerprint(t, onSingle.db), fingerprint(t, onCluster.db)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: %s on the cluster, %s on one server", k, got[k], want[k])
		}
	}
	views := queryStrings(t, onSingle.db, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View' ORDER BY name")
	if len(views) < 10 {
		t.Fatalf("%d views", len(views))
	}
	for _, v := range views {
		w, g := viewAnswers(t, onSingle.db, "SELECT * FROM "+v[0]), viewAnswers(t, onCluster.db, "SELECT * FROM "+v[0])
		if len(w) == 0 {
			t.Errorf("view %s is empty on the demo data", v[0])
		}
		if !slices.Equal(w, g) {
			t.Errorf("view %s: %d rows on the cluster, %d on one server, or they differ:\ncluster %.300v\nsingle  %.300v", v[0], len(g), len(w), g, w)
		}
	}
	qs, err := guideQueries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		w, g := viewAnswers(t, onSingle.db, q.query), viewAnswers(t, onCluster.db, q.query)
		if !slices.Equal(w, g) || len(w) == 0 {
			t.Errorf("guide %s: cluster %v\nsingle %v", q.name, g, w)
		}
	}
	t.Logf("cluster: rows per node (local tables, before merges) %s; ch2 was down %.1fs while ch1 took %d rows; it answered %.2fs after its start and had caught up %.2fs later; %d views and %d guide questions answer as on one server",
		strings.Join(perNode, ", "), restarted.Sub(stopped).Seconds(), rowsWhileDown, startup.Seconds(), catchUp.Seconds(), len(views), len(qs))
}

func openNode(t *testing.T, addr, database string) *clickhouse.DB {
	t.Helper()
	db, err := clickhouse.Open(context.Background(), clickhouse.Options{Addr: addr, Database: database})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// localTables are the tables holding rows on db's node: the replicated ones.
func localTables(t *testing.T, db *clickhouse.DB) []string {
	var out []string
	for _, row := range queryStrings(t, db, "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE 'Replicated%' ORDER BY name") {
		out = append(out, row[0])
	}
	return out
}

// localRows counts the rows of every replicated table on db's node.
func localRows(t *testing.T, db *clickhouse.DB) uint64 {
	var n uint64
	for _, table := range localTables(t, db) {
		var c uint64
		if err := db.Conn().QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&c); err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// tableDigests are, per replicated table on db's node, its row count and a
// hash of all its rows.
func tableDigests(t *testing.T, db *clickhouse.DB) map[string]string {
	out := map[string]string{}
	for _, table := range localTables(t, db) {
		name := strings.TrimSuffix(table, "_local")
		cols := []string{"toString(version)"} // schema_migrations
		for _, tb := range transform.Tables() {
			if tb.Name == name {
				cols = cols[:0]
				for _, f := range tb.Schema.Fields() {
					cols = append(cols, "toString(`"+f.Name+"`)")
				}
			}
		}
		row := queryStrings(t, db, "SELECT toString(count()), toString(groupBitXor(cityHash64("+strings.Join(cols, ", ")+"))) FROM "+table)
		out[table] = row[0][0] + " rows, hash " + row[0][1]
	}
	return out
}

// viewAnswers are the rows of query as sorted text, without the columns
// that differ between two loads of the same data (load times, providers'
// job ids and payloads, FinGoal's observation times).
func viewAnswers(t *testing.T, db *clickhouse.DB, query string) []string {
	t.Helper()
	rows, err := db.Conn().Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rows.Close()
	var skip []int
	for i, c := range rows.Columns() {
		switch c {
		case "extracted_at", "run_id", "source_job_id", "_version", "raw", "last_success", "lag_seconds", "job_id", "batch_request_id", "observed_at":
			skip = append(skip, i)
		}
	}
	var out []string
	for rows.Next() {
		cells, err := scanStrings(rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range slices.Backward(skip) {
			cells = slices.Delete(cells, i, i+1)
		}
		out = append(out, strings.Join(cells, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
