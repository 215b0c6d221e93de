package sandbox

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// Options configure a Server. Zero fields take the defaults named.
type Options struct {
	Name     string // API user, default "sandbox-user"
	Password string // default "sandbox-password"

	// PartnerBanks are the partner bank ids, each with ProcessesPerBank
	// processes. Default: the docs' example id 605c6c479691950d359bb0e9.
	PartnerBanks     []string
	ProcessesPerBank int // default 5: good, authError, denied, slow, business (then good again)
	Months           int // months of transactions of a completed process, default 6
	Seed             int64
	Today            time.Time // last day with data; default 2026-02-23

	// Processes move one status per Step (default one minute), counted from
	// their creation: the long-finished ones were created 30 days before
	// the sandbox started, the slow one at its start.
	Step     time.Duration
	Now      func() time.Time // the sandbox clock; default time.Now
	PageSize int              // transactions per page, default 25
	TokenTTL time.Duration    // default one hour
	// ValidUntilMillis sends valid_until in milliseconds instead of seconds
	// (the docs say neither).
	ValidUntilMillis bool
	Paths            Paths // zero: DefaultPaths

	// WebhookURL, if set, is added to the webhooks at start, as if posted to
	// the add-webhook endpoint. Status changes are looked for every
	// WebhookPoll (default 100ms) and on Tick.
	WebhookURL  string
	WebhookPoll time.Duration

	// ExtraFields adds members the docs do not name, as a newer Fimento
	// might: on each record (a transaction's "merchantLogo", an
	// accountsInfo item's "accountLogo") and on the objects around them
	// (the process's "customerSegment" and "kyc", the insights document's
	// "riskScore" and "merchantSummary", a transactions page's "nextPage").
	// Some carry the customer's identifiers, under a personal key or in a
	// text, which must not land (fimento package doc, 20, 22).
	ExtraFields bool

	Faults Faults
	Logger *slog.Logger // default: discard
}

// Faults are the sandbox's fault knobs. Here an expired token stays
// refused (401 now and later), Malformed transactions have a non-numeric
// amount, and Duplicate is not used.
type Faults = sandboxkit.Knobs

// FaultCounts are the faults injected so far.
type FaultCounts = sandboxkit.Counts

// Server is a fake Fimento Bank Data Insights API over deterministic
// synthetic processes. It is an http.Handler to mount at its base URL.
type Server struct {
	opts  Options
	start time.Time
	mux   *http.ServeMux
	log   *slog.Logger
	hooks sandboxkit.Delivery

	tokens *sandboxkit.Tokens[struct{}]
	guard  *sandboxkit.Guard[struct{}]
	run    *sandboxkit.Runner

	mu        sync.Mutex
	banks     []partnerBank
	processes map[string]*sbProcess // by bank + "/" + id
	order     []string
	created   int
	webhooks  []string
	notified  map[string]string // process key → state last announced

	faults       *sandboxkit.Injector
	webhooksSent atomic.Int64
}

// sbProcess is one process and, once completed, its data.
type sbProcess struct {
	id, bank                    string
	ssn, companyID, first, last string
	market, psuType             string
	createdAt                   time.Time
	path                        []step
	completedNow                bool      // approved by the test endpoint: the whole good path at once
	revokedAt                   time.Time // consent revoked by the test endpoint or knob
	deleted                     bool
	accounts                    []sbAccount
	txns                        []sbTxn
	today                       time.Time
}

