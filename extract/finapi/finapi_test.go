package finapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/transform"
	"github.com/finsync/finsync/transform/transformtest"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/hostile"
)

func testLineage() transform.Lineage {
	return transform.Lineage{Provider: provider, Tenant: "mandator-a", RunID: "run-1",
		ExtractedAt: time.Date(2026, 3, 25, 6, 0, 0, 0, time.UTC), Version: 42}
}

// goldenPages are result pages: the docs' example first, then one per
// segment type in the shape of assumptions 8–12.
var goldenPages = []struct {
	seg  Segment
	page string
}{
	{HighBalance, `{"durationInMonth":6,"creationDate":"2026-03-25","users":[{"userId":"756cba12-330c-4eef-8124-8cef876a4493",
		"accounts":[{"accountId":"4e760145-2e65-4242-ac33-488943528c93","amount":1426.84}]}],"totalElements":1,"totalPages":1}`},
	{LowBalance, `{"durationInMonth":2,"creationDate":"2026-03-25","users":[{"userId":"u1","accounts":[{"accountId":"a1","amount":-12.5,
		"monthlyMinimum":[{"month":"2026-01","amount":-12.50},{"month":"2026-02","amount":-3.00}]}]}],"totalElements":1,"totalPages":1}`},
	{IncomeSpending, `{"durationInMonth":1,"creationDate":"2026-03-25","users":[{"userId":"u1","accounts":[{"accountId":"a1","amount":310.2,
		"incomingCount":2,"outgoingCount":17,"incomingAmount":3200.00,"outgoingAmount":-2889.80}]}],"totalElements":1,"totalPages":1}`},
	{InsuranceSpending, `{"durationInMonth":12,"creationDate":"2026-03-25","users":[{"userId":"u2","accounts":[{"accountId":"a9","amount":-480,
		"insurances":[{"provider":"Allianz","insuranceType":"liability","amount":-40.00,"frequency":"MONTHLY"}]}]},
		{"userId":"u3","accounts":[]}],"totalElements":2,"totalPages":1}`},
	{FinancialBreakdown, `{"durationInMonth":2,"creationDate":"2026-03-25","users":[{"userId":"u1","accounts":[{"accountId":"a1","amount":5400,
		"breakdowns":[{"labelGroup":"SALARY","total":5400.00,"average":2700.00,"min":2600.00,"max":2800.00,"median":2700.00,"stdDev":100.00,
		"monthly":[{"month":"2026-01","amount":2600.00},{"month":"2026-02","amount":2800.00}]}],"unknownField":true}],
		"segmentVersion":"2"}],"totalElements":1,"totalPages":1}`},
}

func TestGolden(t *testing.T) {
	w := NewMembersWriter(memory.NewCheckedAllocator(memory.DefaultAllocator), testLineage())
	defer w.Release()
	for i, g := range goldenPages {
		var pg ResultPage
		if err := json.Unmarshal([]byte(g.page), &pg); err != nil {
			t.Fatal(err)
		}
		if rejects := w.AddPage(g.seg, "job-"+string(rune('1'+i)), `{"threshold":5000}`, pg); len(rejects) != 0 {
			t.Fatalf("%s: rejects %+v", g.seg.Type, rejects)
		}
	}
	rec := w.Record()
	defer rec.Release()
	if !rec.Schema().Equal(transform.SegmentMembers.Schema) {
		t.Fatalf("schema %s", rec.Schema())
	}
	var got bytes.Buffer
	transformtest.PrintRecord(&got, rec)
	transformtest.Golden(t, filepath.Join("testdata", "golden", "segment_members.jsonl"), got.Bytes())
}

func TestBadUsersAreRejectedAlone(t *testing.T) {
	page := `{"creationDate":"2026-03-25","users":[
		{"userId":"ok","accounts":[{"accountId":"a","amount":1}]},
		{"accounts":[{"accountId":"a","amount":1}]},
		{"userId":"wrong-type","accounts":"unavailable"},
		{"userId":"too-precise","accounts":[{"accountId":"a","amount":1.123456}]},
		{"userId":"no-account-id","accounts":[{"amount":1}]},
		{"userId":"count-as-text","accounts":[{"accountId":"a","incomingCount":"3"}]}]}`
	var pg ResultPage
	if err := json.Unmarshal([]byte(page), &pg); err != nil {
		t.Fatal(err)
	}
	w := NewMembersWriter(memory.NewCheckedAllocator(memory.DefaultAllocator), testLineage())
	defer w.Release()
	rejects := w.AddPage(IncomeSpending, "job", "{}", pg)
	want := []string{"user without userId", "does not match the result shape", "at most 4 places", "without accountId", "does not match the result shape"}
	if len(rejects) != len(want) || w.Len() != 1 {
		t.Fatalf("%d rows, rejects %+v", w.Len(), rejects)
	}
	for i, r := range rejects {
		if !strings.Contains(r.Reason, want[i]) || len(r.Raw) == 0 || r.Table != "segment_members" {
			t.Errorf("reject %d: %+v, want reason with %q", i, r, want[i])
		}
	}
	pg.CreationDate = "25.03.2026"
	if rejects := w.AddPage(IncomeSpending, "job", "{}", pg); len(rejects) != len(pg.Users) || !strings.Contains(rejects[0].Reason, "creationDate") {
		t.Errorf("a page without a usable creationDate: %+v", rejects)
	}
}

