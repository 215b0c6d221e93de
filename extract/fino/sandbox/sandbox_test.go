package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
)

func TestMonthCountMatchesGeneration(t *testing.T) {
	for _, opts := range []Options{
		{Seed: 1, Months: 14, AccountsPerUser: 1},
		{Seed: 2, Months: 30, AccountsPerUser: 5},
		{Seed: 3, Months: 6, TransactionsPerUser: 2000},
		{Seed: 4, Months: 3, TransactionsPerUser: 10, Today: time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)},
	} {
		d := newDataset(withDefaults(opts))
		for u := range 5 {
			p := d.profile("t", user{UserID: strconv.Itoa(u)})
			for m := range d.months {
				if got, want := d.monthCount(p, m), len(d.month(p, m)); got != want {
					t.Fatalf("%+v user %d month %d: counted %d, generated %d", opts, u, m, got, want)
				}
			}
		}
	}
}

// GrowEvery books one transaction per user per period of the clock on the
// last day, counted as generated, and never changes those booked before.
func TestGrowEveryAddsTransactions(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Seed: 1, Months: 2, GrowEvery: time.Minute, Now: func() time.Time { return now }})
	user := s.Users("sandbox-client")[0]
	u, _ := s.lookup("sandbox-client", user)
	p := s.data.profile("sandbox-client", u)
	last := s.data.months - 1
	before := s.data.month(p, last)
	now = now.Add(150 * time.Second)
	after := s.data.month(p, last)
	if len(after) != len(before)+2 || s.data.monthCount(p, last) != len(after) {
		t.Fatalf("after 2.5 periods: %d transactions, %d before, counted %d", len(after), len(before), s.data.monthCount(p, last))
	}
	ids := map[string]bool{}
	for _, tx := range after {
		ids[tx.id] = true
	}
	for _, tx := range before {
		if !ids[tx.id] {
			t.Errorf("transaction %s of user %s is gone", tx.id, user)
		}
	}
	if got := s.data.month(p, last); got[len(got)-1].id != after[len(after)-1].id {
		t.Errorf("the last one changed: %s, then %s", after[len(after)-1].id, got[len(got)-1].id)
	}
}

// The sandbox encodes categorizations as json.Marshal does, with Unix
// seconds or local timestamps, strings json.Marshal escapes included.
func TestCategorizationsEncodeAsJSONMarshal(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, zone := range []*time.Location{nil, berlin} {
		s := New(Options{UsersPerTenant: 3, CompaniesPerTenant: 2, Months: 4, LifeEvents: true, LocalTimestamps: zone})
		n += encodeAsJSONMarshal(t, s)
	}
	// Strings json.Marshal escapes go through it.
	for _, odd := range []string{`a"b`, `<tag>&`, "tab\t", "Müller", "line\u2028sep", "bad\xffutf8", ""} {
		c := categorization{TransactionID: odd, Tags: []string{odd}, Transaction: &transaction{Purpose: odd, PaymentPartner: &PaymentPartner{Name: odd},
			BookingDate: timestamp{Text: odd}}}
		if got, want := appendCategorization(nil, &c), sandboxkit.MustJSON(c); string(got) != string(want) {
			t.Fatalf("%q: encoded %s, json.Marshal %s", odd, got, want)
		}
	}
	if n < 1000 {
		t.Fatalf("only %d categorizations compared", n)
	}
}

func encodeAsJSONMarshal(t *testing.T, s *Server) int {
	n := 0
	for _, u := range s.Users(s.opts.ClientID) {
		user, _ := s.lookup(s.opts.ClientID, u)
		p := s.data.profile(s.opts.ClientID, user)
		txns, _ := s.data.txnRange(p, time.Time{}, time.Time{}, 0, 1<<30)
		for i := range txns {
			for _, withTx := range []bool{true, false} {
				for _, locale := range []string{"", "de", "en"} {
					c := p.categorization(&txns[i], withTx, locale)
					raw := appendCategorization(nil, &c)
					if want := sandboxkit.MustJSON(c); string(raw) != string(want) {
						t.Fatalf("encoded\n %s\njson.Marshal\n %s", raw, want)
					}
					n++
				}
			}
		}
	}
	return n
}

// BenchmarkCategorizationPage serves 1000-item pages of a user with 100,000
// transactions: the cost a large extraction benchmark pays per page.
func BenchmarkCategorizationPage(b *testing.B) {
	s := New(Options{Months: 24, UsersPerTenant: 1, TransactionsPerUser: 100_000})
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.PostForm(srv.URL+pathAuth, url.Values{
		"client_id": {"sandbox-client"}, "client_secret": {"sandbox-secret"}, "grant_type": {"client_credentials"},
	})
	if err != nil {
		b.Fatal(err)
	}
	var tok tokenBody
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	path := pathUsers + "/" + s.Users("sandbox-client")[0] + suffixCategorization
	b.ReportAllocs()
	page := 0
	for b.Loop() {
		page = page%100 + 1
		req := httptest.NewRequest(http.MethodGet, path+"?size=1000&includeTransaction=true&page="+strconv.Itoa(page), nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/item")
}
