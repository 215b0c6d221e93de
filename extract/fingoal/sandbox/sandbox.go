package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/finsync/finsync/extract/fingoal/stringify"
	"maps"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// Options configure a Server. Zero fields take the defaults named.
type Options struct {
	ClientID, ClientSecret string // default sandbox-client / sandbox-secret
	// ResultDelay is how long after its submission a batch is enriched
	// (GET /cleanup/{id} answers 404 until then); negative: only when
	// Finish is called. Default 0: at once.
	ResultDelay time.Duration
	TokenTTL    time.Duration // default 86,400 s
	// WebhookURL receives every webhook, signed with the client secret
	// over JSON.stringify(JSON.parse(body)) as FinGoal signs (stringify.Canonical of
	// the bytes sent, which are indented); "" sends none.
	WebhookURL string
	Now        func() time.Time // the sandbox's clock; default time.Now
	// Faults are the fault knobs. Here HugeField adds to each finsights
	// list a copy of its first finsight (finsight_id suffixed "-huge")
	// with a "note" of that many bytes, and gives the first enriched
	// transaction of each batch enriched meanwhile such a note; the other
	// hostile-page knobs are not used.
	Faults sandboxkit.Knobs
	// RespellWebhooks sends webhook bodies spelled unlike JSON.stringify,
	// as a sender with another JSON encoder might: fractions with a
	// trailing zero or in exponent form (12.40 as 12.400 or 1240e-2),
	// exponents as E+, and "/", "-" and non-ASCII escaped (\/, \u002D,
	// \u00E9). The signature stays over stringify.Canonical of the body, so a
	// receiver must verify that form. Integers stay as they are: the
	// receiver decodes retries into a Go int, which takes no 0.0 or 0e0.
	RespellWebhooks bool
	// ExtraFields adds members the docs do not name, as a newer FinGoal
	// might: on each record (an enriched transaction's and a finsight's
	// "merchant_logo") and beside the records in their wrapper (a batch
	// result's "processed_at" and "batch_summary", a finsights list's and
	// webhook's "generated_at" and "model"). The extractor must keep all
	// of them in raw (the fingoal package's assumption 13).
	ExtraFields bool
}

// Server is a fake FinGoal Insights API 3.1.2 under /v3: authentication,
// the three cleanup endpoints, batch results, users and their tags, tag
// updates, finsights, and signed webhooks. Enrichment is deterministic
// (merchant and category from keywords of the description); tags are
// computed from the last 90 days of enriched transactions twice a day (at
// 00:00 and 12:00 UTC) or on /users/{id}/sync.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	faults *sandboxkit.Injector
	tokens *sandboxkit.Tokens[struct{}]
	guard  *sandboxkit.Guard[struct{}]
	run    *sandboxkit.Runner
	hooks  sandboxkit.Delivery

	mu        sync.Mutex
	batches   map[string]*batch
	order     []string
	received  map[string]int // transactionid → times accepted by /cleanup or /cleanup/streaming
	syncCalls int
	enriched  map[string][]enrichedAt // uid → its enriched transactions
	tags      map[string][]string     // uid → tags last published
	tagged    time.Time               // the last scheduled tagging run
	updates   map[string]tagUpdate    // guid → update
	finsights []finsightAt
	webhooks  int
}

type batch struct {
	id      string
	txs     []Transaction
	created time.Time
	ready   bool
	body    []byte
}

type enrichedAt struct {
	e  Enriched
	at time.Time
}

type tagUpdate struct {
	u  userTags
	at time.Time
}

type finsightAt struct {
	f  map[string]any
	at time.Time
}

