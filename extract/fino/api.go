package fino

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Paths, parameters and headers (the sandbox, package fino/sandbox, has
// its own copies). Those the docs do not name are assumptions of the
// package doc.
const (
	pathAuth  = "/api/auth"
	pathUsers = "/api/users"

	// Suffixes of /api/users/{user-id}.
	suffixTriggerAnalysis = "/trigger-analysis"
	suffixCategorization  = "/categorization"
	suffixCorrelation     = "/categorization/correlation"
	suffixAccountDetect   = "/account-detection"
	suffixAccountHistory  = "/account-history"
	suffixContracts       = "/contracts"

	// pathSyncStatus is Get Synchronization Status Paginated (assumption 49).
	pathSyncStatus = "/api/banking/synchronization-status"

	headerTenant        = "TenantID"
	headerCorrelationID = "Finoos-Correlation-Id"
	headerRequestID     = "X-Request-Id"
	headerWebhookTenant = "FinoOS-Tenant-ID"

	paramCorrelationID      = "correlationId"
	paramPage               = "page"
	paramSize               = "size"
	paramFrom               = "from"
	paramTo                 = "to"
	paramIncludeTransaction = "includeTransaction"
	paramLocale             = "locale"

	// DefaultPageSize and MaxPageSize bound the categorization page size.
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Token is the response of POST /api/auth.
type Token struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"` // seconds
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	SessionState string `json:"session_state"`
}

// User is both the body of POST /api/users and its response.
type User struct {
	UserID            string `json:"userId,omitempty"`
	Type              string `json:"type,omitempty"`              // "person" or "company"
	AutomaticAnalysis string `json:"automaticAnalysis,omitempty"` // "active" (default) or "suspended"
	ExpiresIn         string `json:"expiresIn,omitempty"`         // ISO-8601 duration, e.g. "P7D"
	CustomUserID      string `json:"customUserID,omitempty"`
}

// APIError is the documented error body: {"type":"forbidden","message":"..."}.
type APIError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return "finoos: " + e.Type + ": " + e.Message }

// CorrelationStatus is the sandbox's 200 body of the correlation endpoint.
// The docs define only the status codes; clients must rely on those alone.
type CorrelationStatus struct {
	CorrelationID string `json:"correlationID"`
	UserID        string `json:"userID"`
	Status        string `json:"status"`
}

// Categorization is one categorized transaction.
type Categorization struct {
	AccountID      string       `json:"accountId"`
	TransactionID  string       `json:"transactionId"`
	CreationDate   time.Time    `json:"creationDate"` // RFC 3339 with offset
	DescriptiveTag string       `json:"descriptiveTag"`
	LocalizedTag   string       `json:"localizedTag,omitempty"` // only when a locale is requested
	Tags           []string     `json:"tags"`
	Transaction    *Transaction `json:"transaction,omitempty"` // only with includeTransaction=true
}

// CategorizationPage is one page of GET /api/users/{user-id}/categorization
// (the envelope is an assumption of the package doc).
type CategorizationPage struct {
	Categorizations []Categorization `json:"categorizations"`
	Page            int              `json:"page"`
	Size            int              `json:"size"`
	TotalPages      int              `json:"totalPages"`
	TotalElements   int              `json:"totalElements"`
}

// SyncStatus is one bank login's synchronization status (Consent
// Management: "status", "active", "lastSynchronization", "bankLoginId",
// "userId"); SyncStatusPage is a page of them (assumption 49).
type SyncStatus struct {
	BankLoginID         string    `json:"bankLoginId"`
	UserID              string    `json:"userId"`
	Status              string    `json:"status"` // OK, SCA_REQUIRED, SYNC_FAILED
	Active              bool      `json:"active"`
	LastSynchronization time.Time `json:"lastSynchronization"`
}

type SyncStatusPage struct {
	SynchronizationStatuses []SyncStatus `json:"synchronizationStatuses"`
	Page                    int          `json:"page"`
	Size                    int          `json:"size"`
	TotalPages              int          `json:"totalPages"`
	TotalElements           int          `json:"totalElements"`
}

