package sandbox

import (
	"encoding/json"
	"strings"
	"time"
)

// What the sandbox serves, as Fimento's docs (and the fimento package's
// doc where they are silent) describe it. These are the sandbox's own
// types: the extractor's may change without changing the fake.

const (
	headerPartnerBank = "partner-bank-id"
	paramPage         = "page"
	paramLimit        = "limit"
)

// The documented status codes: process level, then bank level.
const (
	statusCreated                = "created"
	statusConsentLinkOpened      = "consentLinkOpened"
	statusCustomerApproved       = "customerApprovedConsent"
	statusCustomerDenied         = "customerDeniedConsent"
	statusCategorisationStarted  = "categorisationStarted"
	statusCategorisationDone     = "categorisationDone"
	statusInsightsStarted        = "insightsStarted"
	statusCompleted              = "completed"
	statusAuthError              = "authError"
	bankAddedNotCompletedAuth    = "bankAddedNotCompletedAuthFlow"
	bankAddedCompletedAuth       = "bankAddedCompletedAuthFlow"
	bankFetchingTransactions     = "fetchingTransactionsStarted"
	bankFetchingTransactionsDone = "fetchingTransactionsDone"
)

// Paths are the endpoints the sandbox serves. The docs give only two
// explicit paths (POST /process/:processId/consent and .../consent-link);
// the others are assumptions (fimento package doc, 1), configurable because
// a real difference must be a one-line fix.
type Paths struct {
	Login        string // POST {name, password}
	PartnerBanks string // GET (list), POST (create)
	Processes    string // POST (create)
	Process      string // GET, DELETE; {processId}
	Consent      string // POST: a new consent flow; {processId}
	ConsentLink  string // POST: a new consent link; {processId}
	TestConsent  string // POST: approve or revoke for automated tests; {processId}, {status}
	Transactions string // GET ?page=N; {processId}
	Insights     string // GET; {processId}
	Webhooks     string // POST {webhookUrl}
}

// DefaultPaths are the assumed endpoints (fimento package doc, 1).
func DefaultPaths() Paths {
	return Paths{
		Login:        "/auth/login",
		PartnerBanks: "/partner-bank",
		Processes:    "/process",
		Process:      "/process/{processId}",
		Consent:      "/process/{processId}/consent",
		ConsentLink:  "/process/{processId}/consent-link",
		TestConsent:  "/process/{processId}/consent/{status}",
		Transactions: "/insights/{processId}/transactions",
		Insights:     "/insights/{processId}",
		Webhooks:     "/webhook",
	}
}

// statusDesc are the documented descriptions of the codes.
var statusDesc = map[string]string{
	statusCreated:                "Created - No banks added",
	statusConsentLinkOpened:      "Consent link opened",
	statusCustomerApproved:       "Customer has approved consent",
	statusCustomerDenied:         "Customer has denied/revoked consent",
	statusCategorisationStarted:  "Categorising transaction data - Started",
	statusCategorisationDone:     "Categorising transaction data - Done",
	statusInsightsStarted:        "Generate insights - Started",
	statusCompleted:              "Customer has approved consent and insights is generated",
	statusAuthError:              "Auth error",
	bankAddedNotCompletedAuth:    "Bank added, not completed auth flow",
	bankAddedCompletedAuth:       "Bank added, completed auth flow",
	bankFetchingTransactions:     "Fetching transactions - Started",
	bankFetchingTransactionsDone: "Fetching transactions - Done",
}

// loginBody is the body of the login call.
type loginBody struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// tokenBody is the login response. valid_until's unit is undocumented
// (fimento package doc, 4): Options.ValidUntilMillis chooses.
type tokenBody struct {
	AccessToken string      `json:"access_token"`
	ValidUntil  json.Number `json:"valid_until"`
}

// partnerBank is a tenant: a bank using Fimento for its customers.
type partnerBank struct {
	ID       string `json:"_id,omitempty"`
	Name     string `json:"name"`
	IsBroker bool   `json:"isBroker,omitempty"`
	LogoURL  string `json:"logoUrl,omitempty"`
}

// statusEntry is one entry of a status history. isError and errorMessage come
// only with authError.
type statusEntry struct {
	Code         string    `json:"code"`
	Desc         string    `json:"desc"`
	Timestamp    time.Time `json:"timestamp"`
	IsError      bool      `json:"isError,omitempty"`
	ErrorMessage string    `json:"errorMessage,omitempty"`
}

// statusHistory is a current status with the statuses before it.
type statusHistory struct {
	Current statusEntry   `json:"current"`
	History []statusEntry `json:"history"`
}

// consentState is the consent field: the string "null" (as the docs'
// samples have it) for no answer yet, else "approved" or "revoked"
// (fimento package doc, 6).
type consentState string

// MarshalJSON writes no answer as the string "null", as the docs show.
func (c consentState) MarshalJSON() ([]byte, error) {
	if c == "" {
		return []byte(`"null"`), nil
	}
	return json.Marshal(string(c))
}

const (
	consentApproved consentState = "approved"
	consentRevoked  consentState = "revoked"
)

// consentFlowStatus is the process's overall flow status.
type consentFlowStatus struct {
	statusHistory
	Consent consentState `json:"consent"`
	ID      string       `json:"_id,omitempty"`
}

// CustomerBank names a bank the customer added.
type customerBank struct {
	Name    string `json:"name"`
	Country string `json:"country"`
}