// New returns a sandbox; Close stops its webhooks.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID, opts.ClientSecret = "sandbox-client", "sandbox-secret"
	}
	opts.TokenTTL = sandboxkit.OrPositive(opts.TokenTTL, tokenLifetime*time.Second)
	opts.Now = sandboxkit.OrNow(opts.Now)
	s := &Server{opts: opts, mux: http.NewServeMux(), faults: sandboxkit.NewInjector(opts.Faults), run: sandboxkit.NewRunner(),
		hooks: sandboxkit.Delivery{Client: &http.Client{Timeout: 10 * time.Second}, Attempts: 3,
			Delay: func(attempt int) time.Duration { return time.Duration(attempt) * 200 * time.Millisecond }},
		batches: map[string]*batch{}, received: map[string]int{},
		enriched: map[string][]enrichedAt{}, tags: map[string][]string{}, updates: map[string]tagUpdate{}}
	// Tokens do not expire here but by the TokenExpiry fault (or
	// ExpireTokens); every refusal reads the same.
	s.tokens = sandboxkit.NewTokens[struct{}](opts.Now, s.faults)
	s.guard = &sandboxkit.Guard[struct{}]{Faults: s.faults, Tokens: s.tokens, Error: writeError, BareTokens: true,
		Refusal: func(sandboxkit.TokenStatus) string { return "Unauthorized" }}
	authorized := func(h sandboxkit.Handler) http.HandlerFunc {
		return s.guard.Authorized(func(w http.ResponseWriter, r *http.Request, _ struct{}, d sandboxkit.Draw) { h(w, r, d) })
	}
	s.mux.HandleFunc("POST /v3"+pathAuth, s.guard.Open(s.auth))
	s.mux.HandleFunc("POST /v3"+pathCleanup, authorized(s.submit))
	s.mux.HandleFunc("POST /v3"+pathStreaming, authorized(s.submit))
	s.mux.HandleFunc("POST /v3"+pathSync, authorized(s.sync))
	s.mux.HandleFunc("GET /v3"+pathCleanup+"/{id}", authorized(s.result))
	s.mux.HandleFunc("GET /v3/users/{uid}", authorized(s.user))
	s.mux.HandleFunc("GET /v3/users/{a}/{b}", authorized(s.userSub))
	s.mux.HandleFunc("GET /v3"+pathFinsights, authorized(s.listFinsights))
	s.mux.HandleFunc("/", sandboxkit.NotFound(writeError))
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops pending webhooks and timers and waits for them.
func (s *Server) Close() { s.run.Close() }

// Credentials are the sandbox's client id and secret.
func (s *Server) Credentials() (id, secret string) { return s.opts.ClientID, s.opts.ClientSecret }

// Received counts, per transactionid, how often /cleanup or
// /cleanup/streaming accepted it.
func (s *Server) Received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.received))
	for k, v := range s.received {
		out[k] = v
	}
	return out
}

// Batches lists the batch_request_ids created, oldest first.
func (s *Server) Batches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.order...)
}

// Webhooks counts the webhooks delivered with a 2xx.
func (s *Server) Webhooks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhooks
}

// ExpireTokens ends every token issued so far, as FinGoal may end a token
// early: the next call with one gets 401.
func (s *Server) ExpireTokens() { s.tokens.ExpireAll() }

// Injected counts the faults injected so far.
func (s *Server) Injected() sandboxkit.Counts { return s.faults.Counts() }

// SetFaults changes the fault knobs from the next request on.
func (s *Server) SetFaults(k sandboxkit.Knobs) { s.faults.Set(k) }

// Finish enriches batch id now and sends its webhook.
func (s *Server) Finish(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return fmt.Errorf("fingoal sandbox: no batch %q", id)
	}
	s.finish(b)
	return nil
}

// Tag runs FinGoal's tagging now, as its twice-daily run does, for every
// user with enriched transactions: changed tags become tag updates (a guid
// kept 24 hours), each announced by the tag-status and user-tags webhooks.
func (s *Server) Tag() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	uids := make([]string, 0, len(s.enriched))
	for uid := range s.enriched {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		s.retag(uid, now)
	}
}

