package fimento

import (
	"cmp"
	"context"
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

// Config is how finsync reaches Fimento.
type Config struct {
	BaseURL  string // the API root; paths are added (doc.go 1)
	Name     string // the API user
	Password string
	// HashKey keys PersonRef, the hash that stands for a person. Required:
	// without a key the hash of a birth-date-shaped number is reversible.
	HashKey   []byte
	Paths     Paths   // zero: DefaultPaths
	RateLimit float64 // requests per second; default Settings'
	// RecordRows is how many rows a record collects before it is handed
	// on; default 50,000.
	RecordRows int
	// MaxPages bounds the transaction pages of one process, against a
	// server that never answers an empty page; default 10,000.
	MaxPages int
	// Memory allocates the records (nil: the default); tests check it ends at zero.
	Memory memory.Allocator
	// Limits bound the elements of streamed pages (zero: extract's defaults).
	Limits extract.Limits
	HTTP   *http.Client
	// RateWaited, if set, is told of each wait on the rate limit.
	RateWaited func(time.Duration)
	Logger     *slog.Logger
	Now        func() time.Time // the clock valid_until is compared with; default time.Now
}

// API is a Fimento client shared by the streams: one token (it belongs to
// the API user; partner banks are a header) and one HTTP client per
// partner bank, all under one rate limit.
type API struct {
	cfg     Config
	auth    *extract.TokenCache
	clients *extract.Clients
	mem     memory.Allocator
}

// NewAPI returns a client for cfg.
func NewAPI(cfg Config) *API {
	if cfg.Paths == (Paths{}) {
		cfg.Paths = DefaultPaths()
	}
	cfg.RateLimit = cmp.Or(cfg.RateLimit, extract.Defaults[Settings]().RateLimit)
	if cfg.RecordRows <= 0 {
		cfg.RecordRows = 50_000
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 10_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, mem: cmp.Or[memory.Allocator](cfg.Memory, memory.DefaultAllocator)}
	shared := extract.ClientOptions{BaseURL: cfg.BaseURL, HTTP: cfg.HTTP, Logger: cfg.Logger,
		Limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), 4), RateWaited: cfg.RateWaited, Limits: cfg.Limits}
	authClient := extract.NewClient(shared)
	a.auth = extract.NewTokenCache(func(ctx context.Context) (extract.Token, error) {
		var t Token
		body, _ := json.Marshal(Login{Name: cfg.Name, Password: cfg.Password})
		if err := fetchDoc(ctx, authClient, http.MethodPost, cfg.Paths.Login, body, &t, extract.Sensitive(), extract.Idempotent()); err != nil {
			return extract.Token{}, fmt.Errorf("fimento login: %w", err)
		}
		exp := t.Expiry(cfg.Now())
		if exp.IsZero() {
			cfg.Logger.Warn("fimento login: valid_until is missing or past; the token is kept until refused",
				"valid_until", string(t.ValidUntil))
		}
		return extract.Token{Value: t.AccessToken, Expiry: exp}, nil
	}, cfg.Now)
	// One client per partner bank ("" = none: calls of the API user, such
	// as adding a webhook).
	a.clients = extract.NewTenantClients(extract.TenantOptions{Client: shared, Header: headerPartnerBank,
		Auth: func(string) (*extract.TokenCache, bool) { return a.auth, true }})
	return a
}

// Stats adds up what the partner banks' clients did.
func (a *API) Stats() extract.ClientStats { return a.clients.Stats() }

// Streams are Fimento's streams, both per process of the subjects
// registry, for one partner bank (the tenant) per run.
func Streams(a *API) []extract.Stream {
	return []extract.Stream{
		{Name: "fimento.transactions", Provider: provider, SubjectKind: SubjectKind, Stats: a.Stats,
			Tables: []transform.Table{transform.Transactions}, Run: a.runTransactions},
		{Name: "fimento.insights", Provider: provider, SubjectKind: SubjectKind, Stats: a.Stats,
			Tables: []transform.Table{transform.AccountBalances, transform.Accounts, transform.Insights}, Run: a.runInsights},
	}
}

