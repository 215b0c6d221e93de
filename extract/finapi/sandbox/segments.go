package sandbox

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// result computes a segment over the ledger on the job's creation day, by
// each segment's documented definition and the finapi package's
// assumptions 8–12. It returns the members (sorted by user id) and
// durationInMonth (nil when the type has no period).
func result(seg string, req createRequest, accounts []LedgerAccount, created time.Time) ([]member, *int) {
	byUser := map[string][]memberAccount{}
	var duration *int
	months := func(n int) { duration = &n }
	switch seg {
	case highBalance:
		threshold := cents(req.Threshold)
		for _, a := range accounts {
			if b := a.Balance(created); a.Type == req.AccountType && b > threshold {
				byUser[a.UserID] = append(byUser[a.UserID], memberAccount{AccountID: a.AccountID, Amount: money(b)})
			}
		}
	case lowBalance:
		threshold := cents(req.Threshold)
		first, _ := completeMonths(created, req.NumberOfMonths)
		months(req.NumberOfMonths)
		for _, a := range accounts {
			if a.Type != orChecking(req.AccountType) {
				continue
			}
			var mins []monthAmount
			lowest, every := int64(math.MaxInt64), true
			for m := range req.NumberOfMonths {
				start := first.AddDate(0, m, 0)
				low := int64(math.MaxInt64)
				for d := start; d.Before(start.AddDate(0, 1, 0)); d = d.AddDate(0, 0, 1) {
					low = min(low, a.Balance(d))
				}
				every = every && low < threshold
				lowest = min(lowest, low)
				mins = append(mins, monthAmount{Month: start.Format("2006-01"), Amount: *money(low)})
			}
			if every {
				byUser[a.UserID] = append(byUser[a.UserID], memberAccount{AccountID: a.AccountID, Amount: money(lowest), MonthlyMinimum: mins})
			}
		}
	case incomeSpending:
		from, _ := time.Parse(time.DateOnly, req.DateFrom)
		to, _ := time.Parse(time.DateOnly, req.DateTo)
		months((to.Year()-from.Year())*12 + int(to.Month()-from.Month()) + 1)
		for _, a := range accounts {
			var in, out, inSum, outSum int64
			for _, t := range a.Transactions {
				switch {
				case t.Day.Before(from) || t.Day.After(to):
				case t.Amount > 0:
					in, inSum = in+1, inSum+t.Amount
				case t.Amount < 0:
					out, outSum = out+1, outSum+t.Amount
				}
			}
			if in+out > 0 {
				inCount, outCount := int(in), int(out)
				byUser[a.UserID] = append(byUser[a.UserID], memberAccount{AccountID: a.AccountID, Amount: money(inSum + outSum),
					IncomingCount: &inCount, OutgoingCount: &outCount, IncomingAmount: money(inSum), OutgoingAmount: money(outSum)})
			}
		}
	case insuranceSpending:
		first, last := completeMonths(created, 12)
		months(12)
		for _, a := range accounts {
			var total int64
			seen := map[string]bool{}
			var list []insurance
			for _, t := range a.Transactions {
				if t.Label != "INSURANCES" || t.Day.Before(first) || t.Day.After(last) {
					continue
				}
				total += t.Amount
				if k := t.InsuranceProvider + "/" + t.InsuranceType; !seen[k] {
					seen[k] = true
					list = append(list, insurance{Provider: t.InsuranceProvider, InsuranceType: t.InsuranceType, Amount: *money(t.Amount), Frequency: t.Frequency})
				}
			}
			if len(list) > 0 {
				byUser[a.UserID] = append(byUser[a.UserID], memberAccount{AccountID: a.AccountID, Amount: money(total), Insurances: list})
			}
		}
	case financialBreakdown:
		first, _ := completeMonths(created, req.NumberOfMonths)
		months(req.NumberOfMonths)
		for _, a := range accounts {
			var groups []breakdownOf
			var total int64
			for _, g := range req.LabelGroups {
				sums := make([]int64, req.NumberOfMonths)
				found := false
				for _, t := range a.Transactions {
					m := (t.Day.Year()-first.Year())*12 + int(t.Day.Month()-first.Month())
					if t.Label == g && m >= 0 && m < len(sums) {
						sums[m] += t.Amount
						found = true
					}
				}
				if !found {
					continue
				}
				b := breakdown(g, sums, first)
				total += cents(*b.Total)
				groups = append(groups, b)
			}
			if len(groups) > 0 {
				byUser[a.UserID] = append(byUser[a.UserID], memberAccount{AccountID: a.AccountID, Amount: money(total), Breakdowns: groups})
			}
		}
	}
	users := make([]member, 0, len(byUser))
	for id, accs := range byUser {
		users = append(users, member{UserID: id, Accounts: accs})
	}
	sort.Slice(users, func(i, j int) bool { return users[i].UserID < users[j].UserID })
	return users, duration
}

// breakdown is the statistics of monthly sums (cents), rounded to cents
// half away from zero; the standard deviation is the population one.
func breakdown(group string, sums []int64, first time.Time) breakdownOf {
	var total int64
	monthly := make([]monthAmount, len(sums))
	for i, s := range sums {
		total += s
		monthly[i] = monthAmount{Month: first.AddDate(0, i, 0).Format("2006-01"), Amount: *money(s)}
	}
	sorted := append([]int64(nil), sums...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	n := float64(len(sums))
	mean := float64(total) / n
	median := float64(sorted[len(sorted)/2])
	if len(sorted)%2 == 0 {
		median = float64(sorted[len(sorted)/2-1]+sorted[len(sorted)/2]) / 2
	}
	var sq float64
	for _, s := range sums {
		sq += (float64(s) - mean) * (float64(s) - mean)
	}
	return breakdownOf{LabelGroup: group, Total: money(total), Average: money(int64(math.Round(mean))),
		Min: money(sorted[0]), Max: money(sorted[len(sorted)-1]), Median: money(int64(math.Round(median))),
		StdDev: money(int64(math.Round(math.Sqrt(sq / n)))), Monthly: monthly}
}

func orChecking(t string) string {
	if t == "" {
		return "checking"
	}
	return t
}

// money formats cents as a JSON number with two decimals.
func money(c int64) *json.Number {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	n := json.Number(fmt.Sprintf("%s%d.%02d", sign, c/100, c%100))
	return &n
}

// cents parses a decimal amount; the sandbox validated it before.
func cents(n json.Number) int64 {
	f, _ := n.Float64()
	return int64(math.Round(f * 100))
}
