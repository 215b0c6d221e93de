package sandbox

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// Options configure a Server. Zero fields take the defaults named.
type Options struct {
	ClientID     string // default "sandbox-client"
	ClientSecret string // default "sandbox-secret"

	// Tenants get UsersPerTenant synthetic users each. Every name must be
	// ClientID or start with ClientID + "-". Default: just ClientID.
	Tenants         []string
	UsersPerTenant  int // default 3
	AccountsPerUser int // default 3: giro, credit card, overnight money; more are extra giro accounts
	Months          int // months of data up to Today, default 12
	// TransactionsPerUser, when set, spreads this many transactions evenly
	// over the months (never fewer than the recurring ones) for benchmarks.
	TransactionsPerUser int
	Seed                int64
	Today               time.Time // last day with data; default 2026-02-23

	// CompaniesPerTenant adds company users after the persons, with
	// business ledgers (customers, suppliers, payroll, cash, loans) for the
	// company analytics modules. Default 0: the older tests' tenants stay
	// as they were.
	CompaniesPerTenant int
	// LifeEvents gives persons the bookings the person analytics look for
	// beyond salary and rent: child benefit, pension, parental allowance,
	// rental income, alimony, self-employment, loans and their instalments,
	// refunds, gambling, returned debits, garnishments and debt collection.
	// Off by default: it changes the persons' ledgers.
	LifeEvents bool
	// DeniedScopes are analytics scopes the client lacks: an endpoint none
	// of whose modules is granted answers 403; income, spending and risk
	// leave out the modules not granted (Person Analysis: "one endpoint per
	// component delivers all booked modules").
	DeniedScopes []string
	// UnservedPaths are module paths (as in Module.Paths) answered 404, as
	// by a finoOS that knows the endpoint only by its other documented name.
	UnservedPaths []string

	// LocalTimestamps, when set, makes the sandbox write its timestamps in
	// this zone, as a German bank's might come: bookingDate and valueDate
	// become RFC 3339 text of the booking day's local midnight
	// ("2026-11-03T00:00:00+01:00" in Europe/Berlin, 23:00 UTC the day
	// before) instead of Unix seconds, and creationDate, lastSynchronization,
	// analysisPeriod, the webhook's correlationTimestamp and a cockpit's
	// createdAt carry the zone's offset. Dates (YYYY-MM-DD) and the ledger
	// stay as they are: a booking's day is the same in any zone.
	LocalTimestamps *time.Location

	// ExtraFields adds members the docs do not name, as a newer finoOS
	// might: on each record (a raw transaction's "merchantLogo" and its
	// categorization's "categoryIcon", an account's "accountLogo", a
	// contract's "contractLogo", a person module's "trend", an analytics
	// document's "modelVersion") and around the records (account
	// detection's "detectedAt" and "owner", a person name, and
	// accountsOverview's "summary"; the contract list's "generatedAt"; a
	// person income, spending or risk document's "modelVersion"; a
	// categorization page's "pageToken"). The extractor keeps them in raw,
	// scrubbed as any raw (the fino package's assumption 50).
	ExtraFields bool

	// BankSpelledOwners makes persons' accounts held in names with umlauts
	// and Nordic letters ("Jürgen Schröder", "Märta Åkerlund") and their
	// transfers between their own accounts come as some banks send them:
	// without the internal_transfer tag, the partner named as the bank
	// prints its customer, upper-case, transliterated or folded to ASCII,
	// surname first or with an initial ("SCHROEDER, JUERGEN", "AKERLUND
	// MARTA", "J. SCHRODER"). Off by default: it changes the ledgers.
	BankSpelledOwners bool

	// TotalPages, when set, is the totalPages every paged answer announces
	// (categorizations, synchronization status), as a hostile or broken
	// finoOS might: pages past the data come back empty.
	TotalPages int

	// SyncedAt is every bank login's lastSynchronization in the
	// synchronization status; default Now: every user looks freshly synced,
	// so incremental runs read everybody.
	SyncedAt func() time.Time

	// CategorizedAt, when set, is when finoOS categorizes the
	// transactions of tenant's user booked on a day (its midnight UTC): they
	// are served from then on (Now), not before. A late categorization (a
	// re-analysis, a bank's late booking) leaves the synchronization status
	// alone (SyncedAt): an incremental run that skips users not synced since
	// the run before (the fino package's assumption 49) does not see it.
	// The zero time: categorized from the start. Ledger still counts them.
	CategorizedAt func(tenant, user string, booked time.Time) time.Time

	// UsersDown, when set, makes finoOS answer 503 (Retry-After: 0, so
	// tests do not wait) to every request about a user it has down, as a
	// finoOS whose storage for some users is out.
	UsersDown *sandboxkit.Outage

	TokenTTL time.Duration    // default 300s
	Now      func() time.Time // clock for token expiry and GrowEvery; default time.Now

	// GrowEvery, when set, books every user one more transaction on Today
	// each GrowEvery of Now after New (a soak test's data that keeps
	// changing); the ones booked before never change. 0: the data is fixed.
	GrowEvery time.Duration

	// An analysis completes AnalysisDuration after it was triggered (negative:
	// never, a job that never finishes). The correlation endpoint answers 404
	// until it completed and AnalysisPolls polls have been answered 404.
	AnalysisDuration time.Duration
	AnalysisPolls    int

	WebhookURL        string // receives a POST when an analysis completes
	WebhookSecret     string // echoed in the payload, as finoOS does
	WebhookAttempts   int    // default 3
	WebhookRetryDelay time.Duration

	// Faults are the fault knobs. Here an expired token stays refused (401
	// now and later); Malformed corrupts transactions, contracts, daily
	// balances and person analytics months; Duplicate repeats the last
	// categorization of the page before; HugeField also gives every
	// analytics document a "note" of that many bytes.
	Faults sandboxkit.Knobs
	Logger *slog.Logger // default: discard
}

