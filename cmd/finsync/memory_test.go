package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	finapisb "github.com/finsync/finsync/extract/finapi/sandbox"
	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// peakRSSLine starts the line a child process ends with (TestMain).
const peakRSSLine = "peak RSS: "

// A finoOS sending what would exhaust finsync's memory (issue 23 #1): a
// 128 MiB purpose, a purpose that never ends, an array that never ends.
// `finsync once` runs as a child process with a 256 MiB budget; its peak
// RSS (VmHWM) stays under it, the page's other records load, the record
// too large is in etl_rejects with its first bytes and the reason, and
// the endless array loads at most FINSYNC_MAX_PAGE_ELEMENTS of its junk.
func TestHostilePagesStayWithinTheMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("streams hundreds of MiB")
	}
	const budget = 256 << 20
	const maxElements = 1000
	for _, c := range []struct {
		name   string
		faults sandboxkit.Knobs
	}{
		{"huge field", sandboxkit.Knobs{HugeField: 128 << 20}},
		{"endless field", sandboxkit.Knobs{EndlessField: true}},
		{"endless array", sandboxkit.Knobs{EndlessArray: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := finosb.New(finosb.Options{UsersPerTenant: 2, Months: 2, Seed: 4, Faults: c.faults})
			srv := httptest.NewServer(sb)
			defer srv.Close()
			defer sb.Close()
			opts := chtest.Options(t)
			t.Cleanup(func() { chtest.DropDatabase(t, opts) })
			users := sb.Users("sandbox-client")
			out, err := onceWithin(t, budget, "fino.transactions", opts, "FINSYNC_FINO_BASE_URL="+srv.URL,
				"FINSYNC_FINO_CLIENT_ID=sandbox-client", "FINSYNC_FINO_CLIENT_SECRET=sandbox-secret",
				"FINSYNC_FINO_USERS="+strings.Join(users, ","), "FINSYNC_FINO_CONCURRENCY=1",
				fmt.Sprintf("FINSYNC_MAX_PAGE_ELEMENTS=%d", maxElements), "FINSYNC_MAX_DOCUMENT_BYTES=4MiB")

			db, err := clickhouse.Open(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			count := func(query string, args ...any) (n uint64) {
				t.Helper()
				if err := db.Conn().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
				return n
			}
			real := count("SELECT count() FROM transactions FINAL WHERE NOT startsWith(transaction_id, 'junk-')")
			// Junk rows loaded or rejected (a junk copy may not decode).
			junk := count("SELECT count() FROM transactions WHERE startsWith(transaction_id, 'junk-')") +
				count("SELECT count() FROM etl_rejects WHERE startsWith(record_key, 'junk-')")
			t.Logf("%d transactions loaded, %d junk records loaded or rejected", real, junk)
			switch c.name {
			case "huge field":
				want := 0
				for _, u := range users {
					l, err := sb.Ledger("sandbox-client", u)
					if err != nil {
						t.Fatal(err)
					}
					want += l.Transactions
				}
				if real != uint64(want) || err != nil {
					t.Errorf("%d transactions loaded, want the ledgers' %d (exit: %v):\n%s", real, want, err, out)
				}
			case "endless array":
				if junk == 0 || junk > maxElements {
					t.Errorf("%d junk records loaded or rejected, want 1..%d (the element limit):\n%s", junk, maxElements, out)
				}
				fallthrough
			default:
				if real == 0 {
					t.Errorf("no transaction of the page loaded:\n%s", out)
				}
			}
			if c.name == "endless array" {
				return // nothing too large: the page fails at the element limit
			}
			var reason, raw string
			if err := db.Conn().QueryRow(context.Background(),
				"SELECT reason, raw FROM etl_rejects WHERE target_table = 'transactions' AND (endsWith(record_key, '-huge') OR endsWith(record_key, '-endless'))").Scan(&reason, &raw); err != nil {
				t.Fatalf("no reject of the record too large: %v\n%s", err, out)
			}
			t.Logf("reject: %s (raw %d bytes)", reason, len(raw))
			if !regexp.MustCompile(`^record of \d+\+? bytes is over the 1 MiB record limit \(FINSYNC_MAX_RECORD_BYTES\)`).MatchString(reason) {
				t.Errorf("reason %q", reason)
			}
			if len(raw) == 0 || len(raw) > 4<<10+16 || !strings.Contains(raw, `"purpose":"xxxx`) {
				t.Errorf("raw of %d bytes: %.200s", len(raw), raw)
			}
		})
	}
}

