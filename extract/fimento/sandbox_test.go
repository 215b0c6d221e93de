package fimento

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"

	"github.com/finsync/finsync/extract"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func startSandbox(t *testing.T, opts fimentosb.Options) (*fimentosb.Server, *API) {
	t.Helper()
	sb := fimentosb.New(opts)
	srv := httptest.NewServer(sb)
	t.Cleanup(func() { srv.Close(); sb.Close() })
	return sb, NewAPI(Config{BaseURL: srv.URL, Name: "sandbox-user", Password: "sandbox-password", HashKey: []byte("k"), Now: opts.Now})
}

// The slow process walks the documented sequence one status per step; the
// bank-level codes sit between consentLinkOpened and the consent answer.
func TestStatusSequence(t *testing.T) {
	c := &clock{t: time.Date(2026, 2, 24, 6, 0, 0, 0, time.UTC)}
	sb, api := startSandbox(t, fimentosb.Options{Now: c.Now, Step: time.Minute, WebhookPoll: time.Hour})
	bank := sb.PartnerBanks()[0]
	slow := sb.Processes(bank)[fimentosb.ScenarioSlow]
	want := []string{StatusCreated, StatusConsentLinkOpened, BankAddedNotCompletedAuth, BankAddedCompletedAuth, BankFetchingTransactions,
		BankFetchingTransactionsDone, StatusCustomerApproved, StatusCategorisationStarted, StatusCategorisationDone, StatusInsightsStarted, StatusCompleted}
	var seen []string
	for range len(want) + 2 { // the good path and two steps more
		var p Process
		if err := api.getDoc(context.Background(), api.clients.Get(bank), pathOf(api.cfg.Paths.Process, slow), &p); err != nil {
			t.Fatal(err)
		}
		code := p.ConsentFlowStatus.Current.Code
		if len(p.CustomerBankConsent) > 0 && code == StatusConsentLinkOpened {
			code = p.CustomerBankConsent[0].Status.Current.Code
		}
		if len(seen) == 0 || seen[len(seen)-1] != code {
			seen = append(seen, code)
		}
		c.Advance(time.Minute)
	}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("sequence:\n%v\nwant\n%v", seen, want)
	}
	procs := sb.Processes(bank)
	for i, want := range []string{StatusCompleted, StatusAuthError, StatusCustomerDenied} {
		if got := sb.Status(bank, procs[i]); got != want {
			t.Errorf("process %d: %s, want %s", i, got, want)
		}
	}
}

// Paging: every transaction exactly once, then an empty page.
func TestPagingCoversTheLedger(t *testing.T) {
	sb, api := startSandbox(t, fimentosb.Options{PageSize: 7, Months: 2})
	bank := sb.PartnerBanks()[0]
	p := sb.Processes(bank)[fimentosb.ScenarioGood]
	l, err := sb.Ledger(bank, p)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	pages := 0
	err = extract.Pages(context.Background(), 1, func(ctx context.Context, page int) (bool, error) {
		pages++
		var body struct{ Transactions []Transaction }
		if err := api.getDoc(ctx, api.clients.Get(bank), pathOf(api.cfg.Paths.Transactions, p)+"?page="+strconv.Itoa(page), &body); err != nil {
			return false, err
		}
		for _, tx := range body.Transactions {
			if ids[tx.ID] {
				t.Fatalf("%s twice", tx.ID)
			}
			ids[tx.ID] = true
		}
		return len(body.Transactions) > 0, nil
	})
	if err != nil || len(ids) != l.Transactions || pages != (l.Transactions+6)/7+1 {
		t.Fatalf("%d ids over %d pages, ledger %d: %v", len(ids), pages, l.Transactions, err)
	}
}