// New builds a sandbox with its synthetic processes.
func New(opts Options) *Server {
	opts = sandboxDefaults(opts)
	s := &Server{opts: opts, start: opts.Now().UTC(), mux: http.NewServeMux(), log: opts.Logger, run: sandboxkit.NewRunner(),
		processes: map[string]*sbProcess{}, notified: map[string]string{}, faults: sandboxkit.NewInjector(opts.Faults)}
	s.hooks = sandboxkit.Delivery{Client: &http.Client{Timeout: 10 * time.Second}, Attempts: 3,
		Delay: func(int) time.Duration { return 50 * time.Millisecond },
		Failed: func(attempt int, err error) {
			s.log.Warn("fimento sandbox: webhook delivery failed", "attempt", attempt, "err", err)
		}}
	s.tokens = sandboxkit.NewTokens[struct{}](opts.Now, s.faults)
	s.guard = &sandboxkit.Guard[struct{}]{Faults: s.faults, Tokens: s.tokens, Error: writeOneError, FaultError: faultError}
	for i, id := range opts.PartnerBanks {
		s.banks = append(s.banks, partnerBank{ID: id, Name: "Sandbox partner bank " + strconv.Itoa(i+1), LogoURL: "www.logoUrl.com"})
		for j := range opts.ProcessesPerBank {
			s.addProcess(s.scenarioProcess(id, j))
		}
	}
	if opts.WebhookURL != "" {
		s.webhooks = append(s.webhooks, opts.WebhookURL)
	}
	now := s.opts.Now()
	for key, p := range s.processes {
		s.notified[key] = s.state(p, now)
	}
	s.routes()
	s.run.Go(s.watch)
	return s
}

func sandboxDefaults(o Options) Options {
	if o.Name == "" {
		o.Name = "sandbox-user"
	}
	if o.Password == "" {
		o.Password = "sandbox-password"
	}
	if len(o.PartnerBanks) == 0 {
		o.PartnerBanks = []string{"605c6c479691950d359bb0e9"}
	}
	if o.ProcessesPerBank <= 0 {
		o.ProcessesPerBank = 5
	}
	if o.Months <= 0 {
		o.Months = 6
	}
	if o.Today.IsZero() {
		o.Today = time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC)
	}
	if o.Step <= 0 {
		o.Step = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageSize <= 0 {
		o.PageSize = 25
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.Paths == (Paths{}) {
		o.Paths = DefaultPaths()
	}
	if o.WebhookPoll <= 0 {
		o.WebhookPoll = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// scenarioProcess is process j of a bank (the scenarios above).
func (s *Server) scenarioProcess(bank string, j int) *sbProcess {
	p := &sbProcess{id: objectID(s.opts.Seed, "process/"+bank+"/"+strconv.Itoa(j)), bank: bank, market: "SE",
		psuType: "private", first: sandboxFirstNames[j%len(sandboxFirstNames)], last: sandboxLastNames[(j+bankIndex(s, bank))%len(sandboxLastNames)],
		createdAt: s.start.AddDate(0, 0, -30), ssn: GoodSSN, path: goodPath}
	switch j {
	case ScenarioAuthError:
		p.ssn, p.path = BadSSN, authErrorPath
	case ScenarioDenied:
		p.ssn, p.path = BadSSN, deniedPath
	case ScenarioSlow:
		p.createdAt = s.start
	case ScenarioBusiness:
		p.ssn, p.companyID, p.psuType, p.market = "", sandboxCompanyID, "business", "FI"
	}
	return p
}

func bankIndex(s *Server, bank string) int {
	for i, b := range s.opts.PartnerBanks {
		if b == bank {
			return i
		}
	}
	return 0
}

// addProcess registers p with its data, if it can ever complete. s.mu held
// or not yet shared.
func (s *Server) addProcess(p *sbProcess) {
	if p.path[len(p.path)-1].code == statusCompleted {
		p.today = s.opts.Today
		p.accounts, p.txns = ledgerOf(s.opts.Seed, p, s.opts.Months, p.today)
	}
	key := p.bank + "/" + p.id
	s.processes[key] = p
	s.order = append(s.order, key)
}

// ServeHTTP serves the Fimento API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the webhook watcher and pending deliveries.
func (s *Server) Close() { s.run.Close() }

// Processes lists the process ids of a partner bank (deleted ones too).
func (s *Server) Processes(bank string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, key := range s.order {
		if p := s.processes[key]; p.bank == bank {
			ids = append(ids, p.id)
		}
	}
	return ids
}

// PartnerBanks lists the partner bank ids.
func (s *Server) PartnerBanks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.banks))
	for i, b := range s.banks {
		ids[i] = b.ID
	}
	return ids
}

