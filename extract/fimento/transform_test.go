package fimento

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/transform"
	"github.com/finsync/finsync/transform/transformtest"
)

func testLineage() transform.Lineage {
	return transform.Lineage{Provider: "fimento", Tenant: "605c6c479691950d359bb0e9", RunID: "run-0001",
		ExtractedAt: time.Date(2026, 2, 24, 6, 30, 0, 0, time.UTC), Version: 1771914600}
}

// The docs' examples, with the cases the mapping rules name.
const (
	docTransaction = `{"_id":"string","amount":0,"date":"2019-08-24T14:15:22Z","description":"string","accountId":"string","category":"income","cBankId":"string"}`
	docInsights    = `{"transactionGraph":[{"date":"string","info":{"balance":0,"negativeSum":0,"positiveSum":0,
		"negativeTransactions":[{"description":"string","amount":0,"category":"string"}],
		"positiveTransactions":[{"description":"string","amount":0,"category":"string"}]}}],
		"accountsInfo":[{"accountNumber":"string","name":"string","balance":0,"type":"string","bank":"string"}],
		"totalBalance":{},"fetchedAtInterval":{"min":"2019-08-24T14:15:22Z","max":"2019-08-24T14:15:22Z"},"categorisation":{},
		"socialSecurityNumber":"string","companyId":"string","firstName":"string","lastName":"string","processId":"string","computationAutomation":{}}`
	docProcess = `{"_id":"605c6c479691950d359bb0e9","consentFlowStatus":{"current":{"code":"created","desc":"Created - No banks added","timestamp":"2019-08-24T14:15:22Z"},
		"history":[{"code":"created","desc":"Created - No banks added","timestamp":"2019-08-24T14:15:22Z"}],"consent":"null","_id":"6630da8590502faa7517e0fc"},
		"market":"SE","partnerBank":"605c6c479691950d359bb0e9","socialSecurityNumber":"string","companyId":"string","createdAt":"2019-08-24T14:15:22Z",
		"customerBankConsent":[{"customerBank":{"name":"string","country":"string"},"status":{"current":{"code":"bankAddedNotCompletedAuthFlow",
		"desc":"Bank added, not completed auth flow","timestamp":"2019-08-24T14:15:22Z","isError":true,"errorMessage":"string"},"history":[]},
		"consentGivenAt":"2019-08-24T14:15:22Z","consentFlowStatusId":"6630da8590502faa7517e0fc"}],
		"firstName":"string","lastName":"string","consent":"null","updatedAt":"2019-08-24T14:15:22Z","dataCollectionType":"transaction-categorisation",
		"brokerBanks":["string"],"psuType":"business"}`
)

// goldenProcess is a completed process of the customer "Astrid Lindqvist".
var goldenProcess = Process{ID: "p-1", Market: "SE", SocialSecurityNumber: fimentosb.GoodSSN, FirstName: "Astrid", LastName: "Lindqvist",
	Consent: ConsentApproved, PSUType: "business", DataCollectionType: "transaction-categorisation",
	ConsentFlowStatus: ConsentFlowStatus{StatusHistory: StatusHistory{Current: Status{Code: StatusCompleted}}}}

