package fino

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
)

// startSandbox serves a sandbox until the test ends.
func startSandbox(t *testing.T, opts finosb.Options) (*finosb.Server, *httptest.Server) {
	t.Helper()
	s := finosb.New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return s, srv
}

// testClient speaks to a sandbox as the extractor would, with the default
// credentials unless told otherwise.
type testClient struct {
	t      *testing.T
	base   string
	tenant string // TenantID header; "" sends none
	token  string
}

func newClient(t *testing.T, srv *httptest.Server, tenant string) *testClient {
	t.Helper()
	c := &testClient{t: t, base: srv.URL, tenant: tenant}
	c.authenticate()
	return c
}

func authenticate(base, id, secret string) (*http.Response, []byte, error) {
	resp, err := http.PostForm(base+pathAuth, url.Values{
		"client_id": {id}, "client_secret": {secret}, "grant_type": {"client_credentials"},
	})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func (c *testClient) authenticate() {
	c.t.Helper()
	for range 50 { // auth itself meets the injected faults
		resp, body, err := authenticate(c.base, "sandbox-client", "sandbox-secret")
		var tok Token
		if err == nil && resp.StatusCode == http.StatusOK && json.Unmarshal(body, &tok) == nil {
			c.token = tok.AccessToken
			return
		}
	}
	c.t.Fatal("no token after 50 attempts")
}

// do sends one request and reads the whole body (err: the body was cut).
func (c *testClient) do(method, path string, query url.Values, header http.Header, body io.Reader) (*http.Response, []byte, error) {
	c.t.Helper()
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.tenant != "" {
		req.Header.Set(headerTenant, c.tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// get sends one GET that must arrive whole.
func (c *testClient) get(path string, query url.Values) (int, []byte) {
	c.t.Helper()
	resp, body, err := c.do(http.MethodGet, path, query, nil, nil)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// fetch GETs until a complete 200 arrives whose body decode accepts,
// handling every injected fault the way the extractor must.
func (c *testClient) fetch(path string, query url.Values, decode func([]byte) error) {
	c.t.Helper()
	for range 100 {
		resp, body, err := c.do(http.MethodGet, path, query, nil, nil)
		switch {
		case err != nil: // truncated
		case resp.StatusCode == http.StatusUnauthorized:
			c.authenticate()
		case resp.StatusCode == http.StatusOK:
			if decode(body) == nil {
				return
			}
		case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
			c.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	c.t.Fatalf("GET %s: no good answer after 100 attempts", path)
}

func userPath(id, suffix string) string { return pathUsers + "/" + id + suffix }

// served is what paging through a user's categorization returned.
type served struct {
	items   []Categorization // in served order, duplicates dropped
	rejects []Rejected
	total   int
}

func (c *testClient) categorizations(userID string, query url.Values) served {
	c.t.Helper()
	var out served
	seen := map[string]bool{}
	for page := 1; ; page++ {
		q := url.Values{paramPage: {strconv.Itoa(page)}, paramIncludeTransaction: {"true"}}
		for k, v := range query {
			q[k] = v
		}
		var p CategorizationPage
		var rejects []Rejected
		c.fetch(userPath(userID, suffixCategorization), q, func(body []byte) (err error) {
			p, rejects, err = DecodeCategorizationPage(body)
			return err
		})
		for _, item := range p.Categorizations {
			if !seen[item.TransactionID] {
				seen[item.TransactionID] = true
				out.items = append(out.items, item)
			}
		}
		for _, r := range rejects { // a duplicated malformed record is rejected twice
			if !slices.ContainsFunc(out.rejects, func(o Rejected) bool { return bytes.Equal(o.Raw, r.Raw) }) {
				out.rejects = append(out.rejects, r)
			}
		}
		out.total = p.TotalElements
		if page >= p.TotalPages {
			return out
		}
	}
}

// cents parses an exact decimal with at most two places.
func cents(t *testing.T, s string) int64 {
	t.Helper()
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if len(frac) > 2 {
		t.Fatalf("amount %q has more than two decimals", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("amount %q: %v %v", s, err1, err2)
	}
	if strings.HasPrefix(s, "-") {
		return -(w*100 + f)
	}
	return w*100 + f
}

// day is the booking day a timestamp names (assumption 22).
func day(ts Timestamp) string {
	d, _ := ts.day()
	return time.Unix(int64(d)*secondsPerDay, 0).UTC().Format(time.DateOnly)
}

func TestAuth(t *testing.T) {
	_, srv := startSandbox(t, finosb.Options{})
	tests := []struct {
		name, id, secret, grant string
		status                  int
	}{
		{"ok", "sandbox-client", "sandbox-secret", "client_credentials", http.StatusOK},
		{"bad secret", "sandbox-client", "nope", "client_credentials", http.StatusUnauthorized},
		{"bad client", "someone", "sandbox-secret", "client_credentials", http.StatusUnauthorized},
		{"bad grant", "sandbox-client", "sandbox-secret", "password", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.PostForm(srv.URL+pathAuth, url.Values{"client_id": {tc.id}, "client_secret": {tc.secret}, "grant_type": {tc.grant}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				var e APIError
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Type == "" || e.Message == "" {
					t.Fatalf("error body %+v, %v", e, err)
				}
				return
			}
			var tok Token
			if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.ExpiresIn != 300 || tok.TokenType != "Bearer" || tok.Scope == "" || tok.SessionState == "" {
				t.Fatalf("token %+v", tok)
			}
		})
	}

	s, srv := startSandbox(t, finosb.Options{})
	user := userPath(s.Users("sandbox-client")[0], suffixContracts)
	for name, auth := range map[string]string{"no header": "", "unknown token": "Bearer abc", "basic": "Basic eDp5"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+user, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e APIError
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || e.Type != "unauthorized" {
			t.Errorf("%s: %d %+v, want 401 unauthorized", name, resp.StatusCode, e)
		}
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func TestTokenExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 2, 23, 12, 0, 0, 0, time.UTC)}
	s, srv := startSandbox(t, finosb.Options{TokenTTL: 60 * time.Second, Now: clock.Now})
	c := newClient(t, srv, "")
	path := userPath(s.Users("sandbox-client")[0], suffixAccountDetect)

	if status, body := c.get(path, nil); status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", status, body)
	}
	clock.Advance(59 * time.Second)
	if status, _ := c.get(path, nil); status != http.StatusOK {
		t.Fatalf("token 59 s old: %d", status)
	}
	clock.Advance(time.Second)
	if status, _ := c.get(path, nil); status != http.StatusUnauthorized {
		t.Fatalf("token 60 s old: %d, want 401", status)
	}
	c.authenticate()
	if status, _ := c.get(path, nil); status != http.StatusOK {
		t.Fatalf("new token: %d", status)
	}
}

func TestTenants(t *testing.T) {
	s, srv := startSandbox(t, finosb.Options{ClientID: "acme", ClientSecret: "pw", Tenants: []string{"acme", "acme-app"}})
	defaultUser := s.Users("acme")[0]
	appUser := s.Users("acme-app")[0]

	tests := []struct {
		name, tenant, user string
		status             int
	}{
		{"default tenant without header", "", defaultUser, http.StatusOK},
		{"default tenant named", "acme", defaultUser, http.StatusOK},
		{"app user in its tenant", "acme-app", appUser, http.StatusOK},
		{"app user without header", "", appUser, http.StatusNotFound},
		{"app user in default tenant", "acme", appUser, http.StatusNotFound},
		{"default user in app tenant", "acme-app", defaultUser, http.StatusNotFound},
		{"new tenant has nobody", "acme-new", defaultUser, http.StatusNotFound},
		{"foreign prefix", "other-app", defaultUser, http.StatusForbidden},
		{"prefix without hyphen", "acmeapp", defaultUser, http.StatusForbidden},
		{"bare hyphen", "acme-", defaultUser, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &testClient{t: t, base: srv.URL, tenant: tc.tenant}
			resp, body, err := authenticate(srv.URL, "acme", "pw")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("auth: %v %s", err, body)
			}
			var tok Token
			json.Unmarshal(body, &tok)
			c.token = tok.AccessToken
			status, body := c.get(userPath(tc.user, ""), nil)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.status == http.StatusForbidden {
				var e APIError
				if json.Unmarshal(body, &e); e.Type != "forbidden" {
					t.Fatalf("error %+v, want type forbidden", e)
				}
			}
		})
	}
}

func TestCreateAndDeleteUser(t *testing.T) {
	s, srv := startSandbox(t, finosb.Options{})
	c := newClient(t, srv, "sandbox-client-new")

	resp, body, err := c.do(http.MethodPost, pathUsers, nil, nil, strings.NewReader(`{"type":"company","automaticAnalysis":"suspended","customUserID":"crm-7"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %v %d %s", err, resp.StatusCode, body)
	}
	var u User
	json.Unmarshal(body, &u)
	if u.UserID == "" || u.Type != "company" || u.CustomUserID != "crm-7" {
		t.Fatalf("created %+v", u)
	}
	if got := s.Users("sandbox-client-new"); !slices.Equal(got, []string{u.UserID}) {
		t.Fatalf("Users = %v", got)
	}
	if status, _ := c.get(userPath(u.UserID, suffixContracts), nil); status != http.StatusOK {
		t.Fatalf("contracts of new user: %d", status)
	}
	other := newClient(t, srv, "")
	if status, _ := other.get(userPath(u.UserID, ""), nil); status != http.StatusNotFound {
		t.Fatalf("new user seen in default tenant: %d", status)
	}
	if resp, _, _ := c.do(http.MethodPost, pathUsers, nil, nil, strings.NewReader(`{"type":"robot"}`)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad type: %d", resp.StatusCode)
	}

	if resp, _, _ := c.do(http.MethodDelete, userPath(u.UserID, ""), nil, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if status, _ := c.get(userPath(u.UserID, ""), nil); status != http.StatusNotFound {
		t.Fatalf("deleted user: %d", status)
	}
	if got := s.Users("sandbox-client-new"); len(got) != 0 {
		t.Fatalf("Users after delete = %v", got)
	}
}

func TestPagingCoversLedger(t *testing.T) {
	tests := []struct {
		name string
		opts finosb.Options
		size int
	}{
		{"natural", finosb.Options{Seed: 42, Months: 14, UsersPerTenant: 3, AccountsPerUser: 4}, 37},
		{"one account", finosb.Options{Seed: 5, Months: 3, UsersPerTenant: 2, AccountsPerUser: 1}, 1000},
		{"benchmark size", finosb.Options{Seed: 9, Months: 6, UsersPerTenant: 1, TransactionsPerUser: 3000}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := startSandbox(t, tc.opts)
			c := newClient(t, srv, "")
			for _, id := range s.Users("sandbox-client") {
				ledger, err := s.Ledger("sandbox-client", id)
				if err != nil {
					t.Fatal(err)
				}
				got := c.categorizations(id, url.Values{paramSize: {strconv.Itoa(tc.size)}})
				if len(got.items) != ledger.Transactions || got.total != ledger.Transactions {
					t.Fatalf("served %d (total %d), ledger %d", len(got.items), got.total, ledger.Transactions)
				}
				if tc.opts.TransactionsPerUser > 0 && ledger.Transactions != tc.opts.TransactionsPerUser {
					t.Fatalf("ledger has %d transactions, asked for %d", ledger.Transactions, tc.opts.TransactionsPerUser)
				}
				var sum int64
				prev := ""
				for _, item := range got.items {
					tx := item.Transaction
					if tx == nil || tx.TransactionID != item.TransactionID || tx.Currency != "EUR" {
						t.Fatalf("item %+v", item)
					}
					sum += cents(t, tx.Amount.String())
					if d := day(tx.BookingDate); d < prev {
						t.Fatalf("booking date %s after %s: order not stable", d, prev)
					} else {
						prev = d
					}
				}
				if want := cents(t, ledger.AmountSum); sum != want {
					t.Fatalf("sum %d, ledger %d", sum, want)
				}
			}
		})
	}
}

func TestDateFilter(t *testing.T) {
	s, srv := startSandbox(t, finosb.Options{Seed: 3, Months: 5})
	c := newClient(t, srv, "")
	id := s.Users("sandbox-client")[1]
	ledger, _ := s.Ledger("sandbox-client", id)
	for _, w := range [][2]string{{"2025-10-15", "2025-12-03"}, {"2025-11-01", "2025-11-30"}, {"2026-02-23", "2026-02-23"}, {"2020-01-01", "2025-10-02"}} {
		got := c.categorizations(id, url.Values{paramFrom: {w[0]}, paramTo: {w[1]}, paramSize: {"17"}})
		want := 0
		for d, dt := range ledger.Days {
			if d >= w[0] && d <= w[1] {
				want += dt.Transactions
			}
		}
		if len(got.items) != want {
			t.Errorf("window %v: served %d, ledger %d", w, len(got.items), want)
		}
		for _, item := range got.items {
			if d := day(item.Transaction.BookingDate); d < w[0] || d > w[1] {
				t.Errorf("window %v: served a transaction of %s", w, d)
			}
		}
	}
	if status, _ := c.get(userPath(id, suffixCategorization), url.Values{paramFrom: {"2026-01-02"}, paramTo: {"2026-01-01"}}); status != http.StatusBadRequest {
		t.Errorf("from after to: %d, want 400", status)
	}
	if status, _ := c.get(userPath(id, suffixCategorization), url.Values{paramSize: {"1001"}}); status != http.StatusBadRequest {
		t.Errorf("size 1001: %d, want 400", status)
	}
}

func TestBalancesFollowTransactions(t *testing.T) {
	opts := finosb.Options{Seed: 11, Months: 26, UsersPerTenant: 8}
	s, srv := startSandbox(t, opts)
	c := newClient(t, srv, "")
	overdrawn := 0
	for _, id := range s.Users("sandbox-client") {
		booked := map[string]int64{} // accountId/date → sum
		for _, item := range c.categorizations(id, url.Values{paramSize: {"1000"}}).items {
			booked[item.AccountID+"/"+day(item.Transaction.BookingDate)] += cents(t, item.Transaction.Amount.String())
		}
		var history AccountHistory
		c.fetch(userPath(id, suffixAccountHistory), nil, func(b []byte) error { return json.Unmarshal(b, &history) })
		var detection AccountDetection
		c.fetch(userPath(id, suffixAccountDetect), nil, func(b []byte) error { return json.Unmarshal(b, &detection) })
		current := map[string]string{}
		for _, a := range slices.Concat(detection.AccountsOverview.AccountsView, detection.AccountsOverview.CreditsView) {
			current[a.AccountID] = a.Balance.String()
		}
		ledger, _ := s.Ledger("sandbox-client", id)

		if len(history.Histories) != 3 {
			t.Fatalf("%d histories, want one per account", len(history.Histories))
		}
		for _, h := range history.Histories {
			days := h.DailyBalances
			if len(days) != finosb.HistoryDays || days[0].Date != "2026-02-23" {
				t.Fatalf("history of %d days starting %s, want %d newest first from 2026-02-23", len(days), days[0].Date, finosb.HistoryDays)
			}
			if days[0].Balance.String() != current[h.Account.AccountID] {
				t.Fatalf("today's balance %s, account detection says %s", days[0].Balance, current[h.Account.AccountID])
			}
			for i, b := range days {
				if want := ledger.Balances[h.Account.AccountID][b.Date]; cents(t, want) != cents(t, b.Balance.String()) {
					t.Fatalf("%s: served %s, ledger %s", b.Date, b.Balance, want)
				}
				if cents(t, b.Balance.String()) < 0 && h.Account.AccountID == detection.AccountsOverview.AccountsView[0].AccountID {
					overdrawn++
				}
				if i == len(days)-1 {
					break
				}
				older := days[i+1]
				d, _ := time.Parse(time.DateOnly, b.Date)
				if older.Date != d.AddDate(0, 0, -1).Format(time.DateOnly) {
					t.Fatalf("gap between %s and %s", older.Date, b.Date)
				}
				if diff := cents(t, b.Balance.String()) - cents(t, older.Balance.String()); diff != booked[h.Account.AccountID+"/"+b.Date] {
					t.Fatalf("%s %s: balance moved by %d, transactions booked %d", h.Account.AccountID, b.Date, diff, booked[h.Account.AccountID+"/"+b.Date])
				}
			}
		}
	}
	if overdrawn == 0 {
		t.Error("no giro account ever went below zero; the data should include overdrafts")
	}
}

func TestContractsReferToTransactions(t *testing.T) {
	s, srv := startSandbox(t, finosb.Options{Seed: 8, Months: 26, UsersPerTenant: 4})
	c := newClient(t, srv, "")
	months := map[string]int{"MONTHLY": 1, "QUARTERLY": 3, "HALF_YEARLY": 6, "YEARLY": 12}
	days := map[string]int{"MONTHLY": 30, "QUARTERLY": 90, "HALF_YEARLY": 180, "YEARLY": 365}
	seen := map[string]int{}
	for _, id := range s.Users("sandbox-client") {
		booked := map[string]*Transaction{}
		for _, item := range c.categorizations(id, url.Values{paramSize: {"1000"}}).items {
			booked[item.TransactionID] = item.Transaction
		}
		var contracts []Contract
		c.fetch(userPath(id, suffixContracts), nil, func(b []byte) (err error) {
			contracts, _, err = DecodeContracts(b)
			return err
		})
		ledger, _ := s.Ledger("sandbox-client", id)
		if len(contracts) != len(ledger.Contracts) || len(contracts) == 0 {
			t.Fatalf("served %d contracts, ledger %d", len(contracts), len(ledger.Contracts))
		}
		for i, ct := range contracts {
			seen[ct.Interval]++
			if ct.ContractID != ledger.Contracts[i].ContractID || ct.Duration != days[ct.Interval] || len(ct.NextBookingRange) != 2 {
				t.Fatalf("contract %+v", ct)
			}
			var last time.Time
			for j, ref := range ct.Transactions {
				tx := booked[ref.TransactionID]
				if tx == nil {
					t.Fatalf("contract %s refers to unknown transaction %s", ct.ContractID, ref.TransactionID)
				}
				if tx.MandateReference != ct.MandateReference || tx.PaymentPartner.Name != ct.ContractPartner.Name {
					t.Fatalf("transaction %+v does not match contract %+v", tx, ct)
				}
				at := time.Unix(tx.BookingDate.Unix, 0).UTC()
				if j > 0 {
					gap := (at.Year()-last.Year())*12 + int(at.Month()-last.Month())
					if gap != months[ct.Interval] {
						t.Fatalf("contract %s (%s): bookings %s and %s are %d months apart", ct.ContractID, ct.Interval, last, at, gap)
					}
				}
				last = at
			}
			if next := last.AddDate(0, months[ct.Interval], 0).Format(time.DateOnly); ct.NextBookingDate != next {
				t.Fatalf("next booking %s, want %s", ct.NextBookingDate, next)
			}
		}
	}
	for _, iv := range []string{"MONTHLY", "QUARTERLY", "YEARLY"} {
		if seen[iv] == 0 {
			t.Errorf("no %s contract generated", iv)
		}
	}
}

func TestCorrelation(t *testing.T) {
	s, srv := startSandbox(t, finosb.Options{AnalysisPolls: 2})
	c := newClient(t, srv, "")
	id := s.Users("sandbox-client")[0]
	resp, _, err := c.do(http.MethodPost, userPath(id, suffixTriggerAnalysis), nil, nil, nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger: %v %d", err, resp.StatusCode)
	}
	corr := resp.Header.Get(headerCorrelationID)
	if corr == "" {
		t.Fatal("no Finoos-Correlation-Id header")
	}
	byHeader := http.Header{headerCorrelationID: {corr}}
	for i, want := range []int{http.StatusNotFound, http.StatusNotFound, http.StatusOK, http.StatusOK} {
		resp, body, _ := c.do(http.MethodGet, userPath(id, suffixCorrelation), nil, byHeader, nil)
		if resp.StatusCode != want {
			t.Fatalf("poll %d: %d %s, want %d", i+1, resp.StatusCode, body, want)
		}
	}
	if status, _ := c.get(userPath(id, suffixCorrelation), url.Values{paramCorrelationID: {corr}}); status != http.StatusOK {
		t.Errorf("by query parameter: %d", status)
	}
	if status, _ := c.get(userPath(id, suffixCorrelation), url.Values{paramCorrelationID: {"nope"}}); status != http.StatusNotFound {
		t.Errorf("unknown id: %d", status)
	}
	if status, _ := c.get(userPath(s.Users("sandbox-client")[1], suffixCorrelation), url.Values{paramCorrelationID: {corr}}); status != http.StatusNotFound {
		t.Errorf("another user's id: %d", status)
	}
	if status, _ := c.get(userPath(id, suffixCorrelation), nil); status != http.StatusBadRequest {
		t.Errorf("no id: %d", status)
	}

	never, srv2 := startSandbox(t, finosb.Options{AnalysisDuration: -1})
	c2 := newClient(t, srv2, "")
	id2 := never.Users("sandbox-client")[0]
	resp, _, _ = c2.do(http.MethodPost, userPath(id2, suffixTriggerAnalysis), nil, nil, nil)
	for range 5 {
		if status, _ := c2.get(userPath(id2, suffixCorrelation), url.Values{paramCorrelationID: {resp.Header.Get(headerCorrelationID)}}); status != http.StatusNotFound {
			t.Fatalf("an analysis that never finishes answered %d", status)
		}
	}
}

func TestWebhook(t *testing.T) {
	type delivery struct {
		header  http.Header
		payload WebhookPayload
	}
	var mu sync.Mutex
	var got []delivery
	done := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p WebhookPayload
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, delivery{r.Header.Clone(), p})
		if len(got) == 1 {
			w.WriteHeader(http.StatusBadGateway) // the first attempt fails: finoOS must retry
			return
		}
		close(done)
	}))
	defer receiver.Close()

	s, srv := startSandbox(t, finosb.Options{
		Tenants:           []string{"sandbox-client-app"},
		AnalysisDuration:  200 * time.Millisecond,
		WebhookURL:        receiver.URL,
		WebhookSecret:     "s3cret",
		WebhookRetryDelay: 10 * time.Millisecond,
	})
	c := newClient(t, srv, "sandbox-client-app")
	id := s.Users("sandbox-client-app")[0]
	resp, _, _ := c.do(http.MethodPost, userPath(id, suffixTriggerAnalysis), nil, nil, nil)
	corr := resp.Header.Get(headerCorrelationID)
	if status, _ := c.get(userPath(id, suffixCorrelation), url.Values{paramCorrelationID: {corr}}); status != http.StatusNotFound {
		t.Fatalf("correlation before completion: %d", status)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook delivered")
	}
	if status, _ := c.get(userPath(id, suffixCorrelation), url.Values{paramCorrelationID: {corr}}); status != http.StatusOK {
		t.Fatalf("correlation after the webhook: %d", status)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2 (one retry)", len(got))
	}
	if got[0].header.Get(headerRequestID) == "" || got[0].header.Get(headerRequestID) != got[1].header.Get(headerRequestID) {
		t.Errorf("X-Request-Id %q then %q, want the same non-empty id", got[0].header.Get(headerRequestID), got[1].header.Get(headerRequestID))
	}
	p := got[1].payload
	if got[1].header.Get(headerWebhookTenant) != "sandbox-client-app" {
		t.Errorf("FinoOS-Tenant-ID = %q", got[1].header.Get(headerWebhookTenant))
	}
	if p.WebhookID == "" || p.UserID != id || p.CustomUserID != "customer-0001" || p.TenantID != "sandbox-client-app" ||
		p.CorrelationID != corr || p.Secret != "s3cret" || p.Event == "" || len(p.Data) == 0 {
		t.Errorf("payload %+v", p)
	}
	if _, err := time.Parse(time.RFC3339, p.CorrelationTimestamp); err != nil {
		t.Errorf("correlationTimestamp: %v", err)
	}
}

// TestFaultKnobs shows each knob alone. Knobs that also hit POST /api/auth
// run at 0.5, so a token can be had and the fault still shows within a few
// requests.
func TestFaultKnobs(t *testing.T) {
	page2 := url.Values{paramPage: {"2"}, paramSize: {"5"}, paramIncludeTransaction: {"true"}}
	tests := []struct {
		name     string
		faults   sandboxkit.Knobs
		observed func(resp *http.Response, body []byte, readErr error, elapsed time.Duration) bool
		count    func(sandboxkit.Counts) int64
	}{
		{"rate limit", sandboxkit.Knobs{RateLimit: 0.5, RetryAfter: 7}, func(resp *http.Response, _ []byte, _ error, _ time.Duration) bool {
			return resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "7"
		}, func(f sandboxkit.Counts) int64 { return f.RateLimited }},
		{"server error", sandboxkit.Knobs{ServerError: 0.5}, func(resp *http.Response, _ []byte, _ error, _ time.Duration) bool {
			return resp.StatusCode == 500 || resp.StatusCode == 503
		}, func(f sandboxkit.Counts) int64 { return f.ServerErrors }},
		{"truncated", sandboxkit.Knobs{Truncated: 0.5}, func(resp *http.Response, body []byte, readErr error, _ time.Duration) bool {
			return resp.StatusCode == http.StatusOK && (readErr != nil || !json.Valid(body))
		}, func(f sandboxkit.Counts) int64 { return f.Truncated }},
		{"latency", sandboxkit.Knobs{Latency: 80 * time.Millisecond}, func(resp *http.Response, _ []byte, _ error, elapsed time.Duration) bool {
			return resp.StatusCode == http.StatusOK && elapsed >= 80*time.Millisecond
		}, nil},
		{"token expiry", sandboxkit.Knobs{TokenExpiry: 1}, func(resp *http.Response, _ []byte, _ error, _ time.Duration) bool {
			return resp.StatusCode == http.StatusUnauthorized
		}, func(f sandboxkit.Counts) int64 { return f.TokensExpired }},
		{"duplicate", sandboxkit.Knobs{Duplicate: 1}, func(resp *http.Response, body []byte, _ error, _ time.Duration) bool {
			p, _, err := DecodeCategorizationPage(body)
			return err == nil && len(p.Categorizations) == 6 // page 2 of size 5 starts with page 1's last
		}, func(f sandboxkit.Counts) int64 { return f.Duplicated }},
		{"malformed", sandboxkit.Knobs{Malformed: 1}, func(resp *http.Response, body []byte, _ error, _ time.Duration) bool {
			p, rejects, err := DecodeCategorizationPage(body)
			return err == nil && len(p.Categorizations) == 0 && len(rejects) == 5
		}, func(f sandboxkit.Counts) int64 { return f.Malformed }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := startSandbox(t, finosb.Options{Faults: tc.faults})
			c := newClient(t, srv, "")
			path := userPath(s.Users("sandbox-client")[0], suffixCategorization)
			for range 30 {
				start := time.Now()
				resp, body, readErr := c.do(http.MethodGet, path, page2, nil, nil)
				if tc.observed(resp, body, readErr, time.Since(start)) {
					if tc.count != nil && tc.count(s.Injected()) == 0 {
						t.Errorf("not counted: %+v", s.Injected())
					}
					return
				}
			}
			t.Fatal("fault never observed in 30 requests")
		})
	}
}

// TestFaultsLoseNothing runs every knob at once against a client that
// retries like the extractor must: it ends with exactly the fault-free data,
// and the deliberately malformed records as its only rejects.
func TestFaultsLoseNothing(t *testing.T) {
	faults := sandboxkit.Knobs{Seed: 99, RateLimit: 0.15, ServerError: 0.15, TokenExpiry: 0.05, Truncated: 0.15, Duplicate: 0.3, Malformed: 0.03}
	s, srv := startSandbox(t, finosb.Options{Seed: 4, Months: 8, UsersPerTenant: 2, Faults: faults})
	c := newClient(t, srv, "")
	for _, id := range s.Users("sandbox-client") {
		ledger, _ := s.Ledger("sandbox-client", id)
		got := c.categorizations(id, url.Values{paramSize: {"20"}})
		if len(got.items)+len(got.rejects) != ledger.Transactions || len(got.rejects) != len(ledger.MalformedTransactions) {
			t.Fatalf("%d items + %d rejects, ledger %d transactions of which %d malformed",
				len(got.items), len(got.rejects), ledger.Transactions, len(ledger.MalformedTransactions))
		}
		for _, item := range got.items {
			if slices.Contains(ledger.MalformedTransactions, item.TransactionID) {
				t.Fatalf("malformed transaction %s loaded", item.TransactionID)
			}
		}
		again := c.categorizations(id, url.Values{paramSize: {"20"}})
		if len(again.rejects) != len(got.rejects) {
			t.Fatalf("second run: %d rejects, first %d", len(again.rejects), len(got.rejects))
		}
		for i := range got.rejects {
			if !bytes.Equal(got.rejects[i].Raw, again.rejects[i].Raw) {
				t.Fatalf("reject %d differs between runs:\n%s\n%s", i, got.rejects[i].Raw, again.rejects[i].Raw)
			}
		}

		var contracts []Contract
		var badContracts []Rejected
		c.fetch(userPath(id, suffixContracts), nil, func(b []byte) (err error) {
			contracts, badContracts, err = DecodeContracts(b)
			return err
		})
		if len(contracts)+len(badContracts) != len(ledger.Contracts) || len(badContracts) != len(ledger.MalformedContracts) {
			t.Fatalf("%d contracts + %d rejects, ledger %d with %d malformed", len(contracts), len(badContracts), len(ledger.Contracts), len(ledger.MalformedContracts))
		}
		var history AccountHistory
		var badBalances []Rejected
		c.fetch(userPath(id, suffixAccountHistory), nil, func(b []byte) (err error) {
			history, badBalances, err = DecodeAccountHistory(b)
			return err
		})
		if len(badBalances) != len(ledger.MalformedBalances) {
			t.Fatalf("%d balance rejects, ledger %d", len(badBalances), len(ledger.MalformedBalances))
		}
		loaded := 0
		for _, h := range history.Histories {
			for _, b := range h.DailyBalances {
				loaded++
				if want := ledger.Balances[h.Account.AccountID][b.Date]; cents(t, want) != cents(t, b.Balance.String()) {
					t.Fatalf("%s %s: %s, ledger %s", h.Account.AccountID, b.Date, b.Balance, want)
				}
			}
		}
		if loaded+len(badBalances) != 3*len(ledger.Balances[history.Histories[0].Account.AccountID]) {
			t.Fatalf("%d balances + %d rejects", loaded, len(badBalances))
		}
	}
	n := s.Injected()
	if n.RateLimited == 0 || n.ServerErrors == 0 || n.TokensExpired == 0 || n.Truncated == 0 || n.Duplicated == 0 || n.Malformed == 0 {
		t.Errorf("some knob never fired: %+v", n)
	}
}

func TestDeterministic(t *testing.T) {
	fetchAll := func(opts finosb.Options) [][]byte {
		s, srv := startSandbox(t, opts)
		c := newClient(t, srv, "")
		var out [][]byte
		for _, id := range s.Users("sandbox-client") {
			for _, path := range []string{suffixCategorization, suffixContracts, suffixAccountDetect, suffixAccountHistory} {
				status, body := c.get(userPath(id, path), url.Values{paramIncludeTransaction: {"true"}, paramLocale: {"de"}})
				if status != http.StatusOK {
					t.Fatalf("%s: %d", path, status)
				}
				out = append(out, body)
			}
		}
		return out
	}
	opts := finosb.Options{Seed: 77, Months: 4, Faults: sandboxkit.Knobs{Malformed: 0.1}}
	a, b := fetchAll(opts), fetchAll(opts)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("response %d differs between two sandboxes of the same seed", i)
		}
	}
	opts.Seed = 78
	if c := fetchAll(opts); bytes.Equal(a[0], c[0]) {
		t.Fatal("another seed served the same data")
	}
}

func TestConcurrentPaging(t *testing.T) {
	s, srv := startSandbox(t, finosb.Options{Seed: 6, Months: 6, UsersPerTenant: 4, Faults: sandboxkit.Knobs{Duplicate: 0.2, Truncated: 0.1}})
	ledgers := map[string]finosb.Ledger{}
	for _, id := range s.Users("sandbox-client") {
		ledgers[id], _ = s.Ledger("sandbox-client", id)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		id := s.Users("sandbox-client")[i%4]
		wg.Go(func() {
			c := newClient(t, srv, "")
			if got := c.categorizations(id, url.Values{paramSize: {"13"}}); len(got.items) != ledgers[id].Transactions {
				t.Errorf("user %s: %d items, ledger %d", id, len(got.items), ledgers[id].Transactions)
			}
		})
	}
	wg.Wait()
}

func TestUnknownEndpoint(t *testing.T) {
	_, srv := startSandbox(t, finosb.Options{})
	c := newClient(t, srv, "")
	status, body := c.get("/api/nothing", nil)
	var e APIError
	if json.Unmarshal(body, &e); status != http.StatusNotFound || e.Type != "not_found" {
		t.Fatalf("%d %s", status, body)
	}
}
