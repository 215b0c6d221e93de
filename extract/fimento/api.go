package fimento

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/finsync/finsync/extract"
)

// Paths are the endpoints the extractor calls and the sandbox serves. The
// docs give only two explicit paths (POST /process/:processId/consent and
// .../consent-link); the others are assumptions (doc.go 1), configurable
// because a real difference must be a one-line fix. "{processId}" and
// "{status}" are replaced per call.
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

// DefaultPaths are the assumed endpoints (doc.go 1).
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

// byName maps the names operators use (FINSYNC_FIMENTO_PATHS) to the fields.
func (p *Paths) byName() map[string]*string {
	return map[string]*string{
		"login": &p.Login, "partner_banks": &p.PartnerBanks, "processes": &p.Processes,
		"process": &p.Process, "consent": &p.Consent, "consent_link": &p.ConsentLink,
		"test_consent": &p.TestConsent, "transactions": &p.Transactions, "insights": &p.Insights,
		"webhooks": &p.Webhooks,
	}
}

// ParsePaths applies overrides "name=/path,name=/path" to the defaults.
// Paths of a process must keep {processId}; test_consent also {status}.
func ParsePaths(overrides []string) (Paths, error) {
	p := DefaultPaths()
	fields := p.byName()
	for _, o := range overrides {
		name, path, ok := strings.Cut(strings.TrimSpace(o), "=")
		f, known := fields[name]
		switch {
		case !ok || !known:
			return p, fmt.Errorf("%q: want name=/path with name one of login, partner_banks, processes, process, consent, consent_link, test_consent, transactions, insights, webhooks", o)
		case !strings.HasPrefix(path, "/"):
			return p, fmt.Errorf("%q: the path must start with /", o)
		case strings.Contains(*f, "{processId}") && !strings.Contains(path, "{processId}"):
			return p, fmt.Errorf("%q: the path must contain {processId}", o)
		case strings.Contains(*f, "{status}") && !strings.Contains(path, "{status}"):
			return p, fmt.Errorf("%q: the path must contain {status}", o)
		}
		*f = path
	}
	return p, nil
}

// Headers and parameters (doc.go 2, 3).
const (
	headerPartnerBank    = "partner-bank-id"
	headerIdempotencyKey = "idempotency-key"
	paramPage            = "page"
	paramLimit           = "limit"
)

// Process status codes (consentFlowStatus), in their documented order, and
// the bank-level codes set between consentLinkOpened and the consent answer.
const (
	StatusCreated                = "created"
	StatusConsentLinkOpened      = "consentLinkOpened"
	StatusCustomerApproved       = "customerApprovedConsent"
	StatusCustomerDenied         = "customerDeniedConsent"
	StatusCategorisationStarted  = "categorisationStarted"
	StatusCategorisationDone     = "categorisationDone"
	StatusInsightsStarted        = "insightsStarted"
	StatusCompleted              = "completed"
	StatusAuthError              = "authError"
	BankAddedNotCompletedAuth    = "bankAddedNotCompletedAuthFlow"
	BankAddedCompletedAuth       = "bankAddedCompletedAuthFlow"
	BankFetchingTransactions     = "fetchingTransactionsStarted"
	BankFetchingTransactionsDone = "fetchingTransactionsDone"
)

// statusDesc are the documented descriptions of the codes.
var statusDesc = map[string]string{
	StatusCreated:                "Created - No banks added",
	StatusConsentLinkOpened:      "Consent link opened",
	StatusCustomerApproved:       "Customer has approved consent",
	StatusCustomerDenied:         "Customer has denied/revoked consent",
	StatusCategorisationStarted:  "Categorising transaction data - Started",
	StatusCategorisationDone:     "Categorising transaction data - Done",
	StatusInsightsStarted:        "Generate insights - Started",
	StatusCompleted:              "Customer has approved consent and insights is generated",
	StatusAuthError:              "Auth error",
	BankAddedNotCompletedAuth:    "Bank added, not completed auth flow",
	BankAddedCompletedAuth:       "Bank added, completed auth flow",
	BankFetchingTransactions:     "Fetching transactions - Started",
	BankFetchingTransactionsDone: "Fetching transactions - Done",
}

// Login is the body of the login call.
type Login struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Token is the login response. valid_until's unit is undocumented
// (doc.go 4): see Expiry.
type Token struct {
	AccessToken string      `json:"access_token"`
	ValidUntil  json.Number `json:"valid_until"`
}

// msThreshold tells the two units of valid_until apart: 1e11 seconds is the
// year 5138, 1e11 milliseconds is 1973-03-03. A value above it is in
// milliseconds, any other in seconds (doc.go 4).
const msThreshold = 1e11