func TestLoginAndTokens(t *testing.T) {
	for _, ms := range []bool{false, true} {
		c := &clock{t: time.Now()}
		sb, api := startSandbox(t, fimentosb.Options{Now: c.Now, ValidUntilMillis: ms, TokenTTL: time.Hour})
		bank := sb.PartnerBanks()[0]
		var p Process
		for range 3 {
			if err := api.getDoc(context.Background(), api.clients.Get(bank), pathOf(api.cfg.Paths.Process, sb.Processes(bank)[0]), &p); err != nil {
				t.Fatal(err)
			}
		}
		if s := api.Stats(); s.Requests != 3 || s.Reauths != 0 {
			t.Errorf("ms=%v: %+v: the token was not cached", ms, s)
		}
		c.Advance(2 * time.Hour) // expired: the cache logs in again before asking
		if err := api.getDoc(context.Background(), api.clients.Get(bank), pathOf(api.cfg.Paths.Process, sb.Processes(bank)[0]), &p); err != nil {
			t.Fatal(err)
		}
		if s := api.Stats(); s.Reauths != 0 {
			t.Errorf("ms=%v: a 401 instead of a timely login: %+v", ms, s)
		}
	}
	_, api := startSandbox(t, fimentosb.Options{Password: "other"})
	err := api.getDoc(context.Background(), api.clients.Get("605c6c479691950d359bb0e9"), "/process/x", &Process{})
	var perm *extract.Permanent
	if !errors.As(err, &perm) || strings.Contains(err.Error(), "sandbox-password") {
		t.Errorf("bad credentials: %v", err)
	}
}

func TestTestConsentEndpoint(t *testing.T) {
	c := &clock{t: time.Now()}
	sb, api := startSandbox(t, fimentosb.Options{Now: c.Now, WebhookPoll: time.Hour})
	bank := sb.PartnerBanks()[0]
	slow := sb.Processes(bank)[fimentosb.ScenarioSlow]
	if err := api.SetTestConsent(context.Background(), bank, slow, ConsentApproved); err != nil {
		t.Fatal(err)
	}
	if got := sb.Status(bank, slow); got != StatusCompleted {
		t.Fatalf("approved: %s", got)
	}
	if err := api.SetTestConsent(context.Background(), bank, sb.Processes(bank)[fimentosb.ScenarioAuthError], ConsentApproved); err == nil {
		t.Error("an authError process was approved")
	}
	// The docs' body mismatch: a body that disagrees with the status is refused.
	client := api.clients.Get(bank)
	err := client.PostJSON(context.Background(), "/process/"+slow+"/consent/revoked", nil, map[string]bool{"isApproved": true}, nil)
	var herr *extract.HTTPError
	if !errors.As(err, &herr) || herr.Status != http.StatusBadRequest {
		t.Errorf("disagreeing body: %v", err)
	}
	if err := api.SetTestConsent(context.Background(), bank, slow, ConsentRevoked); err != nil {
		t.Fatal(err)
	}
	if got := sb.Status(bank, slow); got != StatusCustomerDenied {
		t.Fatalf("revoked: %s", got)
	}
	if _, err := sb.Ledger(bank, slow); err == nil {
		t.Error("a revoked process still has data")
	}
}

func TestFaultKnobs(t *testing.T) {
	sb, api := startSandbox(t, fimentosb.Options{Faults: sandboxkit.Knobs{Seed: 1, RateLimit: 0.2, ServerError: 0.2, TokenExpiry: 0.1, Truncated: 0.2}})
	bank := sb.PartnerBanks()[0]
	for range 20 {
		var p Process
		if err := api.getDoc(context.Background(), api.clients.Get(bank), pathOf(api.cfg.Paths.Process, sb.Processes(bank)[0]), &p); err != nil {
			t.Fatal(err)
		}
		if p.ID == "" {
			t.Fatal("empty process")
		}
	}
	f := sb.Injected()
	if f.RateLimited == 0 || f.ServerErrors == 0 || f.TokensExpired == 0 || f.Truncated == 0 {
		t.Fatalf("knobs never fired: %+v", f)
	}
	t.Logf("20 calls: %+v, client %+v", f, api.Stats())
}
