package fingoal

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"
	"golang.org/x/time/rate"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// Config is how finsync reaches FinGoal.
type Config struct {
	BaseURL      string // up to and including /v3, e.g. https://findmoney-dev.fingoal.com/v3
	ClientID     string
	ClientSecret string
	// Tenants are subtenant ids (header subtenant-id); default one tenant,
	// the client id, sent without the header (assumption 2).
	Tenants []string
	// IDKey keys the opaque ids sent to FinGoal (assumption 3): a secret of
	// at least MinIDKey characters that FinGoal never sees (not the client
	// id, which it knows). It must never change: FinGoal would see every
	// user anew. fingoal.enrichment refuses to run without it.
	IDKey string
	// AccountType is FinGoal's accountType for every transaction: our
	// transactions table has no account type (assumption 4). Default Settings'.
	AccountType string
	BatchSize   int // transactions per cleanup request; default 1000
	// SyncTags makes fingoal.user_tags call /users/{id}/sync (a manual tag
	// refresh) instead of /users/{id}.
	SyncTags bool
	// FinsightsLookback is how far back the first fingoal.finsights run
	// reads; default 30 days. Later runs start an hour before the cursor.
	FinsightsLookback time.Duration
	RateLimit         float64 // requests per second, all tenants; default Settings'
	// Polling a batch not enriched yet: first wait, longest wait, and how
	// long one run waits for all its batches before leaving the rest to the
	// next run or the webhook. Defaults 1s, 30s and Settings'.
	PollInitial, PollMax, PollTimeout time.Duration
	// ReleasePendingAfter marks transactions pending for longer unsent, so
	// the run sends them again (see releasePending); 0: never.
	ReleasePendingAfter time.Duration
	// Memory allocates the records (nil: the default); tests check it ends at zero.
	Memory memory.Allocator
	HTTP   *http.Client
	// Limits bound what one answer may make the client hold (zero fields:
	// extract.DefaultLimits').
	Limits extract.Limits
	// RateWaited, if set, is told of each wait on the rate limit.
	RateWaited func(time.Duration)
	Logger     *slog.Logger
	Now        func() time.Time
}

// API is a FinGoal client shared by the three streams: one token for the
// client, one HTTP client per tenant (its subtenant-id header), one rate
// limit for all.
type API struct {
	cfg     Config
	mem     memory.Allocator
	clients *extract.Clients
	auth    *extract.Client // fetches the token; its requests count too

	wakes extract.Wakes // batch_request_id → wakes the run polling it
}

// errAuth marks a failed token fetch: nothing of the call was sent.
var errAuth = errors.New("FinGoal authentication failed")

// NewAPI returns a client for cfg.
func NewAPI(cfg Config) *API {
	if len(cfg.Tenants) == 0 {
		cfg.Tenants = []string{cfg.ClientID}
	}
	d := extract.Defaults[Settings]()
	cfg.AccountType = cmp.Or(cfg.AccountType, d.AccountType)
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = BatchSize
	}
	if cfg.FinsightsLookback <= 0 {
		cfg.FinsightsLookback = 30 * 24 * time.Hour
	}
	cfg.RateLimit = cmp.Or(cfg.RateLimit, d.RateLimit)
	if cfg.PollInitial <= 0 {
		cfg.PollInitial = time.Second
	}
	if cfg.PollMax <= 0 {
		cfg.PollMax = 30 * time.Second
	}
	cfg.PollTimeout = cmp.Or(cfg.PollTimeout, d.PollTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, mem: cmp.Or[memory.Allocator](cfg.Memory, memory.DefaultAllocator)}
	shared := extract.ClientOptions{BaseURL: cfg.BaseURL, HTTP: cfg.HTTP, Logger: cfg.Logger,
		Limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), 2), RateWaited: cfg.RateWaited, Limits: cfg.Limits}
	authClient := extract.NewClient(shared)
	// One token for the client: FinGoal's lasts 86,400 s and is renewed only
	// near its expiry (TokenCache), or once after a 401 (Client).
	auth := extract.NewTokenCache(func(ctx context.Context) (extract.Token, error) {
		var tok AuthResponse
		err := authClient.PostJSON(ctx, pathAuth, nil, AuthRequest{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}, &tok,
			extract.Sensitive(), extract.Idempotent())
		if err != nil {
			return extract.Token{}, fmt.Errorf("%w: %w", errAuth, err)
		}
		if tok.AccessToken == "" {
			return extract.Token{}, &extract.Permanent{Err: fmt.Errorf("%w: no access_token in the answer", errAuth)}
		}
		life := tok.ExpiresIn
		if life <= 0 {
			life = TokenLifetime
		}
		return extract.Token{Value: tok.AccessToken, Expiry: time.Now().Add(time.Duration(life) * time.Second)}, nil
	}, nil)
	a.auth = authClient
	a.clients = extract.NewTenantClients(extract.TenantOptions{Client: shared, Header: "subtenant-id", Own: cfg.ClientID,
		Auth: func(t string) (*extract.TokenCache, bool) { return auth, slices.Contains(cfg.Tenants, t) }})
	return a
}