// FuzzResultPage: any page either fails to decode or turns every user
// into rows or rejects, without panicking; read as a page is read (users
// walked, the other members decoded: resultPage), it holds what decoding
// it whole would.
func FuzzResultPage(f *testing.F) {
	for _, g := range goldenPages {
		f.Add(g.page)
	}
	f.Add(`{"creationDate":"2026-03-25","users":[{"userId":"x","accounts":[{"accountId":"a","amount":1e400}]}]}`)
	for _, h := range hostile.Payloads() {
		f.Add(string(h))
	}
	f.Fuzz(func(t *testing.T, page string) {
		var whole extract.WholePage
		var err error
		whole.Scalars, err = extract.Walk(strings.NewReader(page), []string{"users"}, extract.DefaultLimits(),
			func(raw json.RawMessage) error { whole.Elements = append(whole.Elements, raw); return nil },
			func(t extract.TooLarge) error { whole.TooLarge = append(whole.TooLarge, t); return nil })
		if err != nil && !errors.Is(err, extract.ErrPathNotFound) {
			return
		}
		pg, err := resultPage(whole)
		var plain ResultPage
		folded := map[string]bool{} // keys alike but for case: encoding/json keeps the last in the document
		plainKeys := true
		for k := range whole.Scalars {
			plainKeys = plainKeys && !folded[strings.ToLower(k)] && isASCII(k)
			folded[strings.ToLower(k)] = true
		}
		if perr := json.Unmarshal([]byte(page), &plain); perr == nil && err == nil && len(whole.TooLarge) == 0 && plainKeys {
			if pg.CreationDate != plain.CreationDate || pg.TotalPages != plain.TotalPages || pg.TotalElements != plain.TotalElements ||
				len(pg.Users) != len(plain.Users) || (pg.DurationInMonth == nil) != (plain.DurationInMonth == nil) {
				t.Fatalf("read as a page %+v, decoded whole %+v", pg, plain)
			}
		}
		if err != nil {
			return
		}
		mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
		w := NewMembersWriter(mem, testLineage())
		rejects := w.AddPage(FinancialBreakdown, "job", "{}", pg)
		if len(pg.Users) > 0 && w.Len() == 0 && len(rejects) == 0 {
			t.Fatalf("%d users vanished", len(pg.Users))
		}
		rec := w.Record()
		rec.Release()
		w.Release()
		mem.AssertSize(t, 0)
	})
}

// A result's creationDate may be a day from the job's creation (time
// zones), not more, and its rows must not be expired already: expires_on
// (creationDate + 14 days) is still current on its own day.
func TestSegmentResultDates(t *testing.T) {
	job := time.Date(2026, 3, 10, 23, 30, 0, 0, time.UTC)
	tests := []struct {
		creationDate string
		now          time.Time
		want         string // in the error; "" for none
	}{
		{"2026-03-10", job, ""},
		{"2026-03-11", job, ""}, // finAPI's day began already
		{"2026-03-09", job, ""},
		{"2026-03-12", job, "more than a day apart"},
		{"2026-03-08", job, "more than a day apart"},
		{"2026-02-10", job, "expired on 2026-02-24, before today 2026-03-10"},
		{"2026-03-10", job.AddDate(0, 0, 14), ""}, // expires today: still current
		{"2026-03-09", job.AddDate(0, 0, 14), "expired on 2026-03-23, before today 2026-03-24"},
		{"10.03.2026", job, ""}, // AddPage rejects its users
	}
	for _, tc := range tests {
		err := checkDate(tc.creationDate, job, tc.now)
		var inc *extract.Inconsistent
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s on %s: %v", tc.creationDate, tc.now.Format(time.DateOnly), err)
		case tc.want == "":
		case err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &inc) || inc.Check != "result_date" || extract.IsRetryable(err):
			t.Errorf("%s on %s: %v, want a result_date inconsistency with %q", tc.creationDate, tc.now.Format(time.DateOnly), err, tc.want)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *Params)
		want   []string
	}{
		{"defaults", func(p *Params) {}, nil},
		{"breakdown over 12 months", func(p *Params) { p.FinancialBreakdown.Months = 13 }, []string{"financial_breakdown.months: months 13 is outside 1..12"}},
		{"unknown label group", func(p *Params) { p.FinancialBreakdown.LabelGroups = []string{"SALARY", "Salary"} },
			[]string{`financial_breakdown.label_groups: unknown label group "Salary"`}},
		{"no label group", func(p *Params) { p.FinancialBreakdown.LabelGroups = nil }, []string{"at least one label group"}},
		{"negative months", func(p *Params) { p.LowBalance.Months = -1 }, []string{"low_balance.months: months -1 is outside 1..24"}},
		{"everything at once", func(p *Params) {
			p.HighBalance.Threshold, p.HighBalance.AccountType, p.IncomeSpending.Months = "5k", "Checking", 0
		}, []string{`unknown account type "Checking"`, `threshold "5k" is not a number`, "income_spending.months: months 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			tc.change(&p)
			errs := p.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %v, want %d", errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q, want %q", errs[i], w)
				}
			}
		})
	}
}