// onceWithin runs `finsync once -stream stream` as a child process with
// FINSYNC_MEMORY_BUDGET=budget, one run at a time, ClickHouse at opts and
// env, and fails t if its peak RSS (VmHWM) went over the budget. It
// returns what the child printed and how it ended.
func onceWithin(t *testing.T, budget int64, stream string, opts clickhouse.Options, env ...string) ([]byte, error) {
	t.Helper()
	schedFile := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(schedFile, []byte("concurrency:\n  global: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS=once -stream "+stream, "FINSYNC_TEST_PEAK_RSS=1", "FINSYNC_SCHEDULES="+schedFile,
		"FINSYNC_CLICKHOUSE_ADDR="+opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE="+opts.Database, "FINSYNC_LOG_LEVEL=warn",
		fmt.Sprintf("FINSYNC_MEMORY_BUDGET=%d", budget))
	child.Env = append(child.Env, env...)
	out, err := child.CombinedOutput()
	m := regexp.MustCompile(peakRSSLine + `(\d+) kB`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no peak RSS (%v):\n%s", err, out)
	}
	peak, _ := strconv.ParseInt(string(m[1]), 10, 64)
	t.Logf("peak RSS %d MiB (budget %d MiB); exit: %v", peak>>10, budget>>20, err)
	if peak<<10 > budget {
		t.Errorf("peak RSS %d MiB is over the %d MiB budget:\n%s", peak>>10, budget>>20, out)
	}
	return out, err
}

// A finAPI sending result pages that would exhaust finsync's memory when
// read whole (a page may be loaded only once its creationDate was read,
// which may come after the users): a user with a 128 MiB note, and a page
// over FINSYNC_MAX_DOCUMENT_BYTES. The user is rejected with its first
// bytes and the page's other users load; the page too large fails its run
// naming the setting and loads nothing; either way the peak RSS stays
// under the budget.
func TestHostileDocumentsStayWithinTheMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("streams hundreds of MiB")
	}
	const stream = "finapi.segments.high_balance"
	pad := strings.Repeat("p", 100<<10)
	for _, c := range []struct {
		name   string
		budget int64
		sb     finapisb.Options
		env    []string
	}{
		{"user with a huge field", 256 << 20, finapisb.Options{UsersPerTenant: 120, Faults: sandboxkit.Knobs{HugeField: 128 << 20}}, nil},
		{"page over the document limit", 256 << 20, finapisb.Options{UsersPerTenant: 120, ExtraUserFields: map[string]any{"pad": pad}}, nil},
		// About 14 MiB of users under the 16 MiB default, within the
		// budget these settings need (364 MiB: 64 MiB + 2 × 16 MiB × 6 + 96 MiB
		// of loader + 12 MiB of one worker).
		{"page near the default limit", 384 << 20, finapisb.Options{UsersPerTenant: 180, ExtraUserFields: map[string]any{"pad": pad}},
			[]string{"FINSYNC_MAX_DOCUMENT_BYTES=16MiB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.sb.Seed, c.sb.Today = 3, time.Now().UTC().Truncate(24*time.Hour)
			sb := finapisb.New(c.sb)
			srv := httptest.NewServer(sb)
			defer srv.Close()
			defer sb.Close()
			opts := chtest.Options(t)
			t.Cleanup(func() { chtest.DropDatabase(t, opts) })
			id, secret := finapisb.Credentials("mandator")
			env := append([]string{"FINSYNC_FINAPI_BASE_URL=" + srv.URL,
				"FINSYNC_FINAPI_MANDATORS=mandator:" + id + ":" + secret, "FINSYNC_FINO_CONCURRENCY=1",
				"FINSYNC_MAX_DOCUMENT_BYTES=4MiB"}, c.env...)
			out, err := onceWithin(t, c.budget, stream, opts, env...)
			db, dberr := clickhouse.Open(context.Background(), opts)
			if dberr != nil {
				t.Fatal(dberr)
			}
			defer db.Close()
			var members, users, rejects uint64
			var runErr, reason, raw string
			q := db.Conn().QueryRow(context.Background(), `SELECT (SELECT count() FROM segment_members FINAL), (SELECT uniqExact(user_id) FROM segment_members FINAL),
				(SELECT count() FROM etl_rejects FINAL), (SELECT any(error) FROM etl_runs WHERE status != 'running'),
				(SELECT any(reason) FROM etl_rejects FINAL), (SELECT any(raw) FROM etl_rejects FINAL)`)
			if err := q.Scan(&members, &users, &rejects, &runErr, &reason, &raw); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d members of %d users loaded, %d rejects; run error %q", members, users, rejects, runErr)
			switch c.name {
			case "user with a huge field":
				if err != nil || members == 0 || rejects != 1 || !strings.Contains(reason, "FINSYNC_MAX_RECORD_BYTES") || len(raw) > 4<<10+16 {
					t.Errorf("want the other users loaded and one reject of 4 KiB naming the record limit; reason %q, raw %d bytes (exit: %v):\n%s",
						reason, len(raw), err, out)
				}
			case "page over the document limit":
				if err == nil || members != 0 || !strings.Contains(runErr, "more than 4 MiB (FINSYNC_MAX_DOCUMENT_BYTES)") {
					t.Errorf("want the run failed naming FINSYNC_MAX_DOCUMENT_BYTES and nothing loaded (exit: %v):\n%s", err, out)
				}
			default:
				if err != nil || users*100<<10 < 12<<20 || rejects != 0 {
					t.Errorf("want every user of a page over 12 MiB loaded (exit: %v):\n%s", err, out)
				}
			}
		})
	}
}

