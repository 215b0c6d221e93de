package finapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/time/rate"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// Config is how finsync reaches finAPI.
type Config struct {
	BaseURL string // the Data Intelligence API base; paths add /segments/...
	// TokenURL is the OAuth token endpoint; default BaseURL + /oauth/token.
	TokenURL string
	// Tenants are the mandators, each with its own client credentials.
	Tenants []Tenant
	Params  Params
	// CallbackURL is where the daemon receives finAPI's "job ready" calls
	// (CallbackHandler); "" means poll only.
	CallbackURL string
	PageSize    int // users per result page; default 500
	FirstPage   int // number of the first page; default 0 (assumption 3)
	// MaxPages is the most result pages a job is read in, against a server
	// that never sends an empty page; default 100,000.
	MaxPages  int
	RateLimit float64 // requests per second over all tenants; default Settings'
	// Polling of a job not ready yet: the first wait, the longest wait, and
	// how long one run polls before it ends as partial (the next run
	// resumes the same job). Defaults 1s, 30s, 10m.
	PollInitial, PollMax, PollTimeout time.Duration
	// Memory allocates the records (nil: the default); tests check it ends at zero.
	Memory memory.Allocator
	HTTP   *http.Client
	// Limits bound what one answer may make the client hold (zero fields:
	// extract.DefaultLimits').
	Limits extract.Limits
	// RateWaited, if set, is told of each wait on the rate limit.
	RateWaited func(time.Duration)
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now
}

// Tenant is one mandator and its credentials.
type Tenant struct {
	Name, ClientID, ClientSecret string
}

// API is a finAPI client shared by the five segment streams: one token and
// one HTTP client per mandator, one rate limit for all.
type API struct {
	cfg     Config
	mem     memory.Allocator
	clients *extract.Clients // Get is nil for a mandator without credentials

	wakes extract.Wakes // job id → wakes the run polling it
}

// NewAPI returns a client for cfg.
func NewAPI(cfg Config) *API {
	if cfg.TokenURL == "" {
		cfg.TokenURL = cfg.BaseURL + pathToken
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 100_000
	}
	cfg.RateLimit = cmp.Or(cfg.RateLimit, extract.Defaults[Settings]().RateLimit)
	if cfg.PollInitial <= 0 {
		cfg.PollInitial = time.Second
	}
	if cfg.PollMax <= 0 {
		cfg.PollMax = 30 * time.Second
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, mem: cmp.Or[memory.Allocator](cfg.Memory, memory.DefaultAllocator)}
	// The token endpoint may live on another host (finAPI's Access API), so
	// it gets a client of its own.
	tokens := extract.NewClient(extract.ClientOptions{BaseURL: cfg.TokenURL, HTTP: cfg.HTTP, Logger: cfg.Logger, Limits: cfg.Limits})
	auths := map[string]*extract.TokenCache{}
	for _, t := range cfg.Tenants {
		auths[t.Name] = extract.NewTokenCache(func(ctx context.Context) (extract.Token, error) {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {t.ClientID}, "client_secret": {t.ClientSecret}}
			var tok struct {
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
			}
			if err := tokens.PostForm(ctx, "", nil, form, &tok, extract.Sensitive(), extract.Idempotent()); err != nil {
				return extract.Token{}, fmt.Errorf("finAPI auth of mandator %s: %w", t.Name, err)
			}
			if tok.AccessToken == "" {
				return extract.Token{}, &extract.Permanent{Err: fmt.Errorf("finAPI auth of mandator %s: no access_token in the answer", t.Name)}
			}
			var expiry time.Time
			if tok.ExpiresIn > 0 {
				expiry = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
			}
			return extract.Token{Value: tok.AccessToken, Expiry: expiry}, nil
		}, nil)
	}
	// Mandators differ by their token alone: no tenant header.
	a.clients = extract.NewTenantClients(extract.TenantOptions{
		Client: extract.ClientOptions{BaseURL: cfg.BaseURL, HTTP: cfg.HTTP, Logger: cfg.Logger,
			Limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), 2), RateWaited: cfg.RateWaited, Limits: cfg.Limits},
		Auth: func(tenant string) (*extract.TokenCache, bool) {
			auth, ok := auths[tenant]
			return auth, ok
		}})
	return a
}

// Stats adds up what the mandators' clients did.
func (a *API) Stats() extract.ClientStats { return a.clients.Stats() }