// SetTags replaces the tags FinGoal serves for a user, announcing nothing
// (as when its tagging changes them and the webhooks are lost), and counts
// as this half day's tagging run, which then does not overwrite them.
func (s *Server) SetTags(uid string, tags []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags[uid] = append([]string{}, tags...)
	if due := s.opts.Now().UTC().Truncate(12 * time.Hour); due.After(s.tagged) {
		s.tagged = due
	}
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	var req authRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON {client_id, client_secret}")
		return
	}
	if req.ClientID != s.opts.ClientID || req.ClientSecret != s.opts.ClientSecret {
		writeError(w, http.StatusUnauthorized, "invalid client credentials")
		return
	}
	tok := "eyJ" + newID()
	s.tokens.Issue(tok, struct{}{}, 0)
	s.faults.Reply(w, d, http.StatusOK, authResponse{AccessToken: tok, Scope: "read:transactions write:transactions read:users read:finsights",
		ExpiresIn: int(s.opts.TokenTTL / time.Second), TokenType: "Bearer"})
}

var day = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// validate checks the required fields; it returns the docs' array of errors.
func validate(txs []Transaction) []map[string]any {
	var errs []map[string]any
	bad := func(i int, field, msg string) {
		errs = append(errs, map[string]any{"index": i, "field": field, "message": msg})
	}
	for i, t := range txs {
		if t.UID == "" {
			bad(i, "uid", "required")
		}
		if t.TransactionID == "" {
			bad(i, "transactionid", "required")
		}
		if f, err := strconv.ParseFloat(t.AmountNum.String(), 64); err != nil || f < 0 {
			bad(i, "amountnum", "must be a non-negative number")
		}
		if !day.MatchString(t.Date) {
			bad(i, "date", "must be YYYY-MM-DD")
		}
		if t.AccountType == "" {
			bad(i, "accountType", "required")
		}
		if t.Settlement != "debit" && t.Settlement != "credit" {
			bad(i, "settlement", "must be debit or credit")
		}
	}
	return errs
}

func decodeCleanup(w http.ResponseWriter, r *http.Request) ([]Transaction, bool) {
	var req cleanupRequest
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil || req.Transactions == nil {
		sandboxkit.EncodeJSON(w, http.StatusBadRequest, []map[string]any{{"field": "transactions", "message": "must be an array"}})
		return nil, false
	}
	if errs := validate(req.Transactions); len(errs) > 0 {
		sandboxkit.EncodeJSON(w, http.StatusBadRequest, errs)
		return nil, false
	}
	return req.Transactions, true
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	txs, ok := decodeCleanup(w, r)
	if !ok {
		return
	}
	if len(txs) > batchSize {
		sandboxkit.EncodeJSON(w, http.StatusBadRequest, []map[string]any{{"field": "transactions", "message": fmt.Sprintf("at most %d transactions per request", batchSize)}})
		return
	}
	now := s.opts.Now()
	b := &batch{id: newID(), txs: txs, created: now}
	s.mu.Lock()
	s.batches[b.id] = b
	s.order = append(s.order, b.id)
	for _, t := range txs {
		s.received[t.TransactionID]++
	}
	if s.opts.ResultDelay == 0 {
		s.finish(b)
	}
	s.mu.Unlock()
	if s.opts.ResultDelay > 0 {
		s.run.After(s.opts.ResultDelay, func() { s.Finish(b.id) })
	}
	var resp cleanupStatus
	resp.Status.TransactionsReceived, resp.Status.TransactionsValidated, resp.Status.Processing = true, true, true
	resp.Status.NumTransactionsProcessed, resp.Status.BatchRequestID = len(txs), b.id
	body, _ := json.Marshal(resp)
	s.faults.WriteBody(w, d, body)
}

