package fino

import (
	"bytes"
	"encoding/json"
)

// The analytics modules' response types (the sandbox, package
// fino/sandbox, has its own copies). Where the docs give field tables (company modules) the names
// are theirs; where they give none (person income, spending, risk, household
// budget, living situation, cockpits) the shapes are assumptions 38–46 of
// the package doc. Amounts and counts are json.Number: a missing optional
// field stays "" and lands as NULL.

// List is a JSON array whose elements decode one by one: an element that
// does not decode is kept aside with its error and raw text, so one bad
// month rejects that month, not the module.
type List[T any] struct {
	Items []T
	Raw   []json.RawMessage // Raw[i] is the text of Items[i]
	Bad   []BadElement
}

// BadElement is an array element that did not decode.
type BadElement struct {
	Raw json.RawMessage
	Err error
}

// ListOf builds a List for encoding.
func ListOf[T any](items ...T) List[T] { return List[T]{Items: items} }

// UnmarshalJSON decodes each element on its own.
func (l *List[T]) UnmarshalJSON(b []byte) error {
	*l = List[T]{}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return err
	}
	for _, r := range raws {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			l.Bad = append(l.Bad, BadElement{Raw: r, Err: err})
			continue
		}
		l.Items = append(l.Items, v)
		l.Raw = append(l.Raw, r)
	}
	return nil
}

// MarshalJSON encodes the items; an empty list is [].
func (l List[T]) MarshalJSON() ([]byte, error) {
	if l.Items == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(l.Items)
}

// Timespan is an observed period. Company modules send from/to, the adult
// check since/until (assumption 37): both decode into From/To.
type Timespan struct {
	From, To string // YYYY-MM-DD or RFC 3339; only the day is kept
	// SinceUntil encodes the adult check's spelling.
	SinceUntil bool `json:"-"`
}

// UnmarshalJSON accepts {from,to} and {since,until}.
func (t *Timespan) UnmarshalJSON(b []byte) error {
	var v struct{ From, To, Since, Until string }
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*t = Timespan{From: v.From, To: v.To}
	if t.From == "" && t.To == "" && (v.Since != "" || v.Until != "") {
		*t = Timespan{From: v.Since, To: v.Until, SinceUntil: true}
	}
	return nil
}

// MarshalJSON writes the spelling of the module that sends it.
func (t Timespan) MarshalJSON() ([]byte, error) {
	if t.SinceUntil {
		return json.Marshal(struct {
			Since string `json:"since"`
			Until string `json:"until"`
		}{t.From, t.To})
	}
	return json.Marshal(struct {
		From string `json:"from"`
		To   string `json:"to"`
	}{t.From, t.To})
}

// Person income and spending (assumption 38): the endpoint answers one
// member per booked module, named as the scope's last part in camel case
// (salary, childBenefit, creditCard, ...), next to observedTimespan.
type PersonModule struct {
	Available       bool                `json:"available"`
	Average         json.Number         `json:"average,omitempty"`
	Median          json.Number         `json:"median,omitempty"`
	MonthlyOverview List[MonthlyAmount] `json:"monthlyOverview"`
}

