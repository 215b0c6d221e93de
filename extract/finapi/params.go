package finapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Params are the request parameters of the five segment streams. A run
// turns them into the body of its job (Request); Validate catches what
// finAPI would refuse before any schedule fires.
type Params struct {
	HighBalance struct {
		AccountType string // default checking
		Threshold   string // decimal, default 5000
	}
	LowBalance struct {
		AccountType string // default checking
		Threshold   string // decimal, default 0
		Months      int    // past complete months, default 3
	}
	IncomeSpending struct {
		Months int // past complete months the time range covers, default 1
	}
	FinancialBreakdown struct {
		LabelGroups []string // default SALARY, INVESTMENTS
		Months      int      // past complete months, 1..12, default 12
	}
}

// AccountTypes are the account types a balance segment accepts
// (assumption 4: finAPI's account types, in the docs' lower camel case).
var AccountTypes = []string{"checking", "savings", "creditCard", "loan", "security", "membership", "bausparen"}

// LabelGroups are the label groups a financial breakdown accepts
// (assumption 7: the docs name SALARY and INVESTMENTS "e.g.").
var LabelGroups = []string{"SALARY", "PENSION", "CHILD_BENEFIT", "OTHER_INCOME", "RENT", "INSURANCES",
	"INVESTMENTS", "LOANS", "UTILITIES", "GROCERIES", "MOBILITY", "LEISURE"}

// MaxBreakdownMonths is the longest financial breakdown period the docs
// allow.
const MaxBreakdownMonths = 12

// DefaultParams are the parameters when nothing is configured.
func DefaultParams() Params {
	var p Params
	p.HighBalance.AccountType, p.HighBalance.Threshold = "checking", "5000"
	p.LowBalance.AccountType, p.LowBalance.Threshold, p.LowBalance.Months = "checking", "0", 3
	p.IncomeSpending.Months = 1
	p.FinancialBreakdown.LabelGroups, p.FinancialBreakdown.Months = []string{"SALARY", "INVESTMENTS"}, 12
	return p
}

// ParamError is a parameter finAPI would refuse.
type ParamError struct {
	Param   string // e.g. financial_breakdown.months
	Problem string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Problem }

// Validate reports every problem, each a *ParamError naming the parameter.
func (p Params) Validate() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, &ParamError{Param: name, Problem: fmt.Sprintf(format, args...)})
	}
	accountType := func(name, v string) {
		if !slices.Contains(AccountTypes, v) {
			bad(name, "unknown account type %q (one of %s)", v, strings.Join(AccountTypes, ", "))
		}
	}
	threshold := func(name, v string) {
		if _, err := decimal.NewFromString(v); err != nil {
			bad(name, "threshold %q is not a number", v)
		}
	}
	months := func(name string, v, most int) {
		if v < 1 || v > most {
			bad(name, "months %d is outside 1..%d", v, most)
		}
	}
	accountType("high_balance.account_type", p.HighBalance.AccountType)
	threshold("high_balance.threshold", p.HighBalance.Threshold)
	accountType("low_balance.account_type", p.LowBalance.AccountType)
	threshold("low_balance.threshold", p.LowBalance.Threshold)
	months("low_balance.months", p.LowBalance.Months, 24)
	months("income_spending.months", p.IncomeSpending.Months, 24)
	months("financial_breakdown.months", p.FinancialBreakdown.Months, MaxBreakdownMonths)
	if len(p.FinancialBreakdown.LabelGroups) == 0 {
		bad("financial_breakdown.label_groups", "at least one label group is needed")
	}
	for _, g := range p.FinancialBreakdown.LabelGroups {
		if !slices.Contains(LabelGroups, g) {
			bad("financial_breakdown.label_groups", "unknown label group %q (one of %s)", g, strings.Join(LabelGroups, ", "))
		}
	}
	return errs
}

// Request is the body of a new job of segment s created on day today
// (UTC); callbackURL may be "".
func (p Params) Request(s Segment, today time.Time, callbackURL string) CreateRequest {
	r := CreateRequest{CallbackURL: callbackURL}
	switch s {
	case HighBalance:
		r.AccountType, r.Threshold = p.HighBalance.AccountType, json.Number(p.HighBalance.Threshold)
	case LowBalance:
		r.AccountType, r.Threshold, r.NumberOfMonths = p.LowBalance.AccountType, json.Number(p.LowBalance.Threshold), p.LowBalance.Months
	case IncomeSpending:
		from, to := CompleteMonths(today, p.IncomeSpending.Months)
		r.DateFrom, r.DateTo = from.Format(time.DateOnly), to.Format(time.DateOnly)
	case FinancialBreakdown:
		r.LabelGroups, r.NumberOfMonths = p.FinancialBreakdown.LabelGroups, p.FinancialBreakdown.Months
	}
	return r
}

// CompleteMonths returns the first and last day of the n complete months
// before today's month.
func CompleteMonths(today time.Time, n int) (first, last time.Time) {
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	return month.AddDate(0, -n, 0), month.AddDate(0, 0, -1)
}

// Apply sets segment seg's parameters from a stream's params in the
// schedules file (keys: account_type, threshold, months, label_groups as
// each type takes them) and returns the problems with the result, each a
// *ParamError named by its key.
func (p *Params) Apply(seg Segment, kv map[string]string) []error {
	var errs []error
	prefix := map[Segment]string{HighBalance: "high_balance.", LowBalance: "low_balance.", IncomeSpending: "income_spending.",
		InsuranceSpending: "insurance_spending.", FinancialBreakdown: "financial_breakdown."}[seg]
	for k, v := range kv {
		months := func(dst *int) {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, &ParamError{Param: k, Problem: fmt.Sprintf("%q is not a number of months", v)})
			}
			*dst = n
		}
		switch {
		case seg == HighBalance && k == "account_type":
			p.HighBalance.AccountType = v
		case seg == HighBalance && k == "threshold":
			p.HighBalance.Threshold = v
		case seg == LowBalance && k == "account_type":
			p.LowBalance.AccountType = v
		case seg == LowBalance && k == "threshold":
			p.LowBalance.Threshold = v
		case seg == LowBalance && k == "months":
			months(&p.LowBalance.Months)
		case seg == IncomeSpending && k == "months":
			months(&p.IncomeSpending.Months)
		case seg == FinancialBreakdown && k == "months":
			months(&p.FinancialBreakdown.Months)
		case seg == FinancialBreakdown && k == "label_groups":
			p.FinancialBreakdown.LabelGroups = strings.Split(v, ",")
		default:
			errs = append(errs, &ParamError{Param: k, Problem: "unknown parameter for " + seg.Type})
		}
	}
	for _, err := range p.Validate() {
		var pe *ParamError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Param, prefix) {
			errs = append(errs, &ParamError{Param: strings.TrimPrefix(pe.Param, prefix), Problem: pe.Problem})
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// errParams wraps Validate's problems into one error.
func (p Params) check() error { return errors.Join(p.Validate()...) }