// sync is the test endpoint: at most 4 users, 16 transactions per user
// (128 for a single user), enriched at once.
func (s *Server) sync(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	txs, ok := decodeCleanup(w, r)
	if !ok {
		return
	}
	perUser := map[string]int{}
	for _, t := range txs {
		perUser[t.UID]++
	}
	limit := syncMaxPerUser
	if len(perUser) == 1 {
		limit = syncMaxSingleUser
	}
	if len(perUser) > syncMaxUsers {
		sandboxkit.EncodeJSON(w, http.StatusBadRequest, []map[string]any{{"field": "uid", "message": fmt.Sprintf("at most %d users per request", syncMaxUsers)}})
		return
	}
	for uid, n := range perUser {
		if n > limit {
			sandboxkit.EncodeJSON(w, http.StatusBadRequest, []map[string]any{{"field": "transactions", "message": fmt.Sprintf("user %s: %d transactions, at most %d", uid, n, limit)}})
			return
		}
	}
	s.mu.Lock()
	s.syncCalls++
	enriched, failed := s.enrich("sync", txs, s.opts.Now())
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"enrichedTransactions": enriched, "failedTransactions": failed})
	s.faults.WriteBody(w, d, body)
}

func (s *Server) result(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	s.mu.Lock()
	b, ok := s.batches[r.PathValue("id")]
	ready := ok && b.ready
	var body []byte
	if ready {
		body = b.body
	}
	s.mu.Unlock()
	if !ready {
		writeError(w, http.StatusNotFound, "No transactions found")
		return
	}
	s.faults.WriteBody(w, d, body)
}

// finish enriches a batch and queues its webhooks; s.mu is held.
func (s *Server) finish(b *batch) {
	if b.ready {
		return
	}
	b.ready = true
	now := s.opts.Now()
	enriched, failed := s.enrich(b.id, b.txs, now)
	items := make([]json.RawMessage, len(enriched))
	for i, e := range enriched {
		raw, _ := json.Marshal(e)
		if s.faults.Malformed(e.TransactionID) {
			raw = []byte(fmt.Sprintf(`{"uid":%q,"transactionid":%q,"tags":"unavailable"}`, e.UID, e.TransactionID))
		} else if s.opts.ExtraFields {
			var m map[string]any
			json.Unmarshal(raw, &m)
			raw, _ = json.Marshal(s.extra(m, "merchant_logo", logoOf(e.MerchantName)))
		}
		if n := s.faults.Knobs().HugeField; n > 0 && i == 0 {
			raw = append(raw[:len(raw)-1], `,"note":"`...)
			raw = append(append(raw, strings.Repeat("x", int(n))...), `"}`...)
		}
		items[i] = raw
	}
	result := map[string]any{"enrichedTransactions": items, "failedTransactions": failed}
	b.body, _ = json.Marshal(s.extra(result, "processed_at", now.UTC().Format(time.RFC3339),
		"batch_summary", map[string]int{"enriched": len(enriched), "failed": len(failed)}))
	s.webhook(enrichmentWebhook{BatchRequestID: b.id})
	var recs []map[string]any
	for _, e := range enriched {
		if f := finsightFor(s.opts.ClientID, e, now); f != nil {
			f = s.extra(f, "merchant_logo", logoOf(e.MerchantName))
			s.finsights = append(s.finsights, finsightAt{f: f, at: now})
			recs = append(recs, f)
		}
	}
	if len(recs) > 0 {
		s.webhook(s.extra(map[string]any{"finsights": recs}, "generated_at", now.UTC().Format(time.RFC3339), "model", "finsights-2"))
	}
}