// MonthlyAmount is one month of a person module: the signed sum (income
// positive, spending negative), the count and the transactions.
type MonthlyAmount struct {
	Month          string      `json:"month"` // YYYY-MM
	Amount         json.Number `json:"amount,omitempty"`
	Count          json.Number `json:"count,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// PersonRisk modules (assumption 39) share MonthlyAmount; the overdraft
// module lists its days.
type OverdraftModule struct {
	MonthlyOverview List[OverdraftMonth] `json:"monthlyOverview"`
}

// OverdraftMonth is one month of overdraft days (end-of-day balance below 0).
type OverdraftMonth struct {
	Month string          `json:"month"`
	Days  json.Number     `json:"days,omitempty"`
	Items List[DayAmount] `json:"overdrafts"`
}

// DayAmount is an amount on one day.
type DayAmount struct {
	Date           string      `json:"date"` // YYYY-MM-DD
	Amount         json.Number `json:"amount,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// HouseholdBudget (assumption 40): monthly averages over the complete
// months observed; balance = income.total + spending.total (spending is
// negative).
type HouseholdBudget struct {
	ObservedTimespan *Timespan              `json:"observedTimespan,omitempty"`
	Income           map[string]json.Number `json:"income"`
	Spending         map[string]json.Number `json:"spending"`
	Balance          json.Number            `json:"balance,omitempty"`
}

// AdultCheck (assumption 41).
type AdultCheck struct {
	Decision         string          `json:"decision"` // ADULT, NOT_ADULT, UNKNOWN
	Indicators       List[Indicator] `json:"indicators"`
	ObservedTimespan *Timespan       `json:"observedTimespan,omitempty"`
}

// Indicator is one adult-check indicator with its strength.
type Indicator struct {
	Indicator      string   `json:"indicator"` // e.g. STABLE_FULL_TIME_INCOME
	Strength       string   `json:"strength"`  // VERY_STRONG, STRONG, MEDIUM, NEGATIVE
	TransactionIDs []string `json:"transactionIDs,omitempty"`
}

// LivingSituation (assumption 42): four parts of one shape.
type LivingSituation struct {
	ObservedTimespan *Timespan   `json:"observedTimespan,omitempty"`
	Children         *LivingPart `json:"children,omitempty"`
	MotorVehicle     *LivingPart `json:"motorVehicle,omitempty"`
	Property         *LivingPart `json:"property,omitempty"`
	HousingRent      *LivingPart `json:"housingRent,omitempty"`
}

// LivingPart says whether a part was detected and its monthly amount.
type LivingPart struct {
	Detected       *bool       `json:"detected,omitempty"`
	MonthlyAmount  json.Number `json:"monthlyAmount,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// Sum is an amount with its count and transactions (assumption 43: the docs
// say "sum, count, and transaction IDs").
type Sum struct {
	Sum            json.Number `json:"sum,omitempty"`
	Count          json.Number `json:"count,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// FlowOverview is the company modules' overview: incomings, outgoings and
// totals.
type FlowOverview struct {
	Incomings              *Sum        `json:"incomings,omitempty"`
	Outgoings              *Sum        `json:"outgoings,omitempty"`
	TotalTransactionAmount json.Number `json:"totalTransactionAmount,omitempty"`
	TotalTransactionCount  json.Number `json:"totalTransactionCount,omitempty"`
}

// FlowMonth is a FlowOverview of one month.
type FlowMonth struct {
	Month string `json:"month"`
	FlowOverview
}

// CashTransactions is company-cash (/cash-transactions, alias /cashflow).
type CashTransactions struct {
	Overview         *FlowOverview   `json:"overview,omitempty"`
	MonthlyOverview  List[FlowMonth] `json:"monthlyOverview"`
	ObservedTimespan *Timespan       `json:"observedTimespan,omitempty"`
}

// AccountInfo is the "basic account information" of company modules.
type AccountInfo struct {
	AccountID string      `json:"accountId"`
	IBAN      string      `json:"iban,omitempty"`
	Type      AccountType `json:"type,omitempty"`
	Currency  string      `json:"currency,omitempty"`
}

// Liquidity is company-liquidity.
type Liquidity struct {
	Overview         *FlowOverview          `json:"overview,omitempty"`
	AccountLiquidity List[AccountLiquidity] `json:"accountLiquidity"`
	ObservedTimespan *Timespan              `json:"observedTimespan,omitempty"`
}

// AccountLiquidity is one account's liquidity.
type AccountLiquidity struct {
	Account         AccountInfo          `json:"account"`
	Overview        *FlowOverview        `json:"overview,omitempty"`
	MonthlyOverview List[LiquidityMonth] `json:"monthlyOverview"`
}

// LiquidityMonth is one month of an account: balances and flows.
type LiquidityMonth struct {
	FlowMonth
	EndOfMonthBalance json.Number `json:"endOfMonthBalance,omitempty"`
	MinBalance        json.Number `json:"minBalance,omitempty"`
	MaxBalance        json.Number `json:"maxBalance,omitempty"`
}

// ForeignPayments is company-foreign-payment.
type ForeignPayments struct {
	Overview         *FlowOverview       `json:"overview,omitempty"`
	ByState          List[StatePayments] `json:"byState"`
	ObservedTimespan *Timespan           `json:"observedTimespan,omitempty"`
}

// StatePayments are the payments with one country.
type StatePayments struct {
	Code      string `json:"code"` // ISO 3166-1 alpha-2
	Incomings *Sum   `json:"incomings,omitempty"`
	Outgoings *Sum   `json:"outgoings,omitempty"`
}

// CompanyRisk is company-risk.
type CompanyRisk struct {
	AccountRisks     List[AccountRisk] `json:"accountRisks"`
	ObservedTimespan *Timespan         `json:"observedTimespan,omitempty"`
}

// AccountRisk is one account's risk months.
type AccountRisk struct {
	Account         AccountInfo     `json:"account"`
	MonthlyOverview List[RiskMonth] `json:"monthlyOverview"`
}

// RiskMonth is one month of company risk.
type RiskMonth struct {
	Month         string      `json:"month"`
	BackDebit     *Sum        `json:"backDebit,omitempty"` // count and transactionIDs
	Garnishment   *Sum        `json:"garnishment,omitempty"`
	OverdraftDays json.Number `json:"overdraftDays,omitempty"`
}

// CategoryBreakdown is the shared shape of company credits, insurances,
// investments and internal bookings.
type CategoryBreakdown struct {
	Available        *bool                `json:"available,omitempty"`
	Current          json.Number          `json:"current,omitempty"`
	Median           json.Number          `json:"median,omitempty"`
	Average          json.Number          `json:"average,omitempty"`
	MonthlyOverview  List[BreakdownMonth] `json:"monthlyOverview"`
	ContractSummary  []json.RawMessage    `json:"contractSummary,omitempty"`
	ObservedTimespan *Timespan            `json:"observedTimespan,omitempty"`
}

// BreakdownMonth is one month of a category breakdown.
type BreakdownMonth struct {
	Month                      string      `json:"month"`
	Amount                     json.Number `json:"amount,omitempty"`
	RecurringAmount            json.Number `json:"recurringAmount,omitempty"`
	NonRecurringAmount         json.Number `json:"nonRecurringAmount,omitempty"`
	RecurringTransactionIDs    []string    `json:"recurringTransactionIDs,omitempty"`
	NonRecurringTransactionIDs []string    `json:"nonRecurringTransactionIDs,omitempty"`
}

// Staff is company-staff.
type Staff struct {
	Salary struct {
		TotalMonthly                    json.Number `json:"totalMonthly,omitempty"`
		TotalMonthlyExpenses            json.Number `json:"totalMonthlyExpenses,omitempty"`
		TotalMonthlyAdditionalWageCosts json.Number `json:"totalMonthlyAdditionalWageCosts,omitempty"`
	} `json:"salary"`
	Employees struct {
		MinNumberOfEmployees json.Number `json:"minNumberOfEmployees,omitempty"`
		MaxNumberOfEmployees json.Number `json:"maxNumberOfEmployees,omitempty"`
	} `json:"employees"`
	Sources struct {
		Contracts      []json.RawMessage `json:"contracts,omitempty"`
		TransactionIDs []string          `json:"transactionIDs,omitempty"`
	} `json:"sources"`
	ObservedTimespan *Timespan `json:"observedTimespan,omitempty"`
}

// CustomerSupplier is company-customer-supplier.
type CustomerSupplier struct {
	Customers        PartnerList `json:"customers"`
	Suppliers        PartnerList `json:"suppliers"`
	ObservedTimespan *Timespan   `json:"observedTimespan,omitempty"`
}

// PartnerList ranks payment partners.
type PartnerList struct {
	PartnerList List[Partner] `json:"partnerList"`
}

// Partner is one ranked payment partner.
type Partner struct {
	PaymentPartner PaymentPartner `json:"paymentPartner"`
	Ranking        struct {
		Rank            json.Number `json:"rank,omitempty"`
		RevenueRank     json.Number `json:"revenueRank,omitempty"`
		RevenueScore    json.Number `json:"revenueScore,omitempty"`
		OccurrenceRank  json.Number `json:"occurrenceRank,omitempty"`
		OccurrenceScore json.Number `json:"occurrenceScore,omitempty"`
	} `json:"ranking"`
	Total           Sum            `json:"total"`
	MonthlyOverview List[SumMonth] `json:"monthlyOverview"`
	PaymentTimespan *Timespan      `json:"paymentTimespan,omitempty"`
}

// SumMonth is a Sum of one month.
type SumMonth struct {
	Month string `json:"month"`
	Sum
}

// TopCategories is company-top-category.
type TopCategories struct {
	Categories       List[TopCategory] `json:"categories"`
	ObservedTimespan *Timespan         `json:"observedTimespan,omitempty"`
}

// TopCategory is one category's monthly and daily amounts.
type TopCategory struct {
	Category        string                 `json:"category"`
	PaymentType     string                 `json:"paymentType"` // earning, spending
	MonthlyOverview List[TopCategoryMonth] `json:"monthlyOverview"`
}

// TopCategoryMonth is one month of a top category, with its days.
type TopCategoryMonth struct {
	Month         string          `json:"month"`
	Amount        json.Number     `json:"amount,omitempty"`
	DailyOverview List[DayAmount] `json:"dailyOverview"`
}

// Cockpit is the person or company cockpit as JSON (assumption 46): the
// sections a tenant configured, keyed by module, each in its module's
// shape. The extractor flattens it generically, since its layout is the
// tenant's choice.
type Cockpit struct {
	CockpitID        string                     `json:"cockpitId"`
	Type             string                     `json:"type"` // person, company
	CreatedAt        string                     `json:"createdAt"`
	ObservedTimespan *Timespan                  `json:"observedTimespan,omitempty"`
	Sections         map[string]json.RawMessage `json:"sections"`
}