// Stats adds up what the clients did, token requests included.
func (a *API) Stats() extract.ClientStats {
	s, t := a.clients.Stats(), a.auth.Stats()
	s.Requests, s.Retries, s.Reauths = s.Requests+t.Requests, s.Retries+t.Retries, s.Reauths+t.Reauths
	return s
}

// Streams are fingoal.enrichment, fingoal.user_tags and fingoal.finsights,
// each per tenant.
func Streams(a *API) []extract.Stream {
	return []extract.Stream{
		{Name: StreamEnrichment, Provider: provider, Stats: a.Stats,
			Tables: []transform.Table{transform.Transactions, transform.EnrichmentSubmissions},
			Reads:  EnrichmentReads(), ReadsOwn: true, Async: true, Run: a.runEnrichment},
		{Name: StreamUserTags, Provider: provider, Stats: a.Stats, SubjectKind: "user",
			Tables: []transform.Table{transform.UserTags}, ReadsOwn: true, Async: true, Run: a.runUserTags},
		{Name: StreamFinsights, Provider: provider, Stats: a.Stats,
			Tables: []transform.Table{transform.Insights}, Run: a.runFinsights},
	}
}

// MinIDKey is the shortest Config.IDKey accepted: a guessable key would let
// whoever sees the opaque ids (FinGoal) test candidate ids of ours.
const MinIDKey = 16

// EnrichmentReads is what fingoal.enrichment reads from the warehouse: the
// transactions of every other provider not in the ledger.
func EnrichmentReads() *extract.Reads {
	return &extract.Reads{
		Table:     transform.Transactions,
		Key:       []string{"provider", "tenant", "user_id", "transaction_id"},
		Columns:   []string{"account_id", "booking_date", "amount", "description", "currency"},
		Ledger:    transform.EnrichmentSubmissions,
		LedgerKey: []string{"source_provider", "source_tenant", "user_id", "transaction_id"},
		Released:  StatusUnsent,
	}
}

func (a *API) client(tenant string) (*extract.Client, error) {
	c := a.clients.Get(tenant)
	if c == nil {
		return nil, &extract.Permanent{Err: fmt.Errorf("FinGoal tenant %q is not configured", tenant)}
	}
	return c, nil
}

// source is one of our transactions on its way to FinGoal.
type source struct {
	sub Submission
	tx  Transaction
}

// toSource maps an unsent row (Key then Columns of EnrichmentReads) to what
// FinGoal gets (assumptions 3 and 4).
func (a *API) toSource(row []string) (source, error) {
	if len(row) != 9 {
		return source{}, fmt.Errorf("unsent row has %d values, want 9", len(row))
	}
	prov, tenant, user, txID, account, day, amountText, desc := row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
	amount, err := decimal.NewFromString(amountText)
	if err != nil {
		return source{}, fmt.Errorf("amount %q: %v", amountText, err)
	}
	key := []byte(a.cfg.IDKey)
	s := source{sub: Submission{SourceProvider: prov, SourceTenant: tenant, UserID: user, TransactionID: txID, Currency: row[8],
		UID: Opaque(key, "user", prov, tenant, user), EnrichTransactionID: Opaque(key, "transaction", prov, tenant, user, txID)}}
	s.tx = Transaction{UID: s.sub.UID, TransactionID: s.sub.EnrichTransactionID, Date: day,
		AmountNum: json.Number(amount.Abs().String()), OriginalDescription: desc, AccountType: a.cfg.AccountType, Settlement: "credit"}
	if amount.Sign() < 0 {
		s.tx.Settlement = "debit"
	}
	if account != "" {
		s.tx.AccountID = Opaque(key, "account", prov, tenant, user, account)
	}
	return s, nil
}