// SubjectKind is the registry kind of Fimento's subjects: processes.
const SubjectKind = "process"

// pathOf fills a path's placeholders.
func pathOf(p, processID string) string {
	return strings.ReplaceAll(p, "{processId}", url.PathEscape(processID))
}

// recordBytes is the most text a builder collects before it hands its rows
// on, whatever RecordRows says: with records up to the record limit, rows
// alone would not bound memory.
const recordBytes = 8 << 20

// flusher hands a builder's rows on once it holds enough of them.
func (a *API) flush(out extract.Output, t transform.Table, b *builder, force bool) error {
	if b.Len() == 0 || (!force && b.Len() < a.cfg.RecordRows && b.size < recordBytes) {
		return nil
	}
	rec := b.NewRecord()
	defer rec.Release()
	return out.Records(t, rec)
}

// completed reads the subject's process and tells whether its data can be
// extracted (doc.go 8–10). A revoked subject is not asked for at all; a
// process that is gone or reports revoked consent is forgotten (the runner
// deletes its rows); any state but completed is skipped with its code and
// description. One GET per subject and run: a process stuck in authError
// costs one request per run, never a loop.
func (a *API) completed(ctx context.Context, c *extract.Client, reg extract.Registry, s extract.Subject) (*Process, bool, error) {
	if s.Status == extract.SubjectRevoked {
		return nil, false, nil
	}
	var p Process
	err := a.getDoc(ctx, c, pathOf(a.cfg.Paths.Process, s.ID), &p)
	var herr *extract.HTTPError
	var bad *badDocument
	switch {
	case errors.As(err, &herr) && herr.Status == http.StatusNotFound:
		// Deleted, and with it the customer's data, or a glitch that
		// says the same: the runner quarantines first.
		return nil, false, reg.Gone(ctx, s, "Fimento does not know the process (404: deleted, and with it the customer's data)")
	case errors.As(err, &bad):
		return nil, false, reg.Skip(ctx, s, "the process does not decode: "+bad.Error())
	case err != nil:
		return nil, false, fmt.Errorf("process %s: %w", s.ID, err)
	}
	person := NewPerson(&p)
	cur := p.ConsentFlowStatus.Current
	switch {
	case p.Revoked():
		return nil, false, reg.Forget(ctx, s, fmt.Sprintf("consent revoked (status %s %q, consent %q): Fimento deleted the customer's data",
			cur.Code, cur.Desc, string(p.Consent)))
	case cur.Code != StatusCompleted:
		reason := fmt.Sprintf("process status %s (%q) since %s: nothing to extract until it is completed",
			cur.Code, cur.Desc, cur.Timestamp.UTC().Format(time.RFC3339))
		if cur.IsError || cur.ErrorMessage != "" {
			reason += ": " + person.redact.text(truncate(cur.ErrorMessage, 200))
		}
		return nil, false, reg.Skip(ctx, s, reason)
	}
	return &p, true, nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// runTransactions reads each completed process's categorised transactions,
// page by page from 1 until an empty page (doc.go 14). The transactions are
// a snapshot of the process: no cursor.
func (a *API) runTransactions(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	b := NewTransactionsBuilder(a.mem, req.Lineage)
	defer b.Release()
	c := a.clients.Get(req.Tenant)
	return "", extract.Fan(ctx, req.Subjects, req.Registry, 1, out, func() *TransactionsBuilder { return b },
		func(ctx context.Context, b *TransactionsBuilder, s extract.Subject, out extract.Output) error {
			p, ok, err := a.completed(ctx, c, req.Registry, s)
			if err != nil || !ok {
				return err
			}
			person := NewPerson(p)
			var firstOfLast string
			err = extract.Pages(ctx, 1, func(ctx context.Context, page int) (bool, error) {
				if page > a.cfg.MaxPages {
					return false, &extract.Permanent{Err: fmt.Errorf("more than %d pages: the server seems to ignore page", a.cfg.MaxPages)}
				}
				n, first := 0, ""
				_, err := c.GetElements(ctx, pathOf(a.cfg.Paths.Transactions, s.ID), url.Values{paramPage: {strconv.Itoa(page)}},
					[]string{"transactions"}, func(raw json.RawMessage) error {
						if n == 0 {
							first = string(raw)
						}
						n++
						if rej, ok := b.AddJSON(person, raw); !ok {
							return out.Reject(rej)
						}
						return a.flush(out, transform.Transactions, &b.builder, false)
					}, func(t extract.TooLarge) error {
						n++
						return out.Reject(b.reject(person, extract.RejectKey(t.Raw, "_id"), t.Reason, t.Raw))
					})
				if err != nil {
					return false, err
				}
				if n > 0 && first == firstOfLast {
					return false, &extract.Permanent{Err: errors.New("a page repeats the one before: the server seems to ignore page")}
				}
				firstOfLast = first
				return n > 0, nil
			})
			return extract.SkipGone(ctx, req.Registry, s, err, dataGone)
		},
		func(b *TransactionsBuilder, out extract.Output) error {
			return a.flush(out, transform.Transactions, &b.builder, true)
		})
}

// runInsights reads each completed process's insights: the transaction
// graph's daily balances, the accounts, and the rest as insight rows.
func (a *API) runInsights(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
	bal := NewBalancesBuilder(a.mem, req.Lineage)
	defer bal.Release()
	acc := NewAccountsBuilder(a.mem, req.Lineage)
	defer acc.Release()
	ins := NewInsightsBuilder(a.mem, req.Lineage)
	defer ins.Release()
	builders := []struct {
		t transform.Table
		b *builder
	}{{transform.AccountBalances, &bal.builder}, {transform.Accounts, &acc.builder}, {transform.Insights, &ins.builder}}
	flush := func(out extract.Output, force bool) error {
		for _, f := range builders {
			if err := a.flush(out, f.t, f.b, force); err != nil {
				return err
			}
		}
		return nil
	}
	c := a.clients.Get(req.Tenant)
	return "", extract.Fan(ctx, req.Subjects, req.Registry, 1, out, func() struct{} { return struct{}{} },
		func(ctx context.Context, _ struct{}, s extract.Subject, out extract.Output) error {
			p, ok, err := a.completed(ctx, c, req.Registry, s)
			if err != nil || !ok {
				return err
			}
			// Added while the answer is held (Client.Document).
			err = c.Document(ctx, http.MethodGet, pathOf(a.cfg.Paths.Insights, s.ID), nil, nil, nil, func(doc []byte) error {
				return a.addInsights(c, out, p, doc, bal, acc, ins)
			})
			if err != nil {
				return extract.SkipGone(ctx, req.Registry, s, err, dataGone) // names the process
			}
			return flush(out, false)
		},
		func(_ struct{}, out extract.Output) error { return flush(out, true) })
}

// addInsights converts one insights document; what does not convert is
// rejected, the rest added.
func (a *API) addInsights(c *extract.Client, out extract.Output, p *Process, doc []byte, bal *BalancesBuilder, acc *AccountsBuilder, ins *InsightsBuilder) error {
	if t, ok := c.CheckDocument(doc); !ok {
		return out.Reject(ins.reject(NewPerson(p), "insights", t.Reason, t.Raw))
	}
	var in Insights
	var shape struct {
		AccountsInfo []json.RawMessage `json:"accountsInfo"`
	}
	if err := errors.Join(json.Unmarshal(doc, &in), json.Unmarshal(doc, &shape)); err != nil {
		person := NewPerson(p)
		return out.Reject(ins.reject(person, "insights", "insights do not decode: "+err.Error(), doc))
	}
	person := NewPerson(p, &in)
	for _, d := range in.TransactionGraph {
		if rej, ok := bal.Add(person, d); !ok {
			if err := out.Reject(rej); err != nil {
				return err
			}
		}
	}
	for _, raw := range shape.AccountsInfo {
		if rej, ok := acc.AddJSON(person, raw); !ok {
			if err := out.Reject(rej); err != nil {
				return err
			}
		}
	}
	for _, rej := range ins.Add(person, a.cfg.HashKey, p, &in) {
		if err := out.Reject(rej); err != nil {
			return err
		}
	}
	return nil
}

// dataGone is why a completed process is skipped when its data answers 404
// (revoked or deleted between the two calls): the next run reads the
// process again and forgets it.
const dataGone = "the completed process's data is gone (404); the next run reads the process again"

// badDocument is a 2xx body that is JSON of the wrong shape: asking again
// will not help.
type badDocument struct{ err error }

func (e *badDocument) Error() string { return e.err.Error() }

// getDoc GETs path and decodes the whole body into v. A body that breaks
// off or is not JSON is fetched again (Client.Document), then ends the call
// with RetryAfter; JSON of the wrong shape is a *badDocument. Decoder
// messages name fields and types, never the values, so they are safe to
// record.
func (a *API) getDoc(ctx context.Context, c *extract.Client, path string, v any) error {
	return fetchDoc(ctx, c, http.MethodGet, path, nil, v)
}

// fetchDoc is getDoc for any method; body (nil: none) is sent as JSON.
func fetchDoc(ctx context.Context, c *extract.Client, method, path string, body []byte, v any, opts ...extract.CallOption) error {
	var header http.Header
	if body != nil {
		header = http.Header{"Content-Type": {"application/json"}}
	}
	return c.Document(ctx, method, path, nil, header, body, func(doc []byte) error {
		if err := json.Unmarshal(doc, v); err != nil {
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) {
				return &badDocument{fmt.Errorf("field %s: %s where %s belongs", typ.Field, typ.Value, typ.Type)}
			}
			return &badDocument{errors.New("a value does not parse")}
		}
		return nil
	}, opts...)
}