// PersonalData lists every social security number, company id and name
// the sandbox serves, for tests that prove none of it lands in clear.
func (s *Server) PersonalData() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, key := range s.order {
		p := s.processes[key]
		for _, v := range []string{p.ssn, p.companyID, p.first, p.last} {
			if v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// Status is the current process-level status code of a process ("" if
// there is no such process or it was deleted).
func (s *Server) Status(bank, id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.processes[bank+"/"+id]
	if p == nil || p.deleted {
		return ""
	}
	proc := s.render(p, s.opts.Now())
	return proc.ConsentFlowStatus.Current.Code
}

// Ledger is the truth about a completed process; an error means the process
// does not exist or has no data (never completes, revoked, deleted).
func (s *Server) Ledger(bank, id string) (Ledger, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.processes[bank+"/"+id]
	if p == nil || p.deleted || !p.revokedAt.IsZero() || p.txns == nil {
		return Ledger{}, fmt.Errorf("fimento sandbox: process %s/%s has no data", bank, id)
	}
	return s.ledger(p), nil
}

// Revoke revokes a process's consent now, as the customer would: the
// process reports customerDeniedConsent and consent "revoked", and its
// data is deleted. It reports whether the process exists.
func (s *Server) Revoke(bank, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.processes[bank+"/"+id]
	if p == nil || p.deleted {
		return false
	}
	if p.revokedAt.IsZero() {
		p.revokedAt = s.opts.Now().UTC()
	}
	return true
}

// Delete deletes a process with its data: it answers 404 from now on.
func (s *Server) Delete(bank, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.processes[bank+"/"+id]
	if p == nil || p.deleted {
		return false
	}
	p.deleted = true
	return true
}

// Injected counts the faults injected so far.
func (s *Server) Injected() FaultCounts { return s.faults.Counts() }

// WebhooksSent counts the process-updated webhooks delivered (2xx).
func (s *Server) WebhooksSent() int64 { return s.webhooksSent.Load() }

// render is the process as the get-process endpoint answers at now. s.mu held.
func (s *Server) render(p *sbProcess, now time.Time) processDoc {
	n := 1
	if elapsed := now.Sub(p.createdAt); elapsed > 0 {
		n = int(elapsed/s.opts.Step) + 1
	}
	if p.completedNow || n > len(p.path) {
		n = len(p.path)
	}
	status := func(code string, at time.Time) statusEntry {
		st := statusEntry{Code: code, Desc: statusDesc[code], Timestamp: at.UTC()}
		if code == statusAuthError {
			st.IsError, st.ErrorMessage = true, authErrorMessage
		}
		return st
	}
	var flow, bank []statusEntry
	consent := consentState("")
	var given *time.Time
	for i, st := range p.path[:n] {
		at := p.createdAt.Add(time.Duration(i) * s.opts.Step)
		if p.completedNow && at.After(now) {
			at = now
		}
		switch {
		case st.bank:
			bank = append(bank, status(st.code, at))
		case st.code == statusAuthError:
			bank = append(bank, status(st.code, at))
			flow = append(flow, status(st.code, at))
		default:
			flow = append(flow, status(st.code, at))
		}
		switch st.code {
		case statusCustomerApproved:
			consent, given = consentApproved, &at
		case statusCustomerDenied:
			consent = consentRevoked
		}
	}
	if !p.revokedAt.IsZero() {
		flow = append(flow, status(statusCustomerDenied, p.revokedAt))
		consent = consentRevoked
	}
	proc := processDoc{ID: p.id, Market: p.market, PartnerBank: p.bank, SocialSecurityNumber: p.ssn, CompanyID: p.companyID,
		CreatedAt: p.createdAt, FirstName: p.first, LastName: p.last, Consent: consent, DataCollectionType: "transaction-categorisation",
		PSUType: p.psuType, BrokerBanks: []string{}}
	proc.ConsentFlowStatus = consentFlowStatus{statusHistory: statusHistory{Current: flow[len(flow)-1], History: flow},
		Consent: consent, ID: objectID(s.opts.Seed, "flow/"+p.id)}
	proc.UpdatedAt = flow[len(flow)-1].Timestamp
	if len(bank) > 0 {
		bc := bankConsent{CustomerBank: customerBank{Name: "Swedbank", Country: p.market},
			Status: statusHistory{Current: bank[len(bank)-1], History: bank}, ConsentGivenAt: given,
			ConsentFlowStatusID: proc.ConsentFlowStatus.ID}
		proc.CustomerBankConsent = []bankConsent{bc}
		proc.ConsentFlowStatuses = []bankConsent{bc}
		if t := bank[len(bank)-1].Timestamp; t.After(proc.UpdatedAt) {
			proc.UpdatedAt = t
		}
	}
	return proc
}

// hasData tells whether a process serves transactions and insights now:
// completed, not revoked, not deleted. s.mu held.
func (s *Server) hasData(p *sbProcess, now time.Time) bool {
	return !p.deleted && p.revokedAt.IsZero() && p.txns != nil && s.render(p, now).ConsentFlowStatus.Current.Code == statusCompleted
}

// state summarizes what a webhook announces; a change sends one. s.mu held.
func (s *Server) state(p *sbProcess, now time.Time) string {
	if p.deleted {
		return "deleted"
	}
	proc := s.render(p, now)
	n := len(proc.ConsentFlowStatus.History)
	if len(proc.CustomerBankConsent) > 0 {
		n += len(proc.CustomerBankConsent[0].Status.History)
	}
	return strconv.Itoa(n) + "/" + string(proc.Consent)
}

// watch looks for status changes until Close.
func (s *Server) watch() {
	t := time.NewTicker(s.opts.WebhookPoll)
	defer t.Stop()
	for {
		select {
		case <-s.run.Context().Done():
			return
		case <-t.C:
			s.Tick()
		}
	}
}

// Tick sends a process-updated webhook to every registered URL for each
// process whose status changed since the last one, and waits until they
// are delivered (or failed 3 times).
func (s *Server) Tick() {
	type hook struct {
		urls []string
		body []byte
		bank string
	}
	var hooks []hook
	s.mu.Lock()
	now := s.opts.Now()
	urls := append([]string{}, s.webhooks...)
	for _, key := range s.order {
		p := s.processes[key]
		st := s.state(p, now)
		if st == s.notified[key] {
			continue
		}
		s.notified[key] = st
		if len(urls) == 0 {
			continue
		}
		var body []byte
		if p.deleted {
			body = sandboxkit.MustJSON(map[string]any{"_id": p.id, "partnerBank": p.bank, "deleted": true})
		} else {
			body = sandboxkit.MustJSON(s.render(p, now))
		}
		hooks = append(hooks, hook{urls, body, p.bank})
	}
	s.mu.Unlock()
	for _, h := range hooks {
		for _, u := range h.urls {
			s.deliver(u, h.bank, h.body)
		}
	}
}

// deliver posts one webhook, trying 3 times.
func (s *Server) deliver(url, bank string, body []byte) {
	dl := s.hooks
	dl.Header = map[string]string{headerPartnerBank: bank}
	if dl.Post(s.run.Context(), url, body) {
		s.webhooksSent.Add(1)
	}
}

// call is what the middleware learned about a request.
type call struct {
	bank   string
	faults sandboxkit.Draw
}

type handler func(w http.ResponseWriter, r *http.Request, c *call)

func (s *Server) routes() {
	p := s.opts.Paths
	pat := func(method, path string) string {
		path = strings.ReplaceAll(path, "{processId}", "{processID}")
		return method + " " + path
	}
	s.handle(pat("POST", p.Login), false, false, s.login)
	s.handle(pat("GET", p.PartnerBanks), true, false, s.listBanks)
	s.handle(pat("POST", p.PartnerBanks), true, false, s.createBank)
	s.handle(pat("POST", p.Processes), true, true, s.createProcess)
	s.handle(pat("GET", p.Process), true, true, s.getProcess)
	s.handle(pat("DELETE", p.Process), true, true, s.deleteProcess)
	s.handle(pat("POST", p.Consent), true, true, s.consentLink)
	s.handle(pat("POST", p.ConsentLink), true, true, s.consentLink)
	s.handle(pat("POST", p.TestConsent), true, true, s.testConsent)
	s.handle(pat("GET", p.Transactions), true, true, s.transactions)
	s.handle(pat("GET", p.Insights), true, true, s.insights)
	s.handle(pat("POST", p.Webhooks), true, false, s.addWebhook)
	s.mux.HandleFunc("/", sandboxkit.NotFound(writeOneError))
}

// handle registers h behind the fault injection, the token check and, for
// bank-level endpoints, the partner-bank-id check.
func (s *Server) handle(pattern string, authenticated, perBank bool, h handler) {
	serve := func(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
		c := &call{faults: d}
		if perBank {
			c.bank = r.Header.Get(headerPartnerBank)
			if c.bank == "" {
				writeError(w, http.StatusBadRequest, "partner-bank-id is required")
				return
			}
		}
		h(w, r, c)
	}
	if !authenticated {
		s.mux.HandleFunc(pattern, s.guard.Open(serve))
		return
	}
	s.mux.HandleFunc(pattern, s.guard.Authorized(func(w http.ResponseWriter, r *http.Request, _ struct{}, d sandboxkit.Draw) {
		serve(w, r, d)
	}))
}

// faultError writes an injected fault in the documented error body, with
// the sandbox's own wording for a rate limit.
func faultError(w http.ResponseWriter, status int, message string) {
	if status == http.StatusTooManyRequests {
		message = "Too many requests"
	}
	writeError(w, status, message)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, c *call) {
	var l loginBody
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&l); err != nil {
		writeError(w, http.StatusBadRequest, "name is required", "password is required")
		return
	}
	var missing []string
	if l.Name == "" {
		missing = append(missing, "name is required")
	}
	if l.Password == "" {
		missing = append(missing, "password is required")
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, missing...)
		return
	}
	if subtle.ConstantTimeCompare([]byte(l.Name), []byte(s.opts.Name)) != 1 ||
		subtle.ConstantTimeCompare([]byte(l.Password), []byte(s.opts.Password)) != 1 {
		writeError(w, http.StatusUnauthorized, "invalid credentials")
		return
	}
	token := sandboxkit.RandomHex(32)
	exp := s.tokens.Issue(token, struct{}{}, s.opts.TokenTTL)
	valid := exp.Unix()
	if s.opts.ValidUntilMillis {
		valid = exp.UnixMilli()
	}
	s.faults.Reply(w, c.faults, http.StatusOK, tokenBody{AccessToken: token, ValidUntil: json.Number(strconv.FormatInt(valid, 10))})
}

