package fingoal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/finsync/finsync/extract"
)

const provider = "fingoal"

// Stream names.
const (
	StreamEnrichment = "fingoal.enrichment"
	StreamUserTags   = "fingoal.user_tags"
	StreamFinsights  = "fingoal.finsights"
)

// Paths, relative to the base URL (which ends in /v3).
const (
	pathAuth      = "/authentication"
	pathCleanup   = "/cleanup"           // historical, async
	pathStreaming = "/cleanup/streaming" // daily increments, async
	pathSync      = "/cleanup/sync"      // test only, synchronous
	pathUsers     = "/users/"            // + {userId}[/sync]
	pathUserTags  = "/users/tags/"       // + {guid}
	pathFinsights = "/finsights"
)

// Limits the docs give.
const (
	BatchSize         = 1000 // transactions per /cleanup request, about
	SyncMaxUsers      = 4    // /cleanup/sync: users per request
	SyncMaxPerUser    = 16   // /cleanup/sync: transactions per user with several users
	SyncMaxSingleUser = 128  // /cleanup/sync: transactions of a single user
	TokenLifetime     = 86400
)

// AuthRequest is the body of POST /authentication.
type AuthRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// AuthResponse is its answer; expires_in is always 86400.
type AuthResponse struct {
	AccessToken string `json:"access_token"`
	Scope       string `json:"scope"`
	ExpiresIn   int    `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// Transaction is one transaction sent for enrichment (the docs' required
// fields plus accountid). UID, TransactionID and AccountID are opaque
// (assumption 3).
type Transaction struct {
	UID                 string      `json:"uid"`
	AccountID           string      `json:"accountid,omitempty"`
	AmountNum           json.Number `json:"amountnum"` // positive; settlement gives the direction
	Date                string      `json:"date"`      // YYYY-MM-DD
	OriginalDescription string      `json:"original_description"`
	TransactionID       string      `json:"transactionid"`
	AccountType         string      `json:"accountType"`
	Settlement          string      `json:"settlement"` // debit or credit
}

// CleanupRequest is the body of the three cleanup endpoints.
type CleanupRequest struct {
	Transactions []Transaction `json:"transactions"`
}

// CleanupStatus is the answer of /cleanup and /cleanup/streaming.
type CleanupStatus struct {
	Status struct {
		TransactionsReceived     bool   `json:"transactions_received"`
		TransactionsValidated    bool   `json:"transactions_validated"`
		Processing               bool   `json:"processing"`
		NumTransactionsProcessed int    `json:"num_transactions_processing"`
		BatchRequestID           string `json:"batch_request_id"`
	} `json:"status"`
}

// BatchResult is GET /cleanup/{batch_request_id}; items are decoded one by
// one, so a bad one is rejected alone. Extra holds the members finsync does
// not read, for the rows' raw (assumption 13).
type BatchResult struct {
	EnrichedTransactions []json.RawMessage `json:"enrichedTransactions"`
	FailedTransactions   []json.RawMessage `json:"failedTransactions"`
	Extra                json.RawMessage   `json:"-"`
}

// UnmarshalJSON decodes the result and keeps its unknown members in Extra.
func (r *BatchResult) UnmarshalJSON(b []byte) (err error) {
	type plain BatchResult
	r.Extra, err = extract.DecodeWrapper(b, (*plain)(r), extract.MaxWrapperBytes)
	return err
}

// Enriched is one enriched transaction (assumption 5: the docs leave the
// items open).
type Enriched struct {
	UID                 string      `json:"uid"`
	TransactionID       string      `json:"transactionid"`
	AccountID           string      `json:"accountid"`
	AmountNum           json.Number `json:"amountnum"`
	Settlement          string      `json:"settlement"`
	Date                string      `json:"date"`
	OriginalDescription string      `json:"original_description"`
	SimpleDescription   string      `json:"simple_description"`
	MerchantName        string      `json:"merchant_name"`
	Category            string      `json:"category"`
	Subcategory         string      `json:"subcategory"`
	Tags                []string    `json:"tags"`
}

// Failed is one transaction FinGoal could not enrich (assumption 5).
type Failed struct {
	UID           string `json:"uid"`
	TransactionID string `json:"transactionid"`
	Reason        string `json:"reason"`
}

// UserResponse is GET /users/{userId} and /users/{userId}/sync
// (assumption 8).
type UserResponse struct {
	User struct {
		UID  string   `json:"uid"`
		Tags []string `json:"tags"`
	} `json:"user"`
	Transactions []json.RawMessage `json:"transactions"`
}

// TagUpdate is the userTags object of GET /users/tags/{guid} and of the
// user-tags webhook (assumption 9): one user's created and deleted tags.
type TagUpdate struct {
	UID     string   `json:"uid"`
	Created []string `json:"created"`
	Deleted []string `json:"deleted"`
}

// TagsResponse is GET /users/tags/{guid}.
type TagsResponse struct {
	UserTags TagUpdate `json:"userTags"`
}

// FinsightsResponse is GET /finsights; items are decoded one by one. Extra
// holds the members finsync does not read (assumption 13).
type FinsightsResponse struct {
	Finsights []json.RawMessage `json:"finsights"`
	Extra     json.RawMessage   `json:"-"`
}

// UnmarshalJSON decodes the list and keeps its unknown members in Extra.
func (r *FinsightsResponse) UnmarshalJSON(b []byte) (err error) {
	type plain FinsightsResponse
	r.Extra, err = extract.DecodeWrapper(b, (*plain)(r), extract.MaxWrapperBytes)
	return err
}

// Finsight is one savings recommendation with the fields the docs list.
type Finsight struct {
	FinsightID     string `json:"finsight_id"`
	UniqueID       string `json:"uniqueId"`
	UserID         string `json:"user_id"`
	TransactionID  string `json:"transaction_id"`
	InsightCTAURL  string `json:"insight_ctaurl"`
	FinsightImage  string `json:"finsight_image"`
	InsightText    string `json:"insight_text"`
	Recommendation string `json:"recommendation"`
	AmountFound    Amount `json:"amountFound"`
	Category       string `json:"category"`
	FinsightDate   string `json:"finsightDate"`
	Retries        int    `json:"retries"`
	WebhookSent    bool   `json:"webhookSent"`
	WebhookURI     string `json:"webhookUri"`
	LastAttempt    string `json:"lastAttempt"`
}

// Amount is amountFound: the quick start sends a number (10.00), the schema
// says string; both are taken, and so is null or "" (no amount).
type Amount struct {
	Value string // decimal text, "" when absent
}

// UnmarshalJSON accepts a JSON number or a string holding one.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		a.Value = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "$"))
		if s == "" {
			a.Value = ""
			return nil
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return fmt.Errorf("amountFound %q is not a number", s)
		}
		a.Value = s
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("amountFound: %v", err)
	}
	a.Value = n.String()
	return nil
}

// Webhook payloads (one receiver tells them apart by their fields).
type (
	// EnrichmentWebhook says a batch is enriched.
	EnrichmentWebhook struct {
		BatchRequestID string `json:"batch_request_id"`
	}
	// TagStatusWebhook names tag updates to fetch from /users/tags/{guid}.
	TagStatusWebhook struct {
		GUID string `json:"guid"`
	}
	// UserTagsWebhook carries one user's created or deleted tags.
	UserTagsWebhook struct {
		UserTags TagUpdate `json:"userTags"`
	}
	// FinsightsWebhook carries new recommendations (quick start shape);
	// Extra holds the members finsync does not read (assumption 13).
	FinsightsWebhook struct {
		Finsights []json.RawMessage `json:"finsights"`
		Extra     json.RawMessage   `json:"-"`
	}
)

// UnmarshalJSON decodes the webhook and keeps its unknown members in Extra.
func (p *FinsightsWebhook) UnmarshalJSON(b []byte) (err error) {
	type plain FinsightsWebhook
	p.Extra, err = extract.DecodeWrapper(b, (*plain)(p), extract.MaxWrapperBytes)
	return err
}
