package fino

import (
	"bytes"
	"encoding/json"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
	"github.com/finsync/finsync/transform/transformtest"
)

func testLineage() transform.Lineage {
	return transform.Lineage{Provider: "fino", Tenant: "sandbox-client", RunID: "run-0001",
		ExtractedAt: time.Date(2026, 2, 24, 6, 30, 0, 0, time.UTC), Version: 1771914600}
}

// Golden inputs: the docs' examples plus the cases the mapping rules name
// (no value date, purpose missing, exponent amounts, unmapped tags, a
// detected account without id, an account without analysis info).
var (
	goldenCategorizations = []string{
		`{"accountId":"account-1","transactionId":"transaction-1","creationDate":"2026-01-22T14:08:47+01:00",
		  "descriptiveTag":"insurance_legal","localizedTag":"Rechtsschutzversicherung",
		  "tags":["insurance_legal","insurance","spending"],
		  "transaction":{"transactionId":"transaction-1","amount":-55.08,"bookingDate":1769040000,"valueDate":1769126400,
		    "bookingText":"FOLGELASTSCHRIFT","purpose":"Beitrag Rechtsschutz 01.2026",
		    "paymentPartner":{"bic":"BELADEBEXXX","creditorId":"DE98ZZZ09999999999","iban":"DE89370400440532013000","name":"Rechtsschutz Union AG"},
		    "differentDebitor":"Anna Becker","eref":"E2E000000000042","mref":"6666666066666",
		    "sepaPurposeCode":"INSU","transactionCode":105},
		  "unknownField":{"kept":[1,"two",null]}}`,
		`{"accountId":"account-1","transactionId":"transaction-2","creationDate":"2026-01-25T08:00:00+01:00",
		  "descriptiveTag":"salary_bonus","tags":["salary_bonus","income","earning"],
		  "transaction":{"amount":2500,"currency":"USD","bookingDate":1769299200,"bookingText":"LOHN/GEHALT",
		    "paymentPartner":{"name":"Muster Maschinenbau GmbH","iban":"DE02120300000000202051"},"differentCreditor":"Ben Fischer"}}`,
		`{"accountId":"account-2","transactionId":"transaction-3","creationDate":"2026-01-26T09:00:00+01:00",
		  "descriptiveTag":"","tags":["something_new"],
		  "transaction":{"transactionId":"transaction-3","amount":1.5E+2,"bookingDate":1769385600,"merchantCategoryCode":"0742"}}`,
	}
	goldenAccounts = []struct {
		credit bool
		raw    string
	}{
		{false, `{"accountId":"acc-giro","accountNumber":"0532013000","balance":7481.06,"bankCode":"37040044","bankName":"Fino Bank",
		  "bic":"BYLADEM1001","overdraft":{"amount":1500,"available":true},"currency":"EUR","iban":"DE89370400440532013000",
		  "name":"Girokonto","owner":"Anna Becker","type":"GIRO","transactions":[{"transactionId":"t1","amount":-1}],
		  "additionalAnalysesInfo":{"isUserAdded":true,"analysisPeriod":{"since":"2024-01-02T01:01:01Z","until":"2026-02-20T01:01:01Z"},
		    "analysis":{"median":150},"creditorId":""}}`},
		{false, `{"accountId":"acc-tagesgeld","balance":-0.5,"type":"TAGESGELD","owner":"Anna Becker","standingOrders":[{"to":"Ben Fischer"}]}`},
		{false, `{"accountId":"acc-odd","type":"OTHER","overdraft":{"available":false}}`},
		{true, `{"accountId":"","type":"KREDIT_KARTE","additionalAnalysesInfo":{"isUserAdded":false,
		  "analysisPeriod":{"since":"2024-01-24T01:01:01Z","until":"2026-01-24T01:01:01Z"},
		  "analysis":{"median":-180.15,"spending":{"median":-180.15,"transactionIDs":["T082a6370-dc82-42b9-87d0-753dbb9c79e8"]}}},
		  "creditorId":"DE3810400000020144"}`},
		{true, `{"accountId":"acc-credit","type":"UNKNOWN","balance":-12000}`},
	}
	goldenBalances = []struct{ account, raw, currency string }{
		{"account-1", `{"date":"2026-02-23","balance":7481.06}`, ""},
		{"account-1", `{"date":"2026-02-22","balance":-12.5}`, ""},
		{"account-2", `{"date":"2024-02-29","balance":0}`, "CHF"},
	}
	goldenContracts = []string{
		`{"contractId":"347e903e-128b-465a-adf5-1abf13d2fe1c","amount":-55.08,"amountConsistency":"FIX","category":"GEZ",
		  "contractPartner":{"name":"Rundfunk ARD, ZDF, DRadio","iban":"DE70500500000000000000","creditorId":"DE54ZZZ00000000001"},
		  "duration":90,"interval":"QUARTERLY","isActive":true,"mref":"6666666066666","nextBookingDate":"2026-05-16",
		  "nextBookingRange":["2026-05-08","2026-05-24"],"transactions":[{"transactionId":"T3de380d6-1"},{"transactionId":""},{"transactionId":"T3de380d6-2"}],
		  "additionalInfo":{}}`,
		`{"contractId":"c-2","amount":12.99,"amountConsistency":"VARIABLE","category":"LOTTO","interval":"MONTHLY","isActive":false,
		  "duration":0,"nextBookingDate":"","nextBookingRange":[],"transactions":[]}`,
	}
)

