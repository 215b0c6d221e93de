package sandbox

import (
	"encoding/json"
	"time"
)

// What the sandbox serves, as finAPI's docs (and the finapi package's
// assumptions where they are silent) describe it. These are the sandbox's
// own types: the extractor's may change without changing the fake.

// The segment types: {segmentType} in the paths.
const (
	highBalance        = "highBalance"
	lowBalance         = "lowBalance"
	incomeSpending     = "incomeSpendingSummary"
	insuranceSpending  = "insuranceSpending"
	financialBreakdown = "financialBreakdown"
)

var segmentTypes = []string{highBalance, lowBalance, incomeSpending, insuranceSpending, financialBreakdown}

// jobLifetime is how long finAPI keeps a segment after its creation date.
const jobLifetime = 14 * 24 * time.Hour

const (
	pathToken    = "/oauth/token"
	pathSegments = "/segments/"
)

// accountTypes are the account types a balance segment accepts.
var accountTypes = []string{"checking", "savings", "creditCard", "loan", "security", "membership", "bausparen"}

// labelGroups are the label groups a financial breakdown accepts.
var labelGroups = []string{"SALARY", "PENSION", "CHILD_BENEFIT", "OTHER_INCOME", "RENT", "INSURANCES",
	"INVESTMENTS", "LOANS", "UTILITIES", "GROCERIES", "MOBILITY", "LEISURE"}

// maxBreakdownMonths is the longest financial breakdown.
const maxBreakdownMonths = 12

// createRequest is the body of POST /segments/{segmentType}.
type createRequest struct {
	CallbackURL    string      `json:"callbackURL,omitempty"`
	AccountType    string      `json:"accountType,omitempty"`
	Threshold      json.Number `json:"threshold,omitempty"`
	NumberOfMonths int         `json:"numberOfMonths,omitempty"`
	DateFrom       string      `json:"dateFrom,omitempty"` // YYYY-MM-DD, inclusive
	DateTo         string      `json:"dateTo,omitempty"`   // YYYY-MM-DD, inclusive
	LabelGroups    []string    `json:"labelGroups,omitempty"`
}

// createResponse is the answer to a job creation.
type createResponse struct {
	JobID string `json:"jobId"`
}

// member is one user of a segment with the accounts that qualified.
type member struct {
	UserID   string          `json:"userId"`
	Accounts []memberAccount `json:"accounts"`
}

// memberAccount is one qualifying account with its type's metrics.
type memberAccount struct {
	AccountID string       `json:"accountId"`
	Amount    *json.Number `json:"amount"`

	MonthlyMinimum []monthAmount `json:"monthlyMinimum,omitempty"` // lowBalance
	// incomeSpendingSummary
	IncomingCount  *int          `json:"incomingCount,omitempty"`
	OutgoingCount  *int          `json:"outgoingCount,omitempty"`
	IncomingAmount *json.Number  `json:"incomingAmount,omitempty"`
	OutgoingAmount *json.Number  `json:"outgoingAmount,omitempty"`
	Insurances     []insurance   `json:"insurances,omitempty"` // insuranceSpending
	Breakdowns     []breakdownOf `json:"breakdowns,omitempty"` // financialBreakdown
}

// monthAmount is a month ("YYYY-MM") and an amount.
type monthAmount struct {
	Month  string      `json:"month"`
	Amount json.Number `json:"amount"`
}

// insurance is one insurance a user pays for.
type insurance struct {
	Provider      string      `json:"provider"`
	InsuranceType string      `json:"insuranceType"`
	Amount        json.Number `json:"amount"`    // per payment, negative (money out)
	Frequency     string      `json:"frequency"` // MONTHLY, QUARTERLY, YEARLY
}

// breakdownOf is the statistics of one label group over the complete
// months of the period.
type breakdownOf struct {
	LabelGroup string        `json:"labelGroup"`
	Total      *json.Number  `json:"total"`
	Average    *json.Number  `json:"average"`
	Min        *json.Number  `json:"min"`
	Max        *json.Number  `json:"max"`
	Median     *json.Number  `json:"median"`
	StdDev     *json.Number  `json:"stdDev"`
	Monthly    []monthAmount `json:"monthly"`
}

// callbackBody is what the sandbox posts to callbackURL when a job is ready.
type callbackBody struct {
	JobID       string `json:"jobId"`
	SegmentType string `json:"segmentType"`
}

// completeMonths returns the first and last day of the n complete months
// before today's month.
func completeMonths(today time.Time, n int) (first, last time.Time) {
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	return month.AddDate(0, -n, 0), month.AddDate(0, 0, -1)
}
