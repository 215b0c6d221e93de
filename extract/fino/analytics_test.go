package fino

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
	"github.com/finsync/finsync/transform/transformtest"

	"github.com/finsync/finsync/extract/hostile"
)

// analyticsDocs are one document per analytics endpoint, shaped as the
// docs' field tables (or our assumptions) say, each with an unknown field,
// a missing optional field and an element of the wrong type.
var analyticsDocs = map[string]string{
	"person_income": `{"observedTimespan":{"from":"2025-11-01","to":"2026-02-23"},
		"salary":{"available":true,"average":2500.5,"monthlyOverview":[
			{"month":"2026-01","amount":2500.5,"count":1,"transactionIDs":["t1"],"bonus":"an unknown field"},
			{"month":"2026-02","amount":"abc"},{"month":"2026-13","amount":1}]},
		"childBenefit":{"available":true,"monthlyOverview":[{"month":"2026-01","amount":255}]},
		"pension":"not an object"}`,
	"person_spending": `{"creditCard":{"available":true,"median":-410.2,"monthlyOverview":[{"month":"2026-01","amount":-410.2,"count":1}]}}`,
	"person_risk": `{"gambling":{"available":true,"monthlyOverview":[{"month":"2026-01","amount":-35.5,"count":2,"transactionIDs":["g1","g2"]}]},
		"overdraftAmount":{"monthlyOverview":[{"month":"2026-01","days":2,"overdrafts":[{"date":"2026-01-30","amount":-120.4},{"date":"2026-01-31","amount":"x"}]}]},
		"backDebit":{"available":false,"monthlyOverview":[]}}`,
	"person_household_budget": `{"observedTimespan":{"from":"2025-11-01","to":"2026-02-23"},"income":{"salary":2500,"total":2755},
		"spending":{"rent":-900,"total":-1500.123456789},"balance":1255}`,
	"person_adult_check": `{"decision":"ADULT","indicators":[{"indicator":"HIGH_RENT","strength":"VERY_STRONG","transactionIDs":["r1"]},{"indicator":7}],
		"observedTimespan":{"since":"2025-02-23T00:00:00Z","until":"2026-02-23T10:00:00Z"}}`,
	"person_living_situation": `{"children":{"detected":true,"monthlyAmount":255},"property":{"detected":false},
		"housingRent":{"detected":true,"monthlyAmount":-900,"transactionIDs":["r1"]}}`,
	"company_cash_transactions": `{"overview":{"incomings":{"sum":1500,"count":2,"transactionIDs":["c1","c2"]},"outgoings":{"sum":-200,"count":1},
		"totalTransactionAmount":1300,"totalTransactionCount":3},"monthlyOverview":[{"month":"2026-01","incomings":{"sum":1500,"count":2}}],
		"observedTimespan":{"from":"2025-11-01","to":"2026-02-23"}}`,
	"company_liquidity": `{"accountLiquidity":[{"account":{"accountId":"acc-1","iban":"DE02120300000000202051","owner":"Max Mustermann"},
		"monthlyOverview":[{"month":"2026-01","endOfMonthBalance":7481.06,"minBalance":-20.5,"maxBalance":9000,"incomings":{"sum":100,"count":1}},
		{"month":"2026-02","endOfMonthBalance":"abc"}]},{"account":{"iban":"DE02"}}]}`,
	"company_foreign_payments": `{"overview":{"incomings":{"sum":300,"count":1}},"byState":[{"code":"AT","incomings":{"sum":300,"count":1,"transactionIDs":["f1"]}},{"code":5}]}`,
	"company_risk": `{"accountRisks":[{"account":{"accountId":"acc-1"},"monthlyOverview":[{"month":"2026-01","backDebit":{"count":1,"transactionIDs":["b1"]},
		"garnishment":{"count":0},"overdraftDays":3}]}]}`,
	"company_credits": `{"available":true,"current":-1200,"median":-1200,"average":-1150.5,"monthlyOverview":[{"month":"2026-01","amount":-1200,
		"recurringAmount":-1200,"nonRecurringAmount":0,"recurringTransactionIDs":["l1"]}],"contractSummary":[{}],
		"observedTimespan":{"from":"2025-11-01","to":"2026-02-23"}}`,
	"company_insurances":        `{"available":false,"monthlyOverview":[]}`,
	"company_investments":       `{"available":true,"monthlyOverview":[{"month":"2026-01","amount":-500}]}`,
	"company_internal_bookings": `{"available":true,"monthlyOverview":[{"month":"2026-01","amount":1e3}]}`,
	"company_staff": `{"salary":{"totalMonthly":12000,"totalMonthlyExpenses":10000,"totalMonthlyAdditionalWageCosts":2000},
		"employees":{"minNumberOfEmployees":3,"maxNumberOfEmployees":4},"sources":{"contracts":[],"transactionIDs":["p1"]}}`,
	"company_customer_supplier": `{"customers":{"partnerList":[{"paymentPartner":{"name":"Alpen Handel GmbH","iban":"DE021203"},
		"ranking":{"rank":1,"revenueRank":1,"revenueScore":60.5,"occurrenceRank":1,"occurrenceScore":50},"total":{"sum":9000,"count":3},
		"monthlyOverview":[{"month":"2026-01","sum":3000,"count":1}]}]},
		"suppliers":{"partnerList":[{"paymentPartner":{"name":"Erika Muster"},"total":{"sum":"lots"}}]}}`,
	"company_top_categories": `{"categories":[{"category":"revenue","paymentType":"earning","monthlyOverview":[{"month":"2026-01","amount":9000,
		"dailyOverview":[{"date":"2026-01-03","amount":9000,"transactionIDs":["t9"]}]}]}]}`,
	"cockpit_person": `{"cockpitId":"ck-1","type":"person","createdAt":"2026-02-23T00:00:00Z",
		"sections":{"householdBudget":{"income":{"salary":2500},"balance":1255},"adultCheck":{"decision":"ADULT"},"list":[{"month":"2026-01","amount":1},{"x":true}]}}`,
	"cockpit_company": `{"cockpitId":"ck-2","type":"company","sections":{"staff":{"employees":{"maxNumberOfEmployees":4}}}}`,
}