// Server is a fake finoOS API over deterministic synthetic data. It is an
// http.Handler to mount at the root; all paths start with /api/.
type Server struct {
	opts  Options
	data  dataset
	mux   *http.ServeMux
	log   *slog.Logger
	hooks sandboxkit.Delivery
	run   *sandboxkit.Runner // ends with Close; stops analyses and webhook retries

	faults *sandboxkit.Injector
	tokens *sandboxkit.Tokens[struct{}]
	guard  *sandboxkit.Guard[struct{}]

	mu          sync.Mutex
	tenants     map[string]*tenant
	analyses    map[string]*analysis // by correlation id
	analysisSeq int
}

type tenant struct {
	users   map[string]*user
	order   []string // user ids in creation order
	created int      // users created over the API
}

type analysis struct {
	id, tenant   string
	user         user
	started      time.Time
	done         bool
	notFoundPoll int // polls answered 404
}

// New builds a sandbox with its synthetic users. It panics on a
// tenant name the TenantID rules would refuse, a programming error.
func New(opts Options) *Server {
	opts = withDefaults(opts)
	s := &Server{
		opts:     opts,
		data:     newDataset(opts),
		mux:      http.NewServeMux(),
		log:      opts.Logger,
		run:      sandboxkit.NewRunner(),
		faults:   sandboxkit.NewInjector(opts.Faults),
		tenants:  map[string]*tenant{},
		analyses: map[string]*analysis{},
	}
	s.hooks = sandboxkit.Delivery{Client: &http.Client{Timeout: 10 * time.Second}, Attempts: opts.WebhookAttempts,
		Delay: func(int) time.Duration { return opts.WebhookRetryDelay }}
	if opts.GrowEvery > 0 {
		start := opts.Now()
		s.data.grown = func() int { return max(0, int(opts.Now().Sub(start)/opts.GrowEvery)) }
	}
	s.tokens = sandboxkit.NewTokens[struct{}](opts.Now, s.faults)
	s.guard = &sandboxkit.Guard[struct{}]{Faults: s.faults, Tokens: s.tokens, Error: writeError}
	for _, name := range opts.Tenants {
		if !validTenant(opts.ClientID, name) {
			panic(fmt.Sprintf("fino sandbox: tenant %q must be %q or start with %q", name, opts.ClientID, opts.ClientID+"-"))
		}
		t := s.tenant(name)
		for i := range opts.UsersPerTenant {
			t.add(&user{
				UserID:            uuidFor(s.data.seed, "user/"+name+"/"+strconv.Itoa(i)),
				Type:              "person",
				AutomaticAnalysis: "active",
				CustomUserID:      fmt.Sprintf("customer-%04d", i+1),
			})
		}
		for i := range opts.CompaniesPerTenant {
			t.add(&user{
				UserID:            uuidFor(s.data.seed, "company/"+name+"/"+strconv.Itoa(i)),
				Type:              companyUser,
				AutomaticAnalysis: "active",
				CustomUserID:      fmt.Sprintf("company-%04d", i+1),
			})
		}
	}
	s.routes()
	return s
}

func withDefaults(o Options) Options {
	o.ClientID = cmp.Or(o.ClientID, "sandbox-client")
	o.ClientSecret = cmp.Or(o.ClientSecret, "sandbox-secret")
	if len(o.Tenants) == 0 {
		o.Tenants = []string{o.ClientID}
	}
	o.UsersPerTenant = sandboxkit.OrPositive(o.UsersPerTenant, 3)
	o.AccountsPerUser = sandboxkit.OrPositive(o.AccountsPerUser, 3)
	o.Months = sandboxkit.OrPositive(o.Months, 12)
	o.Today = sandboxkit.OrToday(o.Today)
	o.TokenTTL = sandboxkit.OrPositive(o.TokenTTL, 300*time.Second)
	o.Now = sandboxkit.OrNow(o.Now)
	if o.SyncedAt == nil {
		o.SyncedAt = o.Now
	}
	o.WebhookAttempts = sandboxkit.OrPositive(o.WebhookAttempts, 3)
	o.WebhookRetryDelay = sandboxkit.OrPositive(o.WebhookRetryDelay, time.Second)
	o.Logger = sandboxkit.OrDiscard(o.Logger)
	return o
}

