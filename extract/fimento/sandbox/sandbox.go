package sandbox

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
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

	// BankSpellings makes the monthly Swish text name the customer as
	// Swedish banks print it, a different form each month: upper-case and
	// folded to ASCII, transliterated, surname first or with an initial
	// ("AKERLUND MARTA", "Maerta Aakerlund", "M. AAKERLUND"), the number
	// spaced, dashed or dotted ("19950309 6316", "1995-03-09-6316",
	// "556 987 6543"). PersonalData lists those forms too.
	BankSpellings bool

	// ProcessesDown, when set, makes Fimento answer 503 (Retry-After: 0,
	// so tests do not wait) to every request about a process it has down,
	// as a Fimento whose store for some customers is out.
	ProcessesDown *sandboxkit.Outage

	// Faults are the fault knobs. Here an expired token stays refused (401
	// now and later), Malformed transactions have a non-numeric amount,
	// Duplicate is not used, and HugeField gives every insights document a
	// "note" of that many bytes; the other hostile-page knobs are not used.
	Faults sandboxkit.Knobs
	Logger *slog.Logger // default: discard
}

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
	hidden                      bool // answers 404 with its data intact (Hide)
	accounts                    []sbAccount
	txns                        []sbTxn
	spellings                   []string // the identifiers' other forms the ledger prints (BankSpellings)
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
	o.Name = cmp.Or(o.Name, "sandbox-user")
	o.Password = cmp.Or(o.Password, "sandbox-password")
	if len(o.PartnerBanks) == 0 {
		o.PartnerBanks = []string{"605c6c479691950d359bb0e9"}
	}
	o.ProcessesPerBank = sandboxkit.OrPositive(o.ProcessesPerBank, 5)
	o.Months = sandboxkit.OrPositive(o.Months, 6)
	o.Today = sandboxkit.OrToday(o.Today)
	o.Step = sandboxkit.OrPositive(o.Step, time.Minute)
	o.Now = sandboxkit.OrNow(o.Now)
	o.PageSize = sandboxkit.OrPositive(o.PageSize, 25)
	o.TokenTTL = sandboxkit.OrPositive(o.TokenTTL, time.Hour)
	if o.Paths == (Paths{}) {
		o.Paths = DefaultPaths()
	}
	o.WebhookPoll = sandboxkit.OrPositive(o.WebhookPoll, 100*time.Millisecond)
	o.Logger = sandboxkit.OrDiscard(o.Logger)
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
		p.accounts, p.txns = ledgerOf(s.opts.Seed, p, s.opts.Months, p.today, s.opts.BankSpellings)
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
		for _, v := range append([]string{p.ssn, p.companyID, p.first, p.last}, p.spellings...) {
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

// Hide makes a process answer 404 while hidden, its data intact: what a
// load balancer, a maintenance page or an API version change can say of a
// process that exists. It reports whether the process exists.
func (s *Server) Hide(bank, id string, hidden bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.processes[bank+"/"+id]
	if p == nil {
		return false
	}
	p.hidden = hidden
	return true
}

// Injected counts the faults injected so far.
func (s *Server) Injected() sandboxkit.Counts { return s.faults.Counts() }

// SetFaults changes the fault knobs from the next request on.
func (s *Server) SetFaults(k sandboxkit.Knobs) { s.faults.Set(k) }

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
