package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// Options configure a Server. Zero fields take the defaults named.
type Options struct {
	// Tenants are the mandators; each has the credentials
	// <name>-client / <name>-secret. Default: one, "mandator".
	Tenants        []string
	UsersPerTenant int // default 20
	Months         int // months of synthetic history before Today; default 14
	Seed           int64
	Today          time.Time // the creation day of new jobs; default 2026-02-23

	// ReadyPolls is how many polls a job answers 404 before its result;
	// default 1; negative: never by polling (only ReadyAfter or MakeReady).
	ReadyPolls int
	// ReadyAfter makes a job ready on its own after this long and calls
	// its callbackURL; 0: never on its own.
	ReadyAfter time.Duration
	TokenTTL   time.Duration // default 3600s
	// Faults are the fault knobs. Here HugeField gives the first user of a
	// job's first page a "note" of that many bytes; the other hostile-page
	// knobs are not used.
	Faults sandboxkit.Knobs

	// Paging as a real server may do it. MaxPageSize caps the users per
	// page whatever size asks (the answer's size says so); 0: no cap.
	MaxPageSize int
	// OmitTotalPages and OmitTotalElements leave those fields out of the
	// pages (the docs' Getting Started example has no totalPages).
	OmitTotalPages, OmitTotalElements bool
	// MissingUsers leaves a job's last users out of its pages while
	// totalElements still counts them.
	MissingUsers int
	// IgnorePageNumber answers every page number with the first page.
	IgnorePageNumber bool
	// CreationDateShift moves the creationDate the result pages carry away
	// from the job's creation day (negative: older), as a server handing
	// out an old snapshot would; the members stay those of the creation day.
	CreationDateShift time.Duration
	// ExtraUserFields are added to every user object of the result pages,
	// next to userId and accounts, as a newer finAPI might send (e.g.
	// "segmentVersion": "2").
	ExtraUserFields map[string]any
}

// Server is a fake finAPI Data Intelligence API (token endpoint and the
// two segment endpoints) over a deterministic synthetic ledger. It is an
// http.Handler; its paths are /oauth/token and /segments/....
type Server struct {
	opts      Options
	mux       *http.ServeMux
	faults    *sandboxkit.Injector
	tokens    *sandboxkit.Tokens[string] // access token → mandator
	guard     *sandboxkit.Guard[string]
	run       *sandboxkit.Runner
	callbacks sandboxkit.Delivery

	mu      sync.Mutex
	today   time.Time
	ledgers map[string][]LedgerAccount // by mandator
	jobs    map[string]*job
	created map[string]int // jobs created per segment type
}

type job struct {
	id, tenant string
	seg        string // segment type
	req        createRequest
	created    time.Time
	polls      int
	ready      bool
	users      []member // computed when the job becomes ready
	duration   *int
}

// New builds a sandbox with its synthetic ledgers.
func New(opts Options) *Server {
	if len(opts.Tenants) == 0 {
		opts.Tenants = []string{"mandator"}
	}
	opts.UsersPerTenant = sandboxkit.OrPositive(opts.UsersPerTenant, 20)
	opts.Months = sandboxkit.OrPositive(opts.Months, 14)
	opts.Today = sandboxkit.OrToday(opts.Today)
	if opts.ReadyPolls == 0 {
		opts.ReadyPolls = 1
	}
	opts.TokenTTL = sandboxkit.OrPositive(opts.TokenTTL, time.Hour)
	s := &Server{opts: opts, mux: http.NewServeMux(), faults: sandboxkit.NewInjector(opts.Faults), run: sandboxkit.NewRunner(),
		callbacks: sandboxkit.Delivery{Client: &http.Client{Timeout: 10 * time.Second}, Attempts: 3,
			Delay: func(attempt int) time.Duration { return time.Duration(attempt) * 200 * time.Millisecond }},
		today: opts.Today, ledgers: map[string][]LedgerAccount{}, jobs: map[string]*job{}, created: map[string]int{}}
	// Tokens do not expire here but by the TokenExpiry fault; every refusal
	// reads the same.
	s.tokens = sandboxkit.NewTokens[string](time.Now, s.faults)
	s.guard = &sandboxkit.Guard[string]{Faults: s.faults, Tokens: s.tokens, Error: writeError, BareTokens: true,
		Refusal: func(sandboxkit.TokenStatus) string { return "invalid or expired access token" }}
	for _, t := range opts.Tenants {
		s.ledgers[t] = ledger(opts.Seed, t, opts.UsersPerTenant, opts.Months, opts.Today)
	}
	s.mux.HandleFunc("POST "+pathToken, s.guard.Open(s.token))
	s.mux.HandleFunc("POST "+pathSegments+"{segmentType}", s.guard.Authorized(s.createJob))
	s.mux.HandleFunc("GET "+pathSegments+"{segmentType}/{jobID}", s.guard.Authorized(s.getJob))
	s.mux.HandleFunc("/", sandboxkit.NotFound(writeError))
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops pending callbacks and waits for them.
func (s *Server) Close() { s.run.Close() }

// Credentials are a mandator's client id and secret.
func Credentials(tenant string) (clientID, secret string) {
	return tenant + "-client", tenant + "-secret"
}

// Ledger is a mandator's synthetic accounts.
func (s *Server) Ledger(tenant string) []LedgerAccount { return s.ledgers[tenant] }

// Today is the day new jobs are created on.
func (s *Server) Today() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.today
}