// bankConsent is the flow status of one bank the customer added.
type bankConsent struct {
	CustomerBank        customerBank  `json:"customerBank"`
	Status              statusHistory `json:"status"`
	ConsentGivenAt      *time.Time    `json:"consentGivenAt,omitempty"`
	ConsentFlowStatusID string        `json:"consentFlowStatusId,omitempty"`
}

// processDoc is the response of the get-process call, personal data
// (socialSecurityNumber, companyId, firstName, lastName) included.
type processDoc struct {
	ID                   string            `json:"_id"`
	ConsentFlowStatuses  []bankConsent     `json:"consentFlowStatuses,omitempty"`
	ConsentFlowStatus    consentFlowStatus `json:"consentFlowStatus"`
	Market               string            `json:"market"`
	PartnerBank          string            `json:"partnerBank"`
	SocialSecurityNumber string            `json:"socialSecurityNumber,omitempty"`
	CompanyID            string            `json:"companyId,omitempty"`
	CreatedAt            time.Time         `json:"createdAt"`
	CustomerBankConsent  []bankConsent     `json:"customerBankConsent,omitempty"`
	FirstName            string            `json:"firstName,omitempty"`
	LastName             string            `json:"lastName,omitempty"`
	Consent              consentState      `json:"consent"`
	UpdatedAt            time.Time         `json:"updatedAt"`
	DataCollectionType   string            `json:"dataCollectionType,omitempty"`
	BrokerBanks          []string          `json:"brokerBanks,omitempty"`
	// PSUType is "business" in the response example but shares the enum
	// of dataCollectionType in the request (fimento package doc, 7).
	PSUType string `json:"psuType,omitempty"`
}

// newProcess is the body of the create-process call.
type newProcess struct {
	SocialSecurityNumber string       `json:"socialSecurityNumber,omitempty"`
	CompanyID            string       `json:"companyId,omitempty"`
	Market               string       `json:"market"`
	FirstName            string       `json:"firstName,omitempty"`
	LastName             string       `json:"lastName,omitempty"`
	RedirectURL          string       `json:"redirectUrl,omitempty"`
	DataCollectionType   string       `json:"dataCollectionType"`
	PSUType              string       `json:"psuType,omitempty"`
	BrokerBanks          []brokerBank `json:"brokerBanks,omitempty"`
}

// brokerBank is a bank offered by a broker partner bank.
type brokerBank struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	LogoURI string `json:"logoUri,omitempty"`
}

// transaction is one categorised transaction; its amount is decimal text.
type transaction struct {
	ID          string      `json:"_id"`
	Amount      json.Number `json:"amount"` // negative = money out (fimento package doc, 11)
	Date        string      `json:"date"`   // RFC 3339
	Description string      `json:"description"`
	AccountID   string      `json:"accountId"`
	Category    string      `json:"category"`
	CBankID     string      `json:"cBankId"`
}

// insightsBody is the insights object of a completed process.
type insightsBody struct {
	TransactionGraph      []graphDayDoc   `json:"transactionGraph"`
	AccountsInfo          []accountInfo   `json:"accountsInfo"`
	TotalBalance          json.RawMessage `json:"totalBalance,omitempty"`
	FetchedAtInterval     *interval       `json:"fetchedAtInterval,omitempty"`
	Categorisation        json.RawMessage `json:"categorisation,omitempty"`
	SocialSecurityNumber  string          `json:"socialSecurityNumber,omitempty"`
	CompanyID             string          `json:"companyId,omitempty"`
	FirstName             string          `json:"firstName,omitempty"`
	LastName              string          `json:"lastName,omitempty"`
	ProcessID             string          `json:"processId"`
	ComputationAutomation json.RawMessage `json:"computationAutomation,omitempty"`
}

// The transaction graph: one day each, with the day's end balance and
// flows, listing the day's transactions.
type (
	graphDayDoc struct {
		Date string  `json:"date"` // YYYY-MM-DD or RFC 3339 (fimento package doc, 13)
		Info dayInfo `json:"info"`
	}
	dayInfo struct {
		Balance              json.Number `json:"balance"`
		NegativeSum          json.Number `json:"negativeSum"`
		PositiveSum          json.Number `json:"positiveSum"`
		NegativeTransactions []graphTxn  `json:"negativeTransactions,omitempty"`
		PositiveTransactions []graphTxn  `json:"positiveTransactions,omitempty"`
	}
	graphTxn struct {
		Description string      `json:"description"`
		Amount      json.Number `json:"amount"`
		Category    string      `json:"category"`
	}
)

// accountInfo is one account of accountsInfo; it has no id (fimento
// package doc, 15).
type accountInfo struct {
	AccountNumber string      `json:"accountNumber"`
	Name          string      `json:"name"`
	Balance       json.Number `json:"balance"`
	Type          string      `json:"type"`
	Bank          string      `json:"bank"`
}

// interval is fetchedAtInterval: the span the fetched transactions cover.
type interval struct {
	Min time.Time `json:"min"`
	Max time.Time `json:"max"`
}

// webhookURL is the body of the add-webhook call.
type webhookURL struct {
	WebhookURL string `json:"webhookUrl"`
}

// apiError is the documented error body.
type apiError struct {
	Message    []string `json:"message"`
	Error      string   `json:"error"`
	StatusCode int      `json:"statusCode"`
}

// currencyOf is the currency of a market: Fimento serves Sweden and Finland
// and names no currency anywhere (fimento package doc, 12).
func currencyOf(market string) string {
	switch strings.ToUpper(market) {
	case "FI":
		return "EUR"
	default:
		return "SEK"
	}
}
