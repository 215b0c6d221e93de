package finapi

import (
	"encoding/json"
	"time"
)

// Segment is one finAPI segment type: its stream and its path name.
type Segment struct {
	Stream string // finsync stream name
	Type   string // {segmentType} in the paths (assumption 2)
}

// The five segment types, in the order of the docs.
var (
	HighBalance        = Segment{"finapi.segments.high_balance", "highBalance"}
	LowBalance         = Segment{"finapi.segments.low_balance", "lowBalance"}
	IncomeSpending     = Segment{"finapi.segments.income_spending", "incomeSpendingSummary"}
	InsuranceSpending  = Segment{"finapi.segments.insurance_spending", "insuranceSpending"}
	FinancialBreakdown = Segment{"finapi.segments.financial_breakdown", "financialBreakdown"}
)

// Segments lists every segment type.
func Segments() []Segment {
	return []Segment{HighBalance, LowBalance, IncomeSpending, InsuranceSpending, FinancialBreakdown}
}

// Lifetime is how long finAPI keeps a segment after its creation date.
const Lifetime = 14 * 24 * time.Hour

const (
	pathToken    = "/oauth/token" // assumption 1: relative to BaseURL unless TokenURL is set
	pathSegments = "/segments/"   // + {segmentType}[/{jobId}]
)

// CreateRequest is the body of POST /segments/{segmentType}. Only
// callbackURL, accountType and threshold are documented (for highBalance);
// the other names are assumptions 4–7.
type CreateRequest struct {
	CallbackURL    string      `json:"callbackURL,omitempty"`
	AccountType    string      `json:"accountType,omitempty"`
	Threshold      json.Number `json:"threshold,omitempty"`
	NumberOfMonths int         `json:"numberOfMonths,omitempty"`
	DateFrom       string      `json:"dateFrom,omitempty"` // YYYY-MM-DD, inclusive
	DateTo         string      `json:"dateTo,omitempty"`   // YYYY-MM-DD, inclusive
	LabelGroups    []string    `json:"labelGroups,omitempty"`
}

// CreateResponse is the answer to a job creation.
type CreateResponse struct {
	JobID string `json:"jobId"`
}

// ResultPage is one page of GET /segments/{segmentType}/{jobId}. Users is
// decoded element by element (a bad one is rejected alone).
type ResultPage struct {
	DurationInMonth *int              `json:"durationInMonth"`
	CreationDate    string            `json:"creationDate"`
	Users           []json.RawMessage `json:"users"`
	TotalElements   int               `json:"totalElements"`
	TotalPages      int               `json:"totalPages"`
}

// User is one member of a segment with the accounts that qualified.
type User struct {
	UserID   string    `json:"userId"`
	Accounts []Account `json:"accounts"`
}

// Account is one qualifying account. AccountID and Amount are documented;
// the other fields are the type-specific metrics of assumptions 8–12 (what
// amount means per type is there too).
type Account struct {
	AccountID string       `json:"accountId"`
	Amount    *json.Number `json:"amount"`

	// lowBalance: the lowest end-of-day balance of each month checked.
	MonthlyMinimum []MonthAmount `json:"monthlyMinimum,omitempty"`
	// incomeSpendingSummary
	IncomingCount  *int         `json:"incomingCount,omitempty"`
	OutgoingCount  *int         `json:"outgoingCount,omitempty"`
	IncomingAmount *json.Number `json:"incomingAmount,omitempty"`
	OutgoingAmount *json.Number `json:"outgoingAmount,omitempty"`
	// insuranceSpending
	Insurances []Insurance `json:"insurances,omitempty"`
	// financialBreakdown
	Breakdowns []Breakdown `json:"breakdowns,omitempty"`
}

// MonthAmount is a month ("YYYY-MM") and an amount.
type MonthAmount struct {
	Month  string      `json:"month"`
	Amount json.Number `json:"amount"`
}

// Insurance is one insurance a user pays for.
type Insurance struct {
	Provider      string      `json:"provider"`
	InsuranceType string      `json:"insuranceType"`
	Amount        json.Number `json:"amount"`    // per payment, negative (money out)
	Frequency     string      `json:"frequency"` // MONTHLY, QUARTERLY, YEARLY
}

// Breakdown is the statistics of one label group over the complete months
// of the period.
type Breakdown struct {
	LabelGroup string        `json:"labelGroup"`
	Total      json.Number   `json:"total"`
	Average    json.Number   `json:"average"`
	Min        json.Number   `json:"min"`
	Max        json.Number   `json:"max"`
	Median     json.Number   `json:"median"`
	StdDev     json.Number   `json:"stdDev"`
	Monthly    []MonthAmount `json:"monthly"`
}

// Callback is what finAPI posts to callbackURL when a job is ready
// (assumption 13: the docs give no payload).
type Callback struct {
	JobID       string `json:"jobId"`
	SegmentType string `json:"segmentType"`
}
