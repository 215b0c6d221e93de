package fino

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"golang.org/x/time/rate"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// Config is how finsync reaches finoOS.
type Config struct {
	BaseURL      string // e.g. https://os.fino.cloud (paths add /api/...)
	ClientID     string
	ClientSecret string
	// RateLimit (requests per second), PageSize (categorization page
	// size) and Concurrency default to Settings' defaults.
	RateLimit float64
	PageSize  int
	// HistoryDays is how far back a first run reads (finoOS keeps two
	// years of account history); default 730. LookbackDays is how many days
	// before the cursor a later run re-reads, for late bookings; default 3.
	HistoryDays  int
	LookbackDays int
	// RecordRows is how many rows a record collects before it is handed
	// on; default 50,000.
	RecordRows int
	// Concurrency is how many users a per-user stream reads at once.
	Concurrency int
	// Scopes are the analytics modules enabled per tenant; zero: all.
	Scopes Scopes
	// Memory allocates the records (nil: the default); tests check it ends at zero.
	Memory memory.Allocator
	// Limits bound the elements of streamed pages (zero: extract's defaults).
	Limits extract.Limits
	HTTP   *http.Client
	// RateWaited, if set, is told of each wait on the rate limit.
	RateWaited func(time.Duration)
	Logger     *slog.Logger
}

// API is a finoOS client shared by the streams: one token (finoOS tokens
// belong to the client, tenants are a header) and one HTTP client per
// tenant.
type API struct {
	cfg     Config
	auth    *extract.TokenCache
	clients *extract.Clients
	mem     memory.Allocator

	mu      sync.Mutex
	types   map[string]string   // "tenant/user" → person or company
	holders map[string][]string // "tenant/user" → its accounts' owners (holdersOf)
	paths   map[string]int      // analytics stream → index of the path that answers
}

// NewAPI returns a client for cfg.
func NewAPI(cfg Config) *API {
	d := extract.Defaults[Settings]()
	cfg.RateLimit = cmp.Or(cfg.RateLimit, d.RateLimit)
	if cfg.PageSize <= 0 || cfg.PageSize > MaxPageSize {
		cfg.PageSize = d.PageSize
	}
	if cfg.HistoryDays <= 0 {
		cfg.HistoryDays = 730
	}
	if cfg.LookbackDays <= 0 {
		cfg.LookbackDays = 3
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, d.Concurrency)
	if cfg.RecordRows <= 0 {
		cfg.RecordRows = 50_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, mem: cmp.Or[memory.Allocator](cfg.Memory, memory.DefaultAllocator), types: map[string]string{}, holders: map[string][]string{}, paths: map[string]int{}}
	authClient := extract.NewClient(extract.ClientOptions{BaseURL: cfg.BaseURL, HTTP: cfg.HTTP, Logger: cfg.Logger})
	a.auth = extract.NewTokenCache(func(ctx context.Context) (extract.Token, error) {
		form := url.Values{"client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret}, "grant_type": {"client_credentials"}}
		var t Token
		if err := authClient.PostForm(ctx, pathAuth, nil, form, &t, extract.Sensitive(), extract.Idempotent()); err != nil {
			return extract.Token{}, fmt.Errorf("finoOS auth: %w", err)
		}
		return extract.Token{Value: t.AccessToken, Expiry: time.Now().Add(time.Duration(t.ExpiresIn) * time.Second)}, nil
	}, nil)
	// One client per tenant ("" = the client's own), all under finoOS's one
	// rate limit.
	a.clients = extract.NewTenantClients(extract.TenantOptions{
		Client: extract.ClientOptions{BaseURL: cfg.BaseURL, HTTP: cfg.HTTP, Logger: cfg.Logger,
			Limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), 4), RateWaited: cfg.RateWaited, Limits: cfg.Limits},
		Header: headerTenant,
		Auth:   func(string) (*extract.TokenCache, bool) { return a.auth, true }})
	return a
}

// Stats adds up what the tenants' clients did.
func (a *API) Stats() extract.ClientStats { return a.clients.Stats() }

