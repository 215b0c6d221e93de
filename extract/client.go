package extract

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/finsync/finsync/extract/pii"
)

// ClientOptions configures a Client. Zero values mean the defaults noted.
type ClientOptions struct {
	BaseURL string // joined with each call's path
	// HTTP sends the requests (default: 60 s to response headers, no
	// overall timeout). Its CheckRedirect is replaced: see Do.
	HTTP   *http.Client
	Auth   *TokenCache // nil: no Authorization header
	Header http.Header // sent with every call (e.g. finoOS TenantID)

	RateLimit float64 // requests per second; 0: unlimited
	Burst     int     // default 1
	// Limiter, when set, replaces RateLimit and Burst: clients that share
	// one (a provider's tenants) share its rate.
	Limiter *rate.Limiter
	// RateWaited, if set, is told each time a call waited on the rate
	// limiter, and how long (the daemon's finsync_rate_limit_wait_seconds_total).
	RateWaited func(time.Duration)

	MaxAttempts int           // per call, retries included; default 6
	BackoffBase time.Duration // default 200ms
	BackoffMax  time.Duration // longest single wait; default 30s

	Logger *slog.Logger // default: discard
	// MaxBody caps a response body; reading past it fails (a provider
	// must not make finsync allocate without bound). Default 256 MiB.
	MaxBody int64
	// Limits bound what GetElements holds of one element, how many
	// elements a response may have and what an answer read whole may
	// hold. Zero fields: DefaultLimits'.
	Limits Limits
}

// DefaultLimits are the element limits of a client that sets none: 1 MiB
// a record and 256 KiB a string, some hundred times the largest bank
// transaction or daily-balance history the providers document (a purpose
// is at most a few hundred characters; finoOS's largest element, an
// account's two years of daily balances, is under 100 KiB); 100,000
// elements a response, a hundred times the largest page asked for
// (finoOS's 1,000); 16 MiB an answer read whole, some ten times the
// largest one asked for (a finAPI result page of 500 users, a FinGoal
// batch of 1,000 enriched transactions: 1 to 2 MiB). No Gate.
func DefaultLimits() Limits {
	return Limits{Record: 1 << 20, Field: 256 << 10, Elements: 100_000, Document: 16 << 20}
}

// Client is the HTTP client every provider extractor uses. It owns rate
// limiting, retries with backoff, Retry-After and token refresh, so that
// extractors never sleep or loop themselves. Safe for concurrent use.
type Client struct {
	base        string
	http        *http.Client // follows same-origin redirects only
	noRedirect  *http.Client // for Sensitive calls: follows none
	auth        *TokenCache
	header      http.Header
	limiter     *rate.Limiter // nil: unlimited
	rateWaited  func(time.Duration)
	maxAttempts int
	backoffBase time.Duration
	backoffMax  time.Duration
	log         *slog.Logger
	maxBody     int64
	limits      Limits

	requests, retries, reauths atomic.Int64
}

// ClientStats counts what a Client did since it was made: requests sent
// (every attempt), retries after a retryable failure, re-authentications
// after a 401.
type ClientStats struct {
	Requests, Retries, Reauths int64
}

// NewClient returns a Client for opts.
func NewClient(opts ClientOptions) *Client {
	c := &Client{
		base:        strings.TrimRight(opts.BaseURL, "/"),
		http:        opts.HTTP,
		auth:        opts.Auth,
		header:      opts.Header.Clone(),
		rateWaited:  opts.RateWaited,
		maxAttempts: opts.MaxAttempts,
		backoffBase: opts.BackoffBase,
		backoffMax:  opts.BackoffMax,
		log:         opts.Logger,
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	// Copies, so that the caller's client keeps its own policy; they share
	// its transport and connections.
	c.http, c.noRedirect = withRedirects(c.http, false), withRedirects(c.http, true)
	switch {
	case opts.Limiter != nil:
		c.limiter = opts.Limiter
	case opts.RateLimit > 0:
		c.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), max(opts.Burst, 1))
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = 6
	}
	if c.backoffBase <= 0 {
		c.backoffBase = 200 * time.Millisecond
	}
	if c.backoffMax <= 0 {
		c.backoffMax = 30 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.maxBody = opts.MaxBody
	if c.maxBody <= 0 {
		c.maxBody = 256 << 20
	}
	d := DefaultLimits()
	c.limits = Limits{Record: cmp.Or(opts.Limits.Record, d.Record), Field: cmp.Or(opts.Limits.Field, d.Field),
		Elements: cmp.Or(opts.Limits.Elements, d.Elements), Document: cmp.Or(opts.Limits.Document, d.Document), Whole: opts.Limits.Whole}
	return c
}