func TestRequestBodies(t *testing.T) {
	p := DefaultParams()
	today := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		seg  Segment
		want string
	}{
		{HighBalance, `{"callbackURL":"https://cb","accountType":"checking","threshold":5000}`},
		{LowBalance, `{"callbackURL":"https://cb","accountType":"checking","threshold":0,"numberOfMonths":3}`},
		{IncomeSpending, `{"callbackURL":"https://cb","dateFrom":"2026-02-01","dateTo":"2026-02-28"}`},
		{InsuranceSpending, `{"callbackURL":"https://cb"}`},
		{FinancialBreakdown, `{"callbackURL":"https://cb","numberOfMonths":12,"labelGroups":["SALARY","INVESTMENTS"]}`},
	}
	for _, tc := range tests {
		b, _ := json.Marshal(p.Request(tc.seg, today, "https://cb"))
		if string(b) != tc.want {
			t.Errorf("%s: %s, want %s", tc.seg.Type, b, tc.want)
		}
	}
}

func TestCallbackHandler(t *testing.T) {
	a := NewAPI(Config{BaseURL: "http://finapi.invalid"})
	var started []string
	// etl_state: j1 and j2 are active jobs of their streams for m, j4 is
	// done, j5 is active for another mandator; nothing else is known.
	state := map[string]string{"finapi.segments.low_balance m j1": extract.JobActive, "finapi.segments.high_balance m j2": extract.JobActive,
		"finapi.segments.high_balance m j4": extract.JobDone, "finapi.segments.high_balance other j5": extract.JobActive}
	lookups := 0
	jobs := func(_ context.Context, stream, tenant, id string) (string, error) {
		lookups++
		if id == "broken" {
			return "", errors.New("ClickHouse unreachable")
		}
		return state[stream+" "+tenant+" "+id], nil
	}
	h := CallbackHandler(a, extract.Hooks{JobStatus: jobs, Trigger: func(_ context.Context, stream, tenant string) { started = append(started, stream+" "+tenant) }})
	post := func(query, body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cb?"+query, strings.NewReader(body)))
		return rec.Code
	}
	tests := []struct {
		name, query, body string
		code              int
	}{
		{"no tenant", "", `{"jobId":"j1","segmentType":"highBalance"}`, 400},
		{"unknown type", "tenant=m", `{"jobId":"j1","segmentType":"bigSpender"}`, 400},
		{"not json", "tenant=m", `jobId=j1`, 400},
		{"no job id", "tenant=m&segmentType=lowBalance", `{}`, 400},
		{"type from the query", "tenant=m&segmentType=lowBalance", `{"jobId":"j1"}`, 204},
		{"full body", "tenant=m", `{"jobId":"j2","segmentType":"highBalance"}`, 204},
		{"unknown job", "tenant=m", `{"jobId":"forged","segmentType":"highBalance"}`, 204},
		{"done job", "tenant=m", `{"jobId":"j4","segmentType":"highBalance"}`, 204},
		{"active, but another mandator's", "tenant=m", `{"jobId":"j5","segmentType":"highBalance"}`, 204},
		{"active, but another segment's", "tenant=m", `{"jobId":"j1","segmentType":"highBalance"}`, 204},
		{"etl_state unreadable", "tenant=m", `{"jobId":"broken","segmentType":"highBalance"}`, 503},
	}
	for _, tc := range tests {
		if code := post(tc.query, tc.body); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
	}
	// Runs start for the active jobs only.
	if strings.Join(started, ",") != "finapi.segments.low_balance m,finapi.segments.high_balance m" {
		t.Errorf("runs started: %v", started)
	}
	// A job being polled is woken instead of starting a run, without a lookup.
	wake, before := a.wakes.Wait("j3"), lookups
	if post("tenant=m", `{"jobId":"j3","segmentType":"highBalance"}`) != 204 || len(started) != 2 || lookups != before {
		t.Fatalf("started %v, %d lookups", started, lookups-before)
	}
	select {
	case <-wake:
	default:
		t.Error("the polling run was not woken")
	}
	// Without a way to check etl_state nothing starts.
	started = nil
	h = CallbackHandler(a, extract.Hooks{Trigger: func(_ context.Context, stream, tenant string) { started = append(started, stream) }})
	if post("tenant=m", `{"jobId":"j2","segmentType":"highBalance"}`) != 204 || len(started) != 0 {
		t.Errorf("unchecked callback started %v", started)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
