package sandbox

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"
)

// LedgerAccount is one synthetic account of the sandbox: the truth every
// segment is computed from, exported so tests can compute the segments
// again on their own. Amounts are cents.
type LedgerAccount struct {
	UserID, AccountID, Type string
	Opening                 int64 // balance before the first transaction
	Transactions            []LedgerTransaction
}

// LedgerTransaction is one booking; Label is its label group ("" for
// transfers that belong to none).
type LedgerTransaction struct {
	Day    time.Time
	Amount int64
	Label  string
	// Insurance payments only.
	InsuranceProvider, InsuranceType, Frequency string
}

// Balance is the end-of-day balance of day (the opening balance before
// the first booking).
func (a LedgerAccount) Balance(day time.Time) int64 {
	b := a.Opening
	for _, t := range a.Transactions {
		if t.Day.After(day) {
			break
		}
		b += t.Amount
	}
	return b
}

// ledger builds the accounts of one mandator: users × (checking, maybe
// savings, maybe a credit card) over the months up to today.
func ledger(seed int64, tenant string, users, months int, today time.Time) []LedgerAccount {
	start := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -months, 0)
	var out []LedgerAccount
	for u := range users {
		h := hasher{seed: seed, prefix: fmt.Sprintf("%s/%d", tenant, u)}
		userID := h.uuid("user")
		checking := LedgerAccount{UserID: userID, AccountID: h.uuid("checking"), Type: "checking",
			Opening: h.between("opening", -80000, 900000)}
		var savings, card *LedgerAccount
		if h.between("has-savings", 0, 2) == 1 {
			savings = &LedgerAccount{UserID: userID, AccountID: h.uuid("savings"), Type: "savings", Opening: h.between("savings-opening", 0, 2500000)}
		}
		if h.between("has-card", 0, 3) == 0 {
			card = &LedgerAccount{UserID: userID, AccountID: h.uuid("card"), Type: "creditCard"}
		}
		income, incomeLabel := h.between("salary", 150000, 620000), "SALARY"
		if u%5 == 4 {
			income, incomeLabel = h.between("pension", 90000, 240000), "PENSION"
		}
		rent := h.between("rent", 45000, 160000)
		type insurance struct {
			provider, kind, freq string
			amount               int64
		}
		var insurances []insurance
		if u%4 != 0 {
			providers := []string{"Allianz", "HUK-COBURG", "ERGO", "AXA", "Generali"}
			kinds := []string{"liability", "household", "car", "legal", "health"}
			freqs := []string{"MONTHLY", "QUARTERLY", "YEARLY"}
			for i := range int(h.between("insurances", 1, 4)) {
				k := fmt.Sprint("insurance", i)
				insurances = append(insurances, insurance{providers[h.between(k+"p", 0, 5)], kinds[(int(h.between(k+"k", 0, 5))+i)%5],
					freqs[h.between(k+"f", 0, 3)], -h.between(k+"a", 900, 25000)})
			}
		}
		invest := int64(0)
		if u%3 == 0 {
			invest = h.between("invest", 5000, 60000)
		}
		for day := start; !day.After(today); day = day.AddDate(0, 0, 1) {
			key := day.Format(time.DateOnly)
			book := func(a *LedgerAccount, amount int64, label string) {
				a.Transactions = append(a.Transactions, LedgerTransaction{Day: day, Amount: amount, Label: label})
			}
			switch day.Day() {
			case 1:
				book(&checking, income+h.between("bonus"+key, 0, 2)*h.between("bonus-size"+key, 0, 50000), incomeLabel)
			case 3:
				book(&checking, -rent, "RENT")
			case 5:
				if invest > 0 {
					book(&checking, -invest, "INVESTMENTS")
					if savings != nil {
						book(savings, invest, "INVESTMENTS")
					}
				}
			case 15:
				for _, ins := range insurances {
					m := int(day.Month())
					if ins.freq == "MONTHLY" || ins.freq == "QUARTERLY" && m%3 == 1 || ins.freq == "YEARLY" && m == 1+u%12 {
						checking.Transactions = append(checking.Transactions, LedgerTransaction{Day: day, Amount: ins.amount,
							Label: "INSURANCES", InsuranceProvider: ins.provider, InsuranceType: ins.kind, Frequency: ins.freq})
					}
				}
			case 20:
				book(&checking, -h.between("utilities"+key, 4000, 15000), "UTILITIES")
			case 28:
				if card != nil {
					// The card is settled from checking: a transfer, no label group.
					var spent int64
					for _, t := range card.Transactions {
						spent += t.Amount
					}
					if debt := -(card.Opening + spent); debt > 0 {
						book(&checking, -debt, "")
						book(card, debt, "")
					}
				}
			}
			if day.Weekday() == time.Saturday {
				book(&checking, -h.between("groceries"+key, 2000, 12000), "GROCERIES")
			}
			if card != nil && day.Day()%6 == 2 {
				book(card, -h.between("card"+key, 500, 15000), "LEISURE")
			}
			if day.Day()%10 == 7 {
				book(&checking, -h.between("leisure"+key, 500, 20000), "LEISURE")
			}
		}
		out = append(out, checking)
		if savings != nil {
			out = append(out, *savings)
		}
		if card != nil {
			out = append(out, *card)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return out
}

// hasher draws deterministic values from the seed and a key.
type hasher struct {
	seed   int64
	prefix string
}

func (h hasher) sum(key string) uint64 {
	f := fnv.New64a()
	fmt.Fprintf(f, "%d/%s/%s", h.seed, h.prefix, key)
	return f.Sum64()
}

// between is in [lo, hi).
func (h hasher) between(key string, lo, hi int64) int64 {
	return lo + int64(h.sum(key)%uint64(hi-lo))
}

func (h hasher) uuid(key string) string {
	a, b := h.sum(key+"#a"), h.sum(key+"#b")
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>52&0xfff, b&0xffffffffffff)
}