// defaultHTTPClient bounds connecting and waiting for response headers but
// sets no overall timeout: large pages are streamed, and the caller's
// context bounds the whole call.
func defaultHTTPClient() *http.Client { return &http.Client{Transport: DefaultTransport()} }

// DefaultTransport is the transport of the default HTTP client, for callers
// that wrap it (the daemon counts requests per provider).
func DefaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	t.MaxIdleConnsPerHost = 8
	return t
}

// Stats returns the counters so far.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Requests: c.requests.Load(),
		Retries:  c.retries.Load(),
		Reauths:  c.reauths.Load(),
	}
}

// CallOption adjusts one call.
type CallOption func(*callConfig)

type callConfig struct {
	expect     []int
	sensitive  bool
	idempotent bool
}

// Expect hands responses with these statuses back to the caller as they
// are, without retry or error: finAPI segment polling reads 404 as "not
// ready" and 400 as "job lost", finoOS correlation polling reads 404 as
// "still running".
func Expect(statuses ...int) CallOption {
	return func(c *callConfig) { c.expect = append(c.expect, statuses...) }
}

// Idempotent marks a POST or PATCH as safe to send twice (a token
// request, a lookup sent as POST), so that it is retried like a GET.
func Idempotent() CallOption {
	return func(c *callConfig) { c.idempotent = true }
}

// Sensitive marks a call that carries credentials, such as a token
// request: its response bodies are left out of errors, and so out of
// logs. The client never logs request bodies or headers of any call.
func Sensitive() CallOption {
	return func(c *callConfig) { c.sensitive = true }
}

// Do sends one request and returns a response with a 2xx or an expected
// status; the caller closes its body. body may be nil; it is re-sent as is
// on every attempt.
//
// A request that may have reached the server is repeated only if it is
// idempotent, as net/http decides: by method (GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE), by an Idempotency-Key or X-Idempotency-Key header, or by
// the Idempotent option. Otherwise (a POST creating a billed finAPI job or
// a FinGoal batch) a 500, 502, 504 or a broken connection ends the call
// with RetryAfter rather than risk doing it twice; 429, 503 and failures to
// connect mean it was not processed and are retried for every method.
//
// Redirects: a Sensitive call (credentials in its body) follows none, and
// any call follows one only to the same scheme, host and port: a provider's
// redirect must not hand a secret, a token or a tenant header to another
// host (net/http would re-POST the body on a 307 or 308). A refused
// redirect is Permanent and names both ends.
//
// Errors: *Permanent (other 4xx, a second 401, an unusable URL or TLS
// certificate, a refused redirect), *RetryAfter (retryable failures outlasting MaxAttempts or
// the context deadline), the context's error when it ends, or the token
// fetch's error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte, opts ...CallOption) (*http.Response, error) {
	var cfg callConfig
	for _, o := range opts {
		o(&cfg)
	}
	u, err := c.url(path, query)
	if err != nil {
		return nil, &Permanent{Err: err}
	}

	replayable := cfg.idempotent || idempotent(method, c.header, header)
	reauthed := false
	for attempt := 1; ; attempt++ {
		var (
			suggested time.Duration // the server's or our backoff's idea of a wait
			failure   error
		)
		if err := c.wait(ctx); err != nil {
			return nil, err
		}
		var tok string
		if c.auth != nil {
			t, err := c.auth.Get(ctx)
			if err != nil {
				return nil, fmt.Errorf("extract: auth: %w", err)
			}
			tok = t.Value
		}
		resp, err := c.send(ctx, method, u, header, body, tok, cfg.sensitive)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			}
			var perm *Permanent
			if errors.As(err, &perm) {
				return nil, err
			}
			if !retryableNetErr(err) {
				return nil, &Permanent{Err: err}
			}
			failure, suggested = err, c.backoff(attempt)
			if !replayable && !dialErr(err) {
				return nil, &RetryAfter{Wait: suggested, Err: fmt.Errorf("not repeated, may have been processed: %w", failure)}
			}

		case resp.StatusCode/100 == 2 || slices.Contains(cfg.expect, resp.StatusCode):
			resp.Body = &cappedBody{ReadCloser: resp.Body, left: c.maxBody, max: c.maxBody}
			return resp, nil

		case resp.StatusCode == http.StatusUnauthorized && tok != "":
			herr := c.httpError(resp, method, u, cfg)
			if reauthed {
				return nil, &Permanent{Err: fmt.Errorf("still unauthorized after re-authenticating: %w", herr)}
			}
			// Expired or revoked early: fetch a fresh token and try once
			// more at once. This is not a retry of the backoff budget.
			reauthed = true
			c.auth.Invalidate(tok)
			c.reauths.Add(1)
			c.log.LogAttrs(ctx, slog.LevelInfo, "extract: token refused, re-authenticating",
				slog.String("method", method), slog.String("path", path))
			attempt--
			continue

		case retryableStatus(resp.StatusCode):
			failure = c.httpError(resp, method, u, cfg)
			var ok bool
			if suggested, ok = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); !ok {
				suggested = c.backoff(attempt)
			}
			if !replayable && !notProcessed(resp.StatusCode) {
				return nil, &RetryAfter{Wait: suggested, Err: fmt.Errorf("not repeated, may have been processed: %w", failure)}
			}

		default:
			return nil, &Permanent{Err: c.httpError(resp, method, u, cfg)}
		}

		if attempt >= c.maxAttempts {
			return nil, &RetryAfter{Wait: suggested, Err: fmt.Errorf("gave up after %d attempts: %w", attempt, failure)}
		}
		wait := min(suggested, c.backoffMax)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// Sleeping would outlive the run; end it now and resume next run.
			return nil, &RetryAfter{Wait: suggested, Err: fmt.Errorf("wait outlasts the context deadline: %w", failure)}
		}
		c.retries.Add(1)
		// Debug: a storm of these would bury everything else; the run's
		// last line counts them (retries).
		c.log.LogAttrs(ctx, slog.LevelDebug, "extract: retrying",
			slog.String("method", method), slog.String("path", path),
			slog.Int("attempt", attempt), slog.String("wait", wait.String()), slog.String("err", failure.Error()))
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
}

