package finapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// SandboxOptions configure a Sandbox. Zero fields take the defaults named.
type SandboxOptions struct {
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
	Faults     sandboxkit.Knobs

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

// Sandbox is a fake finAPI Data Intelligence API (token endpoint and the
// two segment endpoints) over a deterministic synthetic ledger. It is an
// http.Handler; its paths are /oauth/token and /segments/....
type Sandbox struct {
	opts   SandboxOptions
	mux    *http.ServeMux
	faults *sandboxkit.Injector
	client *http.Client // delivers callbacks

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	today   time.Time
	ledgers map[string][]LedgerAccount // by mandator
	tokens  map[string]string          // access token → mandator
	jobs    map[string]*sandboxJob
	created map[string]int // jobs created per segment type
}

type sandboxJob struct {
	id, tenant string
	seg        Segment
	req        CreateRequest
	created    time.Time
	polls      int
	ready      bool
	users      []User // computed when the job becomes ready
	duration   *int
}

// NewSandbox builds a sandbox with its synthetic ledgers.
func NewSandbox(opts SandboxOptions) *Sandbox {
	if len(opts.Tenants) == 0 {
		opts.Tenants = []string{"mandator"}
	}
	if opts.UsersPerTenant <= 0 {
		opts.UsersPerTenant = 20
	}
	if opts.Months <= 0 {
		opts.Months = 14
	}
	if opts.Today.IsZero() {
		opts.Today = time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC)
	}
	if opts.ReadyPolls == 0 {
		opts.ReadyPolls = 1
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sandbox{opts: opts, mux: http.NewServeMux(), faults: sandboxkit.NewInjector(opts.Faults),
		client: &http.Client{Timeout: 10 * time.Second}, ctx: ctx, cancel: cancel,
		today: opts.Today, ledgers: map[string][]LedgerAccount{}, tokens: map[string]string{},
		jobs: map[string]*sandboxJob{}, created: map[string]int{}}
	for _, t := range opts.Tenants {
		s.ledgers[t] = ledger(opts.Seed, t, opts.UsersPerTenant, opts.Months, opts.Today)
	}
	s.mux.HandleFunc("POST "+pathToken, s.token)
	s.mux.HandleFunc("POST "+pathSegments+"{segmentType}", s.authorized(s.createJob))
	s.mux.HandleFunc("GET "+pathSegments+"{segmentType}/{jobID}", s.authorized(s.getJob))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s
}

// ServeHTTP serves the API.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops pending callbacks and waits for them.
func (s *Sandbox) Close() {
	s.cancel()
	s.wg.Wait()
}

// Credentials are a mandator's client id and secret.
func Credentials(tenant string) (clientID, secret string) {
	return tenant + "-client", tenant + "-secret"
}

// Ledger is a mandator's synthetic accounts.
func (s *Sandbox) Ledger(tenant string) []LedgerAccount { return s.ledgers[tenant] }

// Today is the day new jobs are created on.
func (s *Sandbox) Today() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.today
}

// SetToday moves the sandbox's calendar (to expire jobs). The ledger does
// not grow: segments are computed as of the creation day.
func (s *Sandbox) SetToday(d time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.today = d
}

// JobsCreated counts the jobs created for a segment type ("" for all).
func (s *Sandbox) JobsCreated(segmentType string) int {
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
func (s *Sandbox) JobIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.jobs {
		ids = append(ids, id)
	}
	return ids
}

// MakeReady finishes a job now and calls its callbackURL.
func (s *Sandbox) MakeReady(jobID string) error {
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
func (s *Sandbox) Forget(jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, jobID)
}

// Injected counts the faults injected so far.
func (s *Sandbox) Injected() sandboxkit.Counts { return s.faults.Counts() }

// Malformed lists the users of a finished job the Malformed knob corrupts.
func (s *Sandbox) Malformed(jobID string) []string {
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

func (s *Sandbox) token(w http.ResponseWriter, r *http.Request) {
	d, ok := s.faults.Begin(w, r, writeError)
	if !ok {
		return
	}
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
	s.mu.Lock()
	s.tokens[tok] = tenant
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"access_token": tok, "token_type": "bearer",
		"expires_in": int(s.opts.TokenTTL / time.Second), "scope": "all"})
	s.faults.WriteBody(w, d, body)
}

type authorizedHandler func(w http.ResponseWriter, r *http.Request, tenant string, d sandboxkit.Draw)

