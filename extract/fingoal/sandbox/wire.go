package sandbox

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// What the sandbox serves, as FinGoal's docs (and the fingoal package's
// assumptions where they are silent) describe it. These are the sandbox's
// own types: the extractor's may change without changing the fake.

const (
	pathAuth      = "/authentication"
	pathCleanup   = "/cleanup"
	pathStreaming = "/cleanup/streaming"
	pathSync      = "/cleanup/sync"
	pathFinsights = "/finsights"
)

// The documented limits.
const (
	batchSize         = 1000 // transactions per /cleanup or /cleanup/streaming request
	syncMaxUsers      = 4    // users per /cleanup/sync request
	syncMaxPerUser    = 16   // transactions per user of a /cleanup/sync request
	syncMaxSingleUser = 128  // transactions of a /cleanup/sync request for one user
	tokenLifetime     = 86400
	// tagUpdateLifetime is how long FinGoal serves /users/tags/{guid}.
	tagUpdateLifetime = 24 * time.Hour
)

// signatureHeader carries FinGoal's webhook signature.
const signatureHeader = "X-Webhook-Verification"

// authRequest is the body of POST /authentication.
type authRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// authResponse is its answer.
type authResponse struct {
	AccessToken string `json:"access_token"`
	Scope       string `json:"scope"`
	ExpiresIn   int    `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// Transaction is one transaction sent for enrichment: the docs' required
// fields plus accountid.
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

// cleanupRequest is the body of the three cleanup endpoints.
type cleanupRequest struct {
	Transactions []Transaction `json:"transactions"`
}

// cleanupStatus is the answer of /cleanup and /cleanup/streaming.
type cleanupStatus struct {
	Status struct {
		TransactionsReceived     bool   `json:"transactions_received"`
		TransactionsValidated    bool   `json:"transactions_validated"`
		Processing               bool   `json:"processing"`
		NumTransactionsProcessed int    `json:"num_transactions_processing"`
		BatchRequestID           string `json:"batch_request_id"`
	} `json:"status"`
}

// Enriched is one transaction as the sandbox enriches it.
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

// failure is one transaction the sandbox could not enrich.
type failure struct {
	UID           string `json:"uid"`
	TransactionID string `json:"transactionid"`
	Reason        string `json:"reason"`
}

// userResponse is GET /users/{userId} and /users/{userId}/sync.
type userResponse struct {
	User struct {
		UID  string   `json:"uid"`
		Tags []string `json:"tags"`
	} `json:"user"`
	Transactions []json.RawMessage `json:"transactions"`
}

// userTags is the userTags object of GET /users/tags/{guid} and of the
// user-tags webhook: one user's created and deleted tags.
type userTags struct {
	UID     string   `json:"uid"`
	Created []string `json:"created"`
	Deleted []string `json:"deleted"`
}

// tagsResponse is GET /users/tags/{guid}.
type tagsResponse struct {
	UserTags userTags `json:"userTags"`
}

// The webhooks: a batch is enriched; tag updates to fetch from
// /users/tags/{guid}; one user's created or deleted tags.
type (
	enrichmentWebhook struct {
		BatchRequestID string `json:"batch_request_id"`
	}
	tagStatusWebhook struct {
		GUID string `json:"guid"`
	}
	userTagsWebhook struct {
		UserTags userTags `json:"userTags"`
	}
)

// sign is FinGoal's signature of body: hex HMAC-SHA256 keyed with the
// client secret.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// newID is a random UUID-shaped id.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