// send makes one attempt with the token tok ("" for none).
func (c *Client) send(ctx context.Context, method, u string, header http.Header, body []byte, tok string, sensitive bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, &Permanent{Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "finsync")
	for _, h := range []http.Header{c.header, header} {
		for k, vs := range h {
			req.Header.Del(k)
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	c.requests.Add(1)
	if sensitive {
		return c.noRedirect.Do(req)
	}
	return c.http.Do(req)
}

// withRedirects is a copy of hc that follows no redirect (none) or only
// same-origin ones, at most 10 as net/http's default.
func withRedirects(hc *http.Client, none bool) *http.Client {
	cp := *hc
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from, to := via[len(via)-1].URL, req.URL
		refuse := func(why string) error {
			return &Permanent{Err: fmt.Errorf("redirect refused, %s: %d from %s to %s",
				why, req.Response.StatusCode, shownURL(from), shownURL(to))}
		}
		switch {
		case none:
			return refuse("a request carrying credentials follows none")
		case origin(to) != origin(via[0].URL):
			return refuse("to another scheme, host or port")
		case len(via) >= 10:
			return refuse("after 10 redirects")
		}
		return nil
	}
	return &cp
}

// origin is u's scheme://host:port, the port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// shownURL is u for an error message: no password, no query (it may hold
// a token).
func shownURL(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery = "", false
	return c.Redacted()
}

// wait takes a token from the rate limiter, giving up with RetryAfter when
// the wait would outlast the context's deadline.
func (c *Client) wait(ctx context.Context) error {
	if c.limiter == nil {
		return nil
	}
	r := c.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		r.Cancel()
		return &RetryAfter{Wait: d, Err: errors.New("extract: rate limit wait outlasts the context deadline")}
	}
	start := time.Now()
	err := sleep(ctx, d)
	if c.rateWaited != nil {
		c.rateWaited(time.Since(start))
	}
	if err != nil {
		r.Cancel()
		return err
	}
	return nil
}

func (c *Client) url(path string, query url.Values) (string, error) {
	raw := c.base
	if path != "" {
		raw += "/" + strings.TrimLeft(path, "/")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("extract: %q is not an http(s) URL", u.Redacted())
	}
	if len(query) > 0 {
		q := u.Query()
		for k, vs := range query {
			q[k] = append(q[k], vs...)
		}
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// backoff is exponential with full jitter: uniform in [0, min(max, base·2^(n-1))].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.backoffBase
	for i := 1; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	return rand.N(min(d, c.backoffMax) + 1)
}

// httpError reads the start of a refused response's body and closes it.
func (c *Client) httpError(resp *http.Response, method, u string, cfg callConfig) *HTTPError {
	e := &HTTPError{Status: resp.StatusCode, Method: method, URL: u}
	if pu, err := url.Parse(u); err == nil {
		e.URL = pu.Redacted()
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errBodyMax))
	if !cfg.sensitive && len(b) > 0 {
		// Scrubbed here, before anything (Error, a reject's raw, a status
		// message) can carry an echoed credential or a customer's number.
		e.Body = pii.ScrubBody(b)
	}
	drainClose(resp.Body)
	return e
}