// extra adds the members key, value, ... to m when ExtraFields is on.
func (s *Server) extra(m map[string]any, kv ...any) map[string]any {
	if s.opts.ExtraFields {
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

func logoOf(merchant string) string {
	if merchant == "" {
		merchant = "none"
	}
	return "https://logos.fingoal.invalid/" + strings.ToLower(strings.ReplaceAll(merchant, " ", "-")) + ".png"
}

// rule maps a keyword of the description to a merchant and category.
type rule struct {
	keyword, merchant, category, subcategory, tag string
}

var rules = []rule{
	{"REWE", "REWE", "Groceries", "Supermarkets", "groceries"},
	{"EDEKA", "EDEKA", "Groceries", "Supermarkets", "groceries"},
	{"ALDI", "ALDI", "Groceries", "Discount Stores", "groceries"},
	{"LIDL", "Lidl", "Groceries", "Discount Stores", "groceries"},
	{"BAECKEREI", "Baeckerei Mueller", "Groceries", "Bakeries", "groceries"},
	{"WOCHENMARKT", "Wochenmarkt", "Groceries", "Markets", "groceries"},
	{"TARGET", "Target", "Shopping", "General Merchandise", "retail"},
	{"AMAZON", "Amazon", "Shopping", "Online", "online_shopping"},
	{"VERSANDHAUS", "Versandhaus Online", "Shopping", "Online", "online_shopping"},
	{"ELEKTRO", "Elektro Shop24", "Shopping", "Electronics", "online_shopping"},
	{"TRATTORIA", "Trattoria Da Mario", "Restaurants", "Italian", "dining"},
	{"BURGER", "Burger Werk", "Restaurants", "Fast Food", "dining"},
	{"CAFE", "Cafe Central", "Coffee Shops", "Cafes", "dining"},
	{"STARBUCKS", "Starbucks", "Coffee Shops", "Cafes", "dining"},
	{"TANKSTELLE", "Tankstelle Nord", "Gas", "Fuel", "fuel"},
	{"AUTOHOF", "Autohof Sued", "Gas", "Fuel", "fuel"},
	{"DROGERIE", "Drogeriemarkt Fuchs", "Health", "Drugstores", "health"},
	{"APOTHEKE", "Apotheke am Markt", "Health", "Pharmacies", "health"},
	{"GELDAUTOMAT", "", "ATM", "Cash Withdrawal", "cash"},
	{"MIETE", "", "Rent", "Rent", "housing"},
	{"GEHALT", "", "Paycheck", "Salary", "income"},
	{"LOHN", "", "Paycheck", "Salary", "income"},
	{"VERSICHERUNG", "", "Insurance", "Insurance", "insurance"},
	{"HAFTPFLICHT", "", "Insurance", "Liability", "insurance"},
	{"RECHTSSCHUTZ", "", "Insurance", "Legal", "insurance"},
	{"HAUSRAT", "", "Insurance", "Household", "insurance"},
	{"STREAM", "", "Subscriptions", "Streaming", "subscription"},
	{"MUSIK", "", "Subscriptions", "Music", "subscription"},
	{"MITGLIED", "", "Entertainment", "Gym", "fitness"},
	{"MOBILFUNK", "", "Utilities", "Mobile Phone", "utilities"},
	{"RUNDFUNK", "", "Taxes", "Public Fees", "fees"},
	{"KREDITKARTE", "", "Transfer", "Credit Card Payment", "transfer"},
	{"UMBUCHUNG", "", "Transfer", "Internal Transfer", "transfer"},
}

var word = regexp.MustCompile(`[A-Za-z][A-Za-z0-9&'.-]+`)

// Enrich is the sandbox's deterministic enrichment of one transaction: the
// first rule whose keyword is in the upper-cased description gives merchant,
// category, subcategory and a tag; otherwise the first word is the merchant
// and the category is Uncategorized. A blank description fails.
func Enrich(t Transaction) (Enriched, string) {
	desc := strings.TrimSpace(t.OriginalDescription)
	if desc == "" {
		return Enriched{}, "original_description is empty"
	}
	e := Enriched{UID: t.UID, TransactionID: t.TransactionID, AccountID: t.AccountID, AmountNum: t.AmountNum, Settlement: t.Settlement,
		Date: t.Date, OriginalDescription: t.OriginalDescription, Category: "Uncategorized", Tags: []string{}}
	upper := strings.ToUpper(desc)
	for _, r := range rules {
		if strings.Contains(upper, r.keyword) {
			e.MerchantName, e.Category, e.Subcategory, e.Tags = r.merchant, r.category, r.subcategory, []string{r.tag}
			break
		}
	}
	if e.Category == "Uncategorized" {
		if m := word.FindString(desc); m != "" {
			e.MerchantName = strings.ToUpper(m[:1]) + strings.ToLower(m[1:])
		}
	}
	e.SimpleDescription = e.MerchantName
	if e.SimpleDescription == "" {
		e.SimpleDescription = e.Subcategory
	}
	return e, ""
}

// enrich enriches txs at now and keeps the results for tagging; s.mu is held.
func (s *Server) enrich(batch string, txs []Transaction, now time.Time) ([]Enriched, []failure) {
	enriched, failed := []Enriched{}, []failure{}
	for _, t := range txs {
		e, reason := Enrich(t)
		if reason != "" {
			failed = append(failed, failure{UID: t.UID, TransactionID: t.TransactionID, Reason: reason})
			continue
		}
		enriched = append(enriched, e)
		s.enriched[t.UID] = append(s.enriched[t.UID], enrichedAt{e: e, at: now})
	}
	return enriched, failed
}

// Recommendations by merchant: title, share of the amount found, CTA.
// Lidl's reach Fimento's Swedish customers too: recommendations in SEK.
var offers = map[string]struct {
	title string
	share float64
}{
	"Target": {"Target Red Card", 0.05}, "Amazon": {"Amazon Prime Rewards Card", 0.05},
	"REWE": {"REWE Bonus Card", 0.02}, "EDEKA": {"DeutschlandCard", 0.01},
	"Tankstelle Nord": {"Fuel Rewards Card", 0.03}, "Versandhaus Online": {"Cashback Card", 0.04},
	"Lidl": {"Lidl Plus", 0.02},
}

// finsightFor is the recommendation for an enriched debit, if any, with
// every documented field. amountFound alternates between a number and a
// string (the docs show both).
func finsightFor(clientID string, e Enriched, now time.Time) map[string]any {
	o, ok := offers[e.MerchantName]
	if !ok || e.Settlement != "debit" {
		return nil
	}
	amount, _ := strconv.ParseFloat(e.AmountNum.String(), 64)
	found := math.Round(amount*o.share*100) / 100
	sum := sha256.Sum256([]byte("finsight/" + e.TransactionID))
	id := hex.EncodeToString(sum[:16])
	var amountFound any = json.Number(strconv.FormatFloat(found, 'f', 2, 64))
	if sum[0]%2 == 1 {
		amountFound = strconv.FormatFloat(found, 'f', 2, 64)
	}
	return map[string]any{"finsight_id": id[:8] + "-" + id[8:12] + "-4" + id[13:16] + "-" + id[16:20] + "-" + id[20:32],
		"uniqueId": clientID + ":" + e.TransactionID, "user_id": e.UID, "transaction_id": e.TransactionID,
		"insight_ctaurl": "https://example.com/offers/" + strings.ToLower(strings.ReplaceAll(o.title, " ", "-")),
		"finsight_image": "https://example.com/img/" + strings.ToLower(strings.ReplaceAll(e.MerchantName, " ", "-")) + ".jpg",
		"insight_text":   fmt.Sprintf("Get %s to save on your %s shopping!", o.title, e.MerchantName),
		"recommendation": o.title, "amountFound": amountFound, "category": e.Category,
		"finsightDate": now.UTC().Format(time.DateOnly), "retries": 0, "webhookSent": true,
		"webhookUri": "", "lastAttempt": now.UTC().Format(time.DateOnly)}
}

// tagsOf computes a user's tags at time at from the transactions enriched
// before it and dated within the 90 days before it; s.mu is held.
func (s *Server) tagsOf(uid string, at time.Time) []string {
	from := at.AddDate(0, 0, -90).Format(time.DateOnly)
	counts := map[string]int{}
	for _, x := range s.enriched[uid] {
		if x.at.After(at) || x.e.Date < from || x.e.Date > at.Format(time.DateOnly) {
			continue
		}
		for _, t := range x.e.Tags {
			counts[t]++
		}
	}
	var tags []string
	for tag, least := range map[string]int{"groceries": 3, "dining": 3, "income": 1, "fuel": 2, "subscription": 2,
		"online_shopping": 2, "housing": 1, "insurance": 2, "fitness": 1} {
		if counts[tag] >= least {
			tags = append(tags, tag+"_user")
		}
	}
	sort.Strings(tags)
	return tags
}

// retag publishes a user's tags at time at: if they changed, a tag update
// (guid, kept 24 h) and the two tag webhooks; s.mu is held.
func (s *Server) retag(uid string, at time.Time) {
	now := s.tagsOf(uid, at)
	old := s.tags[uid]
	var u userTags
	u.UID = uid
	for _, t := range now {
		if !contains(old, t) {
			u.Created = append(u.Created, t)
		}
	}
	for _, t := range old {
		if !contains(now, t) {
			u.Deleted = append(u.Deleted, t)
		}
	}
	s.tags[uid] = now
	if len(u.Created)+len(u.Deleted) == 0 {
		return
	}
	guid := newID()
	s.updates[guid] = tagUpdate{u: u, at: at}
	s.webhook(tagStatusWebhook{GUID: guid})
	s.webhook(userTagsWebhook{UserTags: u})
}

// schedule runs the twice-daily tagging when a run is due; s.mu is held.
func (s *Server) schedule(now time.Time) {
	due := now.UTC().Truncate(12 * time.Hour)
	if !due.After(s.tagged) {
		return
	}
	s.tagged = due
	uids := make([]string, 0, len(s.enriched))
	for uid := range s.enriched {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		s.retag(uid, due)
	}
}

func (s *Server) user(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	s.serveUser(w, r.PathValue("uid"), false, d)
}

func (s *Server) userSub(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	a, b := r.PathValue("a"), r.PathValue("b")
	switch {
	case a == "tags":
		s.mu.Lock()
		u, ok := s.updates[b]
		ok = ok && s.opts.Now().Sub(u.at) < tagUpdateLifetime
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, "User ID could not be found")
			return
		}
		body, _ := json.Marshal(tagsResponse{UserTags: u.u})
		s.faults.WriteBody(w, d, body)
	case b == "sync":
		s.serveUser(w, a, true, d)
	default:
		writeError(w, http.StatusNotFound, "no such endpoint")
	}
}

