package fino

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// A transfer between the user's own accounts (tag internal_transfer) names
// the account holder as its partner: counterparty_name says "(own
// account)" instead, and raw keeps no name; other counterparties stay.
func TestOwnAccountTransfersNameNoOwner(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	b := NewTransactionsBuilder(mem, testLineage())
	defer b.Release()
	for _, raw := range []string{
		`{"accountId":"a1","transactionId":"t1","descriptiveTag":"savings_transfer","tags":["savings_transfer","internal_transfer"],
		  "transaction":{"transactionId":"t1","amount":-50,"bookingDate":1769040000,"purpose":"Sparrate 01.2026",
		    "paymentPartner":{"iban":"DE89370400440532013000","name":"Lena Mueller"}}}`,
		`{"accountId":"a1","transactionId":"t2","descriptiveTag":"internal_transfer","tags":["internal_transfer"],
		  "transaction":{"transactionId":"t2","amount":100,"bookingDate":1769040000,"paymentPartner":{"name":"Lena Mueller"}}}`,
		`{"accountId":"a1","transactionId":"t3","descriptiveTag":"rent","tags":["rent","living"],
		  "transaction":{"transactionId":"t3","amount":-900,"bookingDate":1769040000,"paymentPartner":{"name":"Paul Weber"}}}`,
	} {
		var c Categorization
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		if rej, ok := b.Add("u1", "", c, []byte(raw)); !ok {
			t.Fatalf("rejected: %s", rej.Reason)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	col := func(name string) *array.String {
		return rec.Column(rec.Schema().FieldIndices(name)[0]).(*array.String)
	}
	names, raws := col("counterparty_name"), col("raw")
	for i, want := range []string{OwnAccount, OwnAccount, "Paul Weber"} {
		if names.Value(i) != want {
			t.Errorf("row %d: counterparty_name %q, want %q", i, names.Value(i), want)
		}
		if i < 2 && (!json.Valid([]byte(raws.Value(i))) || strings.Contains(raws.Value(i), "Lena Mueller")) {
			t.Errorf("row %d: raw %s", i, raws.Value(i))
		}
	}
}

// Untagged, a transfer whose partner is one of the user's account holders
// in a bank's spelling is OwnAccount too; for that user only, and a lone
// surname or a namesake's business stays.
func TestHolderNamedPartnerIsOwnAccount(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	b := NewTransactionsBuilder(mem, testLineage())
	defer b.Release()
	b.SetHolders("u1", []string{"Lena Müller", "Jürgen Schröder"})
	cases := []struct{ user, partner, want string }{
		{"u1", "MUELLER, LENA", OwnAccount},
		{"u1", "L. MULLER", OwnAccount},
		{"u1", "Schroeder Juergen", OwnAccount},
		{"u1", "Baeckerei Mueller", "Baeckerei Mueller"},
		{"u1", "Mueller", "Mueller"},
		{"u1", "Paul Weber", "Paul Weber"},
		{"u2", "MUELLER, LENA", "MUELLER, LENA"}, // another user's partner
	}
	for i, c := range cases {
		raw := fmt.Sprintf(`{"accountId":"a1","transactionId":"t%d","descriptiveTag":"transfer","tags":[],
		  "transaction":{"transactionId":"t%d","amount":-50,"bookingDate":1769040000,"paymentPartner":{"name":%q}}}`, i, i, c.partner)
		if rej, ok := b.AddJSON(c.user, "", []byte(raw)); !ok {
			t.Fatalf("rejected: %s", rej.Reason)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	names := rec.Column(rec.Schema().FieldIndices("counterparty_name")[0]).(*array.String)
	for i, c := range cases {
		if names.Value(i) != c.want {
			t.Errorf("%s %q: counterparty_name %q, want %q", c.user, c.partner, names.Value(i), c.want)
		}
	}
}