var (
	goldenTransactions = []string{
		`{"_id":"t-1","amount":-129.5,"date":"2026-01-25T00:30:00+01:00","description":"ICA MAXI","accountId":"a-1","category":"groceries","cBankId":"b-1"}`,
		`{"_id":"t-2","amount":32000,"date":"2026-01-24T23:59:59Z","description":"Swish från Astrid Lindqvist 19950309-6316","accountId":"a-1","category":"Salary","cBankId":"b-1",
		  "meta":{"payer":{"firstName":"Astrid","lastName":"Lindqvist","socialSecurityNumber":"199503096316"}}}`,
		`{"_id":"t-3","amount":1.5E+2,"date":"2026-01-26","description":"ÅTERBETALNING","accountId":"a-2","category":"something_new","cBankId":"b-2"}`,
	}
	goldenAccounts = []string{
		`{"accountNumber":"8327-9 12345678","name":"Lönekonto","balance":7481.06,"type":"Transaction account","bank":"Swedbank"}`,
		`{"accountNumber":"8327-9 87654321","name":"Astrids sparkonto","balance":-0.5,"type":"Savings account","bank":"Swedbank"}`,
		`{"accountNumber":"1","name":"Kort","type":"Credit card","bank":"SEB"}`,
	}
	goldenInsights = `{"transactionGraph":[{"date":"2026-01-25","info":{"balance":10500.25,"negativeSum":-129.5,"positiveSum":0,
		"negativeTransactions":[{"description":"ICA MAXI","amount":-129.5,"category":"groceries"}]}},
		{"date":"2026-01-26T00:00:00+01:00","info":{"balance":10650.25,"negativeSum":0,"positiveSum":150}}],
		"accountsInfo":[],"totalBalance":{"amount":10650.25,"currency":"SEK"},"fetchedAtInterval":{"min":"2026-01-25T00:00:00Z","max":"2026-01-26T23:00:00Z"},
		"categorisation":{"groceries":{"sum":-129.5,"count":1},"note":"kund Lindqvist","ratio":0.1234567,"flags":[true,null]},
		"socialSecurityNumber":"199503096316","firstName":"Astrid","lastName":"Lindqvist","processId":"p-1","computationAutomation":{"kalpSurplus":2500}}`
)