// SetToday moves the sandbox's calendar (to expire jobs). The ledger does
// not grow: segments are computed as of the creation day.
func (s *Server) SetToday(d time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.today = d
}

// JobsCreated counts the jobs created for a segment type ("" for all).
func (s *Server) JobsCreated(segmentType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if segmentType != "" {
		return s.created[segmentType]
	}
	n := 0
	for _, c := range s.created {
		n += c
	}
	return n
}

// JobIDs lists the ids of the jobs created so far.
func (s *Server) JobIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.jobs {
		ids = append(ids, id)
	}
	return ids
}

// MakeReady finishes a job now and calls its callbackURL.
func (s *Server) MakeReady(jobID string) error {
	s.mu.Lock()
	j, ok := s.jobs[jobID]
	if ok {
		s.finish(j)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("finAPI sandbox: no job %q", jobID)
	}
	s.callback(j)
	return nil
}

// Forget drops a job, as finAPI does after 14 days: its GET answers 400.
func (s *Server) Forget(jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, jobID)
}

// Injected counts the faults injected so far.
func (s *Server) Injected() sandboxkit.Counts { return s.faults.Counts() }

// SetFaults changes the fault knobs from the next request on.
func (s *Server) SetFaults(k sandboxkit.Knobs) { s.faults.Set(k) }

// Malformed lists the users of a finished job the Malformed knob corrupts.
func (s *Server) Malformed(jobID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if j := s.jobs[jobID]; j != nil {
		for _, u := range j.users {
			if s.faults.Malformed(jobID + "/" + u.UserID) {
				ids = append(ids, u.UserID)
			}
		}
	}
	return ids
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeError(w, http.StatusBadRequest, "grant_type must be client_credentials")
		return
	}
	var tenant string
	for _, t := range s.opts.Tenants {
		if id, secret := Credentials(t); r.PostForm.Get("client_id") == id && r.PostForm.Get("client_secret") == secret {
			tenant = t
		}
	}
	if tenant == "" {
		writeError(w, http.StatusUnauthorized, "invalid client credentials")
		return
	}
	tok := randomID()
	s.tokens.Issue(tok, tenant, 0)
	s.faults.Reply(w, d, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer",
		"expires_in": int(s.opts.TokenTTL / time.Second), "scope": "all"})
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, tenant string, d sandboxkit.Draw) {
	seg := r.PathValue("segmentType")
	if !slices.Contains(segmentTypes, seg) {
		writeError(w, http.StatusNotFound, "unknown segment type "+r.PathValue("segmentType"))
		return
	}
	var req createRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if msg := validRequest(seg, req); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	j := &job{id: randomID(), tenant: tenant, seg: seg, req: req, created: s.today}
	s.jobs[j.id] = j
	s.created[seg]++
	s.mu.Unlock()
	if s.opts.ReadyAfter > 0 {
		s.run.After(s.opts.ReadyAfter, func() { s.MakeReady(j.id) })
	}
	s.faults.Reply(w, d, http.StatusOK, createResponse{JobID: j.id})
}

