package sandbox

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// What the sandbox serves, as finoOS's docs (and the fino package's
// assumptions where they are silent) describe it. These are the sandbox's
// own types: the extractor's may change without changing the fake.

// list is a JSON array of items; an empty list is [].
type list[T any] struct {
	Items []T
}

// MarshalJSON encodes the items; an empty list is [].
func (l list[T]) MarshalJSON() ([]byte, error) {
	if l.Items == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(l.Items)
}

// timespan is an observed period. Company modules send from/to, the adult
// check since/until (the fino package's assumption 37).
type timespan struct {
	From, To   string // YYYY-MM-DD
	SinceUntil bool   // the adult check's spelling
}

// MarshalJSON writes the spelling of the module that sends it.
func (t timespan) MarshalJSON() ([]byte, error) {
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

// Person income and spending (the fino package's assumption 38): the endpoint answers one
// member per booked module, named as the scope's last part in camel case
// (salary, childBenefit, creditCard, ...), next to observedTimespan.
type personModule struct {
	Available       bool                `json:"available"`
	Average         json.Number         `json:"average,omitempty"`
	Median          json.Number         `json:"median,omitempty"`
	MonthlyOverview list[monthlyAmount] `json:"monthlyOverview"`
}

// monthlyAmount is one month of a person module: the signed sum (income
// positive, spending negative), the count and the transactions.
type monthlyAmount struct {
	Month          string      `json:"month"` // YYYY-MM
	Amount         json.Number `json:"amount,omitempty"`
	Count          json.Number `json:"count,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// PersonRisk modules (the fino package's assumption 39) share MonthlyAmount; the overdraft
// module lists its days.
type overdraftModule struct {
	MonthlyOverview list[overdraftMonth] `json:"monthlyOverview"`
}

// overdraftMonth is one month of overdraft days (end-of-day balance below 0).
type overdraftMonth struct {
	Month string          `json:"month"`
	Days  json.Number     `json:"days,omitempty"`
	Items list[dayAmount] `json:"overdrafts"`
}

// dayAmount is an amount on one day.
type dayAmount struct {
	Date           string      `json:"date"` // YYYY-MM-DD
	Amount         json.Number `json:"amount,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// HouseholdBudget (the fino package's assumption 40): monthly averages over the complete
// months observed; balance = income.total + spending.total (spending is
// negative).
type householdBudget struct {
	ObservedTimespan *timespan              `json:"observedTimespan,omitempty"`
	Income           map[string]json.Number `json:"income"`
	Spending         map[string]json.Number `json:"spending"`
	Balance          json.Number            `json:"balance,omitempty"`
}

// AdultCheck (the fino package's assumption 41).
type adultCheck struct {
	Decision         string          `json:"decision"` // ADULT, NOT_ADULT, UNKNOWN
	Indicators       list[indicator] `json:"indicators"`
	ObservedTimespan *timespan       `json:"observedTimespan,omitempty"`
}

// indicator is one adult-check indicator with its strength.
type indicator struct {
	Indicator      string   `json:"indicator"` // e.g. STABLE_FULL_TIME_INCOME
	Strength       string   `json:"strength"`  // VERY_STRONG, STRONG, MEDIUM, NEGATIVE
	TransactionIDs []string `json:"transactionIDs,omitempty"`
}

// LivingSituation (the fino package's assumption 42): four parts of one shape.
type livingSituation struct {
	ObservedTimespan *timespan   `json:"observedTimespan,omitempty"`
	Children         *livingPart `json:"children,omitempty"`
	MotorVehicle     *livingPart `json:"motorVehicle,omitempty"`
	Property         *livingPart `json:"property,omitempty"`
	HousingRent      *livingPart `json:"housingRent,omitempty"`
}

// LivingPart says whether a part was detected and its monthly amount.
type livingPart struct {
	Detected       *bool       `json:"detected,omitempty"`
	MonthlyAmount  json.Number `json:"monthlyAmount,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// sum is an amount with its count and transactions (the fino package's assumption 43: the docs
// say "sum, count, and transaction IDs").
type sum struct {
	Sum            json.Number `json:"sum,omitempty"`
	Count          json.Number `json:"count,omitempty"`
	TransactionIDs []string    `json:"transactionIDs,omitempty"`
}

// flowOverview is the company modules' overview: incomings, outgoings and
// totals.
type flowOverview struct {
	Incomings              *sum        `json:"incomings,omitempty"`
	Outgoings              *sum        `json:"outgoings,omitempty"`
	TotalTransactionAmount json.Number `json:"totalTransactionAmount,omitempty"`
	TotalTransactionCount  json.Number `json:"totalTransactionCount,omitempty"`
}

// flowMonth is a FlowOverview of one month.
type flowMonth struct {
	Month string `json:"month"`
	flowOverview
}

// cashTransactions is company-cash (/cash-transactions, alias /cashflow).
type cashTransactions struct {
	Overview         *flowOverview   `json:"overview,omitempty"`
	MonthlyOverview  list[flowMonth] `json:"monthlyOverview"`
	ObservedTimespan *timespan       `json:"observedTimespan,omitempty"`
}

// accountInfo is the "basic account information" of company modules.
type accountInfo struct {
	AccountID string      `json:"accountId"`
	IBAN      string      `json:"iban,omitempty"`
	Type      accountType `json:"type,omitempty"`
	Currency  string      `json:"currency,omitempty"`
}

// liquidity is company-liquidity.
type liquidity struct {
	Overview         *flowOverview          `json:"overview,omitempty"`
	AccountLiquidity list[accountLiquidity] `json:"accountLiquidity"`
	ObservedTimespan *timespan              `json:"observedTimespan,omitempty"`
}

// accountLiquidity is one account's liquidity.
type accountLiquidity struct {
	Account         accountInfo          `json:"account"`
	Overview        *flowOverview        `json:"overview,omitempty"`
	MonthlyOverview list[liquidityMonth] `json:"monthlyOverview"`
}

// liquidityMonth is one month of an account: balances and flows.
type liquidityMonth struct {
	flowMonth
	EndOfMonthBalance json.Number `json:"endOfMonthBalance,omitempty"`
	MinBalance        json.Number `json:"minBalance,omitempty"`
	MaxBalance        json.Number `json:"maxBalance,omitempty"`
}

// foreignPayments is company-foreign-payment.
type foreignPayments struct {
	Overview         *flowOverview       `json:"overview,omitempty"`
	ByState          list[statePayments] `json:"byState"`
	ObservedTimespan *timespan           `json:"observedTimespan,omitempty"`
}

// statePayments are the payments with one country.
type statePayments struct {
	Code      string `json:"code"` // ISO 3166-1 alpha-2
	Incomings *sum   `json:"incomings,omitempty"`
	Outgoings *sum   `json:"outgoings,omitempty"`
}

// companyRisk is company-risk.
type companyRisk struct {
	AccountRisks     list[accountRisk] `json:"accountRisks"`
	ObservedTimespan *timespan         `json:"observedTimespan,omitempty"`
}

// accountRisk is one account's risk months.
type accountRisk struct {
	Account         accountInfo     `json:"account"`
	MonthlyOverview list[riskMonth] `json:"monthlyOverview"`
}

// riskMonth is one month of company risk.
type riskMonth struct {
	Month         string      `json:"month"`
	BackDebit     *sum        `json:"backDebit,omitempty"` // count and transactionIDs
	Garnishment   *sum        `json:"garnishment,omitempty"`
	OverdraftDays json.Number `json:"overdraftDays,omitempty"`
}

// categoryBreakdown is the shared shape of company credits, insurances,
// investments and internal bookings.
type categoryBreakdown struct {
	Available        *bool                `json:"available,omitempty"`
	Current          json.Number          `json:"current,omitempty"`
	Median           json.Number          `json:"median,omitempty"`
	Average          json.Number          `json:"average,omitempty"`
	MonthlyOverview  list[breakdownMonth] `json:"monthlyOverview"`
	ContractSummary  []json.RawMessage    `json:"contractSummary,omitempty"`
	ObservedTimespan *timespan            `json:"observedTimespan,omitempty"`
}

// breakdownMonth is one month of a category breakdown.
type breakdownMonth struct {
	Month                      string      `json:"month"`
	Amount                     json.Number `json:"amount,omitempty"`
	RecurringAmount            json.Number `json:"recurringAmount,omitempty"`
	NonRecurringAmount         json.Number `json:"nonRecurringAmount,omitempty"`
	RecurringTransactionIDs    []string    `json:"recurringTransactionIDs,omitempty"`
	NonRecurringTransactionIDs []string    `json:"nonRecurringTransactionIDs,omitempty"`
}

// staff is company-staff.
type staff struct {
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
	ObservedTimespan *timespan `json:"observedTimespan,omitempty"`
}

// customerSupplier is company-customer-supplier.
type customerSupplier struct {
	Customers        partnerList `json:"customers"`
	Suppliers        partnerList `json:"suppliers"`
	ObservedTimespan *timespan   `json:"observedTimespan,omitempty"`
}

// PartnerList ranks payment partners.
type partnerList struct {
	PartnerList list[partner] `json:"partnerList"`
}

// partner is one ranked payment partner.
type partner struct {
	PaymentPartner PaymentPartner `json:"paymentPartner"`
	Ranking        struct {
		Rank            json.Number `json:"rank,omitempty"`
		RevenueRank     json.Number `json:"revenueRank,omitempty"`
		RevenueScore    json.Number `json:"revenueScore,omitempty"`
		OccurrenceRank  json.Number `json:"occurrenceRank,omitempty"`
		OccurrenceScore json.Number `json:"occurrenceScore,omitempty"`
	} `json:"ranking"`
	Total           sum            `json:"total"`
	MonthlyOverview list[sumMonth] `json:"monthlyOverview"`
	PaymentTimespan *timespan      `json:"paymentTimespan,omitempty"`
}

// sumMonth is a Sum of one month.
type sumMonth struct {
	Month string `json:"month"`
	sum
}

// topCategories is company-top-category.
type topCategories struct {
	Categories       list[topCategory] `json:"categories"`
	ObservedTimespan *timespan         `json:"observedTimespan,omitempty"`
}

// topCategory is one category's monthly and daily amounts.
type topCategory struct {
	Category        string                 `json:"category"`
	PaymentType     string                 `json:"paymentType"` // earning, spending
	MonthlyOverview list[topCategoryMonth] `json:"monthlyOverview"`
}

// topCategoryMonth is one month of a top category, with its days.
type topCategoryMonth struct {
	Month         string          `json:"month"`
	Amount        json.Number     `json:"amount,omitempty"`
	DailyOverview list[dayAmount] `json:"dailyOverview"`
}

// cockpit is the person or company cockpit as JSON (the fino package's
// assumption 46): the sections a tenant configured, keyed by module, each
// in its module's shape.
type cockpit struct {
	CockpitID        string                     `json:"cockpitId"`
	Type             string                     `json:"type"` // person, company
	CreatedAt        string                     `json:"createdAt"`
	ObservedTimespan *timespan                  `json:"observedTimespan,omitempty"`
	Sections         map[string]json.RawMessage `json:"sections"`
}

func boolPtr(b bool) *bool { return &b }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const (
	pathAuth  = "/api/auth"
	pathUsers = "/api/users"
)

// Suffixes of /api/users/{user-id}.
const (
	suffixTriggerAnalysis = "/trigger-analysis"
	suffixCategorization  = "/categorization"
	suffixCorrelation     = "/categorization/correlation"
	suffixAccountDetect   = "/account-detection"
	suffixAccountHistory  = "/account-history"
	suffixContracts       = "/contracts"
)

// pathSyncStatus is Get Synchronization Status Paginated (the fino package's assumption 49).
const (
	pathSyncStatus          = "/api/banking/synchronization-status"
	headerTenant            = "TenantID"
	headerCorrelationID     = "Finoos-Correlation-Id"
	headerRequestID         = "X-Request-Id"
	headerWebhookTenant     = "FinoOS-Tenant-ID"
	paramCorrelationID      = "correlationId"
	paramPage               = "page"
	paramSize               = "size"
	paramFrom               = "from"
	paramTo                 = "to"
	paramIncludeTransaction = "includeTransaction"
	paramLocale             = "locale"
)

// DefaultPageSize and MaxPageSize bound the categorization page size.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// tokenBody is the response of POST /api/auth.
type tokenBody struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"` // seconds
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	SessionState string `json:"session_state"`
}

// user is both the body of POST /api/users and its response.
type user struct {
	UserID            string `json:"userId,omitempty"`
	Type              string `json:"type,omitempty"`              // "person" or "company"
	AutomaticAnalysis string `json:"automaticAnalysis,omitempty"` // "active" (default) or "suspended"
	ExpiresIn         string `json:"expiresIn,omitempty"`         // ISO-8601 duration, e.g. "P7D"
	CustomUserID      string `json:"customUserID,omitempty"`
}

// apiError is the documented error body: {"type":"forbidden","message":"..."}.
type apiError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// correlationStatus is the sandbox's 200 body of the correlation endpoint.
// The docs define only the status codes; clients must rely on those alone.
type correlationStatus struct {
	CorrelationID string `json:"correlationID"`
	UserID        string `json:"userID"`
	Status        string `json:"status"`
}

// categorization is one categorized transaction.
type categorization struct {
	AccountID      string       `json:"accountId"`
	TransactionID  string       `json:"transactionId"`
	CreationDate   time.Time    `json:"creationDate"` // RFC 3339 with offset
	DescriptiveTag string       `json:"descriptiveTag"`
	LocalizedTag   string       `json:"localizedTag,omitempty"` // only when a locale is requested
	Tags           []string     `json:"tags"`
	Transaction    *transaction `json:"transaction,omitempty"` // only with includeTransaction=true
}

// syncStatus is one bank login's synchronization status (Consent
// Management: "status", "active", "lastSynchronization", "bankLoginId",
// "userId"); SyncStatusPage is a page of them (the fino package's assumption 49).
type syncStatus struct {
	BankLoginID         string    `json:"bankLoginId"`
	UserID              string    `json:"userId"`
	Status              string    `json:"status"` // OK, SCA_REQUIRED, SYNC_FAILED
	Active              bool      `json:"active"`
	LastSynchronization time.Time `json:"lastSynchronization"`
}

type syncStatusPage struct {
	SynchronizationStatuses []syncStatus `json:"synchronizationStatuses"`
	Page                    int          `json:"page"`
	Size                    int          `json:"size"`
	TotalPages              int          `json:"totalPages"`
	TotalElements           int          `json:"totalElements"`
}

// transaction is a raw bank transaction (the manual-upload model); its
// amount is decimal text.
type transaction struct {
	TransactionID        string          `json:"transactionId"`
	Amount               json.Number     `json:"amount"` // negative = money out
	Currency             string          `json:"currency,omitempty"`
	BookingDate          timestamp       `json:"bookingDate"`
	ValueDate            timestamp       `json:"valueDate,omitzero"`
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

// timestamp is a bookingDate or valueDate as sent: Unix seconds, the JSON
// number the docs name, or RFC 3339 text with an offset, a JSON string
// (the fino package's assumption 22). Its day is that of the offset it was written in.
type timestamp struct {
	Unix int64  // the number; 0 when absent or sent as text
	Text string // the text; "" when absent or sent as a number
}

// IsZero reports an absent timestamp (or the number 0).
func (t timestamp) IsZero() bool { return t.Unix == 0 && t.Text == "" }

// MarshalJSON writes text as a string, else the number.
func (t timestamp) MarshalJSON() ([]byte, error) {
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

// accountType is the documented enumeration of account kinds.
type accountType string

const (
	accountGiro        accountType = "GIRO"
	accountKreditKarte accountType = "KREDIT_KARTE"
	accountTagesgeld   accountType = "TAGESGELD"
)

// bankAccount is a bank account with every documented field.
type bankAccount struct {
	AccountID     string      `json:"accountId"`
	AccountNumber string      `json:"accountNumber,omitempty"`
	Balance       json.Number `json:"balance,omitempty"`
	BankCode      string      `json:"bankCode,omitempty"`
	BankName      string      `json:"bankName,omitempty"`
	BIC           string      `json:"bic,omitempty"`
	Overdraft     *overdraft  `json:"overdraft,omitempty"`
	Currency      string      `json:"currency,omitempty"`
	IBAN          string      `json:"iban,omitempty"`
	Name          string      `json:"name,omitempty"`
	Owner         string      `json:"owner,omitempty"`
	Type          accountType `json:"type"`
}

// overdraft is the agreed overdraft of an account.
type overdraft struct {
	Amount    json.Number `json:"amount,omitempty"`
	Available bool        `json:"available"`
}

// accountDetection is the response of the account-detection module.
type accountDetection struct {
	AccountsOverview struct {
		AccountsView []detectedAccount `json:"accountsView"`
		CreditsView  []detectedAccount `json:"creditsView"`
	} `json:"accountsOverview"`
}

// detectedAccount is an account of the user, connected or found by analysis.
// The docs' example puts creditorId at the account in creditsView but inside
// additionalAnalysesInfo in accountsView, so both places are read.
type detectedAccount struct {
	bankAccount
	AdditionalAnalysesInfo *additionalAnalysesInfo `json:"additionalAnalysesInfo,omitempty"`
	CreditorID             string                  `json:"creditorId,omitempty"`
}

// AdditionalAnalysesInfo tells how an account was found and what it shows.
type additionalAnalysesInfo struct {
	IsUserAdded    bool            `json:"isUserAdded"`
	AnalysisPeriod *analysisPeriod `json:"analysisPeriod,omitempty"`
	Analysis       *accountStats   `json:"analysis,omitempty"`
	CreditorID     *string         `json:"creditorId,omitempty"`
}

// analysisPeriod is the observed time span of an account analysis.
type analysisPeriod struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// accountStats are the payment statistics of an account.
type accountStats struct {
	Median          json.Number    `json:"median,omitempty"`
	Average         json.Number    `json:"average,omitempty"`
	MedianEarning   json.Number    `json:"medianEarning,omitempty"`
	MedianSpending  json.Number    `json:"medianSpending,omitempty"`
	AverageEarning  json.Number    `json:"averageEarning,omitempty"`
	AverageSpending json.Number    `json:"averageSpending,omitempty"`
	Spending        *spendingStats `json:"spending,omitempty"`
}

// spendingStats are the payments that revealed a detected account.
type spendingStats struct {
	Median         json.Number `json:"median,omitempty"`
	Average        json.Number `json:"average,omitempty"`
	TransactionIDs []string    `json:"transactionIDs"`
}

// AccountRef names an account.
type accountRef struct {
	AccountID string `json:"accountId"`
}

// dailyBalance is an account's end-of-day balance.
type dailyBalance struct {
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

// webhookPayload is the body finoOS sends to a webhook.
// The secret is echoed in plain text; there is no signature.
type webhookPayload struct {
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

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