// modulesOf groups the module table by stream.
func modulesOf(t testing.TB) map[string][]Module {
	by := map[string][]Module{}
	for _, m := range Modules() {
		by[m.Stream] = append(by[m.Stream], m)
	}
	return by
}

// TestAnalyticsGolden transforms each endpoint's document and compares the
// insights rows, the month-level balances and the rejects with
// testdata/golden/analytics/<stream>.jsonl (-update rewrites them).
func TestAnalyticsGolden(t *testing.T) {
	for stream, mods := range modulesOf(t) {
		t.Run(stream, func(t *testing.T) {
			doc, ok := analyticsDocs[stream]
			if !ok {
				t.Fatalf("no golden document for %s", stream)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			ins, bal := NewInsightsBuilder(mem, testLineage()), NewBalancesBuilder(mem, testLineage())
			defer ins.Release()
			defer bal.Release()
			rejects := transformModules(ins, bal, extract.Subject{ID: "user-1", CorrelationID: "corr-1"}, mods, []byte(doc))
			var got bytes.Buffer
			for _, b := range []flusher{ins, bal} {
				rec := b.NewRecord()
				transformtest.PrintRecord(&got, rec)
				rec.Release()
			}
			for _, r := range rejects {
				got.WriteString("reject " + r.Table + " " + strconv.Quote(r.Key) + " " + strconv.Quote(r.Reason) + " " + strconv.Quote(string(r.Raw)) + "\n")
			}
			path := filepath.Join("testdata", "golden", "analytics", stream+".jsonl")
			transformtest.Golden(t, path, got.Bytes())
		})
	}
}

// TestAnalyticsBadPayloads: a wrong type rejects its element only, with its
// scrubbed raw and a reason; an unknown field stays in raw; a missing
// optional number is a NULL value.
func TestAnalyticsBadPayloads(t *testing.T) {
	mods := modulesOf(t)
	mem := memory.NewGoAllocator()
	run := func(stream string) (string, []extract.Reject) {
		ins, bal := NewInsightsBuilder(mem, testLineage()), NewBalancesBuilder(mem, testLineage())
		defer ins.Release()
		defer bal.Release()
		rejects := transformModules(ins, bal, extract.Subject{ID: "u"}, mods[stream], []byte(analyticsDocs[stream]))
		var out bytes.Buffer
		rec := ins.NewRecord()
		defer rec.Release()
		transformtest.PrintRecord(&out, rec)
		return out.String(), rejects
	}
	rows, rejects := run("person_income")
	reasons := ""
	for _, r := range rejects {
		reasons += r.Reason + "\n"
	}
	for _, want := range []string{"person-income-salary: not a month", `period "2026-13"`, "person-income-pension: not a person module"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("no reject %q in:\n%s", want, reasons)
		}
	}
	if !strings.Contains(rows, `"metric":"salary.amount","period":"2026-01","value":"2500.500000"`) || !strings.Contains(rows, "an unknown field") {
		t.Errorf("the good month or its unknown field is missing:\n%s", rows)
	}
	if !strings.Contains(rows, `"metric":"salary.median","period":"","value":null`) {
		t.Errorf("a missing median is not NULL:\n%s", rows)
	}
	rows, rejects = run("company_customer_supplier")
	if len(rejects) != 1 || strings.Contains(string(rejects[0].Raw), "Erika") || strings.Contains(rows, `Alpen Handel GmbH\"`) {
		t.Errorf("supplier with a bad total: rejects %+v; raw must not name the partner:\n%s", rejects, rows)
	}
	_, rejects = run("company_liquidity")
	if len(rejects) != 2 {
		t.Errorf("liquidity: want the bad balance's insight and account_balances rows... got %+v", rejects)
	}
}

// FuzzAnalytics feeds arbitrary documents to every endpoint's modules: rows
// or rejects with reasons, never a panic or a leak.
func FuzzAnalytics(f *testing.F) {
	for _, doc := range analyticsDocs {
		f.Add([]byte(doc))
	}
	for _, seed := range []string{`null`, `[]`, `{}`, `{"salary":[]}`, `{"sections":{"a":[[[[1]]]]}}`, `{"monthlyOverview":[1,"x",{"month":5}]}`} {
		f.Add([]byte(seed))
	}
	lin := transform.Lineage{Provider: "fino", Tenant: "t", RunID: "r", ExtractedAt: time.Unix(1769036400, 0).UTC(), Version: 1}
	mods := modulesOf(f)
	for _, h := range hostile.Payloads() {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		ins, bal := NewInsightsBuilder(mem, lin), NewBalancesBuilder(mem, lin)
		defer ins.Release()
		defer bal.Release()
		for _, ms := range mods {
			for _, r := range transformModules(ins, bal, extract.Subject{ID: "u"}, ms, raw) {
				if r.Reason == "" || r.Table == "" {
					t.Fatalf("reject without reason or table: %+v", r)
				}
			}
		}
		for _, b := range []flusher{ins, bal} {
			b.NewRecord().Release()
		}
	})
}
