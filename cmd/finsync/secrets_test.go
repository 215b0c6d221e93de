package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// The demo over all four sandboxes, with distinctive secrets: no secret and
// no personal identifier of the sandboxes (Fimento's social security
// numbers, company ids and names, finoOS's account owners) is in the logs, the output, or any String
// column of any table (etl_runs, etl_rejects and raw payloads included).
func TestNoSecretOrPersonalDataLands(t *testing.T) {
	sb, err := startSandbox("127.0.0.1:0", sandboxOptions{users: 2, companies: 1, months: 2, seed: 8,
		faults: "malformed:0.02,seed:2"}) // rejects too, with their raw payloads
	if err != nil {
		t.Fatal(err)
	}
	defer sb.close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	env := map[string]string{}
	sb.into(env)
	// After the sandbox's settings: these distinctive secrets replace its own.
	for k, v := range map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database,
		"FINSYNC_LOG_LEVEL": "debug", "FINSYNC_LOG_FORMAT": "json",
		"FINSYNC_FINO_WEBHOOK_SECRET": "whsec-Zq8v1-fino", "FINSYNC_FINGOAL_ID_KEY": "idkey-Zq8v1-fingoal"} {
		env[k] = v
	}
	code, stdout, stderr := run(t, env, "demo")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Every fake's credentials and personal data, the distinctive secrets
	// above, and finoOS's account holders as its API shows them.
	secrets := []string{"whsec-Zq8v1-fino", "idkey-Zq8v1-fingoal"}
	for _, name := range sb.names {
		secrets = append(secrets, sb.fakes[name].Sensitive()...)
	}
	owners := finoOwners(t, sb)
	needles := append(append([]string{}, secrets...), owners...)
	for _, n := range needles {
		if strings.Contains(stdout, n) || strings.Contains(stderr, n) {
			t.Errorf("%q is in the demo's output or logs", n)
		}
	}
	db, err := clickhouse.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cols := queryStrings(t, db, "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() AND (type LIKE '%String%')")
	scanned := 0
	for _, c := range cols {
		expr := fmt.Sprintf("`%s`", c[1])
		if strings.HasPrefix(c[2], "Array") {
			expr = fmt.Sprintf("arrayStringConcat(`%s`, ' ')", c[1])
		}
		var conds []string
		for _, n := range needles {
			conds = append(conds, fmt.Sprintf("position(%s, '%s') > 0", expr, strings.ReplaceAll(n, "'", "\\'")))
		}
		hits := queryStrings(t, db, fmt.Sprintf("SELECT toString(count()) FROM `%s` WHERE %s", c[0], strings.Join(conds, " OR ")))
		if hits[0][0] != "0" {
			examples := queryStrings(t, db, fmt.Sprintf("SELECT substring(toString(%s), 1, 160) FROM `%s` WHERE %s LIMIT 2", expr, c[0], strings.Join(conds, " OR ")))
			t.Errorf("%s.%s holds a secret or personal identifier in %s rows, e.g. %v", c[0], c[1], hits[0][0], examples)
		}
		scanned++
	}
	var rejects uint64
	db.Conn().QueryRow(context.Background(), "SELECT count() FROM etl_rejects").Scan(&rejects)
	if scanned < 50 || rejects == 0 || len(sb.fimento().PersonalData()) == 0 || len(owners) == 0 {
		t.Errorf("the scan proves little: %d columns, %d rejects, %d Fimento personal values, %d finoOS owners", scanned, rejects, len(sb.fimento().PersonalData()), len(owners))
	}
	t.Logf("%d String columns scanned for %d secrets and personal values and %d finoOS account owners; %d rejects with raw payloads; %d bytes of logs",
		scanned, len(secrets), len(owners), rejects, len(stderr))
}