// AddWebhook registers url with Fimento's add-webhook endpoint, to be
// called when a process is updated (doc.go 17). The daemon calls it at
// start-up when a webhook URL is configured; adding a URL again is assumed
// harmless.
func (a *API) AddWebhook(ctx context.Context, webhookURL string) error {
	if err := a.clients.Get("").PostJSON(ctx, a.cfg.Paths.Webhooks, nil, WebhookURL{WebhookURL: webhookURL}, nil, extract.Idempotent()); err != nil {
		return fmt.Errorf("fimento: adding the webhook: %w", err)
	}
	return nil
}

// SetTestConsent approves or revokes a process's consent flow with the
// endpoint Fimento offers for automated tests (doc.go 18).
func (a *API) SetTestConsent(ctx context.Context, bank, processID string, c Consent) error {
	path := strings.ReplaceAll(pathOf(a.cfg.Paths.TestConsent, processID), "{status}", url.PathEscape(string(c)))
	body := struct {
		IsApproved bool `json:"isApproved"`
	}{c == ConsentApproved}
	return a.clients.Get(bank).PostJSON(ctx, path, nil, body, nil, extract.Idempotent())
}

// Known says whether Fimento knows process id of bank. The webhook
// receiver asks before it writes anything: Fimento signs nothing, so a
// forged id costs this GET and nothing else. An error (Fimento does not
// answer) is no "no": the receiver then records the id, and runs decide.
func (a *API) Known(ctx context.Context, bank, id string) (bool, error) {
	resp, err := a.clients.Get(bank).Do(ctx, http.MethodGet, pathOf(a.cfg.Paths.Process, id), nil, nil, nil)
	var herr *extract.HTTPError
	switch {
	case errors.As(err, &herr) && herr.Status == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// DeleteProcess deletes a process with its data at Fimento.
func (a *API) DeleteProcess(ctx context.Context, bank, processID string) error {
	resp, err := a.clients.Get(bank).Do(ctx, http.MethodDelete, pathOf(a.cfg.Paths.Process, processID), nil, nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