// drainClose reads a little of what is left so the connection can be
// reused, then closes.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// idempotent applies net/http's rule for requests it may replay.
func idempotent(method string, headers ...http.Header) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	for _, h := range headers {
		if h.Get("Idempotency-Key") != "" || h.Get("X-Idempotency-Key") != "" {
			return true
		}
	}
	return false
}

// notProcessed: statuses saying the server refused the request before
// acting on it (rate limited, overloaded or in maintenance).
func notProcessed(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}

// dialErr: the connection was never made, so nothing was sent.
func dialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryableNetErr: transport failures are worth another try, except a
// certificate the server will keep presenting.
func retryableNetErr(err error) bool {
	var cert *tls.CertificateVerificationError
	return !errors.As(err, &cert)
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// sleep waits d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return sleepOrWake(ctx, d, nil)
}

// GetJSON gets path and decodes the whole body into v; meant for small
// answers, within Limits.Document (stream large ones with GetElements). A body cut
// off is fetched again, as Document does; so is that of a PostJSON or
// PostForm marked Idempotent. A status let through by Expect comes back as
// a plain *HTTPError, not decoded.
func (c *Client) GetJSON(ctx context.Context, path string, query url.Values, header http.Header, v any, opts ...CallOption) error {
	return c.doJSON(ctx, http.MethodGet, path, query, header, nil, v, opts)
}

// PostJSON posts in as JSON and decodes the answer into out (nil: ignore).
func (c *Client) PostJSON(ctx context.Context, path string, header http.Header, in, out any, opts ...CallOption) error {
	body, err := json.Marshal(in)
	if err != nil {
		return &Permanent{Err: err}
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return c.doJSON(ctx, http.MethodPost, path, nil, h, body, out, opts)
}

// PostForm posts form url-encoded (finoOS /auth) and decodes the answer
// into out (nil: ignore).
func (c *Client) PostForm(ctx context.Context, path string, header http.Header, form url.Values, out any, opts ...CallOption) error {
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.doJSON(ctx, http.MethodPost, path, nil, h, []byte(form.Encode()), out, opts)
}

func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte, out any, opts []CallOption) error {
	var cfg callConfig
	for _, o := range opts {
		o(&cfg)
	}
	if out != nil && (cfg.idempotent || idempotent(method, c.header, header)) {
		// A request that may be repeated is, when its body is cut off.
		return c.Document(ctx, method, path, query, header, body, func(doc []byte) error {
			if err := json.Unmarshal(doc, out); err != nil {
				return &Permanent{Err: fmt.Errorf("%s %s: decode: %w", method, path, err)}
			}
			return nil
		}, opts...)
	}
	resp, err := c.Do(ctx, method, path, query, header, body, opts...)
	if err != nil {
		return err
	}
	if err := c.letThrough(resp, method, opts); err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if out == nil {
		return nil
	}
	h := c.holding()
	defer h.release()
	doc, err := readWhole(ctx, resp, h)
	if err == nil {
		err = json.Unmarshal(doc, out)
	}
	if err != nil {
		err = fmt.Errorf("%s %s: decode: %w", method, path, err)
		// A wrong shape or size will not fix itself; a cut-off body might.
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		malformed := errors.As(err, &syn) && syn.Offset < int64(len(doc)) // not just cut off at the end
		if malformed || errors.As(err, &typ) || errors.Is(err, ErrDocumentTooLarge) {
			return &Permanent{Err: err}
		}
		return err
	}
	return nil
}

// letThrough turns a response Do let through with a status other than 2xx
// (Expect) into a plain *HTTPError, closing its body; nil for a 2xx.
func (c *Client) letThrough(resp *http.Response, method string, opts []CallOption) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var cfg callConfig
	for _, o := range opts {
		o(&cfg)
	}
	return c.httpError(resp, method, resp.Request.URL.String(), cfg)
}

// ErrBodyTooLarge ends reading a response body longer than MaxBody.
var ErrBodyTooLarge = errors.New("extract: response body exceeds the client's MaxBody")

// cappedBody fails a read past max bytes instead of reading on.
type cappedBody struct {
	io.ReadCloser
	left, max int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the cap: fine if the body ends here, an error if it goes on.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, &Permanent{Err: fmt.Errorf("%w (%d bytes)", ErrBodyTooLarge, b.max)}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