// Settings whose worst case does not fit the budget are refused, saying
// how they add up; sizes take units.
func TestMemoryBudgetIsChecked(t *testing.T) {
	env := map[string]string{"FINSYNC_MEMORY_BUDGET": "512MiB"}
	if _, err := LoadConfig(context.Background(), lookupFrom(env)); err == nil ||
		!strings.Contains(err.Error(), "FINSYNC_MEMORY_BUDGET=512 MiB: these settings may need 1 GiB: 64 MiB base + 2 answers held whole × 16 MiB (FINSYNC_MAX_DOCUMENT_BYTES) × 6 + 4 runs (concurrency.global)") {
		t.Fatalf("err = %v", err)
	}
	env["FINSYNC_FINO_CONCURRENCY"], env["FINSYNC_MAX_RECORD_BYTES"], env["FINSYNC_MAX_DOCUMENT_BYTES"] = "2", "512 KiB", "2MiB"
	env["FINSYNC_MEMORY_BUDGET"] = "600MiB"
	c, err := LoadConfig(context.Background(), lookupFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.limits(); c.Memory.Record != 512<<10 || l.Field != 256<<10 || l.Document != 2<<20 || l.Whole.Slots() != wholeSlots {
		t.Fatalf("limits %+v", l)
	}
	// Records so small that what a worker holds of an answer counts more.
	env["FINSYNC_MAX_RECORD_BYTES"], env["FINSYNC_MAX_FIELD_BYTES"], env["FINSYNC_MEMORY_BUDGET"] = "64KiB", "64KiB", "480MiB"
	if _, err := LoadConfig(context.Background(), lookupFrom(env)); err == nil || !strings.Contains(err.Error(),
		"these settings may need 484 MiB: 64 MiB base + 2 answers held whole × 2 MiB (FINSYNC_MAX_DOCUMENT_BYTES) × 6 + 4 runs (concurrency.global) × (96 MiB loader + 2 workers (FINSYNC_FINO_CONCURRENCY) × 256 KiB of an answer × 6)") {
		t.Fatalf("err = %v", err)
	}
	env["FINSYNC_MAX_RECORD_BYTES"], env["FINSYNC_MAX_FIELD_BYTES"], env["FINSYNC_MAX_DOCUMENT_BYTES"] = "512 KiB", "256KiB", "512KiB"
	env["FINSYNC_MEMORY_BUDGET"] = "600MiB"
	if _, err := LoadConfig(context.Background(), lookupFrom(env)); err == nil || !strings.Contains(err.Error(), "FINSYNC_MAX_DOCUMENT_BYTES=512 KiB: want at least 1MiB") {
		t.Fatalf("err = %v", err)
	}
	env["FINSYNC_MAX_DOCUMENT_BYTES"] = "2MiB"
	env["FINSYNC_MAX_FIELD_BYTES"] = "1MiB"
	if _, err := LoadConfig(context.Background(), lookupFrom(env)); err == nil || !strings.Contains(err.Error(), "FINSYNC_MAX_RECORD_BYTES=512 KiB: want at least FINSYNC_MAX_FIELD_BYTES (1 MiB)") {
		t.Fatalf("err = %v", err)
	}
}
