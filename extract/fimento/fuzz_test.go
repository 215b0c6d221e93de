package fimento

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract/hostile"
)

// FuzzRecords feeds arbitrary bytes to every decoder of Fimento JSON: a
// transaction, an accountsInfo item, the insights document (balances and
// insight rows), a process, a login answer and a webhook body. Each gives
// rows or rejects with a reason, never panics, leaks nothing, and no
// personal member survives in a raw payload.
func FuzzRecords(f *testing.F) {
	for _, seed := range []string{
		docTransaction, docInsights, docProcess, goldenTransactions[1], goldenAccounts[1], goldenInsights,
		`{"access_token":"string","valid_until":0}`, `{"access_token":"x","valid_until":1771914600123}`,
		`{"_id":"t","amount":1e400,"date":"2026-01-01"}`, `{"transactionGraph":[{"date":"2026-01-01","info":{"balance":"abc"}}]}`,
		`{"categorisation":{"a":{"b":[1,{"firstName":"x"}]}}}`, `null`, `[]`, `"x"`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	lin := testLineage()
	for _, h := range hostile.Payloads() {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		person := NewPerson(&goldenProcess)
		tx, acc, bal, ins := NewTransactionsBuilder(mem, lin), NewAccountsBuilder(mem, lin), NewBalancesBuilder(mem, lin), NewInsightsBuilder(mem, lin)
		defer tx.Release()
		defer acc.Release()
		defer bal.Release()
		defer ins.Release()
		check := func(name string, reason string, ok bool, rows int, rawOut []byte) {
			if ok && rows != 1 {
				t.Fatalf("%s accepted the record but holds %d rows", name, rows)
			}
			if !ok && (reason == "" || rows != 0) {
				t.Fatalf("%s rejected the record with reason %q and %d rows", name, reason, rows)
			}
			if bytes.Contains(bytes.ToLower(rawOut), []byte(`"firstname"`)) {
				t.Fatalf("%s reject raw keeps a personal member: %s", name, rawOut)
			}
		}
		r, ok := tx.AddJSON(person, raw)
		check("transactions", r.Reason, ok, tx.Len(), r.Raw)
		r, ok = acc.AddJSON(person, raw)
		check("accounts", r.Reason, ok, acc.Len(), r.Raw)
		var in Insights
		if json.Unmarshal(raw, &in) == nil {
			for _, d := range in.TransactionGraph {
				before := bal.Len()
				r, ok := bal.Add(person, d)
				check("balances", r.Reason, ok, bal.Len()-before, r.Raw)
			}
			for _, rej := range ins.Add(person, []byte("k"), &goldenProcess, &in) {
				check("insights", rej.Reason, false, 0, rej.Raw)
			}
		}
		var p Process
		_ = json.Unmarshal(raw, &p)
		_ = p.Revoked()
		var tok Token
		if json.Unmarshal(raw, &tok) == nil {
			_ = tok.Expiry(time.Unix(1771914600, 0))
		}
		if s, err := scrub(raw); err == nil && strings.Contains(strings.ToLower(string(s)), `"socialsecuritynumber":`) {
			t.Fatalf("scrub kept a social security number: %s", s)
		}
		for _, rec := range []interface{ Release() }{tx.NewRecord(), acc.NewRecord(), bal.NewRecord(), ins.NewRecord()} {
			rec.Release()
		}
	})
}