// ServeHTTP serves the finoOS API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops pending analyses and webhook deliveries and waits for them.
func (s *Server) Close() { s.run.Close() }

// Users lists the users of a tenant (synthetic and created, not deleted).
func (s *Server) Users(tenantID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil {
		return nil
	}
	var ids []string
	for _, id := range t.order {
		if t.users[id] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// Injected counts the faults injected so far.
func (s *Server) Injected() sandboxkit.Counts { return s.faults.Counts() }

// SetFaults changes the fault knobs from the next request on.
func (s *Server) SetFaults(k sandboxkit.Knobs) { s.faults.Set(k) }

// Ledger is the truth about one user's data, computed by the same generator
// the endpoints serve from, for tests to compare with what landed.
// Amounts are exact decimals with two places ("-1234.50").
type Ledger struct {
	Transactions int
	AmountSum    string
	Days         map[string]DayTotal          // by booking date YYYY-MM-DD
	Balances     map[string]map[string]string // accountId → date → end-of-day balance
	Contracts    []Contract

	// Records the Malformed fault always corrupts: the rejects a run must report.
	MalformedTransactions []string // transaction ids
	MalformedContracts    []string // contract ids
	MalformedBalances     []string // "accountId/YYYY-MM-DD"
}

// DayTotal sums the transactions booked on one day.
type DayTotal struct {
	Transactions int
	AmountSum    string
}

// Ledger computes the truth about a user; an error means no such user.
func (s *Server) Ledger(tenantID, userID string) (Ledger, error) {
	u, ok := s.lookup(tenantID, userID)
	if !ok {
		return Ledger{}, fmt.Errorf("fino sandbox: no user %q in tenant %q", userID, tenantID)
	}
	p := s.data.profile(tenantID, u)
	l := Ledger{Days: map[string]DayTotal{}, Balances: map[string]map[string]string{}}
	var sum int64
	days := map[string]int64{}
	s.data.walk(p, func(txns []txn) {
		for _, t := range txns {
			day := t.day.Format(time.DateOnly)
			l.Transactions++
			sum += t.amount
			days[day] += t.amount
			dt := l.Days[day]
			dt.Transactions++
			l.Days[day] = dt
			if s.faults.Malformed("transaction/" + t.id) {
				l.MalformedTransactions = append(l.MalformedTransactions, t.id)
			}
		}
	})
	l.AmountSum = fixed2(sum)
	for day, dt := range l.Days {
		dt.AmountSum = fixed2(days[day])
		l.Days[day] = dt
	}
	for i, daily := range s.data.balances(p) {
		id := p.accounts[i].id
		l.Balances[id] = make(map[string]string, len(daily))
		for _, b := range daily {
			day := b.day.Format(time.DateOnly)
			l.Balances[id][day] = fixed2(b.balance)
			if s.faults.Malformed("balance/" + id + "/" + day) {
				l.MalformedBalances = append(l.MalformedBalances, id+"/"+day)
			}
		}
	}
	l.Contracts = s.data.contracts(p)
	for _, c := range l.Contracts {
		if s.faults.Malformed("contract/" + c.ContractID) {
			l.MalformedContracts = append(l.MalformedContracts, c.ContractID)
		}
	}
	return l, nil
}

// call is what the middleware learned about a request.
type call struct {
	tenant string
	faults sandboxkit.Draw
}

type handler func(w http.ResponseWriter, r *http.Request, c *call)

func (s *Server) routes() {
	user := pathUsers + "/{userID}"
	s.handle("POST "+pathAuth, false, s.authenticate)
	s.handle("POST "+pathUsers, true, s.createUser)
	s.handle("GET "+user, true, s.getUser)
	s.handle("DELETE "+user, true, s.deleteUser)
	s.handle("POST "+user+suffixTriggerAnalysis, true, s.triggerAnalysis)
	s.handle("GET "+user+suffixCategorization, true, s.categorizations)
	s.handle("GET "+user+suffixCorrelation, true, s.correlation)
	s.handle("GET "+user+suffixAccountDetect, true, s.accountDetection)
	s.handle("GET "+user+suffixAccountHistory, true, s.accountHistory)
	s.handle("GET "+user+suffixContracts, true, s.contracts)
	s.handle("GET "+pathSyncStatus, true, s.syncStatus)
	s.analyticsRoutes(user)
	s.mux.HandleFunc("/", sandboxkit.NotFound(writeError))
}

// handle registers h behind the fault injection, and for authenticated
// endpoints behind the token and TenantID checks.
func (s *Server) handle(pattern string, authenticated bool, h handler) {
	if !authenticated {
		s.mux.HandleFunc(pattern, s.guard.Open(func(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
			h(w, r, &call{faults: d})
		}))
		return
	}
	s.mux.HandleFunc(pattern, s.guard.Authorized(func(w http.ResponseWriter, r *http.Request, _ struct{}, d sandboxkit.Draw) {
		c := &call{faults: d, tenant: r.Header.Get(headerTenant)}
		if c.tenant == "" {
			c.tenant = s.opts.ClientID
		} else if !validTenant(s.opts.ClientID, c.tenant) {
			writeError(w, http.StatusForbidden, "forbidden. No access to this resource")
			return
		}
		if user := r.PathValue("userID"); user != "" && s.opts.UsersDown.Down(user) {
			w.Header().Set("Retry-After", "0")
			writeError(w, http.StatusServiceUnavailable, "service unavailable")
			return
		}
		h(w, r, c)
	}))
}

func validTenant(clientID, tenantID string) bool {
	return tenantID == clientID || (strings.HasPrefix(tenantID, clientID+"-") && len(tenantID) > len(clientID)+1)
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, c *call) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "form body expected")
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		writeError(w, http.StatusBadRequest, "unsupported grant_type "+strconv.Quote(g))
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if !sandboxkit.SameCredentials(id, secret, s.opts.ClientID, s.opts.ClientSecret) {
		writeError(w, http.StatusUnauthorized, "invalid client credentials")
		return
	}
	token, session := sandboxkit.RandomHex(32), sandboxkit.RandomHex(16)
	s.tokens.Issue(token, struct{}{}, s.opts.TokenTTL)
	s.faults.Reply(w, c.faults, http.StatusOK, tokenBody{
		AccessToken:  token,
		ExpiresIn:    int(s.opts.TokenTTL / time.Second),
		TokenType:    "Bearer",
		Scope:        "banking-fetch categorization account-detection account-history contracts webhooks",
		SessionState: session,
	})
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, c *call) {
	var u user
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&u); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid user: "+err.Error())
		return
	}
	u.UserID = ""
	if u.Type == "" {
		u.Type = "person"
	}
	if u.AutomaticAnalysis == "" {
		u.AutomaticAnalysis = "active"
	}
	if (u.Type != "person" && u.Type != "company") || (u.AutomaticAnalysis != "active" && u.AutomaticAnalysis != "suspended") {
		writeError(w, http.StatusBadRequest, "type must be person or company, automaticAnalysis active or suspended")
		return
	}
	s.mu.Lock()
	t := s.tenant(c.tenant)
	t.created++
	u.UserID = uuidFor(s.data.seed, "created/"+c.tenant+"/"+strconv.Itoa(t.created))
	t.add(&u)
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusCreated, u)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c *call) {
	if u, ok := s.userOf(w, r, c); ok {
		s.faults.Reply(w, c.faults, http.StatusOK, u)
	}
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	s.mu.Lock()
	delete(s.tenants[c.tenant].users, u.UserID)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) triggerAnalysis(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	s.mu.Lock()
	s.analysisSeq++
	a := &analysis{
		id:      uuidFor(s.data.seed, "analysis/"+strconv.Itoa(s.analysisSeq)),
		tenant:  c.tenant,
		user:    u,
		started: s.opts.Now().UTC(),
	}
	s.analyses[a.id] = a
	s.mu.Unlock()

	switch d := s.opts.AnalysisDuration; {
	case d == 0:
		s.complete(a)
		s.run.Go(func() { s.deliverWebhook(a) })
	case d > 0:
		s.run.After(d, func() {
			s.complete(a)
			s.deliverWebhook(a)
		})
	}
	w.Header().Set(headerCorrelationID, a.id)
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) complete(a *analysis) {
	s.mu.Lock()
	a.done = true
	s.mu.Unlock()
}