// Transaction is a raw bank transaction (the manual-upload model).
//
// Amounts are json.Number so that the decimal text the provider sent reaches
// the warehouse without a detour through float64.
type Transaction struct {
	TransactionID        string          `json:"transactionId"`
	Amount               json.Number     `json:"amount"` // negative = money out
	Currency             string          `json:"currency,omitempty"`
	BookingDate          Timestamp       `json:"bookingDate"`
	ValueDate            Timestamp       `json:"valueDate,omitzero"`
	BookingText          string          `json:"bookingText,omitempty"`
	Purpose              string          `json:"purpose,omitempty"`
	PaymentPartner       *PaymentPartner `json:"paymentPartner,omitempty"`
	DifferentCreditor    string          `json:"differentCreditor,omitempty"`
	DifferentDebitor     string          `json:"differentDebitor,omitempty"`
	EndToEndReference    string          `json:"eref,omitempty"`
	MandateReference     string          `json:"mref,omitempty"`
	MerchantCategoryCode string          `json:"merchantCategoryCode,omitempty"`
	SEPAPurposeCode      string          `json:"sepaPurposeCode,omitempty"`
	TransactionCode      int             `json:"transactionCode,omitempty"`
}

// Timestamp is a bookingDate or valueDate as sent: Unix seconds, the JSON
// number the docs name, or RFC 3339 text with an offset, a JSON string
// (assumption 22). Its day is that of the offset it was written in.
type Timestamp struct {
	Unix int64  // the number; 0 when absent or sent as text
	Text string // the text; "" when absent or sent as a number
}

// IsZero reports an absent timestamp (or the number 0).
func (t Timestamp) IsZero() bool { return t.Unix == 0 && t.Text == "" }

// UnmarshalJSON takes an integer or a string; null leaves it zero. The
// text is checked where the day is taken, so a bad one is a reject naming
// its transaction.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	*t = Timestamp{}
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &t.Text)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errors.New("a timestamp (bookingDate, valueDate) is neither integer Unix seconds nor RFC 3339 text")
	}
	t.Unix = n
	return nil
}

// MarshalJSON writes the form it was read in: text as a string, else the
// number.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.Text != "" {
		return json.Marshal(t.Text)
	}
	return strconv.AppendInt(nil, t.Unix, 10), nil
}

// PaymentPartner is the counterparty of a transaction (and, by assumption,
// the contract partner of a contract).
type PaymentPartner struct {
	BIC        string `json:"bic,omitempty"`
	CreditorID string `json:"creditorId,omitempty"`
	IBAN       string `json:"iban,omitempty"`
	Name       string `json:"name,omitempty"`
}

// AccountType is the documented enumeration of account kinds.
type AccountType string

const (
	AccountBausparen      AccountType = "BAUSPAREN"
	AccountDepot          AccountType = "DEPOT"
	AccountFestgeld       AccountType = "FESTGELD"
	AccountFondsdepot     AccountType = "FONDSDEPOT"
	AccountGiro           AccountType = "GIRO"
	AccountKreditKarte    AccountType = "KREDIT_KARTE"
	AccountKreditKonto    AccountType = "KREDIT_KONTO"
	AccountKreditdarlehen AccountType = "KREDITDARLEHEN"
	AccountSparbuch       AccountType = "SPARBUCH"
	AccountTagesgeld      AccountType = "TAGESGELD"
	AccountUnknown        AccountType = "UNKNOWN"
	AccountOther          AccountType = "OTHER"
)

// Account is a bank account with every documented field.
type Account struct {
	AccountID      string            `json:"accountId"`
	AccountNumber  string            `json:"accountNumber,omitempty"`
	Balance        json.Number       `json:"balance,omitempty"`
	BankCode       string            `json:"bankCode,omitempty"`
	BankName       string            `json:"bankName,omitempty"`
	BIC            string            `json:"bic,omitempty"`
	Overdraft      *Overdraft        `json:"overdraft,omitempty"`
	Currency       string            `json:"currency,omitempty"`
	IBAN           string            `json:"iban,omitempty"`
	Icon           string            `json:"icon,omitempty"`
	Name           string            `json:"name,omitempty"`
	Owner          string            `json:"owner,omitempty"`
	Type           AccountType       `json:"type"`
	Transactions   []Transaction     `json:"transactions,omitempty"`
	Securities     []Security        `json:"securities,omitempty"`
	StandingOrders []json.RawMessage `json:"standingOrders,omitempty"` // schema undocumented
}

// Overdraft is the agreed overdraft of an account.
type Overdraft struct {
	Amount    json.Number `json:"amount,omitempty"`
	Available bool        `json:"available"`
}

// Security is a position of a DEPOT account.
type Security struct {
	Name                   string      `json:"name,omitempty"`
	ISIN                   string      `json:"isin,omitempty"`
	WKN                    string      `json:"wkn,omitempty"`
	Currency               string      `json:"currency,omitempty"`
	Quantity               json.Number `json:"quantity,omitempty"`
	Amount                 json.Number `json:"amount,omitempty"`
	AmountOriginalCurrency json.Number `json:"amountOriginalCurrency,omitempty"`
	Price                  json.Number `json:"price,omitempty"`
	PurchasePrice          json.Number `json:"purchasePrice,omitempty"`
}