// runEnrichment submits every unsent transaction once, grouped by user in
// batches of about BatchSize, then collects the batches pending in
// etl_state (this run's and earlier ones'). The cursor is the time of the
// last successful run that had batches: while it is empty the backlog goes
// to /cleanup (history); afterwards new rows go to /cleanup/streaming.
func (a *API) runEnrichment(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	c, err := a.client(req.Tenant)
	if err != nil {
		return req.Cursor, err
	}
	if req.Ledger == nil {
		return req.Cursor, &extract.Permanent{Err: errors.New("fingoal.enrichment needs the runner's Ledger (Stream.Reads)")}
	}
	if len(a.cfg.IDKey) < MinIDKey {
		return req.Cursor, &extract.Permanent{Err: fmt.Errorf("fingoal.enrichment needs an IDKey of at least %d characters (FINSYNC_FINGOAL_ID_KEY): it keys the opaque ids FinGoal gets", MinIDKey)}
	}
	endpoint := pathStreaming
	if req.Cursor == "" {
		endpoint = pathCleanup
	}
	s := &submitter{a: a, c: c, req: req, out: out, endpoint: endpoint, now: a.cfg.Now().UTC().Truncate(time.Second)}
	// Whatever the run's end, it says how many transactions are stuck.
	defer a.reportPending(ctx, req)
	if req.Triggered {
		// The enrichment webhook's run collects; only the schedule submits.
		return a.collectOnly(ctx, c, req, out, s.now)
	}
	if err := a.releasePending(ctx, req, s.now); err != nil {
		return req.Cursor, err
	}
	var group []source
	err = req.Ledger.Unsent(ctx, func(row []string) error {
		src, err := a.toSource(row)
		if err != nil {
			return out.Reject(extract.Reject{Table: transform.EnrichmentSubmissions.Name, Key: strings.Join(row[:min(4, len(row))], "/"), Reason: err.Error()})
		}
		if len(group) > 0 && group[0].sub.UID != src.sub.UID {
			if err := s.addGroup(ctx, group); err != nil {
				return err
			}
			group = group[:0]
		}
		group = append(group, src)
		return nil
	})
	if err == nil && len(group) > 0 {
		err = s.addGroup(ctx, group)
	}
	if err == nil {
		err = s.flush(ctx)
	}
	if err != nil {
		return req.Cursor, err
	}
	a.cfg.Logger.Info("FinGoal enrichment submitted", "tenant", req.Tenant, "transactions", s.sent, "batches", len(s.jobs))
	jobs := append(append([]extract.Job{}, req.Jobs...), s.jobs...)
	cursor := req.Cursor
	if len(jobs) > 0 {
		// The backlog's run is over once a run ended with its batches: what
		// comes later is an increment.
		cursor = s.now.Format(time.RFC3339)
	}
	return cursor, a.collectAll(ctx, c, req, jobs, out)
}

// collectOnly is a triggered run's enrichment: the batches pending in
// etl_state, nothing submitted.
func (a *API) collectOnly(ctx context.Context, c *extract.Client, req extract.Request, out extract.Output, now time.Time) (string, error) {
	cursor := req.Cursor
	if len(req.Jobs) > 0 {
		cursor = now.Format(time.RFC3339)
	}
	return cursor, a.collectAll(ctx, c, req, req.Jobs, out)
}

// reportPending tells the runner (Ledger.Stalled: etl_runs.error and the
// metric finsync_stalled_records) how many of the tenant's transactions are
// pending: FinGoal's answer to their submission was lost (a 5xx, a cut-off
// body, a crash between the POST and recording the answer), so no run knows
// whether FinGoal has them. They are not resent: as doc.go says, nothing
// promises that the enrichment endpoints ignore a duplicate transaction
// id, so a resend might enrich (and bill) them twice. The enrichment
// webhook of their batch recovers them (an adopted batch, see collect);
// else an operator decides (README).
func (a *API) reportPending(ctx context.Context, req extract.Request) {
	if req.Own == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var n uint64
	var oldest string
	err := req.Own.Lookup(ctx, extract.Lookup{Table: transform.EnrichmentSubmissions, Columns: []string{"submitted_at"},
		Where: map[string][]string{"status": {StatusPending}}}, func(row []string) error {
		n++
		if oldest == "" || row[0] < oldest {
			oldest = row[0]
		}
		return nil
	})
	if err != nil {
		a.cfg.Logger.Warn("counting the pending FinGoal transactions failed", "tenant", req.Tenant, "err", err)
		return
	}
	why := ""
	if n > 0 {
		why = fmt.Sprintf("%d transaction(s) pending in enrichment_submissions since %s UTC: FinGoal's answer to their submission was lost; "+
			"they are not resent (FinGoal may have them) unless their batch's enrichment webhook recovers them or an operator marks them unsent", n, oldest)
		a.cfg.Logger.Warn("FinGoal transactions pending: the answer to their submission was lost", "tenant", req.Tenant, "transactions", n, "since", oldest)
	}
	req.Ledger.Stalled(ctx, n, why)
}

// releasePending marks unsent the transactions pending for longer than
// ReleasePendingAfter, so that this run sends them again: the operator's
// policy when FinGoal's answer to their submission never came (no webhook
// named their batch). FinGoal may have had them: a resend may enrich, and
// bill, them twice; the reason column says so.
func (a *API) releasePending(ctx context.Context, req extract.Request, now time.Time) error {
	after := a.cfg.ReleasePendingAfter
	if after <= 0 || req.Own == nil {
		return nil
	}
	reason := fmt.Sprintf("released: pending for over %s (FINSYNC_FINGOAL_RELEASE_PENDING_AFTER) without FinGoal's answer; sent again, "+
		"which FinGoal may enrich and bill twice", after)
	n, err := a.rewritePending(ctx, req, nil, func(sub Submission) (Submission, bool) {
		sub.Status, sub.Reason = StatusUnsent, reason
		return sub, now.Sub(sub.SubmittedAt) >= after
	})
	if err != nil || n == 0 {
		return err
	}
	a.cfg.Logger.Warn("FinGoal transactions released: pending too long, sent again", "tenant", req.Tenant, "transactions", n, "after", after)
	return nil
}