func (s *Server) listBanks(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	page, err1 := intParam(q.Get(paramPage), 1)
	limit, err2 := intParam(q.Get(paramLimit), 10)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, "page must be a number >= 1", "limit must be a number >= 1")
		return
	}
	s.mu.Lock()
	out := append([]partnerBank{}, sandboxkit.PageOf(s.banks, page, limit)...)
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusOK, out)
}

func (s *Server) createBank(w http.ResponseWriter, r *http.Request, c *call) {
	var b partnerBank
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&b); err != nil || b.Name == "" {
		writeError(w, http.StatusBadRequest, "name is required")
		return
	}
	s.mu.Lock()
	s.created++
	b.ID = objectID(s.opts.Seed, "bank/created/"+strconv.Itoa(s.created))
	s.banks = append(s.banks, b)
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusCreated, b)
}

// createProcess starts a process: the bad demo SSN ends in authError, any
// other follows the good path from now.
func (s *Server) createProcess(w http.ResponseWriter, r *http.Request, c *call) {
	var np newProcess
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&np); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body")
		return
	}
	var problems []string
	if np.Market != "SE" && np.Market != "FI" {
		problems = append(problems, "market must be one of the following values: SE, FI")
	}
	if np.DataCollectionType != "transaction-categorisation" && np.DataCollectionType != "bank-account-verification" {
		problems = append(problems, "dataCollectionType must be one of the following values: transaction-categorisation, bank-account-verification")
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, problems...)
		return
	}
	s.mu.Lock()
	if !s.knownBank(c.bank) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "partner bank not found")
		return
	}
	s.created++
	p := &sbProcess{id: objectID(s.opts.Seed, "process/created/"+strconv.Itoa(s.created)), bank: c.bank, market: np.Market,
		psuType: "private", ssn: np.SocialSecurityNumber, companyID: np.CompanyID, first: np.FirstName, last: np.LastName,
		createdAt: s.opts.Now().UTC(), path: goodPath}
	if np.CompanyID != "" {
		p.psuType = "business" // the response's value, not the request's enum (fimento doc, 7)
	}
	if np.SocialSecurityNumber == BadSSN {
		p.path = authErrorPath
	}
	s.addProcess(p)
	key := p.bank + "/" + p.id
	s.notified[key] = s.state(p, s.opts.Now())
	proc := s.render(p, s.opts.Now())
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusCreated, proc)
}