// deliverWebhook posts the analysis-completed event, retrying a reply above
// 299 (or no reply) a few times with the same X-Request-Id.
func (s *Server) deliverWebhook(a *analysis) {
	if s.opts.WebhookURL == "" {
		return
	}
	body, err := json.Marshal(webhookPayload{
		WebhookID:            uuidFor(s.data.seed, "webhook/"+a.tenant),
		UserID:               a.user.UserID,
		CustomUserID:         a.user.CustomUserID,
		TenantID:             a.tenant,
		CorrelationID:        a.id,
		CorrelationTimestamp: inZone(a.started, s.opts.LocalTimestamps).Format(time.RFC3339),
		Secret:               s.opts.WebhookSecret,
		Event:                "categorization",
		Data:                 json.RawMessage(`{"status":"COMPLETED"}`),
	})
	if err != nil {
		s.log.Error("fino sandbox: webhook payload", "err", err)
		return
	}
	dl := s.hooks
	dl.Header = map[string]string{headerRequestID: uuidFor(s.data.seed, "request/"+a.id), headerWebhookTenant: a.tenant}
	dl.Failed = func(attempt int, err error) {
		s.log.Warn("fino sandbox: webhook delivery failed", "attempt", attempt, "correlationID", a.id, "err", err)
	}
	dl.Post(s.run.Context(), s.opts.WebhookURL, body)
}