func (s *Server) serveUser(w http.ResponseWriter, uid string, sync bool, d sandboxkit.Draw) {
	now := s.opts.Now()
	s.mu.Lock()
	_, known := s.enriched[uid]
	if known {
		s.schedule(now)
		if sync {
			s.retag(uid, now)
		}
	}
	tags := append([]string{}, s.tags[uid]...)
	s.mu.Unlock()
	if !known {
		writeError(w, http.StatusNotFound, "User ID could not be found")
		return
	}
	var resp userResponse
	resp.User.UID, resp.User.Tags, resp.Transactions = uid, tags, []json.RawMessage{}
	body, _ := json.Marshal(resp)
	s.faults.WriteBody(w, d, body)
}

func (s *Server) listFinsights(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	from, err1 := strconv.ParseInt(r.URL.Query().Get("startAt"), 10, 64)
	to, err2 := strconv.ParseInt(r.URL.Query().Get("endAt"), 10, 64)
	if err1 != nil || err2 != nil || to < from {
		writeError(w, http.StatusBadRequest, "startAt and endAt must be UNIX timestamps, startAt first")
		return
	}
	s.mu.Lock()
	list := []map[string]any{}
	for _, f := range s.finsights {
		if sec := f.at.Unix(); sec >= from && sec <= to {
			list = append(list, f.f)
		}
	}
	if n := s.faults.Knobs().HugeField; n > 0 && len(list) > 0 {
		// A copy of the first with its own id and a note of n bytes.
		huge := maps.Clone(list[0])
		huge["finsight_id"], huge["note"] = fmt.Sprint(huge["finsight_id"], "-huge"), strings.Repeat("x", int(n))
		list = append(list, huge)
	}
	body, _ := json.Marshal(s.extra(map[string]any{"finsights": list}, "generated_at", s.opts.Now().UTC().Format(time.RFC3339), "model", "finsights-2"))
	s.mu.Unlock()
	s.faults.WriteBody(w, d, body)
}