func mustDecode[T any](t testing.TB, raw string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// TestGolden converts the golden inputs and compares the records, printed
// one JSON line per row, with testdata/golden. Regenerate with
// go test ./extract/fino -run Golden -update.
func TestGolden(t *testing.T) {
	mem := memory.NewGoAllocator()
	build := map[string]func(t *testing.T) arrow.Record{
		"transactions": func(t *testing.T) arrow.Record {
			b := NewTransactionsBuilder(mem, testLineage())
			defer b.Release()
			for _, raw := range goldenCategorizations {
				if rej, ok := b.Add("user-1", "corr-1", mustDecode[Categorization](t, raw), []byte(raw)); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
		"accounts": func(t *testing.T) arrow.Record {
			b := NewAccountsBuilder(mem, testLineage())
			defer b.Release()
			for _, in := range goldenAccounts {
				if rej, ok := b.Add("user-1", mustDecode[DetectedAccount](t, in.raw), in.credit, []byte(in.raw)); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
		"account_balances": func(t *testing.T) arrow.Record {
			b := NewBalancesBuilder(mem, testLineage())
			defer b.Release()
			for _, in := range goldenBalances {
				if rej, ok := b.Add("user-1", in.account, mustDecode[DailyBalance](t, in.raw), in.currency); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
		"contracts": func(t *testing.T) arrow.Record {
			b := NewContractsBuilder(mem, testLineage())
			defer b.Release()
			for _, raw := range goldenContracts {
				if rej, ok := b.Add("user-1", mustDecode[Contract](t, raw), []byte(raw)); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
	}
	for _, table := range []transform.Table{transform.Transactions, transform.Accounts, transform.AccountBalances, transform.Contracts} {
		t.Run(table.Name, func(t *testing.T) {
			rec := build[table.Name](t)
			defer rec.Release()
			if !rec.Schema().Equal(table.Schema) {
				t.Fatalf("schema %s, want %s", rec.Schema(), table.Schema)
			}
			var got bytes.Buffer
			transformtest.PrintRecord(&got, rec)
			path := filepath.Join("testdata", "golden", table.Name+".jsonl")
			transformtest.Golden(t, path, got.Bytes())
		})
	}
}

func TestRejects(t *testing.T) {
	tx := func(edit func(c *Categorization)) Categorization {
		c := Categorization{AccountID: "account-1", TransactionID: "tx-1", DescriptiveTag: "rent",
			Transaction: &Transaction{TransactionID: "tx-1", Amount: "-800", BookingDate: Timestamp{Unix: 1769040000},
				PaymentPartner: &PaymentPartner{Name: "Ben Fischer", IBAN: "DE02120300000000202051"}}}
		edit(&c)
		return c
	}
	txRaw := []byte(`{"transactionId":"tx-1","transaction":{"amount":"x","paymentPartner":{"name":"Ben Fischer"},"differentCreditor":"Anna Becker"}}`)
	contract := func(edit func(c *Contract)) Contract {
		c := Contract{ContractID: "c-1", Amount: "-55.08", NextBookingDate: "2026-05-16", NextBookingRange: []string{"2026-05-08", "2026-05-24"}}
		edit(&c)
		return c
	}
	type result struct {
		rej extract.Reject
		ok  bool
		len int
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	txb := NewTransactionsBuilder(mem, testLineage())
	defer txb.Release()
	accb := NewAccountsBuilder(mem, testLineage())
	defer accb.Release()
	balb := NewBalancesBuilder(mem, testLineage())
	defer balb.Release()
	conb := NewContractsBuilder(mem, testLineage())
	defer conb.Release()
	addTx := func(c Categorization) result {
		rej, ok := txb.Add("u", "corr", c, txRaw)
		return result{rej, ok, txb.Len()}
	}
	addBal := func(account, date, balance string) result {
		rej, ok := balb.Add("u", account, DailyBalance{Date: date, Balance: json.Number(balance)}, "")
		return result{rej, ok, balb.Len()}
	}
	addContract := func(c Contract) result {
		rej, ok := conb.Add("u", c, []byte(`{"contractId":"c-1"}`))
		return result{rej, ok, conb.Len()}
	}
	addAccount := func(a DetectedAccount) result {
		rej, ok := accb.Add("u", a, false, []byte(`{"owner":"Anna Becker","balance":"x"}`))
		return result{rej, ok, accb.Len()}
	}

	for _, tc := range []struct {
		name         string
		got          result
		table, key   string
		reasonPrefix string
	}{
		{"bad amount", addTx(tx(func(c *Categorization) { c.Transaction.Amount = "abc" })), "transactions", "tx-1", `amount "abc": not a decimal`},
		{"amount as float text", addTx(tx(func(c *Categorization) { c.Transaction.Amount = "NaN" })), "transactions", "tx-1", `amount "NaN": not a decimal`},
		{"too many decimals", addTx(tx(func(c *Categorization) { c.Transaction.Amount = "1.23456" })), "transactions", "tx-1", `amount "1.23456": more than 4 decimals`},
		{"out of range", addTx(tx(func(c *Categorization) { c.Transaction.Amount = "1e14" })), "transactions", "tx-1", `amount "1e14": out of the Decimal(18,4) range`},
		{"amount missing", addTx(tx(func(c *Categorization) { c.Transaction.Amount = "" })), "transactions", "tx-1", "amount missing"},
		{"missing transaction id", addTx(tx(func(c *Categorization) { c.TransactionID = "" })), "transactions", "", "transactionId missing"},
		{"missing account id", addTx(tx(func(c *Categorization) { c.AccountID = "" })), "transactions", "tx-1", "accountId missing"},
		{"missing raw transaction", addTx(tx(func(c *Categorization) { c.Transaction = nil })), "transactions", "tx-1", "no raw transaction: amount unknown"},
		{"other transaction", addTx(tx(func(c *Categorization) { c.Transaction.TransactionID = "tx-2" })), "transactions", "tx-1", `transaction.transactionId "tx-2" differs`},
		{"booking date missing", addTx(tx(func(c *Categorization) { c.Transaction.BookingDate = Timestamp{} })), "transactions", "tx-1", "transaction.bookingDate missing"},
		{"booking date in milliseconds", addTx(tx(func(c *Categorization) { c.Transaction.BookingDate = Timestamp{Unix: 1769040000000} })), "transactions", "tx-1", "transaction.bookingDate 1769040000000: not Unix seconds"},
		{"booking date without offset", addTx(tx(func(c *Categorization) { c.Transaction.BookingDate = Timestamp{Text: "2026-11-03T00:00:00"} })), "transactions", "tx-1", `transaction.bookingDate "2026-11-03T00:00:00": not a date or RFC 3339 timestamp`},
		{"booking date before 1970", addTx(tx(func(c *Categorization) { c.Transaction.BookingDate = Timestamp{Text: "1969-12-31T23:30:00-01:00"} })), "transactions", "tx-1", `transaction.bookingDate "1969-12-31T23:30:00-01:00": not a date`},
		{"negative value date", addTx(tx(func(c *Categorization) { c.Transaction.ValueDate = Timestamp{Unix: -86400} })), "transactions", "tx-1", "transaction.valueDate -86400"},
		{"bad date", addBal("acc-1", "2026-02-30", "1"), "account_balances", "acc-1/2026-02-30", `date "2026-02-30": not a date`},
		{"short date", addBal("acc-1", "26-02-23", "1"), "account_balances", "acc-1/26-02-23", `date "26-02-23": not a date`},
		{"date before 1970", addBal("acc-1", "1969-12-31", "1"), "account_balances", "acc-1/1969-12-31", `date "1969-12-31": not a date`},
		{"balance missing", addBal("acc-1", "2026-02-23", ""), "account_balances", "acc-1/2026-02-23", "balance missing"},
		{"balance too precise", addBal("acc-1", "2026-02-23", "0.00001"), "account_balances", "acc-1/2026-02-23", `balance "0.00001": more than 4 decimals`},
		{"balance without account", addBal("", "2026-02-23", "1"), "account_balances", "/2026-02-23", "accountId missing"},
		{"contract id missing", addContract(contract(func(c *Contract) { c.ContractID = "" })), "contracts", "", "contractId missing"},
		{"contract amount", addContract(contract(func(c *Contract) { c.Amount = "12,50" })), "contracts", "c-1", `amount "12,50": not a decimal`},
		{"bad next booking date", addContract(contract(func(c *Contract) { c.NextBookingDate = "16.05.2026" })), "contracts", "c-1", `nextBookingDate "16.05.2026": not a date`},
		{"bad range end", addContract(contract(func(c *Contract) { c.NextBookingRange[1] = "2026-05-32" })), "contracts", "c-1", `nextBookingRange[1] "2026-05-32": not a date`},
		{"range of one", addContract(contract(func(c *Contract) { c.NextBookingRange = c.NextBookingRange[:1] })), "contracts", "c-1", "nextBookingRange has 1 dates, want 2"},
		{"negative duration", addContract(contract(func(c *Contract) { c.Duration = -1 })), "contracts", "c-1", "duration -1"},
		{"account balance", addAccount(DetectedAccount{Account: Account{AccountID: "a-1", Balance: "x"}}), "accounts", "a-1", `balance "x": not a decimal`},
		{"overdraft", addAccount(DetectedAccount{Account: Account{AccountID: "a-1", Overdraft: &Overdraft{Amount: "1.00001"}}}), "accounts", "a-1", `overdraft.amount "1.00001": more than 4 decimals`},
		{"account without key", addAccount(DetectedAccount{Account: Account{Type: AccountKreditKarte}}), "accounts", "", "accountId missing and no creditorId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.ok {
				t.Fatal("accepted")
			}
			if tc.got.len != 0 {
				t.Errorf("%d rows appended", tc.got.len)
			}
			r := tc.got.rej
			// A record without an id is keyed by its payload.
			if keyOK := r.Key == tc.key || tc.key == "" && strings.HasPrefix(r.Key, "raw-"); r.Table != tc.table || !keyOK || !strings.HasPrefix(r.Reason, tc.reasonPrefix) {
				t.Errorf("reject %q %q %q, want %q %q %q...", r.Table, r.Key, r.Reason, tc.table, tc.key, tc.reasonPrefix)
			}
			if len(r.Raw) == 0 || !json.Valid(r.Raw) {
				t.Errorf("raw %q: want the scrubbed payload", r.Raw)
			}
			for _, name := range []string{"Ben Fischer", "Anna Becker"} {
				if bytes.Contains(r.Raw, []byte(name)) {
					t.Errorf("raw %s keeps %q", r.Raw, name)
				}
			}
		})
	}
	// A rejected row left nothing behind: a good row still makes a record.
	if _, ok := txb.Add("u", "corr", tx(func(*Categorization) {}), nil); !ok {
		t.Fatal("good row rejected")
	}
	rec := txb.NewRecord()
	defer rec.Release()
	if rec.NumRows() != 1 {
		t.Fatalf("%d rows, want 1", rec.NumRows())
	}
}

func TestRejectUnscrubbableRaw(t *testing.T) {
	b := NewTransactionsBuilder(memory.NewGoAllocator(), testLineage())
	defer b.Release()
	c := Categorization{AccountID: "a", TransactionID: "t", Transaction: &Transaction{Amount: "1", BookingDate: Timestamp{Unix: 86400}}}
	for _, raw := range []string{`{"transaction":{"paymentPartner":{"name":"Anna Becker"}`, `[1]`, `{"a":1} {}`, `{"a" 1}`} {
		rej, ok := b.Add("u", "", c, []byte(raw))
		if ok || !strings.HasPrefix(rej.Reason, "raw: not one JSON object") || rej.Raw != nil {
			t.Errorf("%s: got ok=%v %+v, want a reject without raw", raw, ok, rej)
		}
	}
	if b.Len() != 0 {
		t.Fatalf("%d rows appended", b.Len())
	}
}

func TestParseMoney(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // unscaled, scale 4
		err  string
	}{
		{"0", 0, ""},
		{"-0", 0, ""},
		{"150", 1_500_000, ""},
		{"12.5", 125_000, ""},
		{"-55.08", -550_800, ""},
		{"7481.06", 74_810_600, ""},
		{"0.0001", 1, ""},
		{"1.50000", 15_000, ""},
		{"1e2", 1_000_000, ""},
		{"1.5E+2", 1_500_000, ""},
		{"1E-4", 1, ""},
		{"0.00001e1", 1, ""},
		{"0e999999999999", 0, ""},
		{"0.000000000000000000000", 0, ""},
		{"99999999999999.9999", 999_999_999_999_999_999, ""},
		{"-99999999999999.9999", -999_999_999_999_999_999, ""},
		{"123456789012345678e-4", 123_456_789_012_345_678, ""},
		{"1e13", 100_000_000_000_000_000, ""},
		{"", 0, "missing"},
		{"1e-5", 0, "more than 4 decimals"},
		{"0.00005", 0, "more than 4 decimals"},
		{"1234567890123456789e-5", 0, "more than 4 decimals"},
		{"1e-99999999999", 0, "more than 4 decimals"},
		{"100000000000000", 0, "out of the Decimal(18,4) range"},
		{"1e14", 0, "out of the Decimal(18,4) range"},
		{"1e99999999999", 0, "out of the Decimal(18,4) range"},
		{"99999999999999.99999", 0, "more than 4 decimals"},
		{"abc", 0, "not a decimal"},
		{"00.1", 0, "not a decimal"},
		{".5", 0, "not a decimal"},
		{"1.", 0, "not a decimal"},
		{"+1", 0, "not a decimal"},
		{"-", 0, "not a decimal"},
		{"1e", 0, "not a decimal"},
		{"1e+", 0, "not a decimal"},
		{" 1", 0, "not a decimal"},
		{"1 ", 0, "not a decimal"},
		{"Infinity", 0, "not a decimal"},
		{"0x10", 0, "not a decimal"},
		{"1_000", 0, "not a decimal"},
	} {
		got, err := parseMoney(json.Number(tc.in))
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMoney(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseMoney(%q) = %d, %v; want error %q", tc.in, got, err, tc.err)
		}
	}
}

func TestParseDay(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" = refused
	}{
		{"2026-02-23", "2026-02-23"},
		{"1970-01-01", "1970-01-01"},
		{"2024-02-29", "2024-02-29"},
		{"2149-06-06", "2149-06-06"},
		{"2149-06-07", ""},
		{"1969-12-31", ""},
		{"2025-02-29", ""},
		{"2026-00-10", ""},
		{"2026-13-10", ""},
		{"2026-01-00", ""},
		{"2026-1-10", ""},
		{"2026/01/10", ""},
		{"2026-01-1x", ""},
		{"", ""},
	} {
		day, ok := parseDay(tc.in)
		got := ""
		if ok {
			got = arrow.Date32(day).ToTime().Format(time.DateOnly)
		}
		if got != tc.want {
			t.Errorf("parseDay(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScrubJSON(t *testing.T) {
	rules := []scrubRule{{key: "transaction", sub: []scrubRule{
		{key: "paymentPartner", sub: []scrubRule{{key: "name"}}},
		{key: "differentCreditor"},
	}}, {key: "owner"}, {key: "transactions"}}
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{}`},
		{` { } `, `{}`},
		{`{"owner":"A"}`, `{}`},
		{`{"a":1,"owner":"A","b":[{"owner":"nested, not a rule"}]}`, `{"a":1,"b":[{"owner":"nested, not a rule"}]}`},
		{`{"owner":"A","a":1}`, `{"a":1}`},
		{`{"a":1,"owner":"A"}`, `{"a":1}`},
		{"{\n  \"a\" : 1 ,\n  \"owner\" : \"A\"\n}", `{"a":1}`},
		{`{"OWNER":"A","Owner":"B","\u006fwner":"C","ownſr":"not the same key"}`, `{"ownſr":"not the same key"}`},
		// encoding/json folds ſ to s as bytes.EqualFold does (see below).
		{`{"tranſactions":[1],"TRANSACTIONS":[2]}`, `{}`},
		{`{"transaction":{"amount":-1,"paymentPartner":{"iban":"DE1","name":"A"},"differentCreditor":"B"}}`,
			`{"transaction":{"amount":-1,"paymentPartner":{"iban":"DE1"}}}`},
		{`{"Transaction":{"PAYMENTPARTNER":{"Name":"A","n\"ame":"kept"}}}`, `{"Transaction":{"PAYMENTPARTNER":{"n\"ame":"kept"}}}`},
		{`{"transaction":null,"paymentPartner":{"name":"only under transaction"}}`, `{"transaction":null,"paymentPartner":{"name":"only under transaction"}}`},
		{`{"s":"}{\"owner\":","owner":{"x":["}"]}}`, `{"s":"}{\"owner\":"}`},
	} {
		got, err := scrubJSON(nil, []byte(tc.in), rules)
		if err != nil || string(got) != tc.want {
			t.Errorf("scrubJSON(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	var a Account
	if err := json.Unmarshal([]byte(`{"tranſactions":[{"transactionId":"t"}]}`), &a); err != nil || len(a.Transactions) != 1 {
		t.Errorf("encoding/json no longer folds ſ to s (%v, %+v): the scrubber may compare more strictly", err, a)
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1`, `{"a":[1}`, `{"a":"x}`, `{} x`, `{"a":1 "b":2}`} {
		if got, err := scrubJSON(nil, []byte(bad), rules); err == nil {
			t.Errorf("scrubJSON(%s) = %s, want an error", bad, got)
		}
	}
}

// FuzzScrubJSON: scrubbing never panics, keeps valid JSON valid, and leaves
// nothing encoding/json would decode into the dropped fields.
func FuzzScrubJSON(f *testing.F) {
	for _, s := range goldenCategorizations {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"transaction":{"PaymentPartner":{"NAME":"x"},"differentdebitor":"y"}}`))
	f.Add([]byte(`{"transaction":{"paymentPartner":{"\u004eame":"x"}}}`))
	b := NewTransactionsBuilder(memory.NewGoAllocator(), testLineage())
	defer b.Release()
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := scrubJSON(nil, raw, b.scrub)
		if err != nil || !json.Valid(raw) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("scrubJSON(%s) = %s: not JSON", raw, out)
		}
		var c Categorization
		if json.Unmarshal(out, &c) == nil && c.Transaction != nil {
			tr := c.Transaction
			if tr.DifferentCreditor != "" || tr.DifferentDebitor != "" || (tr.PaymentPartner != nil && tr.PaymentPartner.Name != "") {
				t.Fatalf("scrubJSON(%s) = %s: a dropped field survives", raw, out)
			}
		}
	})
}

// TestScrubbing checks the rows: no person names in raw, while the
// counterparty's name keeps its column.
func TestScrubbing(t *testing.T) {
	mem := memory.NewGoAllocator()
	tb := NewTransactionsBuilder(mem, testLineage())
	defer tb.Release()
	for _, raw := range goldenCategorizations {
		tb.Add("u", "c", mustDecode[Categorization](t, raw), []byte(raw))
	}
	rec := tb.NewRecord()
	defer rec.Release()
	raws := recordColumn[*array.String](t, rec, "raw")
	names := recordColumn[*array.String](t, rec, "counterparty_name")
	for i := range raws.Len() {
		var c Categorization
		if err := json.Unmarshal([]byte(raws.Value(i)), &c); err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
		if c.Transaction == nil {
			t.Fatalf("raw %d lost its transaction: %s", i, raws.Value(i))
		}
		if p := c.Transaction.PaymentPartner; p != nil && p.Name != "" || c.Transaction.DifferentCreditor != "" || c.Transaction.DifferentDebitor != "" {
			t.Errorf("raw %d keeps a name: %s", i, raws.Value(i))
		}
		if p := mustDecode[Categorization](t, goldenCategorizations[i]).Transaction.PaymentPartner; p != nil && names.Value(i) != p.Name {
			t.Errorf("counterparty_name %d = %q, want %q", i, names.Value(i), p.Name)
		}
	}
	if !strings.Contains(raws.Value(0), `"unknownField":{"kept":[1,"two",null]}`) {
		t.Errorf("raw lost a field finoOS sent: %s", raws.Value(0))
	}

	ab := NewAccountsBuilder(mem, testLineage())
	defer ab.Release()
	for _, in := range goldenAccounts {
		ab.Add("u", mustDecode[DetectedAccount](t, in.raw), in.credit, []byte(in.raw))
	}
	arec := ab.NewRecord()
	defer arec.Release()
	araws := recordColumn[*array.String](t, arec, "raw")
	for i := range araws.Len() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(araws.Value(i)), &m); err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
		for k := range m {
			if strings.EqualFold(k, "owner") || strings.EqualFold(k, "transactions") || strings.EqualFold(k, "standingOrders") {
				t.Errorf("account raw %d keeps %s: %s", i, k, araws.Value(i))
			}
		}
		if strings.Contains(araws.Value(i), "Anna Becker") || strings.Contains(araws.Value(i), "Ben Fischer") {
			t.Errorf("account raw %d keeps a person's name: %s", i, araws.Value(i))
		}
	}
}

// A timestamp becomes the date written in it, in its own offset, wherever
// finoOS sends one for a Date column; Unix seconds carry no offset and are
// UTC days (assumption 22). Dates stay as they are.
func TestDaysInTheTimestampsOwnOffset(t *testing.T) {
	for _, tc := range []struct {
		in   string // a JSON value
		want string
	}{
		{`"2026-11-03T00:00:00+01:00"`, "2026-11-03"}, // German midnight: 2026-11-02 23:00 UTC
		{`"2026-07-03T00:00:00+02:00"`, "2026-07-03"}, // summer time: 2026-07-02 22:00 UTC
		{`"2026-11-03T00:00:00-05:00"`, "2026-11-03"},
		{`"2026-11-03T00:00:00Z"`, "2026-11-03"},
		{`"2026-11-03T23:30:00-01:00"`, "2026-11-03"}, // 2026-11-04 00:30 UTC
		{`"2026-11-03T00:30:00+02:00"`, "2026-11-03"}, // 2026-11-02 22:30 UTC
		{`"2026-11-03"`, "2026-11-03"},
		{`1793660400`, "2026-11-02"}, // 2026-11-02 23:00 UTC, German midnight as a number: no offset to go by
		{`1793664000`, "2026-11-03"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			day := func(b interface {
				NewRecord() arrow.Record
				Release()
			}, column string, rej extract.Reject, ok bool) string {
				defer b.Release()
				if !ok {
					t.Fatalf("%s rejected: %s", column, rej.Reason)
				}
				rec := b.NewRecord()
				defer rec.Release()
				return recordColumn[*array.Date32](t, rec, column).Value(0).FormattedString()
			}
			var got []string
			for _, column := range []string{"booking_date", "value_date"} {
				b := NewTransactionsBuilder(mem, testLineage())
				rej, ok := b.AddJSON("u", "c", []byte(`{"accountId":"a","transactionId":"t","tags":[],
					"transaction":{"transactionId":"t","amount":-1,"bookingDate":`+tc.in+`,"valueDate":`+tc.in+`}}`))
				got = append(got, column+" "+day(b, column, rej, ok))
			}
			if tc.in[0] == '"' { // fields that are dates in the docs, sent as timestamps
				b := NewBalancesBuilder(mem, testLineage())
				rej, ok := b.AddJSON("u", "a", []byte(`{"date":`+tc.in+`,"balance":1}`), "")
				got = append(got, "balance_date "+day(b, "balance_date", rej, ok))
				for _, column := range []string{"next_booking_date", "next_booking_from", "next_booking_to"} {
					c := NewContractsBuilder(mem, testLineage())
					rej, ok := c.AddJSON("u", []byte(`{"contractId":"c","amount":-1,"nextBookingDate":`+tc.in+`,"nextBookingRange":[`+tc.in+`,`+tc.in+`]}`))
					got = append(got, column+" "+day(c, column, rej, ok))
				}
			}
			for _, g := range got {
				if _, d, _ := strings.Cut(g, " "); d != tc.want {
					t.Errorf("%s, want %s", g, tc.want)
				}
			}
		})
	}
}

func recordColumn[T arrow.Array](t *testing.T, rec arrow.Record, name string) T {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("no column %s", name)
	}
	return rec.Column(idx[0]).(T)
}

// TestNoLeaks builds records of every table, rejects included, and checks
// that releasing them and the builders returns every byte.
func TestNoLeaks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	lin := testLineage()

	tb := NewTransactionsBuilder(mem, lin)
	ab := NewAccountsBuilder(mem, lin)
	bb := NewBalancesBuilder(mem, lin)
	cb := NewContractsBuilder(mem, lin)
	for range 3 {
		for _, raw := range goldenCategorizations {
			tb.Add("u", "c", mustDecode[Categorization](t, raw), []byte(raw))
		}
		tb.Add("u", "c", Categorization{TransactionID: "no account"}, nil)
		for _, in := range goldenAccounts {
			ab.Add("u", mustDecode[DetectedAccount](t, in.raw), in.credit, []byte(in.raw))
		}
		for _, in := range goldenBalances {
			bb.Add("u", in.account, mustDecode[DailyBalance](t, in.raw), in.currency)
		}
		bb.Add("u", "a", DailyBalance{Date: "bad"}, "")
		for _, raw := range goldenContracts {
			cb.Add("u", mustDecode[Contract](t, raw), []byte(raw))
		}
		for _, b := range []interface {
			NewRecord() arrow.Record
		}{tb, ab, bb, cb} {
			b.NewRecord().Release()
		}
	}
	// A record outlives its builder.
	tb.Add("u", "c", mustDecode[Categorization](t, goldenCategorizations[0]), []byte(goldenCategorizations[0]))
	rec := tb.NewRecord()
	tb.Release()
	ab.Release()
	bb.Release()
	cb.Release()
	if rec.NumRows() != 1 {
		t.Errorf("%d rows, want 1", rec.NumRows())
	}
	rec.Release()
}

// sandboxRecords are the records of the sandbox's synthetic users,
// generated without serving them: the data the extractor meets in tests
// and the demo.
func sandboxRecords(t testing.TB, users int, withTransaction bool, locale string) []finosb.Records {
	s := finosb.New(finosb.Options{UsersPerTenant: users})
	defer s.Close()
	var out []finosb.Records
	for _, id := range s.Users("sandbox-client") {
		r, err := s.Records("sandbox-client", id, withTransaction, locale)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestSandboxCategories: every tag and contract category the sandbox
// produces maps into the taxonomy, and every categorization resolves to a
// category other than "other". The broad tags left out on purpose are
// listed in categories.csv.
func TestSandboxCategories(t *testing.T) {
	cats := newCategories()
	broad := map[string]bool{"spending": true, "living": true}
	seen := map[string]bool{}
	for _, r := range sandboxRecords(t, 20, false, "") {
		for _, raw := range r.Categorizations {
			c := mustDecode[Categorization](t, string(raw))
			if got := cats.forTags(c.DescriptiveTag, c.Tags); got == categoryOther {
				t.Errorf("tags %v resolve to other", c.Tags)
			}
			for _, tag := range c.Tags {
				if _, ok := cats.tags[tag]; !ok && !broad[tag] && !seen[tag] {
					t.Errorf("sandbox tag %q is not in categories.csv", tag)
				}
				seen[tag] = true
			}
		}
		for _, raw := range r.Contracts {
			if c := mustDecode[Contract](t, string(raw)); cats.forContract(c.Category) == categoryOther {
				t.Errorf("contract category %q is not in categories.csv", c.Category)
			}
		}
	}
	if len(seen) < 20 {
		t.Errorf("only %d tags seen: the sandbox changed?", len(seen))
	}
}

func TestParseCategories(t *testing.T) {
	const header = "kind,fino,category\n"
	for _, tc := range []struct{ in, err string }{
		{header + "tag,rent,rent\ncontract,RENT,rent\n# comment\n", ""},
		{"kind,tag,category\n", "header"},
		{header + "tag,rent,housing_costs\n", "not a common category"},
		{header + "tag,rent,rent\ntag,rent,housing\n", "mapped twice"},
		{header + "merchant,rewe,groceries\n", "kind"},
		{header + "tag,,rent\n", "empty tag"},
		{header + "tag,rent\n", "wrong number of fields"},
	} {
		_, err := parseCategories([]byte(tc.in))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseCategories(%q): %v, want %q", tc.in, err, tc.err)
		}
	}
	c, err := parseCategories(categoriesCSV)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		descriptive string
		tags        []string
		want        string
	}{
		{"insurance_legal", []string{"insurance_legal", "insurance", "spending"}, "insurance"},
		{"insurance_pet", []string{"insurance_pet", "insurance", "spending"}, "insurance"}, // a new tag lands under its parent
		{"", []string{"spending", "groceries"}, "groceries"},
		{"living", []string{"living", "spending"}, "other"},
		{"", nil, "other"},
	} {
		if got := c.forTags(tc.descriptive, tc.tags); got != tc.want {
			t.Errorf("forTags(%q, %v) = %q, want %q", tc.descriptive, tc.tags, got, tc.want)
		}
	}
}

// TestSandboxEndToEnd converts a sandbox user's data as the extractor
// receives it (JSON, decoded) and checks nothing is rejected and the
// amounts add up exactly.
func TestSandboxEndToEnd(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	lin := testLineage()
	tb := NewTransactionsBuilder(mem, lin)
	defer tb.Release()
	tb.SetHolders("u", []string{"Anna Müller", "Ben Müller"}) // every partner compared
	ab := NewAccountsBuilder(mem, lin)
	defer ab.Release()
	bb := NewBalancesBuilder(mem, lin)
	defer bb.Release()
	cb := NewContractsBuilder(mem, lin)
	defer cb.Release()

	var wantCents int64
	n := 0
	for _, r := range sandboxRecords(t, 3, true, "de") {
		for _, raw := range r.Categorizations {
			if rej, ok := tb.Add("u", "corr", mustDecode[Categorization](t, string(raw)), raw); !ok {
				t.Fatalf("rejected: %+v", rej)
			}
			n++
		}
		wantCents += cents(t, r.AmountSum)
		for _, view := range []struct {
			accounts [][]byte
			credit   bool
		}{{r.Accounts, false}, {r.Credits, true}} {
			for _, raw := range view.accounts {
				if rej, ok := ab.Add("u", mustDecode[DetectedAccount](t, string(raw)), view.credit, raw); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
				if bytes.Contains(ab.scratch, []byte(r.Owner)) {
					t.Fatalf("account raw keeps the owner: %s", ab.scratch)
				}
			}
		}
		for _, acc := range r.Balances {
			for _, raw := range acc.Days {
				if rej, ok := bb.Add("u", acc.AccountID, mustDecode[DailyBalance](t, string(raw)), "EUR"); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
		}
		for _, raw := range r.Contracts {
			if rej, ok := cb.Add("u", mustDecode[Contract](t, string(raw)), raw); !ok {
				t.Fatalf("rejected: %+v", rej)
			}
		}
	}
	rec := tb.NewRecord()
	defer rec.Release()
	if int(rec.NumRows()) != n {
		t.Fatalf("%d rows, want %d", rec.NumRows(), n)
	}
	amounts := recordColumn[*array.Decimal128](t, rec, "amount")
	sum := new(big.Int)
	for i := range amounts.Len() {
		sum.Add(sum, amounts.Value(i).BigInt())
	}
	if want := big.NewInt(wantCents * 100); sum.Cmp(want) != 0 {
		t.Errorf("amounts add up to %s, want %s (scale 4)", sum, want)
	}
	for _, b := range []interface{ NewRecord() arrow.Record }{ab, bb, cb} {
		r := b.NewRecord()
		if r.NumRows() == 0 {
			t.Errorf("no rows in %s", r.Schema())
		}
		r.Release()
	}
}

// BenchmarkTransactionsBuilder measures Add per categorization (one op =
// one record), handing on a record every 8192 rows as a stream would.
func BenchmarkTransactionsBuilder(b *testing.B) {
	type item struct {
		c   Categorization
		raw []byte
	}
	var items []item
	for _, r := range sandboxRecords(b, 4, true, "de") {
		for _, raw := range r.Categorizations {
			items = append(items, item{mustDecode[Categorization](b, string(raw)), raw})
		}
	}
	rawBytes := 0
	for _, it := range items {
		rawBytes += len(it.raw)
	}
	tb := NewTransactionsBuilder(memory.NewGoAllocator(), testLineage())
	defer tb.Release()
	b.SetBytes(int64(rawBytes / len(items)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		it := &items[i%len(items)]
		if _, ok := tb.Add("user", "corr", it.c, it.raw); !ok {
			b.Fatal("rejected")
		}
		if tb.Len() == 8192 {
			tb.NewRecord().Release()
		}
	}
}

// BenchmarkScrubJSON measures scrubbing one categorization's raw JSON.
func BenchmarkScrubJSON(b *testing.B) {
	raw := sandboxRecords(b, 1, true, "de")[0].Categorizations[0]
	tb := NewTransactionsBuilder(memory.NewGoAllocator(), testLineage())
	defer tb.Release()
	var dst []byte
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = scrubJSON(dst[:0], raw, tb.scrub); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAllocsPerRow: once warm, a row costs no allocation of its own; what
// remains is the builders' amortized growth.
func TestAllocsPerRow(t *testing.T) {
	mem := memory.NewGoAllocator()
	lin := testLineage()
	tb := NewTransactionsBuilder(mem, lin)
	defer tb.Release()
	ab := NewAccountsBuilder(mem, lin)
	defer ab.Release()
	bb := NewBalancesBuilder(mem, lin)
	defer bb.Release()
	cb := NewContractsBuilder(mem, lin)
	defer cb.Release()
	tx := mustDecode[Categorization](t, goldenCategorizations[0])
	acc := mustDecode[DetectedAccount](t, goldenAccounts[0].raw)
	bal := mustDecode[DailyBalance](t, goldenBalances[0].raw)
	con := mustDecode[Contract](t, goldenContracts[0])
	txRaw, accRaw, conRaw := []byte(goldenCategorizations[0]), []byte(goldenAccounts[0].raw), []byte(goldenContracts[0])
	for name, add := range map[string]func(){
		"transactions":     func() { tb.Add("u", "c", tx, txRaw) },
		"accounts":         func() { ab.Add("u", acc, false, accRaw) },
		"account_balances": func() { bb.Add("u", "a", bal, "") },
		"contracts":        func() { cb.Add("u", con, conRaw) },
	} {
		if got := testing.AllocsPerRun(2000, add); got > 0.5 {
			t.Errorf("%s: %.2f allocations per row", name, got)
		}
	}
}

// wrapped finds a user document's records and what surrounds them,
// scrubbed by the records' rules (assumption 50).
func TestWrapped(t *testing.T) {
	rules := NewAccountsBuilder(memory.NewGoAllocator(), testLineage()).scrub
	lists := []string{"accountsOverview.accountsView", "accountsOverview.creditsView"}
	for _, tc := range []struct {
		name, doc, wrapper string
		records            []int
		err                bool
	}{
		{"nothing around", `{"accountsOverview":{"accountsView":[{}],"creditsView":[]}}`, "", []int{1, 0}, false},
		{"members around, scrubbed", `{"owner":"Anna Becker","at":"x","accountsOverview":{"accountsView":[],"creditsView":[{},{}],
			"summary":{"n":2},"Owner":"Ben Fischer"}}`, `{"accountsOverview":{"summary":{"n":2}},"at":"x"}`, []int{0, 2}, false},
		{"only a name around", `{"owner":"Anna Becker","accountsOverview":{"accountsView":[],"creditsView":[]}}`, "", []int{0, 0}, false},
		{"null list", `{"accountsOverview":{"accountsView":null,"creditsView":[]}}`, "", []int{0, 0}, false},
		{"missing list", `{"accountsOverview":{"accountsView":[]}}`, "", nil, true},
		{"no object", `[]`, "", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			records, wrapper, err := wrapped([]byte(tc.doc), rules, lists...)
			if (err != nil) != tc.err || string(wrapper) != tc.wrapper {
				t.Fatalf("wrapper %s, error %v; want %s, error %v", wrapper, err, tc.wrapper, tc.err)
			}
			for i, n := range tc.records {
				if len(records[i]) != n {
					t.Errorf("%s: %d records, want %d", lists[i], len(records[i]), n)
				}
			}
		})
	}
}