// validRequest is what finAPI answers 400 about a job request, one line a
// problem; "" when there is none.
func validRequest(seg string, r createRequest) string {
	var problems []string
	bad := func(name, format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}
	accountType := func(name, v string) {
		if !slices.Contains(accountTypes, v) {
			bad(name, "unknown account type %q (one of %s)", v, strings.Join(accountTypes, ", "))
		}
	}
	threshold := func(name string, v json.Number) {
		if _, err := decimal.NewFromString(v.String()); err != nil {
			bad(name, "threshold %q is not a number", v.String())
		}
	}
	months := func(name string, v, most int) {
		if v < 1 || v > most {
			bad(name, "months %d is outside 1..%d", v, most)
		}
	}
	switch seg {
	case highBalance:
		accountType("high_balance.account_type", r.AccountType)
		threshold("high_balance.threshold", r.Threshold)
	case lowBalance:
		accountType("low_balance.account_type", orChecking(r.AccountType))
		threshold("low_balance.threshold", r.Threshold)
		months("low_balance.months", r.NumberOfMonths, 24)
	case incomeSpending:
		from, err1 := time.Parse(time.DateOnly, r.DateFrom)
		to, err2 := time.Parse(time.DateOnly, r.DateTo)
		if err1 != nil || err2 != nil || to.Before(from) {
			return "dateFrom and dateTo must be dates, dateFrom first"
		}
	case financialBreakdown:
		months("financial_breakdown.months", r.NumberOfMonths, maxBreakdownMonths)
		if len(r.LabelGroups) == 0 {
			bad("financial_breakdown.label_groups", "at least one label group is needed")
		}
		for _, g := range r.LabelGroups {
			if !slices.Contains(labelGroups, g) {
				bad("financial_breakdown.label_groups", "unknown label group %q (one of %s)", g, strings.Join(labelGroups, ", "))
			}
		}
	}
	return strings.Join(problems, "\n")
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, tenant string, d sandboxkit.Draw) {
	number, err1 := strconv.Atoi(orDefault(r.URL.Query().Get("number"), "0"))
	size, err2 := strconv.Atoi(orDefault(r.URL.Query().Get("size"), "20"))
	if err1 != nil || err2 != nil || number < 0 || size < 1 || size > 1000 {
		writeError(w, http.StatusBadRequest, "number must be ≥ 0 and size in 1..1000")
		return
	}
	s.mu.Lock()
	j, ok := s.jobs[r.PathValue("jobID")]
	if ok && (j.tenant != tenant || j.seg != r.PathValue("segmentType")) {
		ok = false
	}
	if ok && !s.today.Before(j.created.Add(jobLifetime)) {
		delete(s.jobs, j.id) // expired: finAPI deleted it
		ok = false
	}
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "job not found")
		return
	}
	if !j.ready {
		j.polls++
		if s.opts.ReadyPolls < 0 || j.polls <= s.opts.ReadyPolls {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "job not ready yet")
			return
		}
		s.finish(j)
	}
	body := s.page(j, number, size)
	s.mu.Unlock()
	s.faults.WriteBody(w, d, body)
}

// finish computes a job's result; s.mu is held.
func (s *Server) finish(j *job) {
	if !j.ready {
		j.ready = true
		j.users, j.duration = result(j.seg, j.req, s.ledgers[j.tenant], j.created)
	}
}

// page encodes one result page, corrupting the users Malformed picks;
// s.mu is held.
func (s *Server) page(j *job, number, size int) []byte {
	total := len(j.users)
	served := j.users[:total-min(total, max(s.opts.MissingUsers, 0))]
	if s.opts.MaxPageSize > 0 {
		size = min(size, s.opts.MaxPageSize)
	}
	if s.opts.IgnorePageNumber {
		number = 0
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"creationDate":%q,`, j.created.Add(s.opts.CreationDateShift).Format(time.DateOnly))
	if j.duration != nil {
		fmt.Fprintf(&b, `"durationInMonth":%d,`, *j.duration)
	}
	var extra []byte
	if len(s.opts.ExtraUserFields) > 0 {
		extra, _ = json.Marshal(s.opts.ExtraUserFields)
		extra[0] = ',' // spliced into each user object
	}
	b.WriteString(`"users":[`)
	for i := number * size; i < min(len(served), (number+1)*size); i++ {
		if i > number*size {
			b.WriteByte(',')
		}
		u := served[i]
		if s.faults.Malformed(j.id + "/" + u.UserID) {
			fmt.Fprintf(&b, `{"userId":%q,"accounts":"unavailable"}`, u.UserID)
			continue
		}
		enc, _ := json.Marshal(u)
		if extra != nil {
			enc = append(enc[:len(enc)-1], extra...)
		}
		if n := s.faults.Knobs().HugeField; n > 0 && i == 0 {
			// The first user of the first page carries a note of n bytes.
			enc = append(enc[:len(enc)-1], `,"note":"`...)
			enc = append(append(enc, bytes.Repeat([]byte{'x'}, int(n))...), `"}`...)
		}
		b.Write(enc)
	}
	b.WriteString(`]`)
	if !s.opts.OmitTotalElements {
		fmt.Fprintf(&b, `,"totalElements":%d`, total)
	}
	if !s.opts.OmitTotalPages {
		fmt.Fprintf(&b, `,"totalPages":%d`, (total+size-1)/size)
	}
	fmt.Fprintf(&b, `,"number":%d,"size":%d}`, number, size)
	return b.Bytes()
}

// callback posts {"jobId", "segmentType"} to the job's callbackURL, a few
// times until it gets a 2xx.
func (s *Server) callback(j *job) {
	if j.req.CallbackURL == "" {
		return
	}
	body := sandboxkit.MustJSON(callbackBody{JobID: j.id, SegmentType: j.seg})
	s.run.Go(func() { s.callbacks.Post(s.run.Context(), j.req.CallbackURL, body) })
}

// writeError writes finAPI's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	sandboxkit.EncodeJSON(w, status, map[string]any{"errors": []map[string]string{{"message": msg, "code": http.StatusText(status)}}})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func randomID() string {
	return sandboxkit.RandomHex(4) + "-" + sandboxkit.RandomHex(4) + "-" + sandboxkit.RandomHex(4)
}