// Streams are finoOS's streams, all per user of the subjects registry.
func Streams(a *API) []extract.Stream {
	return []extract.Stream{
		{Name: "fino.transactions", Provider: provider, SubjectKind: "user", Stats: a.Stats, Backfill: true, Reconciles: true,
			Tables: []transform.Table{transform.Transactions}, Run: a.runTransactions},
		{Name: "fino.accounts", Provider: provider, SubjectKind: "user", Stats: a.Stats,
			Tables: []transform.Table{transform.Accounts}, Run: a.runAccounts},
		{Name: "fino.account_history", Provider: provider, SubjectKind: "user", Stats: a.Stats, Backfill: true, Reconciles: true,
			Tables: []transform.Table{transform.AccountBalances}, Run: a.runHistory},
		{Name: "fino.contracts", Provider: provider, SubjectKind: "user", Stats: a.Stats,
			Tables: []transform.Table{transform.Contracts}, Run: a.runContracts},
	}
}

// provider is the provider column of every row and the registry's name.
const provider = "fino"

// unknownUser is why a user finoOS answers 404 for is skipped.
const unknownUser = "finoOS does not know this user (deleted, or created in another tenant)"

// span is the days a run reads: up to the last day its window [From, To)
// touches, from the cursor day minus a lookback — or, on a first run and for
// a subject that entered the registry after the cursor's day (it was never
// read), from HistoryDays back.
type span struct {
	first, resume, to time.Time
	cursor            time.Time // zero on a first run
	// since is when the run that wrote the cursor started (zero for a
	// cursor of before assumption 49, in a backfill and in a
	// reconciliation): users not synced since need not be read again.
	since time.Time
	// keep is the cursor a reconciliation leaves when the one it started
	// from is ahead of its window (a clock set back): never behind it.
	keep string
}

// reconcileDays is how far back a reconciliation reads when its schedule
// names no reconcile_lookback (assumption 49).
const reconcileDays = 35

// cursorSep joins a cursor's day and the start of the run that wrote it.
const cursorSep = " synced-before "