// Streams are the five segment streams, each per mandator (tenant).
func Streams(a *API) []extract.Stream {
	var out []extract.Stream
	for _, seg := range Segments() {
		s := extract.Stream{Name: seg.Stream, Provider: provider, Stats: a.Stats, Async: true,
			Tables: []transform.Table{transform.SegmentMembers},
			Run: func(ctx context.Context, req extract.Request, o extract.Output) (string, error) {
				return a.run(ctx, seg, req, o)
			}}
		if seg != InsuranceSpending { // the one segment without parameters
			s.CheckParams = func(kv map[string]string) []error {
				p := DefaultParams()
				return p.Apply(seg, kv)
			}
		}
		out = append(out, s)
	}
	return out
}

// errLost is finAPI's 400 on a job: it does not know the job (any more).
var errLost = errors.New("finAPI does not know the job (400)")

// run resumes the stream's active jobs or, when there is none and the run
// is not a triggered one (a callback's), creates one; then collects them.
// The cursor is the id of the last job collected.
//
// A job is recorded (JobLog.Put) right after finAPI returned its id and
// before anything else, so a restart polls the same job instead of creating
// and paying for another. A job finAPI no longer knows is marked lost and
// the next run creates a new one; a job past the 14-day lifetime is
// marked expired without asking.
func (a *API) run(ctx context.Context, seg Segment, req extract.Request, out extract.Output) (string, error) {
	c := a.clients.Get(req.Tenant)
	if c == nil {
		return req.Cursor, &extract.Permanent{Err: fmt.Errorf("finAPI mandator %q has no credentials configured", req.Tenant)}
	}
	now := a.cfg.Now().UTC()
	jobs := req.Jobs
	if len(jobs) == 0 && req.Triggered {
		// A callback's run resumes; only the schedule creates (and pays for) jobs.
		a.cfg.Logger.InfoContext(ctx, "triggered run: no pending job to collect, none created", "segment", seg.Type)
		return req.Cursor, nil
	}
	if len(jobs) == 0 {
		j, err := a.create(ctx, c, seg, req.Tenant, req.Params, now)
		if err != nil {
			return req.Cursor, err
		}
		if err := req.JobLog.Put(ctx, j); err != nil {
			return req.Cursor, fmt.Errorf("recording job %s: %w", j.ID, err)
		}
		jobs = []extract.Job{j}
	}
	cursor := req.Cursor
	for _, j := range jobs {
		if now.Sub(j.CreatedAt) >= Lifetime {
			j.Status = extract.JobExpired
			if err := req.JobLog.Put(ctx, j); err != nil {
				return cursor, err
			}
			continue
		}
		err := a.collect(ctx, c, seg, req, j, now, out)
		if errors.Is(err, errLost) {
			j.Status = extract.JobLost
			if jerr := req.JobLog.Put(ctx, j); jerr != nil {
				return cursor, jerr
			}
			return cursor, &extract.RetryAfter{Err: fmt.Errorf("%s job %s: %w; the next run creates a new one", seg.Type, j.ID, err)}
		}
		if err != nil {
			return cursor, fmt.Errorf("%s job %s: %w", seg.Type, j.ID, err)
		}
		j.Status = extract.JobDone
		if err := req.JobLog.Put(ctx, j); err != nil {
			return cursor, err
		}
		cursor = j.ID
	}
	return cursor, nil
}

// create posts a new job. The POST is not repeated on an ambiguous failure
// (the client's rule for non-idempotent calls): a second job would be
// billed again.
func (a *API) create(ctx context.Context, c *extract.Client, seg Segment, tenant string, params map[string]string, now time.Time) (extract.Job, error) {
	p := a.cfg.Params
	if params != nil {
		// The schedules file's check reported the problems.
		p = DefaultParams()
		p.Apply(seg, params)
	}
	body := p.Request(seg, now, "")
	recorded, err := json.Marshal(body)
	if err != nil {
		return extract.Job{}, err
	}
	if a.cfg.CallbackURL != "" {
		body.CallbackURL = a.cfg.CallbackURL + "?" + url.Values{"tenant": {tenant}, "segmentType": {seg.Type}}.Encode()
	}
	var resp CreateResponse
	if err := c.PostJSON(ctx, pathSegments+seg.Type, nil, body, &resp); err != nil {
		return extract.Job{}, fmt.Errorf("creating a %s job: %w", seg.Type, err)
	}
	if resp.JobID == "" {
		return extract.Job{}, &extract.Permanent{Err: fmt.Errorf("creating a %s job: no jobId in the answer", seg.Type)}
	}
	a.cfg.Logger.InfoContext(ctx, "finAPI segment job created", "segment", seg.Type, "job", resp.JobID)
	return extract.Job{ID: resp.JobID, Params: string(recorded), Status: extract.JobActive, CreatedAt: now.Truncate(time.Second)}, nil
}