func (s *Server) correlation(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	id := r.Header.Get(headerCorrelationID)
	if id == "" {
		id = r.URL.Query().Get(paramCorrelationID)
	}
	if id == "" {
		writeError(w, http.StatusBadRequest, "correlation id missing: header "+headerCorrelationID+" or query "+paramCorrelationID)
		return
	}
	s.mu.Lock()
	a := s.analyses[id]
	known := a != nil && a.tenant == c.tenant && a.user.UserID == u.UserID
	running := known && (!a.done || a.notFoundPoll < s.opts.AnalysisPolls)
	if running {
		a.notFoundPoll++
	}
	s.mu.Unlock()
	switch {
	case !known:
		writeError(w, http.StatusNotFound, "no analysis "+id+" for this user")
	case running:
		writeError(w, http.StatusNotFound, "analysis in progress")
	default:
		s.faults.Reply(w, c.faults, http.StatusOK, correlationStatus{CorrelationID: id, UserID: u.UserID, Status: "COMPLETED"})
	}
}

func (s *Server) categorizations(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	q := r.URL.Query()
	page, err1 := intParam(q.Get(paramPage), 1, 1, 1<<30)
	size, err2 := intParam(q.Get(paramSize), defaultPageSize, 1, maxPageSize)
	from, to, err3 := dateRange(q.Get(paramFrom), q.Get(paramTo))
	withTx, err4 := boolParam(q.Get(paramIncludeTransaction))
	locale := q.Get(paramLocale)
	if err := errors.Join(err1, err2, err3, err4); err != nil || (locale != "" && locale != "de" && locale != "en") {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad query (page ≥ 1, size 1..%d, from/to YYYY-MM-DD, includeTransaction bool, locale de|en): %v", maxPageSize, err))
		return
	}
	p := s.data.profile(c.tenant, u)
	offset := (page - 1) * size
	txns, total := s.data.txnRange(p, from, to, offset, size)
	if s.opts.CategorizedAt != nil {
		// Only what is categorized by now, paged over those.
		all, _ := s.data.txnRange(p, from, to, 0, math.MaxInt)
		now := s.opts.Now()
		all = slices.DeleteFunc(all, func(t txn) bool { return s.opts.CategorizedAt(c.tenant, u.UserID, t.day).After(now) })
		total = len(all)
		txns = all[min(offset, total):min(offset+size, total)]
	}
	if page == 1 && len(txns) > 0 && s.opts.Faults.Hostile() {
		s.hostileCategorizations(w, p, txns, withTx, locale, size, total)
		return
	}
	if c.faults.Duplicate && offset > 0 {
		if prev, _ := s.data.txnRange(p, from, to, offset-1, 1); len(prev) == 1 {
			txns = append(prev, txns...)
			s.faults.Duplicated()
		}
	}
	body := append(make([]byte, 0, 64+len(txns)*700), `{"categorizations":[`...)
	for i := range txns {
		if i > 0 {
			body = append(body, ',')
		}
		body = s.appendCategorizationOf(body, p, &txns[i], withTx, locale)
	}
	body = fmt.Appendf(body, `],"page":%d,"size":%d,"totalPages":%d,"totalElements":%d`, page, size, cmp.Or(s.opts.TotalPages, (total+size-1)/size), total)
	if s.opts.ExtraFields {
		body = fmt.Appendf(body, `,"pageToken":"p%d"`, page+1)
	}
	body = append(body, '}')
	s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, body)
}