// submitter packs users' transactions into batches and submits them.
type submitter struct {
	a        *API
	c        *extract.Client
	req      extract.Request
	out      extract.Output
	endpoint string
	now      time.Time
	batch    []source
	jobs     []extract.Job
	sent     int
	commits  uint64 // ledger writes so far
}

// addGroup adds one user's transactions, keeping a user in one batch
// unless the user alone exceeds a batch.
func (s *submitter) addGroup(ctx context.Context, group []source) error {
	size := s.a.cfg.BatchSize
	if len(s.batch) > 0 && len(s.batch)+len(group) > size {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	s.batch = append(s.batch, group...)
	for len(s.batch) >= size {
		rest := append([]source{}, s.batch[size:]...)
		s.batch = s.batch[:size]
		if err := s.flush(ctx); err != nil {
			return err
		}
		s.batch = rest
	}
	return nil
}

// flush submits the batch. The order makes "at most once" survive a crash:
// ledger rows (pending) first, then the POST, then the batch_request_id as
// an active job, then the ledger rows again with it (submitted).
func (s *submitter) flush(ctx context.Context) error {
	if len(s.batch) == 0 {
		return nil
	}
	batch := s.batch
	s.batch = nil
	sid := newID()
	txs := make([]Transaction, len(batch))
	for i := range batch {
		batch[i].sub.SubmissionID, batch[i].sub.Endpoint, batch[i].sub.SubmittedAt = sid, s.endpoint, s.now
		batch[i].sub.Status = StatusPending
		txs[i] = batch[i].tx
	}
	if err := s.ledger(ctx, batch); err != nil {
		return fmt.Errorf("recording submission %s before sending it: %w", sid, err)
	}
	var resp CleanupStatus
	err := s.c.PostJSON(ctx, s.endpoint, nil, CleanupRequest{Transactions: txs}, &resp)
	if err == nil && resp.Status.BatchRequestID == "" {
		err = errors.New("FinGoal answered without a batch_request_id")
	}
	if err != nil {
		return s.failed(ctx, sid, batch, err)
	}
	id := resp.Status.BatchRequestID
	params, _ := json.Marshal(map[string]any{"submission_id": sid, "endpoint": s.endpoint, "transactions": len(batch)})
	job := extract.Job{ID: id, Params: string(params), Status: extract.JobActive, CreatedAt: s.now}
	// Recorded now: a restart collects this batch instead of losing it.
	if err := s.req.JobLog.Put(context.WithoutCancel(ctx), job); err != nil {
		return fmt.Errorf("recording batch %s: %w", id, err)
	}
	users := map[string]bool{}
	var subjects []extract.Subject
	for i := range batch {
		batch[i].sub.Status, batch[i].sub.BatchRequestID = StatusSubmitted, id
		if !users[batch[i].sub.UID] {
			users[batch[i].sub.UID] = true
			subjects = append(subjects, extract.Subject{Provider: provider, Tenant: s.req.Tenant, Kind: "user", ID: batch[i].sub.UID, CorrelationID: id})
		}
	}
	if err := s.ledger(context.WithoutCancel(ctx), batch); err != nil {
		return fmt.Errorf("recording batch %s in the ledger: %w", id, err)
	}
	if err := s.req.Ledger.Register(context.WithoutCancel(ctx), subjects); err != nil {
		return fmt.Errorf("registering the users of batch %s: %w", id, err)
	}
	s.jobs = append(s.jobs, job)
	s.sent += len(batch)
	s.a.cfg.Logger.Info("FinGoal batch submitted", "tenant", s.req.Tenant, "batch_request_id", id, "transactions", len(batch), "endpoint", s.endpoint)
	return nil
}

// failed records what a failed POST means for its transactions. A refusal
// (400) marks them refused and the run goes on; a request that certainly
// did not reach FinGoal releases them (unsent) and ends the run; any other
// failure leaves them pending (FinGoal may have them) and ends the run.
func (s *submitter) failed(ctx context.Context, sid string, batch []source, err error) error {
	status, reason := sentState(err)
	if status != StatusPending {
		for i := range batch {
			batch[i].sub.Status, batch[i].sub.Reason = status, reason
		}
		if lerr := s.ledger(context.WithoutCancel(ctx), batch); lerr != nil {
			return errors.Join(err, lerr)
		}
	}
	switch status {
	case StatusRefused:
		return s.out.Reject(extract.Reject{Table: transform.EnrichmentSubmissions.Name, Key: sid,
			Reason: fmt.Sprintf("FinGoal refused submission %s of %d transactions: %s", sid, len(batch), reason)})
	case StatusUnsent:
		return fmt.Errorf("submitting %d transactions: %w", len(batch), err)
	}
	s.a.cfg.Logger.Error("FinGoal submission outcome unknown; its transactions stay pending and are not sent again",
		"tenant", s.req.Tenant, "submission_id", sid, "transactions", len(batch), "err", err)
	return fmt.Errorf("submission %s of %d transactions: FinGoal's answer was lost, they stay pending (not resent): %w", sid, len(batch), err)
}

// sentState tells from a failed POST whether FinGoal may have the batch.
func sentState(err error) (status, reason string) {
	var herr *extract.HTTPError
	var op *net.OpError
	switch {
	case errors.Is(err, errAuth):
		return StatusUnsent, "authentication failed"
	case errors.As(err, &herr):
		switch herr.Status {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			return StatusRefused, fmt.Sprintf("%d %s", herr.Status, truncate(string(herr.Body), 500))
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return StatusUnsent, fmt.Sprintf("%d %s", herr.Status, http.StatusText(herr.Status))
		}
	case errors.As(err, &op) && op.Op == "dial":
		return StatusUnsent, "could not connect"
	}
	return StatusPending, ""
}

func (s *submitter) ledger(ctx context.Context, batch []source) error {
	// A ledger write supersedes the run's earlier ones (pending, then
	// submitted): it gets a higher _version, so FINAL never depends on
	// which of two equal versions a merge, a copy or a replica kept.
	lin := s.req.Lineage
	s.commits++
	lin.Version += s.commits
	w := NewSubmissionsWriter(s.a.mem, lin)
	defer w.Release()
	for _, b := range batch {
		if err := w.AddSubmission(b.sub); err != nil {
			return err
		}
	}
	rec := w.Record()
	defer rec.Release()
	return s.req.Ledger.Commit(ctx, rec)
}

// collectAll collects the batches, oldest first, all within PollTimeout. A
// batch not enriched by then stays active in etl_state: the next run, or a
// run the webhook starts, collects it. It is not an error.
func (a *API) collectAll(ctx context.Context, c *extract.Client, req extract.Request, jobs []extract.Job, out extract.Output) error {
	deadline := time.Now().Add(a.cfg.PollTimeout)
	waiting := 0
	for _, j := range jobs {
		ready, err := a.collect(ctx, c, req, j, out, max(time.Until(deadline), time.Nanosecond))
		if err != nil {
			return fmt.Errorf("collecting batch %s: %w", j.ID, err)
		}
		if !ready && adopted(j) && a.cfg.Now().Sub(j.CreatedAt) >= adoptedLifetime {
			// A webhook said it was enriched, yet FinGoal never served it to
			// this tenant: not ours after all (another subtenant's URL?).
			a.cfg.Logger.Warn("FinGoal never served the batch its webhook announced; given up", "tenant", req.Tenant, "batch_request_id", j.ID)
			j.Status = extract.JobLost
			if err := req.JobLog.Put(ctx, j); err != nil {
				return err
			}
			continue
		}
		if !ready {
			waiting++
			continue
		}
		j.Status = extract.JobDone
		if err := req.JobLog.Put(ctx, j); err != nil {
			return err
		}
	}
	if waiting > 0 {
		a.cfg.Logger.Info("FinGoal batches not enriched yet; a later run collects them", "tenant", req.Tenant, "batches", waiting)
	}
	return nil
}

// collect polls GET /cleanup/{id} (404: nothing yet) until it answers or
// wait ends, and loads the result while it is held (Client.Document). It
// reports whether it did.
func (a *API) collect(ctx context.Context, c *extract.Client, req extract.Request, j extract.Job, out extract.Output, wait time.Duration) (bool, error) {
	wake := a.wakes.Wait(j.ID)
	defer a.wakes.Unwait(j.ID)
	var loadErr error // loadBatch's, returned as is
	err := extract.Poll(ctx, extract.PollOptions{Initial: a.cfg.PollInitial, Max: a.cfg.PollMax, Deadline: wait, Wake: wake},
		func(ctx context.Context) (bool, error) {
			err := c.Document(ctx, http.MethodGet, pathCleanup+"/"+url.PathEscape(j.ID), nil, nil, nil, func(doc []byte) error {
				var res BatchResult
				if err := json.Unmarshal(doc, &res); err != nil {
					return &extract.Permanent{Err: fmt.Errorf("GET %s/%s: decode: %w", pathCleanup, j.ID, err)}
				}
				loadErr = a.loadBatch(ctx, c, req, j, res, out)
				return loadErr
			}, extract.Expect(http.StatusNotFound))
			var herr *extract.HTTPError
			var perm *extract.Permanent
			switch {
			case err != nil && err == loadErr:
				return false, err
			case errors.As(err, &herr) && herr.Status == http.StatusNotFound:
				return false, nil
			case err != nil && ctx.Err() == nil && !errors.As(err, &perm) && !extract.IsRetryable(err):
				return false, nil // a body cut off in transit: ask again at the next poll
			}
			return err == nil, err
		})
	if errors.Is(err, extract.ErrPollDeadline) {
		return false, nil
	}
	return err == nil, err
}

// loadBatch loads batch j's result res.
func (a *API) loadBatch(ctx context.Context, c *extract.Client, req extract.Request, j extract.Job, res BatchResult, out extract.Output) error {
	currency, err := a.currencies(ctx, req, j.ID, res.EnrichedTransactions)
	if err != nil {
		return err
	}
	w := NewEnrichedWriter(a.mem, req.Lineage)
	defer w.Release()
	for _, raw := range res.EnrichedTransactions {
		// One over the record or field limits is rejected, its first bytes kept.
		if t, ok := c.CheckRecord(raw); !ok {
			key := RejectKey(extract.RejectKey(raw, "uid"), j.ID, rejectKey("", raw))
			if err := out.Reject(extract.Reject{Table: transform.Transactions.Name, Key: key, Reason: t.Reason, Raw: t.Raw}); err != nil {
				return err
			}
			continue
		}
		if rej, ok := w.AddEnriched(j.ID, extract.WithWrapper(raw, res.Extra), currency); !ok {
			if err := out.Reject(rej); err != nil {
				return err
			}
		}
	}
	for _, raw := range res.FailedTransactions {
		if err := out.Reject(FailedReject(j.ID, raw)); err != nil {
			return err
		}
	}
	var params struct {
		Transactions int `json:"transactions"`
	}
	json.Unmarshal([]byte(j.Params), &params)
	if got := len(res.EnrichedTransactions) + len(res.FailedTransactions); params.Transactions > 0 && got != params.Transactions {
		if err := out.Reject(extract.Reject{Table: transform.Transactions.Name, Key: j.ID,
			Reason: fmt.Sprintf("batch of %d transactions came back with %d", params.Transactions, got)}); err != nil {
			return err
		}
	}
	if w.Len() > 0 {
		rec := w.Record()
		err := out.Records(transform.Transactions, rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	if adopted(j) {
		return a.recoverPending(ctx, req, j.ID, res)
	}
	return nil
}

// ledgerChunk is how many transactionids one lookup in the ledger names.
const ledgerChunk = 500

// currencies maps the transactionids of a batch's enriched transactions to
// the currencies of the transactions they were made from, as the ledger
// recorded them: FinGoal is sent no currency and answers none. An id the
// ledger does not know (or a row written before the ledger had currencies)
// has none.
func (a *API) currencies(ctx context.Context, req extract.Request, batchID string, items []json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if req.Own == nil {
		return out, nil
	}
	var ids []string
	for _, raw := range items {
		if id := extract.RejectKey(raw, "transactionid"); id != "" {
			ids = append(ids, id)
		}
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), ledgerChunk)]
		ids = ids[len(chunk):]
		err := req.Own.Lookup(ctx, extract.Lookup{Table: transform.EnrichmentSubmissions, Columns: []string{"enrich_transaction_id", "currency"},
			Where: map[string][]string{"enrich_transaction_id": chunk}}, func(row []string) error {
			out[row[0]] = row[1]
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the currencies of batch %s from the ledger: %w", batchID, err)
		}
	}
	return out, nil
}

// AdoptedParams are the Params of a batch the enrichment webhook announced
// and etl_state did not know: a submission whose answer was lost.
const AdoptedParams = `{"source":"enrichment webhook"}`

// adoptedLifetime is how long an adopted batch that FinGoal does not serve
// is polled before it is given up.
const adoptedLifetime = 24 * time.Hour

func adopted(j extract.Job) bool { return j.Params == AdoptedParams }

// recoverPending marks submitted, with the batch's id, the pending ledger
// rows of the transactions an adopted batch came back with: their
// submission did reach FinGoal, its answer was lost.
func (a *API) recoverPending(ctx context.Context, req extract.Request, batchID string, res BatchResult) error {
	if req.Own == nil {
		return nil
	}
	var ids []string
	for _, raw := range append(append([]json.RawMessage{}, res.EnrichedTransactions...), res.FailedTransactions...) {
		if id := extract.RejectKey(raw, "transactionid"); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	n, err := a.rewritePending(ctx, req, ids, func(sub Submission) (Submission, bool) {
		sub.BatchRequestID, sub.Status = batchID, StatusSubmitted
		sub.Reason = "recovered: FinGoal's answer to the submission was lost, its enrichment webhook named the batch"
		return sub, true
	})
	if err != nil || n == 0 {
		return err
	}
	a.cfg.Logger.Info("FinGoal transactions recovered: their submission's answer was lost, the webhook named their batch",
		"tenant", req.Tenant, "batch_request_id", batchID, "transactions", n)
	return nil
}

// rewritePending writes again, as change makes them, the tenant's pending
// ledger rows (of the transactions ids, or all of them when ids is nil)
// that change keeps, in one commit, and returns how many.
func (a *API) rewritePending(ctx context.Context, req extract.Request, ids []string, change func(Submission) (Submission, bool)) (int, error) {
	// The run's version: above what came before, below the submitter's
	// ledger writes (Version+1 on), which may send released rows now.
	w := NewSubmissionsWriter(a.mem, req.Lineage)
	defer w.Release()
	read := func(where map[string][]string) error {
		where["status"] = []string{StatusPending}
		return req.Own.Lookup(ctx, extract.Lookup{Table: transform.EnrichmentSubmissions,
			Columns: []string{"source_provider", "source_tenant", "user_id", "transaction_id", "uid", "enrich_transaction_id", "submission_id", "endpoint", "submitted_at", "currency"},
			Where:   where}, func(row []string) error {
			at, _ := time.ParseInLocation(time.DateTime, row[8], time.UTC)
			sub, keep := change(Submission{SourceProvider: row[0], SourceTenant: row[1], UserID: row[2], TransactionID: row[3], Currency: row[9], UID: row[4],
				EnrichTransactionID: row[5], SubmissionID: row[6], Endpoint: row[7], SubmittedAt: at})
			if !keep {
				return nil
			}
			return w.AddSubmission(sub)
		})
	}
	if ids == nil {
		if err := read(map[string][]string{}); err != nil {
			return 0, fmt.Errorf("reading the pending transactions: %w", err)
		}
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), ledgerChunk)]
		ids = ids[len(chunk):]
		if err := read(map[string][]string{"enrich_transaction_id": chunk}); err != nil {
			return 0, fmt.Errorf("reading the pending transactions: %w", err)
		}
	}
	n := w.Len()
	if n == 0 {
		return 0, nil
	}
	rec := w.Record()
	defer rec.Release()
	if err := req.Ledger.Commit(ctx, rec); err != nil {
		return 0, fmt.Errorf("rewriting %d pending transactions: %w", n, err)
	}
	return n, nil
}

