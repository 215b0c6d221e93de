package fino

// Page decoders the sandbox tests use to read what the sandbox serves. The
// extractor decodes record by record instead (the AddJSON methods of the
// builders), which is what the fuzz targets exercise.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Rejected is a record that is valid JSON but not a valid instance of its
// type. The rest of its page still loads; this one goes to the rejects.
type Rejected struct {
	Raw    json.RawMessage
	Reason string
}

// Validate reports a categorization the warehouse cannot take.
func (c *Categorization) Validate() error {
	switch {
	case c.TransactionID == "":
		return errors.New("transactionId missing")
	case c.AccountID == "":
		return errors.New("accountId missing")
	case c.Transaction != nil:
		return c.Transaction.Validate()
	}
	return nil
}

// Validate reports a transaction the warehouse cannot take.
func (t *Transaction) Validate() error {
	if t.Amount == "" {
		return errors.New("amount missing")
	}
	if _, ok := t.BookingDate.day(); !ok || t.BookingDate.IsZero() {
		return errors.New("bookingDate missing or not a day")
	}
	return nil
}

// Validate reports a contract the warehouse cannot take.
func (c *Contract) Validate() error {
	if c.ContractID == "" {
		return errors.New("contractId missing")
	}
	if c.Amount == "" {
		return errors.New("amount missing")
	}
	for _, d := range append([]string{c.NextBookingDate}, c.NextBookingRange...) {
		if d == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return fmt.Errorf("bad date %q", d)
		}
	}
	return nil
}

// Validate reports a daily balance the warehouse cannot take.
func (b *DailyBalance) Validate() error {
	if _, err := time.Parse(time.DateOnly, b.Date); err != nil {
		return fmt.Errorf("bad date %q", b.Date)
	}
	if b.Balance == "" {
		return errors.New("balance missing")
	}
	return nil
}

// DecodeCategorizationPage decodes one categorization page. Items that do not
// decode or validate are returned as rejects; an error means the page itself
// is unusable (e.g. truncated) and must be fetched again. A bare JSON array is
// taken as a single page holding everything.
func DecodeCategorizationPage(data []byte) (CategorizationPage, []Rejected, error) {
	var env struct {
		Categorizations []json.RawMessage `json:"categorizations"`
		Page            int               `json:"page"`
		Size            int               `json:"size"`
		TotalPages      int               `json:"totalPages"`
		TotalElements   int               `json:"totalElements"`
	}
	if isArray(data) {
		if err := json.Unmarshal(data, &env.Categorizations); err != nil {
			return CategorizationPage{}, nil, fmt.Errorf("categorization page: %w", err)
		}
		env.Page, env.TotalPages = 1, 1
		env.Size, env.TotalElements = len(env.Categorizations), len(env.Categorizations)
	} else if err := json.Unmarshal(data, &env); err != nil {
		return CategorizationPage{}, nil, fmt.Errorf("categorization page: %w", err)
	}
	page := CategorizationPage{Page: env.Page, Size: env.Size, TotalPages: env.TotalPages, TotalElements: env.TotalElements}
	items, rejects := decodeEach[Categorization](env.Categorizations, (*Categorization).Validate)
	page.Categorizations = items
	return page, rejects, nil
}

// DecodeContracts decodes a contract list ({"contracts":[...]} or a bare
// array), rejecting the contracts that do not decode or validate.
func DecodeContracts(data []byte) ([]Contract, []Rejected, error) {
	var env struct {
		Contracts []json.RawMessage `json:"contracts"`
	}
	var err error
	if isArray(data) {
		err = json.Unmarshal(data, &env.Contracts)
	} else {
		err = json.Unmarshal(data, &env)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("contracts: %w", err)
	}
	contracts, rejects := decodeEach[Contract](env.Contracts, (*Contract).Validate)
	return contracts, rejects, nil
}

// DecodeAccountHistory decodes an account history, rejecting single daily
// balances that do not decode or validate (their reason names the account).
func DecodeAccountHistory(data []byte) (AccountHistory, []Rejected, error) {
	var env struct {
		Histories []struct {
			Account       AccountRef        `json:"account"`
			DailyBalances []json.RawMessage `json:"dailyBalances"`
		} `json:"histories"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return AccountHistory{}, nil, fmt.Errorf("account history: %w", err)
	}
	var out AccountHistory
	var rejects []Rejected
	for _, h := range env.Histories {
		if h.Account.AccountID == "" {
			for _, raw := range h.DailyBalances {
				rejects = append(rejects, Rejected{Raw: raw, Reason: "account.accountId missing"})
			}
			continue
		}
		balances, bad := decodeEach[DailyBalance](h.DailyBalances, (*DailyBalance).Validate)
		for i := range bad {
			bad[i].Reason = "account " + h.Account.AccountID + ": " + bad[i].Reason
		}
		rejects = append(rejects, bad...)
		out.Histories = append(out.Histories, History{Account: h.Account, DailyBalances: balances})
	}
	return out, rejects, nil
}

// decodeEach decodes every raw element into T, keeping the valid ones.
func decodeEach[T any](raws []json.RawMessage, validate func(*T) error) ([]T, []Rejected) {
	items := make([]T, 0, len(raws))
	var rejects []Rejected
	for _, raw := range raws {
		var v T
		err := json.Unmarshal(raw, &v)
		if err == nil {
			err = validate(&v)
		}
		if err != nil {
			rejects = append(rejects, Rejected{Raw: raw, Reason: err.Error()})
			continue
		}
		items = append(items, v)
	}
	return items, rejects
}

func isArray(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '['
}