// hostileCategorizations serves a first page with the hostile-page knobs
// (sandboxkit.Knobs): the items, with a copy of one whose purpose is
// HugeField bytes after the first, a copy whose purpose never ends after
// the last, or copies without end after the last. It streams what it
// sends and stops when the client hangs up.
func (s *Server) hostileCategorizations(w http.ResponseWriter, p *profile, txns []txn, withTx bool, locale string, size, total int) {
	k := s.opts.Faults
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	item := func(i int) []byte { return s.appendCategorizationOf(nil, p, &txns[i], withTx, locale) }
	// huge writes a copy of item i, id suffixed, its purpose n bytes (n < 0: endless).
	huge := func(i int, suffix string, n int64) error {
		it := item(i)
		id := []byte(`"transactionId":"` + txns[i].id + `"`)
		it = bytes.Replace(it, id, []byte(`"transactionId":"`+txns[i].id+suffix+`"`), -1)
		at := bytes.Index(it, []byte(`"purpose":"`))
		if at < 0 {
			it = append(it[:len(it)-1], `,"purpose":""}`...)
			at = bytes.LastIndex(it, []byte(`"purpose":"`))
		}
		at += len(`"purpose":"`)
		bw.Write(it[:at])
		if err := sandboxkit.WriteRepeat(bw, 'x', n); err != nil {
			return err
		}
		_, err := bw.Write(it[at:])
		return err
	}
	bw.WriteString(`{"categorizations":[`)
	for i := range txns {
		if i > 0 {
			bw.WriteByte(',')
		}
		if _, err := bw.Write(item(i)); err != nil {
			return
		}
		if i == 0 && k.HugeField > 0 {
			bw.WriteByte(',')
			if huge(0, "-huge", k.HugeField) != nil {
				return
			}
		}
	}
	last := len(txns) - 1
	if k.EndlessField {
		bw.WriteByte(',')
		huge(last, "-endless", -1)
		return
	}
	for n := 0; k.EndlessArray; n++ {
		it := bytes.Replace(item(n%len(txns)), []byte(`"transactionId":"`+txns[n%len(txns)].id+`"`),
			fmt.Appendf(nil, `"transactionId":"junk-%d"`, n), -1)
		bw.WriteByte(',')
		if _, err := bw.Write(it); err != nil {
			return
		}
	}
	if k.HugeField > 0 {
		total++ // the copy
	}
	fmt.Fprintf(bw, `],"page":1,"size":%d,"totalPages":%d,"totalElements":%d}`, size, (total+size-1)/size, total)
}

// appendCategorizationOf appends one item; a malformed one stays valid
// JSON but has a non-numeric amount or no transactionId.
func (s *Server) appendCategorizationOf(b []byte, p *profile, t *txn, withTx bool, locale string) []byte {
	c := p.categorization(t, withTx, locale)
	switch {
	case s.faults.Malform("transaction/" + t.id):
		return append(b, s.malformedCategorization(c, t)...)
	case s.opts.ExtraFields:
		// Fields of the outer structs shadow the embedded ones of the same name.
		type extraTx struct {
			*transaction
			MerchantLogo string `json:"merchantLogo"`
		}
		var tx *extraTx
		if c.Transaction != nil {
			tx = &extraTx{c.Transaction, "https://logos.fino.invalid/" + t.kind.tags[0] + ".png"}
		}
		return append(b, sandboxkit.MustJSON(struct {
			categorization
			Transaction  *extraTx `json:"transaction,omitempty"`
			CategoryIcon string   `json:"categoryIcon"`
		}{c, tx, "icon-" + t.kind.tags[0]})...)
	}
	return appendCategorization(b, &c)
}

// malformedCategorization is c with a non-numeric amount or no transactionId.
func (s *Server) malformedCategorization(c categorization, t *txn) []byte {
	// Fields of the outer struct shadow the embedded ones of the same name.
	if c.Transaction != nil && hashString(t.id)%2 == 0 {
		type badAmount struct {
			*transaction
			Amount string `json:"amount"`
		}
		return sandboxkit.MustJSON(struct {
			categorization
			Transaction badAmount `json:"transaction"`
		}{c, badAmount{c.Transaction, "abc"}})
	}
	return sandboxkit.MustJSON(struct {
		categorization
		TransactionID *string `json:"transactionId,omitempty"` // nil: the id is dropped
	}{categorization: c})
}

// syncStatus pages the tenant's bank logins: one per user, status OK.
func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	page, err1 := intParam(q.Get(paramPage), 1, 1, 1<<30)
	size, err2 := intParam(q.Get(paramSize), defaultPageSize, 1, maxPageSize)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad query (page ≥ 1, size 1..%d): %v", maxPageSize, err))
		return
	}
	users := s.Users(c.tenant)
	synced := inZone(s.opts.SyncedAt().UTC().Truncate(time.Second), s.opts.LocalTimestamps)
	resp := syncStatusPage{SynchronizationStatuses: []syncStatus{}, Page: page, Size: size,
		TotalPages: cmp.Or(s.opts.TotalPages, (len(users)+size-1)/size), TotalElements: len(users)}
	for _, u := range sandboxkit.PageOf(users, page, size) {
		resp.SynchronizationStatuses = append(resp.SynchronizationStatuses,
			syncStatus{BankLoginID: "login-" + u, UserID: u, Status: "OK", Active: true, LastSynchronization: synced})
	}
	s.faults.Reply(w, c.faults, http.StatusOK, resp)
}