// Expiry is when the token stops being valid, or the zero time when
// valid_until is missing, unreadable or not after now (the token is then
// kept until a 401 says otherwise, instead of logging in before each call).
func (t Token) Expiry(now time.Time) time.Time {
	v, err := t.ValidUntil.Float64()
	if err != nil || v <= 0 {
		return time.Time{}
	}
	var exp time.Time
	if v > msThreshold {
		exp = time.UnixMilli(int64(v))
	} else {
		exp = time.Unix(int64(v), 0)
	}
	if !exp.After(now) {
		return time.Time{}
	}
	return exp
}

// PartnerBank is a tenant: a bank using Fimento for its customers.
type PartnerBank struct {
	ID       string `json:"_id,omitempty"`
	Name     string `json:"name"`
	IsBroker bool   `json:"isBroker,omitempty"`
	LogoURL  string `json:"logoUrl,omitempty"`
}

// Status is one entry of a status history. isError and errorMessage come
// only with authError.
type Status struct {
	Code         string    `json:"code"`
	Desc         string    `json:"desc"`
	Timestamp    time.Time `json:"timestamp"`
	IsError      bool      `json:"isError,omitempty"`
	ErrorMessage string    `json:"errorMessage,omitempty"`
}

// StatusHistory is a current status with the statuses before it.
type StatusHistory struct {
	Current Status   `json:"current"`
	History []Status `json:"history"`
}

// Consent is the consent field: absent, JSON null or the string "null" (the
// docs' samples) mean no answer yet; else "approved" or "revoked" (doc.go 6).
type Consent string

// UnmarshalJSON reads null and "null" as no answer.
func (c *Consent) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	if s == "null" {
		s = ""
	}
	*c = Consent(s)
	return nil
}

// MarshalJSON writes no answer as the string "null", as the docs show.
func (c Consent) MarshalJSON() ([]byte, error) {
	if c == "" {
		return []byte(`"null"`), nil
	}
	return json.Marshal(string(c))
}

// Consent answers.
const (
	ConsentApproved Consent = "approved"
	ConsentRevoked  Consent = "revoked"
)

// ConsentFlowStatus is the process's overall flow status.
type ConsentFlowStatus struct {
	StatusHistory
	Consent Consent `json:"consent"`
	ID      string  `json:"_id,omitempty"`
}

// CustomerBank names a bank the customer added.
type CustomerBank struct {
	Name    string `json:"name"`
	Country string `json:"country"`
}

// BankConsent is the flow status of one bank the customer added.
type BankConsent struct {
	CustomerBank        CustomerBank  `json:"customerBank"`
	Status              StatusHistory `json:"status"`
	ConsentGivenAt      *time.Time    `json:"consentGivenAt,omitempty"`
	ConsentFlowStatusID string        `json:"consentFlowStatusId,omitempty"`
}

// Process is the response of the get-process call. socialSecurityNumber,
// companyId, firstName and lastName are personal data: they are decoded to
// build the keyed person reference and the redactor, and never stored.
type Process struct {
	ID                   string            `json:"_id"`
	ConsentFlowStatuses  []BankConsent     `json:"consentFlowStatuses,omitempty"`
	ConsentFlowStatus    ConsentFlowStatus `json:"consentFlowStatus"`
	Market               string            `json:"market"`
	PartnerBank          string            `json:"partnerBank"`
	SocialSecurityNumber string            `json:"socialSecurityNumber,omitempty"`
	CompanyID            string            `json:"companyId,omitempty"`
	CreatedAt            time.Time         `json:"createdAt"`
	CustomerBankConsent  []BankConsent     `json:"customerBankConsent,omitempty"`
	FirstName            string            `json:"firstName,omitempty"`
	LastName             string            `json:"lastName,omitempty"`
	Consent              Consent           `json:"consent"`
	UpdatedAt            time.Time         `json:"updatedAt"`
	DataCollectionType   string            `json:"dataCollectionType,omitempty"`
	BrokerBanks          []string          `json:"brokerBanks,omitempty"`
	// PSUType is "business" in the response example but shares the enum of
	// dataCollectionType in the request: any string is taken (doc.go 7).
	PSUType string `json:"psuType,omitempty"`
	// Extra holds the members no field names (doc.go 22).
	Extra json.RawMessage `json:"-"`
}

// maxUnknownBytes bounds the members of a process or an insights document
// that finsync does not read: each lands once, in an insights row of its
// own (doc.go 22).
const maxUnknownBytes = 64 << 10