// TestGolden converts the golden inputs and compares the records, one JSON
// line per row, with testdata/golden. Regenerate with
// go test ./extract/fimento -run Golden -update.
func TestGolden(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	person := NewPerson(&goldenProcess)
	build := map[string]func(t *testing.T) arrow.Record{
		"transactions": func(t *testing.T) arrow.Record {
			b := NewTransactionsBuilder(mem, testLineage())
			defer b.Release()
			for _, raw := range goldenTransactions {
				if rej, ok := b.AddJSON(person, []byte(raw)); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
		"accounts": func(t *testing.T) arrow.Record {
			b := NewAccountsBuilder(mem, testLineage())
			defer b.Release()
			for _, raw := range goldenAccounts {
				if rej, ok := b.AddJSON(person, []byte(raw)); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
		"account_balances": func(t *testing.T) arrow.Record {
			b := NewBalancesBuilder(mem, testLineage())
			defer b.Release()
			var in Insights
			mustUnmarshal(t, goldenInsights, &in)
			for _, d := range in.TransactionGraph {
				if rej, ok := b.Add(person, d); !ok {
					t.Fatalf("rejected: %+v", rej)
				}
			}
			return b.NewRecord()
		},
		"insights": func(t *testing.T) arrow.Record {
			b := NewInsightsBuilder(mem, testLineage())
			defer b.Release()
			var in Insights
			mustUnmarshal(t, goldenInsights, &in)
			if rejs := b.Add(NewPerson(&goldenProcess, &in), []byte("golden-key"), &goldenProcess, &in); len(rejs) > 0 {
				t.Fatalf("rejects: %+v", rejs)
			}
			return b.NewRecord()
		},
	}
	for name, f := range build {
		t.Run(name, func(t *testing.T) {
			rec := f(t)
			defer rec.Release()
			var got bytes.Buffer
			transformtest.PrintRecord(&got, rec)
			for _, pii := range []string{"Astrid", "Lindqvist", fimentosb.GoodSSN, "950309-6316"} {
				if strings.Contains(got.String(), pii) {
					t.Errorf("%s rows hold %q", name, pii)
				}
			}
			path := filepath.Join("testdata", "golden", name+".jsonl")
			transformtest.Golden(t, path, got.Bytes())
		})
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}

func TestRejects(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewTransactionsBuilder(mem, testLineage())
	defer b.Release()
	person := NewPerson(&goldenProcess)
	tests := []struct{ raw, key, reason string }{
		{`{"_id":"t","amount":"abc","date":"2026-01-01","firstName":"Astrid"}`, "p-1/t", "not a transaction"},
		{`{"_id":"t","amount":1,"date":"2026-01-01","ssn":"x"}`, "p-1/t", ""}, // accepted
		{`{"amount":1,"date":"2026-01-01"}`, "p-1/", "_id missing"},
		{`{"_id":"t","amount":1.00001,"date":"2026-01-01"}`, "p-1/t", "more than 4 decimals"},
		{`{"_id":"t","amount":1e20,"date":"2026-01-01"}`, "p-1/t", "out of range"},
		{`{"_id":"t","amount":1,"date":"yesterday"}`, "p-1/t", "not YYYY-MM-DD"},
		{`{"_id":"t","amount":1,"date":"2200-01-01"}`, "p-1/t", "outside"},
		{`{"_id":"t","amount":1}`, "p-1/t", "date"},
		{`[1,2]`, "p-1/", "not a transaction"},
	}
	for _, tc := range tests {
		rej, ok := b.AddJSON(person, []byte(tc.raw))
		if tc.reason == "" {
			if !ok {
				t.Errorf("%s rejected: %+v", tc.raw, rej)
			}
			continue
		}
		if ok || rej.Key != tc.key || !strings.Contains(rej.Reason, tc.reason) {
			t.Errorf("%s: ok=%v key %q reason %q, want %q %q", tc.raw, ok, rej.Key, rej.Reason, tc.key, tc.reason)
		}
		if bytes.Contains(rej.Raw, []byte("Astrid")) {
			t.Errorf("%s: reject raw holds a name: %s", tc.raw, rej.Raw)
		}
	}
	rec := b.NewRecord()
	defer rec.Release()
	if rec.NumRows() != 1 {
		t.Fatalf("%d rows", rec.NumRows())
	}
}

// valid_until: seconds or milliseconds by magnitude (doc.go 4).
func TestTokenExpiry(t *testing.T) {
	now := time.Date(2026, 2, 24, 6, 0, 0, 0, time.UTC)
	in := now.Add(time.Hour)
	tests := []struct {
		name, v string
		want    time.Time
	}{
		{"seconds", strconv.FormatInt(in.Unix(), 10), in},
		{"milliseconds", strconv.FormatInt(in.UnixMilli(), 10), in},
		{"milliseconds with a fraction", strconv.FormatInt(in.UnixMilli(), 10) + ".0", in},
		{"the threshold is seconds", "100000000000", time.Unix(1e11, 0)},
		{"missing", "", time.Time{}},
		{"zero, as in the docs", "0", time.Time{}},
		{"past", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10), time.Time{}},
		{"not a number", "soon", time.Time{}},
	}
	for _, tc := range tests {
		got := Token{ValidUntil: json.Number(tc.v)}.Expiry(now)
		if !got.Equal(tc.want) {
			t.Errorf("%s (%q): %v, want %v", tc.name, tc.v, got, tc.want)
		}
	}
}

func TestConsentNull(t *testing.T) {
	for raw, want := range map[string]Consent{`"null"`: "", `null`: "", `"revoked"`: ConsentRevoked, `"approved"`: ConsentApproved} {
		var p Process
		mustUnmarshal(t, `{"_id":"p","consent":`+raw+`,"consentFlowStatus":{"consent":`+raw+`}}`, &p)
		if p.Consent != want || p.ConsentFlowStatus.Consent != want || p.Revoked() != (want == ConsentRevoked) {
			t.Errorf("%s: %q %q revoked=%v", raw, p.Consent, p.ConsentFlowStatus.Consent, p.Revoked())
		}
	}
	var p Process
	mustUnmarshal(t, docProcess, &p)
	if p.PSUType != "business" || p.Consent != "" || p.ConsentFlowStatus.Current.Code != StatusCreated {
		t.Errorf("doc example: %+v", p)
	}
}

func TestScrubAndRedact(t *testing.T) {
	raw := `{"a":1.50,"SocialSecurityNumber":"x","n":[{"firstname":"Astrid","\u006castName":"L","keep":"ok"}],"s":"<&>","companyId":null}`
	got, err := scrub([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":1.50,"n":[{"keep":"ok"}],"s":"<&>"}`; string(got) != want {
		t.Errorf("scrub: %s, want %s", got, want)
	}
	if _, err := scrub([]byte(`{"a":1} {}`)); err == nil {
		t.Error("two documents scrubbed")
	}
	r := newRedactor(fimentosb.GoodSSN, "", "Åsa Astrid", "Lindqvist")
	for in, want := range map[string]string{
		"Swish Astrid Lindqvist":       "Swish [redacted] [redacted]",
		"ASTRID,astrid":                "[redacted],[redacted]",
		"Åsa betalar 19950309-6316":    "[redacted] betalar [redacted]",
		"ref 950309-6316 / 9503096316": "ref [redacted] / [redacted]",
		"Astridsgatan 1990":            "Astridsgatan 1990",
		"ICA MAXI":                     "ICA MAXI",
	} {
		if got := r.text(in); got != want {
			t.Errorf("redact %q: %q, want %q", in, got, want)
		}
	}
	if a, b := PersonRef([]byte("k"), "19950309-6316"), PersonRef([]byte("k"), fimentosb.GoodSSN); a != b || len(a) != len("hmac-sha256:")+32 {
		t.Errorf("PersonRef not normalized: %s %s", a, b)
	}
	if PersonRef([]byte("k"), fimentosb.GoodSSN) == PersonRef([]byte("other"), fimentosb.GoodSSN) {
		t.Error("PersonRef ignores the key")
	}
}

// Names match whatever (?i) takes as equal (the Kelvin sign, the long s)
// and in the spellings banks print; ids whatever their separators.
func TestRedactorSpellings(t *testing.T) {
	r := newRedactor(fimentosb.GoodSSN, "556677-8899", "Kasper Åsa", "Lindqvist")
	long := strings.Repeat("x", 1<<20)
	for in, want := range map[string]string{
		"Swish Kasper Lindqvist":       "Swish [redacted] [redacted]",
		"\u212aasper":                  "[redacted]",
		"\u212Aaspers konto":           "[redacted] konto",
		"KASPERS":                      "[redacted]",
		"åSA AASA ASA":                 "[redacted] [redacted] [redacted]",
		"lindqviſt LINDQVIſT":          "[redacted] [redacted]",
		"Lindqvist-Kasper":             "[redacted]-[redacted]",
		"ref 5566778899 / 556677-8899": "ref [redacted] / [redacted]",
		"19950309 6316, 950309+6316":   "[redacted], [redacted]",
		"Kasperx xKasper ICA MAXI":     "Kasperx xKasper ICA MAXI",
		"\u212Aasper och Aſtrid":       "[redacted] och Aſtrid",
		long + " Kasper":               long + " [redacted]",
		long:                           long,
	} {
		if got := r.text(in); got != want {
			t.Errorf("redact %.40q: %.40q, want %.40q", in, got, want)
		}
	}
}

func TestParsePaths(t *testing.T) {
	p, err := ParsePaths([]string{"login=/v2/login", "transactions=/v2/p/{processId}/tx"})
	if err != nil || p.Login != "/v2/login" || p.Transactions != "/v2/p/{processId}/tx" || p.Insights != DefaultPaths().Insights {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"nope=/x", "login", "login=x", "process=/p", "test_consent=/p/{processId}"} {
		if _, err := ParsePaths([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Every Fimento category maps into the common taxonomy, as fino's
// isCommonCategory lists it (read from its source: the list is unexported).
func TestCategoriesAreCommon(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "fino", "categories.go"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	start := strings.Index(body, "func isCommonCategory")
	end := strings.Index(body[start:], "return true")
	if start < 0 || end < 0 {
		t.Fatal("isCommonCategory not found in fino/categories.go")
	}
	common := map[string]bool{}
	for _, q := range regexp.MustCompile(`"([a-z_]+)"`).FindAllStringSubmatch(body[start:start+end], -1) {
		common[q[1]] = true
	}
	if !common["other"] || !common["groceries"] {
		t.Fatalf("taxonomy read: %v", common)
	}
	for from, to := range categories {
		if !common[to] {
			t.Errorf("%s maps to %q, which is not a common category", from, to)
		}
	}
	if commonCategory("Income") != "income" || commonCategory("nope") != "other" {
		t.Error("case or fallback")
	}
}

func TestAccountType(t *testing.T) {
	for in, want := range map[string]string{"Transaction account": "checking", "Savings account": "savings", "Credit card": "credit_card",
		"Bolån": "loan", "ISK": "depot", "Investeringssparkonto": "depot", "": "other", "Lönekonto": "checking"} {
		if got := accountType(in); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