func (s *Server) accountDetection(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	p := s.data.profile(c.tenant, u)
	d := s.data.detection(p)
	if !s.opts.ExtraFields {
		s.faults.Reply(w, c.faults, http.StatusOK, d)
		return
	}
	type extraAccount struct {
		detectedAccount
		AccountLogo string `json:"accountLogo"`
	}
	view := func(accounts []detectedAccount) [][]byte {
		items := make([][]byte, len(accounts))
		for i, a := range accounts {
			items[i] = sandboxkit.MustJSON(extraAccount{a, "https://logos.fino.invalid/" + strings.ToLower(string(a.Type)) + ".png"})
		}
		return items
	}
	o := d.AccountsOverview
	body := sandboxkit.ListJSON(`{"accountsOverview":{"accountsView":`, view(o.AccountsView), "")
	body = append(body, sandboxkit.ListJSON(`,"creditsView":`, view(o.CreditsView),
		fmt.Sprintf(`,"summary":{"accounts":%d}},"detectedAt":%q,"owner":%q}`,
			len(o.AccountsView)+len(o.CreditsView), localMidnight(s.data.today, s.data.zone).Format(time.RFC3339), p.owner))...)
	s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, body)
}

func (s *Server) accountHistory(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	from, to, err := dateRange(r.URL.Query().Get(paramFrom), r.URL.Query().Get(paramTo))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p := s.data.profile(c.tenant, u)
	var histories [][]byte
	for i, daily := range s.data.balances(p) {
		id := p.accounts[i].id
		var balances [][]byte
		for j := len(daily) - 1; j >= 0; j-- { // newest first
			b := daily[j]
			if (!from.IsZero() && b.day.Before(from)) || (!to.IsZero() && !b.day.Before(to)) {
				continue
			}
			date := b.day.Format(time.DateOnly)
			if s.faults.Malform("balance/" + id + "/" + date) {
				balances = append(balances, sandboxkit.MustJSON(struct {
					Date    string `json:"date"`
					Balance string `json:"balance"` // a string where a number belongs
				}{date, "abc"}))
				continue
			}
			balances = append(balances, sandboxkit.MustJSON(dailyBalance{Date: date, Balance: amountJSON(b.balance)}))
		}
		head := `{"account":` + string(sandboxkit.MustJSON(accountRef{AccountID: id})) + `,"dailyBalances":`
		histories = append(histories, sandboxkit.ListJSON(head, balances, "}"))
	}
	s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, sandboxkit.ListJSON(`{"histories":`, histories, "}"))
}

func (s *Server) contracts(w http.ResponseWriter, r *http.Request, c *call) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	var items [][]byte
	for _, ct := range s.data.contracts(s.data.profile(c.tenant, u)) {
		if s.faults.Malform("contract/" + ct.ContractID) {
			items = append(items, sandboxkit.MustJSON(struct {
				Contract
				Amount string `json:"amount"` // shadows the number
			}{ct, "abc"}))
			continue
		}
		if s.opts.ExtraFields {
			items = append(items, sandboxkit.MustJSON(struct {
				Contract
				ContractLogo string `json:"contractLogo"`
			}{ct, "https://logos.fino.invalid/" + strings.ToLower(ct.Category) + ".png"}))
			continue
		}
		items = append(items, sandboxkit.MustJSON(ct))
	}
	tail := "}"
	if s.opts.ExtraFields {
		tail = fmt.Sprintf(`,"generatedAt":%q}`, localMidnight(s.data.today, s.data.zone).Format(time.RFC3339))
	}
	s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, sandboxkit.ListJSON(`{"contracts":`, items, tail))
}

// tenant returns a tenant's state, creating it: finoOS creates a tenant on
// the first request that names it. s.mu must be held.
func (s *Server) tenant(name string) *tenant {
	t := s.tenants[name]
	if t == nil {
		t = &tenant{users: map[string]*user{}}
		s.tenants[name] = t
	}
	return t
}

func (t *tenant) add(u *user) {
	t.users[u.UserID] = u
	t.order = append(t.order, u.UserID)
}

func (s *Server) lookup(tenantID, userID string) (user, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenantID]; t != nil && t.users[userID] != nil {
		return *t.users[userID], true
	}
	return user{}, false
}

// userOf finds the path's user in the request's tenant or answers 404:
// a user is invisible outside the tenant that created it.
func (s *Server) userOf(w http.ResponseWriter, r *http.Request, c *call) (user, bool) {
	u, ok := s.lookup(c.tenant, r.PathValue("userID"))
	if !ok {
		writeError(w, http.StatusNotFound, "user not found")
	}
	return u, ok
}