func (s *Server) knownBank(id string) bool {
	for _, b := range s.banks {
		if b.ID == id {
			return true
		}
	}
	return false
}

// processOf finds the path's process in the request's partner bank or
// answers 404.
func (s *Server) processOf(w http.ResponseWriter, r *http.Request, c *call) (*sbProcess, bool) {
	p := s.processes[c.bank+"/"+r.PathValue("processID")]
	if p == nil || p.deleted {
		writeError(w, http.StatusNotFound, "process not found")
		return nil, false
	}
	return p, true
}

func (s *Server) getProcess(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	var proc processDoc
	if ok {
		proc = s.render(p, s.opts.Now())
	}
	s.mu.Unlock()
	if ok {
		body := sandboxkit.MustJSON(proc)
		if s.opts.ExtraFields {
			body = withMembers(body, "customerSegment", "retail",
				"kyc", map[string]any{"level": 2, "ssn": p.ssn, "checkedName": p.first + " " + p.last})
		}
		s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, body)
	}
}

func (s *Server) deleteProcess(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	if ok {
		p.deleted = true
	}
	s.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) consentLink(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	s.mu.Unlock()
	if ok {
		s.faults.Reply(w, c.faults, http.StatusCreated, map[string]string{"consent-link": "https://consent.sandbox.fimento.invalid/" + p.id + "/" + sandboxkit.RandomHex(8)})
	}
}