func (a *API) span(req extract.Request, lookback int) (span, error) {
	to := req.Window.To.Add(-time.Second).UTC().Truncate(24 * time.Hour)
	sp := span{first: to.AddDate(0, 0, -a.cfg.HistoryDays), to: to}
	if !req.Window.From.IsZero() {
		// A backfill window: exactly its days, for every subject.
		sp.first = req.Window.From.UTC().Truncate(24 * time.Hour)
		return sp, nil
	}
	if req.Cursor == "" {
		return sp, nil
	}
	day, since, hasSince := strings.Cut(req.Cursor, cursorSep)
	c, err := time.Parse(time.DateOnly, day)
	if err == nil && hasSince {
		sp.since, err = time.Parse(time.RFC3339, since)
	}
	if err != nil {
		return sp, fmt.Errorf("cursor %q: %w", req.Cursor, err)
	}
	sp.cursor, sp.resume = c, c.AddDate(0, 0, -lookback)
	if req.Reconcile {
		// Every subject, from far enough back to find what incremental
		// runs skipped (assumption 49) or what came after their lookback.
		days := reconcileDays
		if req.ReconcileLookback > 0 {
			days = int(req.ReconcileLookback.Round(24*time.Hour) / (24 * time.Hour))
		}
		sp.since = time.Time{}
		sp.resume = minTime(sp.resume, to.AddDate(0, 0, -days))
		if c.After(to) {
			sp.keep = req.Cursor
		}
	}
	return sp, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// next is the cursor a run over sp that started at started leaves.
func (sp span) next(started time.Time) string {
	if sp.keep != "" {
		return sp.keep
	}
	return sp.to.Format(time.DateOnly) + cursorSep + started.UTC().Format(time.RFC3339)
}

// from is the first day to read for subject s.
func (sp span) from(s extract.Subject) time.Time {
	if sp.cursor.IsZero() || !s.FirstSeen.Before(sp.cursor) {
		return sp.first
	}
	return sp.resume
}

// syncMargin is how long before the previous run's start a bank login must
// have synced for its user to count as read (assumption 49): finoOS
// analyses after a sync, and the clocks may differ.
const syncMargin = time.Hour

// toRead drops the subjects whose bank data cannot have changed since the
// run that wrote the cursor: every login of theirs synced before that run
// started (less syncMargin). Subjects never read, without a login (uploaded
// data) or of a tenant whose sync status cannot be read are all kept.
func (a *API) toRead(ctx context.Context, c *extract.Client, sp span, subjects []extract.Subject) []extract.Subject {
	if sp.since.IsZero() {
		return subjects
	}
	synced, err := a.lastSyncs(ctx, c)
	if err != nil {
		a.cfg.Logger.WarnContext(ctx, "finoOS synchronization status unreadable: reading every user", "err", err)
		return subjects
	}
	before := sp.since.Add(-syncMargin)
	keep := subjects[:0:0]
	for _, s := range subjects {
		last, known := synced[s.ID]
		if !known || !last.Before(before) || sp.from(s).Equal(sp.first) {
			keep = append(keep, s)
		}
	}
	if n := len(subjects) - len(keep); n > 0 {
		a.cfg.Logger.InfoContext(ctx, "users not synced since the last run: not read", "users", n, "read", len(keep))
	}
	return keep
}

// lastSyncs pages Get Synchronization Status Paginated: per user, the
// newest lastSynchronization of its logins.
func (a *API) lastSyncs(ctx context.Context, c *extract.Client) (map[string]time.Time, error) {
	last := map[string]time.Time{}
	q := url.Values{paramSize: {strconv.Itoa(MaxPageSize)}}
	err := extract.Pages(ctx, 1, func(ctx context.Context, page int) (bool, error) {
		q.Set(paramPage, strconv.Itoa(page))
		var p SyncStatusPage
		if err := c.GetJSON(ctx, pathSyncStatus, q, nil, &p); err != nil {
			return false, err
		}
		for _, st := range p.SynchronizationStatuses {
			if st.LastSynchronization.After(last[st.UserID]) {
				last[st.UserID] = st.LastSynchronization
			}
		}
		more, why := extract.MorePages(page, extract.Page{Elements: len(p.SynchronizationStatuses),
			TotalPages: p.TotalPages, TotalElements: p.TotalElements, Size: cmp.Or(p.Size, MaxPageSize)})
		if why != "" && page == 1 {
			a.cfg.Logger.WarnContext(ctx, "finoOS synchronization status: "+why)
		}
		return more, nil
	})
	return last, err
}

func (a *API) flush(out extract.Output, t transform.Table, b flusher, force bool) error {
	if b.Len() == 0 || (!force && b.Len() < a.cfg.RecordRows) {
		return nil
	}
	rec := b.NewRecord()
	defer rec.Release()
	return out.Records(t, rec)
}

func apiUserPath(user, suffix string) string { return pathUsers + "/" + url.PathEscape(user) + suffix }

// flusher hands a builder's rows on once it holds enough of them.
type flusher interface {
	Len() int
	Bytes() int
	NewRecord() arrow.Record
	Release()
}

// Concurrency is how many users a stream reads at once.
func (a *API) Concurrency() int { return a.cfg.Concurrency }

// workerBytes is what all of fan's workers hold together before they hand
// their rows on: the loader collects its INSERTs from their records, so
// this bounds only the extraction side.
const workerBytes = 8 << 20

// fan reads subjects on a.cfg.Concurrency workers, each with a builder of
// its own (newBuilder) that hands on its rows to t in records of
// workerBytes/Concurrency (or RecordRows), so memory does not grow with
// the workers.
func fan[B flusher](ctx context.Context, a *API, subjects []extract.Subject, reg extract.Registry, out extract.Output, t transform.Table,
	newBuilder func() B, each func(ctx context.Context, b B, s extract.Subject, flush func() error, out extract.Output) error) error {
	limit := workerBytes / a.cfg.Concurrency
	flushAt := func(b B, out extract.Output, force bool) error {
		if b.Len() == 0 || !force && b.Len() < a.cfg.RecordRows && b.Bytes() < limit {
			return nil
		}
		rec := b.NewRecord()
		defer rec.Release()
		return out.Records(t, rec)
	}
	return extract.Fan(ctx, subjects, reg, a.cfg.Concurrency, out, newBuilder,
		func(ctx context.Context, b B, s extract.Subject, out extract.Output) error {
			return each(ctx, b, s, func() error { return flushAt(b, out, false) }, out)
		},
		func(b B, out extract.Output) error {
			defer b.Release()
			return flushAt(b, out, true)
		})
}

// runTransactions reads each user's categorized transactions with their raw
// transaction, page by page, in the window (assumptions 10–13, 20, 49).
func (a *API) runTransactions(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	lookback := a.cfg.LookbackDays
	if req.Lookback > 0 {
		lookback = int(req.Lookback.Round(24*time.Hour) / (24 * time.Hour))
	}
	sp, err := a.span(req, lookback)
	if err != nil {
		return "", err
	}
	c := a.clients.Get(req.Tenant)
	subjects := a.toRead(ctx, c, sp, req.Subjects)
	err = fan(ctx, a, subjects, req.Registry, out, transform.Transactions, func() *TransactionsBuilder { return NewTransactionsBuilder(a.mem, req.Lineage) },
		func(ctx context.Context, b *TransactionsBuilder, s extract.Subject, flush func() error, out extract.Output) error {
			holders, err := a.holdersOf(ctx, c, req.Tenant, s.ID)
			if err != nil {
				return extract.SkipGone(ctx, req.Registry, s, err, unknownUser)
			}
			b.SetHolders(s.ID, holders)
			q := url.Values{paramSize: {strconv.Itoa(a.cfg.PageSize)}, paramIncludeTransaction: {"true"},
				paramFrom: {sp.from(s).Format(time.DateOnly)}, paramTo: {sp.to.Format(time.DateOnly)}}
			recorded := false
			err = extract.Pages(ctx, 1, func(ctx context.Context, page int) (bool, error) {
				q.Set(paramPage, strconv.Itoa(page))
				n, each := 0, b.elements(s.ID, s.CorrelationID, out.Reject, flush)
				scalars, err := c.GetElements(ctx, apiUserPath(s.ID, suffixCategorization), q, []string{"categorizations"},
					func(raw json.RawMessage) error { n++; return each(raw) },
					func(t extract.TooLarge) error { n++; return out.Reject(b.TooLarge(t)) })
				if err != nil {
					return false, err
				}
				num := func(k string) int { v, _ := strconv.Atoi(string(scalars[k])); return v }
				more, why := extract.MorePages(page, extract.Page{Elements: n, TotalPages: num("totalPages"),
					TotalElements: num("totalElements"), Size: cmp.Or(num("size"), a.cfg.PageSize)})
				if why != "" && !recorded {
					// Once per user: the rows are all read, the totals are wrong.
					recorded = true
					return more, out.Reject(extract.Reject{Table: transform.Transactions.Name, Key: "user/" + s.ID, Reason: "finoOS paging: " + why})
				}
				return more, nil
			})
			return extract.SkipGone(ctx, req.Registry, s, err, unknownUser)
		})
	if err != nil {
		return "", err
	}
	return sp.next(req.Lineage.ExtractedAt), nil
}

// runAccounts reads each user's account detection: connected accounts and
// the credit accounts found by analysis. It is a snapshot; no cursor.
func (a *API) runAccounts(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	c := a.clients.Get(req.Tenant)
	return "", fan(ctx, a, req.Subjects, req.Registry, out, transform.Accounts, func() *AccountsBuilder { return NewAccountsBuilder(a.mem, req.Lineage) },
		func(ctx context.Context, b *AccountsBuilder, s extract.Subject, flush func() error, out extract.Output) error {
			err := c.Document(ctx, http.MethodGet, apiUserPath(s.ID, suffixAccountDetect), nil, nil, nil, func(doc []byte) error {
				return a.loadAccounts(c, b, req.Tenant, s.ID, doc, out)
			})
			if err != nil {
				return extract.SkipGone(ctx, req.Registry, s, err, unknownUser) // names the user
			}
			return flush()
		})
}

// loadAccounts adds user's account-detection document to b, and keeps
// its holders' names.
func (a *API) loadAccounts(c *extract.Client, b *AccountsBuilder, tenant, user string, doc []byte, out extract.Output) error {
	views, wrapper, err := wrapped(doc, b.scrub, "accountsOverview.accountsView", "accountsOverview.creditsView")
	if err != nil {
		return fmt.Errorf("account detection: %w", err)
	}
	a.setHolders(tenant, user, owners(doc))
	for i, view := range views {
		for _, raw := range view {
			if t, ok := c.CheckRecord(raw); !ok {
				if err := out.Reject(b.reject(extract.RejectKey(t.Raw, "accountId"), t.Reason, t.Raw, b.scrub)); err != nil {
					return err
				}
				continue
			}
			if rej, ok := b.AddJSON(user, extract.WithWrapper(raw, wrapper), i == 1); !ok {
				if err := out.Reject(rej); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// holdersOf is the names user's accounts are held in, which fino.transactions
// compares its counterparties with (OwnAccount): as the accounts stream
// last read them, else read from account detection once.
func (a *API) holdersOf(ctx context.Context, c *extract.Client, tenant, user string) ([]string, error) {
	a.mu.Lock()
	h, ok := a.holders[tenant+"/"+user]
	a.mu.Unlock()
	if ok {
		return h, nil
	}
	err := c.Document(ctx, http.MethodGet, apiUserPath(user, suffixAccountDetect), nil, nil, nil, func(doc []byte) error {
		h = owners(doc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("account detection, for its holders' names: %w", err)
	}
	a.setHolders(tenant, user, h)
	return h, nil
}

func (a *API) setHolders(tenant, user string, names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.holders[tenant+"/"+user] = names
}

// owners are the distinct owners of an account-detection document's
// accounts (and one named around them); a document that does not decode
// names nobody.
func owners(doc []byte) []string {
	type acc struct {
		Owner string `json:"owner"`
	}
	var d struct {
		Owner            string `json:"owner"`
		AccountsOverview struct {
			AccountsView []acc `json:"accountsView"`
			CreditsView  []acc `json:"creditsView"`
		} `json:"accountsOverview"`
	}
	_ = json.Unmarshal(doc, &d)
	var names []string
	for _, o := range append(append([]acc{{d.Owner}}, d.AccountsOverview.AccountsView...), d.AccountsOverview.CreditsView...) {
		if o.Owner != "" && !slices.Contains(names, o.Owner) {
			names = append(names, o.Owner)
		}
	}
	return names
}

// wrapped splits a user's document into its record lists, at the dotted
// paths lists, and the members finsync does not read around them, scrubbed
// by rules (at the top and in the lists' containers) and bounded, for the
// records' raw (assumption 50). A list that is missing is an error, as
// with EachElement: a changed shape must not pass as "no records"; null
// is none.
func wrapped(doc []byte, rules []scrubRule, lists ...string) ([][]json.RawMessage, []byte, error) {
	records := make([][]json.RawMessage, len(lists))
	for i, path := range lists {
		v := json.RawMessage(doc)
		for _, key := range strings.Split(path, ".") {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			var ok bool
			if v, ok = m[key]; !ok {
				return nil, nil, fmt.Errorf("%s: %w", path, extract.ErrPathNotFound)
			}
		}
		if err := json.Unmarshal(v, &records[i]); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	all := rules
	for _, path := range lists {
		head, _, nested := strings.Cut(path, ".")
		if nested && !slices.ContainsFunc(all, func(r scrubRule) bool { return r.key == head }) {
			all = append(all[:len(all):len(all)], scrubRule{key: head, sub: rules})
		}
	}
	wrapper, err := wrapperOf(doc, lists, all)
	return records, wrapper, err
}

// wrapperOf is what doc holds beyond the members known names
// (extract.Unknown, bounded), scrubbed by rules; nil when nothing is left.
func wrapperOf(doc []byte, known []string, rules []scrubRule) ([]byte, error) {
	unknown, err := extract.Unknown(doc, known, extract.MaxWrapperBytes)
	if err != nil || unknown == nil {
		return nil, err
	}
	wrapper, err := scrubJSON(nil, unknown, rules)
	if err != nil || string(wrapper) == "{}" {
		return nil, err
	}
	return wrapper, nil
}

// runHistory reads each user's daily balances from the cursor date on
// (assumptions 18–19, 49): the cursor day itself is read again, since that
// day's balance may have changed.
func (a *API) runHistory(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	sp, err := a.span(req, 0)
	if err != nil {
		return "", err
	}
	c := a.clients.Get(req.Tenant)
	subjects := a.toRead(ctx, c, sp, req.Subjects)
	err = fan(ctx, a, subjects, req.Registry, out, transform.AccountBalances, func() *BalancesBuilder { return NewBalancesBuilder(a.mem, req.Lineage) },
		func(ctx context.Context, b *BalancesBuilder, s extract.Subject, flush func() error, out extract.Output) error {
			q := url.Values{paramFrom: {sp.from(s).Format(time.DateOnly)}, paramTo: {sp.to.Format(time.DateOnly)}}
			_, err := c.GetElements(ctx, apiUserPath(s.ID, suffixAccountHistory), q, []string{"histories"}, func(raw json.RawMessage) error {
				var h struct {
					Account       AccountRef        `json:"account"`
					DailyBalances []json.RawMessage `json:"dailyBalances"`
				}
				if err := json.Unmarshal(raw, &h); err != nil || h.Account.AccountID == "" {
					return out.Reject(extract.Reject{Table: transform.AccountBalances.Name, Reason: "not an account history", Raw: raw})
				}
				for _, dr := range h.DailyBalances {
					// The history names no currency; finoOS accounts are German (assumption 29).
					if rej, ok := b.AddJSON(s.ID, h.Account.AccountID, dr, "EUR"); !ok {
						if err := out.Reject(rej); err != nil {
							return err
						}
					}
				}
				return flush()
			}, func(t extract.TooLarge) error {
				return out.Reject(extract.Reject{Table: transform.AccountBalances.Name, Reason: t.Reason, Raw: t.Raw})
			})
			return extract.SkipGone(ctx, req.Registry, s, err, unknownUser)
		})
	if err != nil {
		return "", err
	}
	return sp.next(req.Lineage.ExtractedAt), nil
}

// loadContracts adds user's contracts document to b.
func loadContracts(c *extract.Client, b *ContractsBuilder, user string, doc []byte, out extract.Output) error {
	lists, wrapper, err := wrapped(doc, nil, "contracts")
	if err != nil {
		return fmt.Errorf("contracts: %w", err)
	}
	for _, raw := range lists[0] {
		if t, ok := c.CheckRecord(raw); !ok {
			if err := out.Reject(b.reject(extract.RejectKey(t.Raw, "contractId"), t.Reason, t.Raw, nil)); err != nil {
				return err
			}
			continue
		}
		if rej, ok := b.AddJSON(user, extract.WithWrapper(raw, wrapper)); !ok {
			if err := out.Reject(rej); err != nil {
				return err
			}
		}
	}
	return nil
}

// runContracts reads each user's detected contracts: a snapshot, no cursor.
func (a *API) runContracts(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	c := a.clients.Get(req.Tenant)
	return "", fan(ctx, a, req.Subjects, req.Registry, out, transform.Contracts, func() *ContractsBuilder { return NewContractsBuilder(a.mem, req.Lineage) },
		func(ctx context.Context, b *ContractsBuilder, s extract.Subject, flush func() error, out extract.Output) error {
			err := c.Document(ctx, http.MethodGet, apiUserPath(s.ID, suffixContracts), nil, nil, nil, func(doc []byte) error {
				return loadContracts(c, b, s.ID, doc, out)
			})
			if err != nil {
				return extract.SkipGone(ctx, req.Registry, s, err, unknownUser) // names the user
			}
			return flush()
		})
}