// collect polls job j until its first page is ready, then loads every page.
func (a *API) collect(ctx context.Context, c *extract.Client, seg Segment, req extract.Request, j extract.Job, now time.Time, out extract.Output) error {
	wake := a.wakes.Wait(j.ID)
	defer a.wakes.Unwait(j.ID)
	w := NewMembersWriter(a.mem, req.Lineage)
	defer w.Release()
	users := 0
	var elements, pages int // the totals announced, 0 while none was
	var previous [sha256.Size]byte
	// load loads the n-th page read (from 0) while it is held (a.page),
	// and says whether to read another.
	load := func(n int, pg ResultPage, large []extract.TooLarge) (more bool, err error) {
		number := a.cfg.FirstPage + n
		if len(pg.Users)+len(large) == 0 {
			return false, nil
		}
		// A server that ignores the page number would be read forever.
		sum := usersSum(pg.Users, large)
		if n > 0 && sum == previous {
			return false, fmt.Errorf("page %d repeats page %d (the same %d users): finAPI seems to ignore the page number; stopped after %d users",
				number, number-1, len(pg.Users)+len(large), users)
		}
		previous = sum
		if err := checkDate(pg.CreationDate, j.CreatedAt, now); err != nil {
			return false, fmt.Errorf("page %d: %w", number, err)
		}
		users += len(pg.Users) + len(large)
		elements, pages = max(elements, pg.TotalElements), max(pages, pg.TotalPages)
		// A user over the record or field limits is rejected, its first
		// bytes kept; the page's other users load.
		for _, t := range large {
			r := extract.Reject{Table: transform.SegmentMembers.Name, Key: j.ID + "/" + extract.RejectKey(t.Raw, "userId"), Reason: t.Reason, Raw: t.Raw}
			if err := out.Reject(r); err != nil {
				return false, err
			}
		}
		for _, r := range w.AddPage(seg, j.ID, j.Params, pg) {
			if err := out.Reject(r); err != nil {
				return false, err
			}
		}
		if w.Len() > 0 {
			rec := w.Record()
			err := out.Records(transform.SegmentMembers, rec)
			rec.Release()
			if err != nil {
				return false, err
			}
		}
		return morePages(elements, pages, users, n+1), nil
	}

	var more bool
	var loadErr error // load's, returned as is
	err := extract.Poll(ctx, extract.PollOptions{Initial: a.cfg.PollInitial, Max: a.cfg.PollMax, Deadline: a.cfg.PollTimeout, Wake: wake},
		func(ctx context.Context) (bool, error) {
			err := a.page(ctx, c, seg, j.ID, a.cfg.FirstPage, func(pg ResultPage, large []extract.TooLarge) error {
				more, loadErr = load(0, pg, large)
				return loadErr
			})
			var herr *extract.HTTPError
			if errors.As(err, &herr) && herr.Status == http.StatusNotFound {
				return false, nil // not ready yet
			}
			return err == nil, err
		})
	if errors.Is(err, extract.ErrPollDeadline) {
		return &extract.RetryAfter{Wait: a.cfg.PollMax, Err: fmt.Errorf("not ready: %w; the next run polls it again", err)}
	}
	if err != nil {
		return err
	}
	// Not extract.Pages: the first page is the one the poll already read,
	// and load names its page itself (Pages would prefix every error with
	// it again).
	for n := 1; more; n++ {
		number := a.cfg.FirstPage + n
		if n >= a.cfg.MaxPages {
			return fmt.Errorf("stopped after %d pages and %d users, the most pages a job is read in: finAPI sent neither an empty page nor the users it announced",
				n, users)
		}
		err := a.page(ctx, c, seg, j.ID, number, func(pg ResultPage, large []extract.TooLarge) error {
			more, loadErr = load(n, pg, large)
			return loadErr
		})
		switch {
		case err != nil && err == loadErr:
			return err
		case err != nil:
			return fmt.Errorf("page %d: %w", number, err)
		}
	}
	if elements != 0 && users != elements {
		return &extract.Inconsistent{Check: "total_elements", Err: &extract.RetryAfter{Err: fmt.Errorf(
			"received %d users, finAPI announced totalElements %d; the job stays active and the next run reads it again", users, elements)}}
	}
	return nil
}

