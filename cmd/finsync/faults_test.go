package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/transform"
)

// The whole fault matrix on every sandbox at once: every stream of the
// demo ends with the same warehouse as a fault-free demo (FINAL counts and
// amount sums per table and provider), except where the run reported
// rejects, each in etl_rejects with its raw payload and reason.
func TestFaultMatrixLosesNothing(t *testing.T) {
	const matrix = "429:0.1,500:0.05,slow:0.05,expire:0.02,malformed:0.01,truncate:0.01,dup:0.05,seed:3"
	warehouse := func(faults string) (snapshot map[string]string, rejects map[string]int, db *clickhouse.DB) {
		opts := chtest.Options(t)
		t.Cleanup(func() { chtest.DropDatabase(t, opts) })
		env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database,
			"FINSYNC_LOG_LEVEL": "warn", "FINSYNC_SANDBOX_FAULTS": faults}
		if code, stdout, stderr := run(t, env, "demo", "-users", "2", "-companies", "1", "-months", "3"); code != 0 {
			t.Fatalf("demo with faults %q: exit %d\n%s\n%s", faults, code, stdout, stderr)
		}
		db, err := clickhouse.Open(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		snapshot = map[string]string{}
		for _, tb := range transform.Tables() {
			if _, ok := tb.Schema.FieldsByName("provider"); !ok || tb.Name == "etl_rejects" || tb.Name == "subjects" {
				continue
			}
			sum := "''"
			if _, ok := tb.Schema.FieldsByName("amount"); ok {
				sum = "toString(sum(amount))"
			}
			for _, row := range queryStrings(t, db, fmt.Sprintf("SELECT provider, toString(count()), %s FROM %s FINAL GROUP BY provider", sum, tb.Name)) {
				snapshot[tb.Name+"/"+row[0]] = row[1] + " " + row[2]
			}
		}
		rejects = map[string]int{}
		for _, row := range queryStrings(t, db, "SELECT target_table, provider, toString(count()), toString(countIf(raw = '' OR reason = '')) FROM etl_rejects FINAL GROUP BY target_table, provider") {
			var n int
			fmt.Sscan(row[2], &n)
			rejects[row[0]+"/"+row[1]] = n
			if row[3] != "0" && row[0] != "segment_members" {
				t.Errorf("%s rejects of %s/%s without raw payload or reason", row[3], row[0], row[1])
			}
		}
		return snapshot, rejects, db
	}
	clean, cleanRejects, _ := warehouse("")
	faulty, faultyRejects, db := warehouse(matrix)
	if len(cleanRejects) != 0 {
		t.Fatalf("the fault-free demo has rejects: %v", cleanRejects)
	}
	// FinGoal enriches what the other providers loaded: a transaction
	// rejected there was never sent, so FinGoal's tables shrink with it.
	upstream := faultyRejects["transactions/fino"] + faultyRejects["transactions/fimento"]
	var cleanSent, faultySent int
	fmt.Sscan(clean["enrichment_submissions/fingoal"], &cleanSent)
	fmt.Sscan(faulty["enrichment_submissions/fingoal"], &faultySent)
	if faultySent != cleanSent-upstream {
		t.Errorf("FinGoal was sent %d transactions with faults, %d without, and %d were rejected upstream", faultySent, cleanSent, upstream)
	}
	var differ []string
	for key, want := range clean {
		got := faulty[key]
		if got == want {
			continue
		}
		derived := strings.HasSuffix(key, "/fingoal") && upstream > 0
		if faultyRejects[key] == 0 && !derived {
			t.Errorf("%s: %q with faults, %q without, and no rejects say why", key, got, want)
		}
		differ = append(differ, fmt.Sprintf("%s (%d rejects)", key, faultyRejects[key]))
	}
	// The faults did happen: retries were recorded.
	var retries uint64
	db.Conn().QueryRow(context.Background(), "SELECT sum(retries) FROM etl_runs FINAL").Scan(&retries)
	if retries == 0 {
		t.Errorf("no run recorded a retry: the fault matrix was not applied")
	}
	t.Logf("fault matrix %s: %d retries; tables differing only by their rejects: %s", matrix, retries, strings.Join(differ, ", "))
}