// UnmarshalJSON decodes the process and keeps its unknown members in Extra.
func (p *Process) UnmarshalJSON(b []byte) (err error) {
	type plain Process
	p.Extra, err = extract.DecodeWrapper(b, (*plain)(p), maxUnknownBytes)
	return err
}

// Revoked tells whether the process reports that the customer denied or
// revoked consent, which per the docs deletes the customer's data (doc.go 9).
func (p *Process) Revoked() bool {
	return p.ConsentFlowStatus.Current.Code == StatusCustomerDenied ||
		p.Consent == ConsentRevoked || p.ConsentFlowStatus.Consent == ConsentRevoked
}

// NewProcess is the body of the create-process call.
type NewProcess struct {
	SocialSecurityNumber string       `json:"socialSecurityNumber,omitempty"`
	CompanyID            string       `json:"companyId,omitempty"`
	Market               string       `json:"market"`
	FirstName            string       `json:"firstName,omitempty"`
	LastName             string       `json:"lastName,omitempty"`
	RedirectURL          string       `json:"redirectUrl,omitempty"`
	DataCollectionType   string       `json:"dataCollectionType"`
	PSUType              string       `json:"psuType,omitempty"`
	BrokerBanks          []BrokerBank `json:"brokerBanks,omitempty"`
}

// BrokerBank is a bank offered by a broker partner bank.
type BrokerBank struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	LogoURI string `json:"logoUri,omitempty"`
}

// Transaction is one categorised transaction. Amounts are json.Number so
// the provider's decimal text reaches the warehouse without float rounding.
type Transaction struct {
	ID          string      `json:"_id"`
	Amount      json.Number `json:"amount"` // negative = money out (doc.go 11)
	Date        string      `json:"date"`   // RFC 3339
	Description string      `json:"description"`
	AccountID   string      `json:"accountId"`
	Category    string      `json:"category"`
	CBankID     string      `json:"cBankId"`
}

// Insights is the insights object of a completed process.
type Insights struct {
	TransactionGraph      []GraphDay      `json:"transactionGraph"`
	AccountsInfo          []AccountInfo   `json:"accountsInfo"`
	TotalBalance          json.RawMessage `json:"totalBalance,omitempty"`
	FetchedAtInterval     *Interval       `json:"fetchedAtInterval,omitempty"`
	Categorisation        json.RawMessage `json:"categorisation,omitempty"`
	SocialSecurityNumber  string          `json:"socialSecurityNumber,omitempty"`
	CompanyID             string          `json:"companyId,omitempty"`
	FirstName             string          `json:"firstName,omitempty"`
	LastName              string          `json:"lastName,omitempty"`
	ProcessID             string          `json:"processId"`
	ComputationAutomation json.RawMessage `json:"computationAutomation,omitempty"`
	// Extra holds the members no field names (doc.go 22).
	Extra json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the insights and keeps their unknown members in
// Extra.
func (in *Insights) UnmarshalJSON(b []byte) (err error) {
	type plain Insights
	in.Extra, err = extract.DecodeWrapper(b, (*plain)(in), maxUnknownBytes)
	return err
}

// GraphDay is one day of the transaction graph.
type GraphDay struct {
	Date string  `json:"date"` // YYYY-MM-DD or RFC 3339 (doc.go 13)
	Info DayInfo `json:"info"`
}

// DayInfo is a day's end balance and flows.
type DayInfo struct {
	Balance              json.Number `json:"balance"`
	NegativeSum          json.Number `json:"negativeSum"`
	PositiveSum          json.Number `json:"positiveSum"`
	NegativeTransactions []GraphTxn  `json:"negativeTransactions,omitempty"`
	PositiveTransactions []GraphTxn  `json:"positiveTransactions,omitempty"`
}

// GraphTxn is a transaction as the graph lists it.
type GraphTxn struct {
	Description string      `json:"description"`
	Amount      json.Number `json:"amount"`
	Category    string      `json:"category"`
}

// AccountInfo is one account of accountsInfo; it has no id (doc.go 15).
type AccountInfo struct {
	AccountNumber string      `json:"accountNumber"`
	Name          string      `json:"name"`
	Balance       json.Number `json:"balance"`
	Type          string      `json:"type"`
	Bank          string      `json:"bank"`
}

// Interval is fetchedAtInterval: the span the fetched transactions cover.
type Interval struct {
	Min time.Time `json:"min"`
	Max time.Time `json:"max"`
}

// WebhookURL is the body of the add-webhook call.
type WebhookURL struct {
	WebhookURL string `json:"webhookUrl"`
}

// APIError is the documented error body.
type APIError struct {
	Message    []string `json:"message"`
	Error      string   `json:"error"`
	StatusCode int      `json:"statusCode"`
}