// checkDate refuses a page whose creationDate is more than a day from the
// job's creation (a day allows for time zones) or past finAPI's lifetime
// already (assumption 15): its expires_on would be wrong, or the same
// sync's retention would delete its rows. The run fails without loading it
// and the job stays active, so the next run reads it again and bills
// nothing.
func checkDate(creationDate string, jobCreated, now time.Time) error {
	created, err := time.Parse(time.DateOnly, creationDate)
	if err != nil {
		return nil // AddPage rejects the page's users, naming the date
	}
	day := 24 * time.Hour
	asked, today := jobCreated.UTC().Truncate(day), now.UTC().Truncate(day)
	var why []string
	if d := created.Sub(asked); d > day || d < -day {
		why = append(why, "more than a day apart")
	}
	if expires := created.Add(Lifetime); expires.Before(today) {
		why = append(why, fmt.Sprintf("expired on %s, before today %s", expires.Format(time.DateOnly), today.Format(time.DateOnly)))
	}
	if len(why) == 0 {
		return nil
	}
	return &extract.Inconsistent{Check: "result_date", Err: fmt.Errorf(
		"finAPI's result has creationDate %s, the job was created %s (%s): not loaded; the job stays active, the next run reads it again and creates none",
		creationDate, asked.Format(time.DateOnly), strings.Join(why, "; "))}
}

// morePages says whether to read another page, with read pages and users
// users in so far (assumption 3): while totalElements or totalPages says
// there are more, and with neither, until an empty page. A short page
// proves nothing: the server may cap the page size.
func morePages(elements, pages, users, read int) bool {
	if elements == 0 && pages == 0 {
		return true
	}
	return users < elements || read < pages
}

// usersSum identifies a page by its users, those too large to load too.
func usersSum(users []json.RawMessage, large []extract.TooLarge) [sha256.Size]byte {
	h := sha256.New()
	for _, u := range users {
		h.Write(u)
		h.Write([]byte{0})
	}
	for _, t := range large {
		h.Write(t.Raw)
		h.Write([]byte{1})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// page fetches one result page and hands it to load, with the users over
// the record or field limits apart. The page is held (Client.GetWhole)
// until load returns: it may be loaded only once its creationDate was
// checked, and that member may come after the users. 404 (not ready)
// comes back as an *extract.HTTPError, 400 as errLost, load's error as is.
// A body cut off in transit is fetched again.
func (a *API) page(ctx context.Context, c *extract.Client, seg Segment, jobID string, number int, load func(ResultPage, []extract.TooLarge) error) error {
	q := url.Values{"number": {strconv.Itoa(number)}, "size": {strconv.Itoa(a.cfg.PageSize)}}
	path := pathSegments + seg.Type + "/" + url.PathEscape(jobID)
	err := c.GetWhole(ctx, path, q, []string{"users"}, func(w extract.WholePage) error {
		pg, err := resultPage(w)
		if err != nil {
			// Whole JSON of the wrong shape: asking again will not help.
			return &extract.Permanent{Err: fmt.Errorf("GET %s: decode: %w", path, err)}
		}
		return load(pg, w.TooLarge)
	}, extract.Expect(http.StatusNotFound, http.StatusBadRequest))
	var herr *extract.HTTPError
	if errors.As(err, &herr) && herr.Status == http.StatusBadRequest {
		return errLost
	}
	return err
}

// resultPage is the ResultPage of a page read as its users and scalars.
// Member names match as encoding/json matches them, whatever their case.
func resultPage(w extract.WholePage) (ResultPage, error) {
	pg := ResultPage{Users: w.Elements}
	fields := map[string]any{"creationdate": &pg.CreationDate, "durationinmonth": &pg.DurationInMonth,
		"totalelements": &pg.TotalElements, "totalpages": &pg.TotalPages}
	for key, raw := range w.Scalars {
		if field, ok := fields[strings.ToLower(key)]; ok {
			if err := json.Unmarshal(raw, field); err != nil {
				return ResultPage{}, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	return pg, nil
}

// Ready says finAPI called back that job id is ready: a run polling it
// checks at once. It reports whether one was polling it; if not, the
// caller starts a run of the stream (the job is in etl_state).
func (a *API) Ready(id string) bool { return a.wakes.Ready(id) }