// Ready says FinGoal's webhook reported batch id enriched: a run polling it
// checks at once. It reports whether one was polling it.
func (a *API) Ready(id string) bool { return a.wakes.Ready(id) }

// tagsChunk is how many users' reads share one lookup of their earlier tags.
const tagsChunk = 500

// TagUpdateLifetime is how long FinGoal serves /users/tags/{guid}.
const TagUpdateLifetime = 24 * time.Hour

// runUserTags lands each registry user's current tags (and, as deleted, the
// ones it had that its read no longer returns: the read is the whole truth
// about a user's tags), then the tag updates (guids from the tag-status
// webhook, kept as active jobs) still within their 24 hours. A triggered run (the tag-status webhook's) fetches only the tag
// updates.
func (a *API) runUserTags(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	c, err := a.client(req.Tenant)
	if err != nil {
		return req.Cursor, err
	}
	now := a.cfg.Now().UTC()
	w := NewTagsWriter(a.mem, req.Lineage)
	defer w.Release()
	flush := func() error {
		if w.Len() == 0 {
			return nil
		}
		rec := w.Record()
		defer rec.Release()
		return out.Records(transform.UserTags, rec)
	}
	unknown := 0
	subjects := req.Subjects
	if req.Triggered {
		subjects = nil // the tag-status webhook's run fetches its tag updates only
	}
	// Users are read in chunks; after each, the tags a user had that its
	// read no longer returns are written deleted (one lookup per chunk).
	read := map[string][]string{} // uid → the tags its read returned
	dropGone := func() error {
		if len(read) == 0 {
			return nil
		}
		defer clear(read)
		if req.Own == nil {
			return nil
		}
		uids := make([]string, 0, len(read))
		for uid := range read {
			uids = append(uids, uid)
		}
		var gone [][2]string
		err := req.Own.Lookup(ctx, extract.Lookup{Table: transform.UserTags, Columns: []string{"user_id", "tag"},
			Where: map[string][]string{"user_id": uids, "state": {TagCurrent, TagCreated}}}, func(row []string) error {
			if !slices.Contains(read[row[0]], row[1]) {
				gone = append(gone, [2]string{row[0], row[1]})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading the users' earlier tags: %w", err)
		}
		for _, g := range gone {
			if err := w.AddTag(g[0], g[1], TagDeleted, "", now); err != nil {
				return err
			}
		}
		return nil
	}
	err = extract.Fan(ctx, subjects, req.Registry, 1, out, func() struct{} { return struct{}{} },
		func(ctx context.Context, _ struct{}, s extract.Subject, _ extract.Output) error {
			if s.Status == extract.SubjectRevoked {
				return nil // its source's data was deleted, and with it this copy
			}
			path := pathUsers + url.PathEscape(s.ID)
			if a.cfg.SyncTags {
				path += "/sync"
			}
			var u UserResponse
			err := c.GetJSON(ctx, path, nil, nil, &u, extract.Expect(http.StatusNotFound))
			var herr *extract.HTTPError
			if errors.As(err, &herr) && herr.Status == http.StatusNotFound {
				unknown++ // not enriched yet: tagging runs twice daily
				return nil
			}
			if err != nil {
				return fmt.Errorf("user %s: %w", s.ID, err)
			}
			for _, tag := range u.User.Tags {
				if err := w.AddTag(s.ID, tag, TagCurrent, "", now); err != nil {
					return err
				}
			}
			read[s.ID] = append([]string{}, u.User.Tags...)
			if len(read) >= tagsChunk {
				if err := dropGone(); err != nil {
					return err
				}
			}
			if w.Len() >= 10_000 {
				return flush()
			}
			return nil
		},
		// One worker: flush and dropGone write to out alone.
		func(struct{}, extract.Output) error { return errors.Join(dropGone(), flush()) })
	if err != nil {
		return req.Cursor, err
	}
	if unknown > 0 {
		a.cfg.Logger.Info("FinGoal has no tags yet for some users", "tenant", req.Tenant, "users", unknown)
	}
	for _, j := range req.Jobs {
		if now.Sub(j.CreatedAt) >= TagUpdateLifetime {
			j.Status = extract.JobExpired
			if err := req.JobLog.Put(ctx, j); err != nil {
				return req.Cursor, err
			}
			continue
		}
		var t TagsResponse
		err := c.GetJSON(ctx, pathUserTags+url.PathEscape(j.ID), nil, nil, &t, extract.Expect(http.StatusNotFound))
		var herr *extract.HTTPError
		if errors.As(err, &herr) && herr.Status == http.StatusNotFound {
			j.Status = extract.JobLost
			if err := req.JobLog.Put(ctx, j); err != nil {
				return req.Cursor, err
			}
			continue
		}
		if err != nil {
			return req.Cursor, fmt.Errorf("tag update %s: %w", j.ID, err)
		}
		if err := w.AddTagUpdate(t.UserTags, j.ID, j.CreatedAt); err != nil {
			return req.Cursor, err
		}
		j.Status = extract.JobDone
		if err := req.JobLog.Put(ctx, j); err != nil {
			return req.Cursor, err
		}
	}
	return req.Cursor, flush()
}

// finsightsOverlap is re-read before the cursor: ids make the reload harmless.
const finsightsOverlap = time.Hour

// runFinsights reads the recommendations of [cursor − 1 h, window end]
// (UNIX seconds); the cursor is the window's end.
func (a *API) runFinsights(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	c, err := a.client(req.Tenant)
	if err != nil {
		return req.Cursor, err
	}
	to := req.Window.To
	if to.IsZero() {
		to = a.cfg.Now()
	}
	from := to.Add(-a.cfg.FinsightsLookback)
	if req.Cursor != "" {
		sec, err := strconv.ParseInt(req.Cursor, 10, 64)
		if err != nil {
			return req.Cursor, &extract.Permanent{Err: fmt.Errorf("cursor %q is not UNIX seconds", req.Cursor)}
		}
		from = time.Unix(sec, 0).Add(-finsightsOverlap)
	}
	q := url.Values{"startAt": {strconv.FormatInt(from.Unix(), 10)}, "endAt": {strconv.FormatInt(to.Unix(), 10)}}
	// Loaded while the answer is held (Client.Document).
	err = c.Document(ctx, http.MethodGet, pathFinsights, q, nil, nil, func(doc []byte) error {
		var resp FinsightsResponse
		if err := json.Unmarshal(doc, &resp); err != nil {
			return &extract.Permanent{Err: fmt.Errorf("GET %s: decode: %w", pathFinsights, err)}
		}
		return a.loadFinsights(c, req, resp, out)
	})
	if err != nil {
		return req.Cursor, err
	}
	return strconv.FormatInt(to.Unix(), 10), nil
}

// loadFinsights loads the recommendations of resp.
func (a *API) loadFinsights(c *extract.Client, req extract.Request, resp FinsightsResponse, out extract.Output) error {
	w := NewFinsightsWriter(a.mem, req.Lineage)
	defer w.Release()
	for _, raw := range resp.Finsights {
		// One over the record or field limits is rejected, its first bytes kept.
		if t, ok := c.CheckRecord(raw); !ok {
			key := extract.RejectKey(t.Raw, "user_id") + "/" + cmp.Or(extract.RejectKey(t.Raw, "finsight_id"), extract.RejectKey(t.Raw, "uniqueId"))
			if err := out.Reject(extract.Reject{Table: transform.Insights.Name, Key: key, Reason: t.Reason, Raw: t.Raw}); err != nil {
				return err
			}
			continue
		}
		if rej, ok := w.AddFinsight(extract.WithWrapper(raw, resp.Extra)); !ok {
			if err := out.Reject(rej); err != nil {
				return err
			}
		}
	}
	if w.Len() == 0 {
		return nil
	}
	rec := w.Record()
	defer rec.Release()
	return out.Records(transform.Insights, rec)
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
