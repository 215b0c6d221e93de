package sandbox

import (
	"fmt"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// Records are one user's synthetic records encoded as the endpoints encode
// them, without paging, faults or ExtraFields: for tests that feed the
// extractor without serving.
type Records struct {
	Owner string // the name the accounts are held in
	// Categorizations are every transaction's categorization, in the
	// order the categorization endpoint pages them.
	Categorizations [][]byte
	AmountSum       string   // the transactions' amounts added up, two places
	Accounts        [][]byte // account detection's accountsView items
	Credits         [][]byte // and its creditsView items
	Balances        []AccountBalances
	Contracts       [][]byte
}

// AccountBalances are an account's end-of-day balances as account history
// serves them ({"date", "balance"}), oldest first.
type AccountBalances struct {
	AccountID string
	Days      [][]byte
}

// Records generates a user's records, categorizations with or without the
// transaction and in the locale given ("", "de" or "en"); an error means
// no such user.
func (s *Server) Records(tenantID, userID string, withTransaction bool, locale string) (Records, error) {
	u, ok := s.lookup(tenantID, userID)
	if !ok {
		return Records{}, fmt.Errorf("fino sandbox: no user %q in tenant %q", userID, tenantID)
	}
	p := s.data.profile(tenantID, u)
	r := Records{Owner: p.owner}
	var sum int64
	s.data.walk(p, func(txns []txn) {
		for i := range txns {
			c := p.categorization(&txns[i], withTransaction, locale)
			r.Categorizations = append(r.Categorizations, appendCategorization(nil, &c))
			sum += txns[i].amount
		}
	})
	r.AmountSum = fixed2(sum)
	o := s.data.detection(p).AccountsOverview
	for _, a := range o.AccountsView {
		r.Accounts = append(r.Accounts, sandboxkit.MustJSON(a))
	}
	for _, a := range o.CreditsView {
		r.Credits = append(r.Credits, sandboxkit.MustJSON(a))
	}
	for i, daily := range s.data.balances(p) {
		b := AccountBalances{AccountID: p.accounts[i].id}
		for _, d := range daily {
			b.Days = append(b.Days, sandboxkit.MustJSON(dailyBalance{Date: d.day.Format(time.DateOnly), Balance: amountJSON(d.balance)}))
		}
		r.Balances = append(r.Balances, b)
	}
	for _, c := range s.data.contracts(p) {
		r.Contracts = append(r.Contracts, sandboxkit.MustJSON(c))
	}
	return r, nil
}