// webhook sends payload indented (and respelled with RespellWebhooks),
// signed as FinGoal signs, over JSON.stringify(JSON.parse(body)); s.mu may
// be held (delivery is asynchronous).
func (s *Server) webhook(payload any) {
	if s.opts.WebhookURL == "" {
		return
	}
	var compactBody bytes.Buffer
	enc := json.NewEncoder(&compactBody)
	enc.SetEscapeHTML(false)
	enc.Encode(payload)
	body := bytes.TrimRight(compactBody.Bytes(), "\n")
	if s.opts.RespellWebhooks {
		body = respell(body)
	}
	var sent bytes.Buffer
	json.Indent(&sent, body, "", "  ")
	signed, err := stringify.Canonical(sent.Bytes())
	if err != nil {
		panic("fingoal sandbox: a webhook body is not JSON: " + err.Error())
	}
	dl := s.hooks
	dl.Header = map[string]string{signatureHeader: sign(s.opts.ClientSecret, signed)}
	s.run.Go(func() {
		if dl.Post(s.run.Context(), s.opts.WebhookURL, sent.Bytes()) {
			s.mu.Lock()
			s.webhooks++
			s.mu.Unlock()
		}
	})
}

// respell rewrites compact JSON without changing what JSON.parse makes of
// it (see RespellWebhooks).
func respell(b []byte) []byte {
	out := make([]byte, 0, 2*len(b))
	fractions := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			out = append(out, '"')
			for i++; b[i] != '"'; {
				r, n := utf8.DecodeRune(b[i:])
				switch {
				case r == '\\':
					out = append(out, b[i:i+2]...) // an escape stays as it is
					n = 2
				case r == '/':
					out = append(out, '\\', '/')
				case r == '-' || r >= utf8.RuneSelf:
					for _, u := range utf16.Encode([]rune{r}) {
						out = fmt.Appendf(out, "\\u%04X", u)
					}
				default:
					out = append(out, b[i:i+n]...)
				}
				i += n
			}
			out = append(out, '"')
			i++
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(b) && strings.IndexByte("0123456789.eE+-", b[j]) >= 0 {
				j++
			}
			num := string(b[i:j])
			mant, exp, hasExp := strings.Cut(strings.ToLower(num), "e")
			whole, frac, hasFrac := strings.Cut(mant, ".")
			switch {
			case hasExp:
				if exp[0] != '-' && exp[0] != '+' {
					exp = "+" + exp
				}
				out = append(out, mant+"E"+exp...)
			case !hasFrac:
				out = append(out, num...)
			case fractions%2 == 0:
				fractions++
				out = append(out, num+"0"...)
			default: // I.F as IFe-len(F), the digits without leading zeros
				fractions++
				sign, digits := "", whole+frac
				if digits[0] == '-' {
					sign, digits = "-", digits[1:]
				}
				if digits = strings.TrimLeft(digits, "0"); digits == "" {
					digits = "0"
				}
				out = append(out, sign+digits+"e-"+strconv.Itoa(len(frac))...)
			}
			i = j
		default:
			out = append(out, c)
			i++
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeError writes FinGoal's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	sandboxkit.EncodeJSON(w, status, map[string]string{"message": msg})
}