// AccountDetection is the response of the account-detection module.
type AccountDetection struct {
	AccountsOverview struct {
		AccountsView []DetectedAccount `json:"accountsView"`
		CreditsView  []DetectedAccount `json:"creditsView"`
	} `json:"accountsOverview"`
}

// DetectedAccount is an account of the user, connected or found by analysis.
// The docs' example puts creditorId at the account in creditsView but inside
// additionalAnalysesInfo in accountsView, so both places are read.
type DetectedAccount struct {
	Account
	AdditionalAnalysesInfo *AdditionalAnalysesInfo `json:"additionalAnalysesInfo,omitempty"`
	CreditorID             string                  `json:"creditorId,omitempty"`
}

// AdditionalAnalysesInfo tells how an account was found and what it shows.
type AdditionalAnalysesInfo struct {
	IsUserAdded    bool            `json:"isUserAdded"`
	AnalysisPeriod *AnalysisPeriod `json:"analysisPeriod,omitempty"`
	Analysis       *AccountStats   `json:"analysis,omitempty"`
	CreditorID     *string         `json:"creditorId,omitempty"`
}

// AnalysisPeriod is the observed time span of an account analysis.
type AnalysisPeriod struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// AccountStats are the payment statistics of an account.
type AccountStats struct {
	Median          json.Number    `json:"median,omitempty"`
	Average         json.Number    `json:"average,omitempty"`
	MedianEarning   json.Number    `json:"medianEarning,omitempty"`
	MedianSpending  json.Number    `json:"medianSpending,omitempty"`
	AverageEarning  json.Number    `json:"averageEarning,omitempty"`
	AverageSpending json.Number    `json:"averageSpending,omitempty"`
	Spending        *SpendingStats `json:"spending,omitempty"`
}

// SpendingStats are the payments that revealed a detected account.
type SpendingStats struct {
	Median         json.Number `json:"median,omitempty"`
	Average        json.Number `json:"average,omitempty"`
	TransactionIDs []string    `json:"transactionIDs"`
}

// AccountHistory is the response of the account-history module.
type AccountHistory struct {
	Histories []History `json:"histories"`
}

// History holds one account's daily balances, newest first.
type History struct {
	Account       AccountRef     `json:"account"`
	DailyBalances []DailyBalance `json:"dailyBalances"`
}

// AccountRef names an account.
type AccountRef struct {
	AccountID string `json:"accountId"`
}

// DailyBalance is an account's end-of-day balance.
type DailyBalance struct {
	Date    string      `json:"date"` // YYYY-MM-DD
	Balance json.Number `json:"balance"`
}

// Contract is a detected recurring payment. The module answers
// {"contracts":[...]} (an assumption of the package doc).
type Contract struct {
	ContractID        string           `json:"contractId"`
	Amount            json.Number      `json:"amount"`
	AmountConsistency string           `json:"amountConsistency"` // FIX, VARIABLE
	Category          string           `json:"category"`
	ContractPartner   *PaymentPartner  `json:"contractPartner,omitempty"`
	Duration          int              `json:"duration"` // days of one interval
	Interval          string           `json:"interval"` // MONTHLY, QUARTERLY, HALF_YEARLY, YEARLY
	IsActive          bool             `json:"isActive"`
	MandateReference  string           `json:"mref,omitempty"`
	NextBookingDate   string           `json:"nextBookingDate"`  // YYYY-MM-DD
	NextBookingRange  []string         `json:"nextBookingRange"` // [from, to], YYYY-MM-DD
	Transactions      []TransactionRef `json:"transactions"`
	AdditionalInfo    json.RawMessage  `json:"additionalInfo,omitempty"`
}

// TransactionRef names a transaction.
type TransactionRef struct {
	TransactionID string `json:"transactionId"`
}

// WebhookPayload is the body finoOS sends to a webhook.
// The secret is echoed in plain text; there is no signature.
type WebhookPayload struct {
	WebhookID            string          `json:"webhookID"`
	UserID               string          `json:"userID"`
	CustomUserID         string          `json:"customUserID"`
	TenantID             string          `json:"tenantID"`
	CorrelationID        string          `json:"correlationID"`
	CorrelationTimestamp string          `json:"correlationTimestamp"` // format undocumented; RFC 3339 assumed
	Secret               string          `json:"secret"`
	Event                string          `json:"event"`
	Data                 json.RawMessage `json:"data"`
}