// authorized puts h behind the faults and the bearer token check.
func (s *Sandbox) authorized(h authorizedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.faults.Begin(w, r, writeError)
		if !ok {
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		tenant, known := s.tokens[tok]
		if known && d.ExpireToken {
			delete(s.tokens, tok)
			s.faults.TokenExpired()
		}
		s.mu.Unlock()
		if !known || d.ExpireToken {
			writeError(w, http.StatusUnauthorized, "invalid or expired access token")
			return
		}
		h(w, r, tenant, d)
	}
}

func (s *Sandbox) createJob(w http.ResponseWriter, r *http.Request, tenant string, d sandboxkit.Draw) {
	seg, ok := segmentOf(r.PathValue("segmentType"))
	if !ok {
		writeError(w, http.StatusNotFound, "unknown segment type "+r.PathValue("segmentType"))
		return
	}
	var req CreateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if msg := validRequest(seg, req); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	j := &sandboxJob{id: randomID(), tenant: tenant, seg: seg, req: req, created: s.today}
	s.jobs[j.id] = j
	s.created[seg.Type]++
	s.mu.Unlock()
	if s.opts.ReadyAfter > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-time.After(s.opts.ReadyAfter):
				s.MakeReady(j.id)
			case <-s.ctx.Done():
			}
		}()
	}
	body, _ := json.Marshal(CreateResponse{JobID: j.id})
	s.faults.WriteBody(w, d, body)
}

func validRequest(seg Segment, r CreateRequest) string {
	var p Params = DefaultParams()
	switch seg {
	case HighBalance:
		p.HighBalance.AccountType, p.HighBalance.Threshold = r.AccountType, r.Threshold.String()
	case LowBalance:
		p.LowBalance.AccountType, p.LowBalance.Threshold, p.LowBalance.Months = orChecking(r.AccountType), r.Threshold.String(), r.NumberOfMonths
	case IncomeSpending:
		from, err1 := time.Parse(time.DateOnly, r.DateFrom)
		to, err2 := time.Parse(time.DateOnly, r.DateTo)
		if err1 != nil || err2 != nil || to.Before(from) {
			return "dateFrom and dateTo must be dates, dateFrom first"
		}
	case FinancialBreakdown:
		p.FinancialBreakdown.LabelGroups, p.FinancialBreakdown.Months = r.LabelGroups, r.NumberOfMonths
	}
	if err := p.check(); err != nil {
		return err.Error()
	}
	return ""
}

func (s *Sandbox) getJob(w http.ResponseWriter, r *http.Request, tenant string, d sandboxkit.Draw) {
	number, err1 := strconv.Atoi(orDefault(r.URL.Query().Get("number"), "0"))
	size, err2 := strconv.Atoi(orDefault(r.URL.Query().Get("size"), "20"))
	if err1 != nil || err2 != nil || number < 0 || size < 1 || size > 1000 {
		writeError(w, http.StatusBadRequest, "number must be ≥ 0 and size in 1..1000")
		return
	}
	s.mu.Lock()
	j, ok := s.jobs[r.PathValue("jobID")]
	if ok && (j.tenant != tenant || j.seg.Type != r.PathValue("segmentType")) {
		ok = false
	}
	if ok && !s.today.Before(j.created.Add(Lifetime)) {
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
func (s *Sandbox) finish(j *sandboxJob) {
	if !j.ready {
		j.ready = true
		j.users, j.duration = result(j.seg, j.req, s.ledgers[j.tenant], j.created)
	}
}

// page encodes one result page, corrupting the users Malformed picks;
// s.mu is held.
func (s *Sandbox) page(j *sandboxJob, number, size int) []byte {
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
func (s *Sandbox) callback(j *sandboxJob) {
	if j.req.CallbackURL == "" {
		return
	}
	body, _ := json.Marshal(Callback{JobID: j.id, SegmentType: j.seg.Type})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for attempt := range 3 {
			req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, j.req.CallbackURL, bytes.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			if resp, err := s.client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return
				}
			}
			select {
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
		}
	}()
}

func segmentOf(t string) (Segment, bool) {
	for _, s := range Segments() {
		if s.Type == t {
			return s, true
		}
	}
	return Segment{}, false
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"message": msg, "code": http.StatusText(status)}}})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:8]) + "-" + hex.EncodeToString(b[8:])
}