// testConsent approves or revokes a consent flow. The docs list a status
// (approved|revoked) but show the body {"isApproved": true} (fimento package doc, 18):
// the status in the path decides; a body, if sent, must agree.
func (s *Server) testConsent(w http.ResponseWriter, r *http.Request, c *call) {
	status := consentState(r.PathValue("status"))
	if status != consentApproved && status != consentRevoked {
		writeError(w, http.StatusBadRequest, "status must be one of the following values: approved, revoked")
		return
	}
	var body struct {
		IsApproved *bool `json:"isApproved"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid body")
		return
	}
	if body.IsApproved != nil && *body.IsApproved != (status == consentApproved) {
		writeError(w, http.StatusBadRequest, "status and isApproved disagree")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.processOf(w, r, c)
	if !ok {
		return
	}
	now := s.opts.Now()
	if status == consentRevoked {
		if p.revokedAt.IsZero() {
			p.revokedAt = now.UTC()
		}
	} else {
		code := s.render(p, now).ConsentFlowStatus.Current.Code
		if p.path[len(p.path)-1].code != statusCompleted || !p.revokedAt.IsZero() {
			writeError(w, http.StatusConflict, "the consent flow cannot be approved in status "+code)
			return
		}
		p.completedNow = true
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]bool{"isApproved": status == consentApproved})
}

func (s *Server) transactions(w http.ResponseWriter, r *http.Request, c *call) {
	page, err := intParam(r.URL.Query().Get(paramPage), 0)
	if err != nil || page < 1 {
		writeError(w, http.StatusBadRequest, "page must be a number >= 1")
		return
	}
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	if ok && !s.hasData(p, s.opts.Now()) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "no transactions for this process")
		return
	}
	var items [][]byte
	if ok {
		for _, t := range sandboxkit.PageOf(p.txns, page, s.opts.PageSize) {
			items = append(items, s.encodeTxn(p, t))
		}
	}
	s.mu.Unlock()
	if ok {
		tail := "}"
		if s.opts.ExtraFields {
			tail = `,"nextPage":` + strconv.Itoa(page+1) + "}"
		}
		s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, sandboxkit.ListJSON(`{"transactions":`, items, tail))
	}
}

// encodeTxn encodes one transaction; a malformed one has an amount that is
// no number. Dates are local midnight-thirty in Sweden (fimento package doc, 12).
func (s *Server) encodeTxn(p *sbProcess, t sbTxn) []byte {
	acc := p.accounts[t.account]
	tx := transaction{ID: t.id, Amount: json.Number(fixed2(t.amount)), Date: t.day.Format("2006-01-02") + "T00:30:00+01:00",
		Description: t.text, AccountID: objectID(s.opts.Seed, "account/"+p.id+"/"+acc.number), Category: t.category,
		CBankID: objectID(s.opts.Seed, "cbank/"+acc.bank)}
	if s.faults.Malform("tx/" + t.id) {
		return sandboxkit.MustJSON(struct {
			transaction
			Amount string `json:"amount"`
		}{tx, "abc"})
	}
	if s.opts.ExtraFields {
		return withMembers(sandboxkit.MustJSON(tx), "merchantLogo", "https://logos.fimento.invalid/"+t.category+".png")
	}
	return sandboxkit.MustJSON(tx)
}

func (s *Server) insights(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	if ok && !s.hasData(p, s.opts.Now()) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "no insights for this process")
		return
	}
	var body []byte
	if ok {
		body = insightsDoc(p)
		if s.opts.ExtraFields {
			body = extraInsights(body, p)
		}
	}
	s.mu.Unlock()
	if ok {
		s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, body)
	}
}

// extraInsights is the insights document doc with ExtraFields' members.
func extraInsights(doc []byte, p *sbProcess) []byte {
	var m map[string]json.RawMessage
	var accounts []json.RawMessage
	if json.Unmarshal(doc, &m) != nil || json.Unmarshal(m["accountsInfo"], &accounts) != nil {
		panic("fimento sandbox: insights do not decode")
	}
	for i, a := range accounts {
		accounts[i] = withMembers(a, "accountLogo", "https://logos.fimento.invalid/account"+strconv.Itoa(i)+".png")
	}
	m["accountsInfo"] = sandboxkit.MustJSON(accounts)
	return withMembers(sandboxkit.MustJSON(m), "riskScore", json.Number("0.125"),
		"merchantSummary", map[string]any{"topMerchant": "ICA Maxi", "note": "prepared for " + p.first + " " + p.last,
			"contact": map[string]string{"firstName": p.first, "lastName": p.last}})
}

// withMembers is the JSON object obj, which has members, with the members
// key, value, ... added.
func withMembers(obj []byte, kv ...any) []byte {
	out := bytes.TrimSuffix(bytes.Clone(obj), []byte("}"))
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(append(append(out, ','), sandboxkit.MustJSON(kv[i])...), ':')
		out = append(out, sandboxkit.MustJSON(kv[i+1])...)
	}
	return append(out, '}')
}

func (s *Server) addWebhook(w http.ResponseWriter, r *http.Request, c *call) {
	var body webhookURL
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.WebhookURL == "" {
		writeError(w, http.StatusBadRequest, "webhookUrl is required")
		return
	}
	if !strings.HasPrefix(body.WebhookURL, "http://") && !strings.HasPrefix(body.WebhookURL, "https://") {
		writeError(w, http.StatusBadRequest, "webhookUrl must be a URL address")
		return
	}
	s.mu.Lock()
	known := false
	for _, u := range s.webhooks {
		known = known || u == body.WebhookURL
	}
	if !known {
		s.webhooks = append(s.webhooks, body.WebhookURL)
	}
	s.mu.Unlock()
	sandboxkit.WriteJSON(w, http.StatusCreated, body)
}

// writeError writes the documented error body.
func writeError(w http.ResponseWriter, status int, messages ...string) {
	sandboxkit.WriteJSON(w, status, apiError{Message: messages, Error: http.StatusText(status), StatusCode: status})
}

// writeOneError is writeError with one message, a sandboxkit.ErrorWriter.
func writeOneError(w http.ResponseWriter, status int, message string) {
	writeError(w, status, message)
}

func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a number >= 1", s)
	}
	return n, nil
}