// writeError writes finoOS's error body: the status as a snake-case type
// and the message.
func writeError(w http.ResponseWriter, status int, message string) {
	kind := strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
	sandboxkit.WriteJSON(w, status, apiError{Type: kind, Message: message})
}

func intParam(s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not in %d..%d", s, lo, hi)
	}
	return n, nil
}

func boolParam(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// dateRange parses inclusive from/to dates into [from, to) (zero = open).
func dateRange(fromText, toText string) (from, to time.Time, err error) {
	if fromText != "" {
		if from, err = time.Parse(time.DateOnly, fromText); err != nil {
			return from, to, fmt.Errorf("from: %w", err)
		}
	}
	if toText != "" {
		if to, err = time.Parse(time.DateOnly, toText); err != nil {
			return from, to, fmt.Errorf("to: %w", err)
		}
		to = to.AddDate(0, 0, 1)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, errors.New("from is after to")
	}
	return from, to, nil
}

// appendCategorization appends c as json.Marshal encodes it (a test holds
// the two equal), without reflection: serving pages must not cost the
// machine more than reading them, or benchmarks measure the sandbox.
func appendCategorization(b []byte, c *categorization) []byte {
	b = append(b, `{"accountId":`...)
	b = appendJSONString(b, c.AccountID)
	b = append(b, `,"transactionId":`...)
	b = appendJSONString(b, c.TransactionID)
	b = append(b, `,"creationDate":"`...)
	b = c.CreationDate.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","descriptiveTag":`...)
	b = appendJSONString(b, c.DescriptiveTag)
	if c.LocalizedTag != "" {
		b = append(b, `,"localizedTag":`...)
		b = appendJSONString(b, c.LocalizedTag)
	}
	b = append(b, `,"tags":`...)
	if c.Tags == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, t := range c.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, t)
		}
		b = append(b, ']')
	}
	if t := c.Transaction; t != nil {
		b = append(b, `,"transaction":{"transactionId":`...)
		b = appendJSONString(b, t.TransactionID)
		b = append(b, `,"amount":`...)
		if t.Amount == "" {
			b = append(b, '0')
		} else {
			b = append(b, t.Amount...)
		}
		b = appendOmitEmpty(b, "currency", t.Currency)
		b = appendTimestamp(append(b, `,"bookingDate":`...), t.BookingDate)
		if !t.ValueDate.IsZero() {
			b = appendTimestamp(append(b, `,"valueDate":`...), t.ValueDate)
		}
		b = appendOmitEmpty(b, "bookingText", t.BookingText)
		b = appendOmitEmpty(b, "purpose", t.Purpose)
		if p := t.PaymentPartner; p != nil {
			b = append(b, `,"paymentPartner":{`...)
			start := len(b)
			b = appendOmitEmpty(b, "bic", p.BIC)
			b = appendOmitEmpty(b, "creditorId", p.CreditorID)
			b = appendOmitEmpty(b, "iban", p.IBAN)
			b = appendOmitEmpty(b, "name", p.Name)
			if len(b) > start {
				// appendOmitEmpty writes a comma before every member.
				b = append(b[:start], b[start+1:]...)
			}
			b = append(b, '}')
		}
		b = appendOmitEmpty(b, "differentCreditor", t.DifferentCreditor)
		b = appendOmitEmpty(b, "differentDebitor", t.DifferentDebitor)
		b = appendOmitEmpty(b, "eref", t.EndToEndReference)
		b = appendOmitEmpty(b, "mref", t.MandateReference)
		b = appendOmitEmpty(b, "merchantCategoryCode", t.MerchantCategoryCode)
		b = appendOmitEmpty(b, "sepaPurposeCode", t.SEPAPurposeCode)
		if t.TransactionCode != 0 {
			b = strconv.AppendInt(append(b, `,"transactionCode":`...), int64(t.TransactionCode), 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendTimestamp appends t as Timestamp.MarshalJSON does.
func appendTimestamp(b []byte, t timestamp) []byte {
	if t.Text != "" {
		return appendJSONString(b, t.Text)
	}
	return strconv.AppendInt(b, t.Unix, 10)
}

// appendOmitEmpty appends ,"key":value unless value is "" (omitempty).
func appendOmitEmpty(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(append(append(b, `,"`...), key...), `":`...)
	return appendJSONString(b, value)
}

// appendJSONString appends s quoted as json.Marshal quotes it: plain text
// as is, anything it would escape through json.Marshal itself.
func appendJSONString(b []byte, s string) []byte {
	if plainJSON(s) {
		return append(append(append(b, '"'), s...), '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// plainJSON reports whether json.Marshal writes s unescaped: no quotes,
// backslashes, controls, <>& (HTML-safe escaping), U+2028/9 or invalid
// UTF-8.
func plainJSON(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= 0x80:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s) && !strings.ContainsAny(s, "\u2028\u2029")
}
