package fino

import (
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/transform"

	"github.com/finsync/finsync/extract/hostile"
)

// FuzzRecords feeds arbitrary bytes to the decoder of every finoOS record
// type, as a page element would reach it. Each must give a row or a reject
// with a reason, never panic, and leak nothing.
func FuzzRecords(f *testing.F) {
	for _, seed := range []string{
		docCategorization,
		docCategorization[:len(docCategorization)-1] + `, "transaction": ` + docTransaction + `}`,
		docContract,
		`{"date":"2026-02-23","balance":7481.06}`,
		`{"date":"2026-02-23","balance":"abc"}`,
		`{"accountId":"a","type":"GIRO","balance":12.5,"owner":"Max Mustermann"}`,
		`{"transactionId":"t","accountId":"a","transaction":{"transactionId":"t","amount":1e400,"bookingDate":1}}`,
		`{"transactionId":"t","accountId":"a","transaction":{"transactionId":"t","amount":1,"bookingDate":"2026-11-03T00:00:00+01:00"}}`,
		`{"transactionId":"t","accountId":"a","transaction":{"transactionId":"t","amount":1,"bookingDate":"1969-12-31T23:30:00-01:00"}}`,
		`{"date":"2026-02-23T00:00:00+01:00","balance":1}`,
		`null`, `[]`, `"x"`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	lin := transform.Lineage{Provider: "fino", Tenant: "t", RunID: "r", ExtractedAt: time.Unix(1769036400, 0).UTC(), Version: 1}
	for _, h := range hostile.Payloads() {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		tx, acc, bal, ct := NewTransactionsBuilder(mem, lin), NewAccountsBuilder(mem, lin), NewBalancesBuilder(mem, lin), NewContractsBuilder(mem, lin)
		defer tx.Release()
		defer acc.Release()
		defer bal.Release()
		defer ct.Release()
		check := func(name string, rej string, ok bool, rows int) {
			if ok && rows != 1 {
				t.Fatalf("%s accepted the record but holds %d rows", name, rows)
			}
			if !ok && (rej == "" || rows != 0) {
				t.Fatalf("%s rejected the record with reason %q and %d rows", name, rej, rows)
			}
		}
		r, ok := tx.AddJSON("u", "c", raw)
		check("transactions", r.Reason, ok, tx.Len())
		r, ok = acc.AddJSON("u", raw, false)
		check("accounts", r.Reason, ok, acc.Len())
		r, ok = bal.AddJSON("u", "a", raw, "EUR")
		check("balances", r.Reason, ok, bal.Len())
		r, ok = ct.AddJSON("u", raw)
		check("contracts", r.Reason, ok, ct.Len())
		recs := []interface{ Release() }{tx.NewRecord(), acc.NewRecord(), bal.NewRecord(), ct.NewRecord()}
		for _, rec := range recs {
			rec.Release()
		}
	})
}
