package extract

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// reply is one scripted answer of a test server.
type reply struct {
	status     int
	retryAfter string
	body       string
	hangUp     bool // close the connection without answering
}

// scripted serves replies in order, repeating the last one, and records
// every request it gets.
type scripted struct {
	mu      sync.Mutex
	replies []reply
	got     []*http.Request
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.got)
	s.got = append(s.got, r)
	rep := s.replies[min(n, len(s.replies)-1)]
	s.mu.Unlock()

	if rep.hangUp {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (s *scripted) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.got...)
}

// fastOptions retries quickly so tests do not wait on real backoff.
func fastOptions(base string) ClientOptions {
	return ClientOptions{BaseURL: base, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond}
}

func TestClientDo(t *testing.T) {
	tests := []struct {
		name        string
		replies     []reply
		maxAttempts int
		opts        []CallOption
		wantStatus  int // for a returned response
		wantErr     string
		wantRetries int64
		wantReqs    int
		check       func(t *testing.T, err error)
	}{
		{
			name:       "200",
			replies:    []reply{{status: 200, body: `{}`}},
			wantStatus: 200, wantReqs: 1,
		},
		{
			name:       "503 then 200",
			replies:    []reply{{status: 503}, {status: 200}},
			wantStatus: 200, wantRetries: 1, wantReqs: 2,
		},
		{
			name:       "429 with Retry-After then 200",
			replies:    []reply{{status: 429, retryAfter: "1"}, {status: 200}},
			wantStatus: 200, wantRetries: 1, wantReqs: 2,
		},
		{
			name:       "each retryable 5xx, then 200",
			replies:    []reply{{status: 500}, {status: 502}, {status: 504}, {status: 200}},
			wantStatus: 200, wantRetries: 3, wantReqs: 4,
		},
		{
			name:       "connection dropped, then 200",
			replies:    []reply{{hangUp: true}, {status: 200}},
			wantStatus: 200, wantRetries: 1, wantReqs: 2,
		},
		{
			name:        "attempts exhausted: RetryAfter with the server's wait",
			replies:     []reply{{status: 429, retryAfter: "7", body: "slow down"}},
			maxAttempts: 3,
			wantErr:     "gave up after 3 attempts", wantRetries: 2, wantReqs: 3,
			check: func(t *testing.T, err error) {
				var ra *RetryAfter
				if !errors.As(err, &ra) || ra.Wait != 7*time.Second {
					t.Fatalf("want *RetryAfter{Wait: 7s}, got %#v", err)
				}
				var he *HTTPError
				if !errors.As(err, &he) || he.Status != 429 || string(he.Body) != "slow down" {
					t.Fatalf("want the last *HTTPError inside, got %v", err)
				}
				if !IsRetryable(err) {
					t.Fatal("IsRetryable = false")
				}
			},
		},
		{
			name:    "400 is permanent",
			replies: []reply{{status: 400, body: `{"type":"bad_request"}`}},
			wantErr: "400 Bad Request", wantReqs: 1,
			check: func(t *testing.T, err error) {
				var p *Permanent
				var he *HTTPError
				if !errors.As(err, &p) || !errors.As(err, &he) || he.Status != 400 || !strings.Contains(string(he.Body), "bad_request") {
					t.Fatalf("want *Permanent wrapping *HTTPError 400, got %#v", err)
				}
				if IsRetryable(err) {
					t.Fatal("IsRetryable = true")
				}
			},
		},
		{
			name:    "404 not expected is permanent",
			replies: []reply{{status: 404}},
			wantErr: "404 Not Found", wantReqs: 1,
		},
		{
			name:       "404 expected comes back as a response",
			replies:    []reply{{status: 404, body: "not ready"}},
			opts:       []CallOption{Expect(404, 400)},
			wantStatus: 404, wantReqs: 1,
		},
		{
			name:       "400 expected comes back as a response",
			replies:    []reply{{status: 400}},
			opts:       []CallOption{Expect(404, 400)},
			wantStatus: 400, wantReqs: 1,
		},
		{
			name:    "401 without auth is permanent",
			replies: []reply{{status: 401}},
			wantErr: "401 Unauthorized", wantReqs: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &scripted{replies: tt.replies}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			opts := fastOptions(ts.URL)
			opts.MaxAttempts = tt.maxAttempts
			c := NewClient(opts)

			resp, err := c.Do(t.Context(), http.MethodGet, "/x", nil, nil, nil, tt.opts...)
			if tt.wantErr != "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got status %d, want error %q", resp.StatusCode, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %q, want it to contain %q", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
				}
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			st := c.Stats()
			if st.Retries != tt.wantRetries || int(st.Requests) != tt.wantReqs || len(srv.requests()) != tt.wantReqs {
				t.Fatalf("stats %+v, server saw %d requests; want %d retries, %d requests",
					st, len(srv.requests()), tt.wantRetries, tt.wantReqs)
			}
		})
	}
}

func TestClientHonoursRetryAfter(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 429, retryAfter: "1"}, {status: 200}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := NewClient(ClientOptions{BaseURL: ts.URL, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Second})

	start := time.Now()
	resp, err := c.Do(t.Context(), http.MethodGet, "/x", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %s, want the 1 s the server asked for", waited)
	}
}

func TestClientRetryAfterBeyondDeadline(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 503, retryAfter: "120"}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := NewClient(ClientOptions{BaseURL: ts.URL, BackoffMax: 5 * time.Minute})

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, http.MethodGet, "/x", nil, nil, nil)
	var ra *RetryAfter
	if !errors.As(err, &ra) || ra.Wait != 120*time.Second {
		t.Fatalf("want *RetryAfter{Wait: 2m0s} at once, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("slept %s before giving up", d)
	}
	if n := len(srv.requests()); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

func TestClientCancelDuringBackoff(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 503, retryAfter: "30"}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := NewClient(ClientOptions{BaseURL: ts.URL, BackoffMax: time.Minute})

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Do(ctx, http.MethodGet, "/x", nil, nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned %s after cancel, want promptly", d)
	}
}

// authServer accepts only the token it issued last; refuse401 makes it
// refuse that many requests carrying a valid token first.
type authServer struct {
	mu        sync.Mutex
	issued    int
	current   string
	refuse401 int
	failFirst int // answer 503 to that many valid requests first
	onFail    func()
	seen      []string
}

func (a *authServer) fetch(context.Context) (Token, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.issued++
	a.current = "tok-" + strconv.Itoa(a.issued)
	return Token{Value: a.current}, nil
}

func (a *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := r.Header.Get("Authorization")
	a.seen = append(a.seen, got)
	switch {
	case got != "Bearer "+a.current || a.refuse401 > 0:
		a.refuse401--
		w.WriteHeader(http.StatusUnauthorized)
	case a.failFirst > 0:
		a.failFirst--
		if a.onFail != nil {
			a.onFail()
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		io.WriteString(w, `{"ok":true}`)
	}
}

func TestClientAuth(t *testing.T) {
	tests := []struct {
		name        string
		refuse      int
		wantErr     bool
		wantIssued  int
		wantReauths int64
	}{
		{"valid token", 0, false, 1, 0},
		{"401 once: one re-auth then success", 1, false, 2, 1},
		{"401 twice: permanent", 2, true, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := &authServer{refuse401: tt.refuse}
			ts := httptest.NewServer(as)
			defer ts.Close()
			opts := fastOptions(ts.URL)
			opts.Auth = NewTokenCache(as.fetch, nil)
			c := NewClient(opts)

			var out struct{ OK bool }
			err := c.GetJSON(t.Context(), "/x", nil, nil, &out)
			if tt.wantErr {
				var p *Permanent
				var he *HTTPError
				if !errors.As(err, &p) || !errors.As(err, &he) || he.Status != 401 {
					t.Fatalf("want *Permanent with 401, got %v", err)
				}
			} else if err != nil || !out.OK {
				t.Fatalf("GetJSON = %v, %+v", err, out)
			}
			if as.issued != tt.wantIssued || c.Stats().Reauths != tt.wantReauths {
				t.Fatalf("issued %d tokens, %d reauths; want %d, %d", as.issued, c.Stats().Reauths, tt.wantIssued, tt.wantReauths)
			}
		})
	}
}

// A token expiring while the client backs off must not fail
// the call; each attempt asks the cache, which refreshes it.
func TestClientTokenExpiresDuringBackoff(t *testing.T) {
	clock := newFakeClock()
	as := &authServer{failFirst: 2}
	as.onFail = func() { clock.Advance(10 * time.Minute) } // past any 300 s token
	ts := httptest.NewServer(as)
	defer ts.Close()

	opts := fastOptions(ts.URL)
	opts.Auth = NewTokenCache(func(ctx context.Context) (Token, error) {
		tok, err := as.fetch(ctx)
		tok.Expiry = clock.Now().Add(300 * time.Second)
		return tok, err
	}, clock.Now)
	c := NewClient(opts)

	if err := c.GetJSON(t.Context(), "/x", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"Bearer tok-1", "Bearer tok-2", "Bearer tok-3"}
	if strings.Join(as.seen, ",") != strings.Join(want, ",") {
		t.Fatalf("server saw %v, want %v", as.seen, want)
	}
	if st := c.Stats(); st.Reauths != 0 || st.Retries != 2 {
		t.Fatalf("stats %+v, want 2 retries and no 401 re-auth", st)
	}
}

func TestClientManyGoroutinesOne401(t *testing.T) {
	as := &authServer{}
	ts := httptest.NewServer(as)
	defer ts.Close()
	var issued atomic.Int64
	opts := fastOptions(ts.URL)
	opts.Auth = NewTokenCache(func(ctx context.Context) (Token, error) {
		issued.Add(1)
		return as.fetch(ctx)
	}, nil)
	c := NewClient(opts)
	if err := c.GetJSON(t.Context(), "/x", nil, nil, nil); err != nil {
		t.Fatal(err)
	}

	// The server revokes tok-1; all goroutines see a 401 for it.
	as.mu.Lock()
	as.current = "revoked"
	as.issued = 1
	as.mu.Unlock()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := c.GetJSON(t.Context(), "/x", nil, nil, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// One fetch for tok-1, then one shared re-authentication for tok-2.
	if n := issued.Load(); n != 2 {
		t.Fatalf("token fetched %d times, want 2", n)
	}
}

func TestClientRequestShape(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		io.WriteString(w, `{"jobId":"2342342-c345354-345a343"}`)
	}))
	defer ts.Close()

	c := NewClient(ClientOptions{
		BaseURL: ts.URL + "/api/",
		Auth:    NewTokenCache(func(context.Context) (Token, error) { return Token{Value: "abc"}, nil }, nil),
		Header:  http.Header{"Tenantid": {"client-app"}, "X-Static": {"s"}},
	})
	var out struct{ JobID string }
	err := c.PostJSON(t.Context(), "/segments/highBalance", http.Header{"X-Static": {"per-call"}},
		map[string]any{"accountType": "checking", "threshold": 5000}, &out)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"path":          {got.URL.Path, "/api/segments/highBalance"},
		"method":        {got.Method, "POST"},
		"authorization": {got.Header.Get("Authorization"), "Bearer abc"},
		"tenant":        {got.Header.Get("TenantID"), "client-app"},
		"per-call wins": {got.Header.Get("X-Static"), "per-call"},
		"content-type":  {got.Header.Get("Content-Type"), "application/json"},
		"body":          {string(gotBody), `{"accountType":"checking","threshold":5000}`},
		"decoded":       {out.JobID, "2342342-c345354-345a343"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}

	err = c.PostForm(t.Context(), "auth", nil, url.Values{"grant_type": {"client_credentials"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL.Path != "/api/auth" || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
		string(gotBody) != "grant_type=client_credentials" {
		t.Fatalf("PostForm sent %s %s %q", got.URL.Path, got.Header.Get("Content-Type"), gotBody)
	}

	err = c.GetJSON(t.Context(), "/segments/highBalance/j1?size=50", url.Values{"number": {"0"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := got.URL.Query(); q.Get("number") != "0" || q.Get("size") != "50" {
		t.Fatalf("query = %v, want number=0 and size=50", q)
	}
}

func TestClientGetJSONExpected(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"No transactions found"}`)
	}))
	defer ts.Close()
	c := NewClient(ClientOptions{BaseURL: ts.URL})

	var out map[string]any
	err := c.GetJSON(t.Context(), "/cleanup/b1", nil, nil, &out, Expect(404))
	var he *HTTPError
	var p *Permanent
	if !errors.As(err, &he) || he.Status != 404 || errors.As(err, &p) {
		t.Fatalf("want a plain *HTTPError 404 (not Permanent), got %#v", err)
	}
	if out != nil {
		t.Fatalf("decoded %v from a 404", out)
	}
}

// Nothing secret may reach the log or the error of a credentials call.
func TestClientLogsNoSecrets(t *testing.T) {
	const secret, token = "s3cr3t-client", "eyJhbGciOi.token.value"
	authHits := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth":
			authHits++
			if authHits == 1 { // a flaky token endpoint echoing what it got
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "client_secret="+secret)
				return
			}
			io.WriteString(w, `{"access_token":"`+token+`","expires_in":300}`)
		default:
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusBadGateway) // make the API call retry and log too
		}
	}))
	defer ts.Close()

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	authClient := NewClient(ClientOptions{BaseURL: ts.URL, Logger: logger, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	tokens := NewTokenCache(func(ctx context.Context) (Token, error) {
		var out struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		err := authClient.PostForm(ctx, "/auth", nil, url.Values{"client_id": {"id"}, "client_secret": {secret}}, &out, Sensitive())
		return Token{Value: out.AccessToken, Expiry: time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}, err
	}, nil)
	api := NewClient(ClientOptions{BaseURL: ts.URL, Auth: tokens, Logger: logger, MaxAttempts: 2,
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})

	_, err := api.Do(t.Context(), http.MethodGet, "/users", nil, nil, nil)
	if !IsRetryable(err) {
		t.Fatalf("want a retryable error after 502s, got %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("expected retry log lines")
	}
	for _, leak := range []string{secret, token} {
		if strings.Contains(logs.String(), leak) || strings.Contains(err.Error(), leak) {
			t.Fatalf("%q leaked:\nlog: %s\nerr: %v", leak, logs.String(), err)
		}
	}
}

func TestClientRateLimit(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 200}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	var waited atomic.Int64 // what RateWaited was told, in ns
	c := NewClient(ClientOptions{BaseURL: ts.URL, RateLimit: 20, Burst: 1,
		RateWaited: func(d time.Duration) { waited.Add(int64(d)) }})

	const n = 10
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := c.Do(t.Context(), http.MethodGet, "/x", nil, nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	// 10 requests at 20/s with a burst of 1 need at least 9 gaps of 50 ms.
	// Only a loose lower bound: a loaded machine may be slower, never faster.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("%d requests took %s, want at least ~450ms at 20/s", n, d)
	}
	// The last of them alone waited ~450 ms for the limiter.
	if w := time.Duration(waited.Load()); w < 400*time.Millisecond {
		t.Fatalf("RateWaited was told of %s of waiting, want at least ~450ms", w)
	}
	if got := len(srv.requests()); got != n {
		t.Fatalf("server saw %d requests, want %d", got, n)
	}

	// A limiter wait past the deadline ends the call without sending it.
	slow := NewClient(ClientOptions{BaseURL: ts.URL, RateLimit: 0.5, Burst: 1})
	resp, err := slow.Do(t.Context(), http.MethodGet, "/x", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = slow.Do(ctx, http.MethodGet, "/x", nil, nil, nil)
	var ra *RetryAfter
	if !errors.As(err, &ra) || ra.Wait <= 100*time.Millisecond {
		t.Fatalf("want *RetryAfter with the limiter's wait, got %v", err)
	}
	if got := len(srv.requests()); got != n+1 {
		t.Fatalf("server saw %d requests, want %d", got, n+1)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-5", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{"Sun, 01 Mar 2026 12:01:30 GMT", 90 * time.Second, true},  // IMF-fixdate
		{"Sunday, 01-Mar-26 12:00:10 GMT", 10 * time.Second, true}, // RFC 850
		{"Sun Mar  1 12:00:05 2026", 5 * time.Second, true},        // asctime
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},                 // in the past: now
		{"99999999999", 24 * time.Hour, true},                      // absurd: capped
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestClientBadURL(t *testing.T) {
	for _, base := range []string{"", "ftp://host", "://bad"} {
		c := NewClient(ClientOptions{BaseURL: base})
		_, err := c.Do(t.Context(), http.MethodGet, "/x", nil, nil, nil)
		var p *Permanent
		if !errors.As(err, &p) {
			t.Errorf("base %q: want *Permanent, got %v", base, err)
		}
	}
}

func TestClientRepeatsOnlyIdempotentRequests(t *testing.T) {
	tests := []struct {
		name     string
		replies  []reply
		header   http.Header
		opts     []CallOption
		wantErr  string // "" means 200 in the end
		wantReqs int
	}{
		{"POST 502: not repeated", []reply{{status: 502}, {status: 200}}, nil, nil, "not repeated", 1},
		{"POST connection dropped: not repeated", []reply{{hangUp: true}, {status: 200}}, nil, nil, "not repeated", 1},
		{"POST 429: refused, so repeated", []reply{{status: 429}, {status: 200}}, nil, nil, "", 2},
		{"POST 503: refused, so repeated", []reply{{status: 503}, {status: 200}}, nil, nil, "", 2},
		{"POST marked Idempotent", []reply{{status: 502}, {status: 200}}, nil, []CallOption{Idempotent()}, "", 2},
		{"POST with an Idempotency-Key", []reply{{status: 500}, {status: 200}}, http.Header{"Idempotency-Key": {"k1"}}, nil, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &scripted{replies: tt.replies}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			c := NewClient(fastOptions(ts.URL))

			resp, err := c.Do(t.Context(), http.MethodPost, "/segments/highBalance", nil, tt.header, []byte(`{}`), tt.opts...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			} else if !IsRetryable(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want a RetryAfter saying %q", err, tt.wantErr)
			}
			if n := len(srv.requests()); n != tt.wantReqs {
				t.Fatalf("server saw %d requests, want %d", n, tt.wantReqs)
			}
		})
	}

	// Nothing listens: the POST was never sent, so it is retried.
	ts := httptest.NewServer(http.NotFoundHandler())
	addr := ts.URL
	ts.Close()
	opts := fastOptions(addr)
	opts.MaxAttempts = 2
	_, err := NewClient(opts).Do(t.Context(), http.MethodPost, "/x", nil, nil, nil)
	if !IsRetryable(err) || !strings.Contains(err.Error(), "gave up after 2 attempts") {
		t.Fatalf("POST to a closed port: err = %v, want retried then RetryAfter", err)
	}
}

// Clients that share a Limiter share its rate: once one has used the
// burst, the other must wait (here: past its deadline, so RetryAfter).
func TestSharedLimiter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	shared := rate.NewLimiter(rate.Limit(0.001), 2)
	a := NewClient(ClientOptions{BaseURL: srv.URL, Limiter: shared})
	b := NewClient(ClientOptions{BaseURL: srv.URL, Limiter: shared})
	for range 2 {
		resp, err := a.Do(context.Background(), http.MethodGet, "/", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := b.Do(ctx, http.MethodGet, "/", nil, nil, nil)
	var ra *RetryAfter
	if !errors.As(err, &ra) || b.Stats().Requests != 0 {
		t.Fatalf("the second client was not held back by the shared limit: %v, %d requests", err, b.Stats().Requests)
	}
}

func TestResponseBodiesAreCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"a":"` + strings.Repeat("x", 2000) + `"}`))
	}))
	defer srv.Close()
	var v map[string]string
	small := NewClient(ClientOptions{BaseURL: srv.URL, MaxBody: 1000})
	if err := small.GetJSON(context.Background(), "/", nil, nil, &v); !errors.Is(err, ErrBodyTooLarge) || IsRetryable(err) {
		t.Errorf("a body over MaxBody: %v", err)
	}
	if err := NewClient(ClientOptions{BaseURL: srv.URL, MaxBody: 2008}).GetJSON(context.Background(), "/", nil, nil, &v); err != nil || len(v["a"]) != 2000 {
		t.Errorf("a body of exactly MaxBody: %v", err)
	}
}

// TestClientRedirects: a credentials request follows no redirect, any
// request follows only same-origin ones, and whatever is refused never
// reaches the other host.
func TestClientRedirects(t *testing.T) {
	attacker := &scripted{replies: []reply{{status: 200, body: `{"access_token":"stolen"}`}}}
	evil := httptest.NewServer(attacker)
	defer evil.Close()
	home := http.NewServeMux()
	home.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) })
	var redirect func(r *http.Request) string // where /start sends to
	var status int
	home.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, redirect(r), status) })
	srv := httptest.NewServer(home)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(home)
	defer tlsSrv.Close()

	cases := []struct {
		name      string
		base      string
		sensitive bool
		to        func(r *http.Request) string
		refused   string // "" if followed
	}{
		{"token to another host", srv.URL, true, func(*http.Request) string { return evil.URL + "/token" }, "carrying credentials"},
		{"token on the same host", srv.URL, true, func(*http.Request) string { return "/data" }, "carrying credentials"},
		{"data to another host", srv.URL, false, func(*http.Request) string { return evil.URL + "/data" }, "another scheme, host or port"},
		{"data on the same host", srv.URL, false, func(*http.Request) string { return "/data" }, ""},
		{"data from https to http", tlsSrv.URL, false, func(r *http.Request) string { return "http://" + r.Host + "/data" }, "another scheme, host or port"},
	}
	for _, tc := range cases {
		for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
			t.Run(tc.name+"/"+strconv.Itoa(code), func(t *testing.T) {
				redirect, status = tc.to, code
				opts := fastOptions(tc.base)
				opts.HTTP = tlsSrv.Client()
				opts.Header = http.Header{"TenantID": {"tenant-7"}}
				opts.Auth = NewTokenCache(func(context.Context) (Token, error) { return Token{Value: "bearer-1"}, nil }, nil)
				c := NewClient(opts)
				var out map[string]any
				var err error
				if tc.sensitive {
					err = NewClient(fastOptions(tc.base)).PostForm(context.Background(), "/start", nil, url.Values{"client_secret": {"s3cret"}}, &out, Sensitive(), Idempotent())
				} else {
					err = c.GetJSON(context.Background(), "/start", nil, nil, &out)
				}
				if tc.refused == "" {
					if err != nil || out["ok"] != true {
						t.Fatalf("a same-host redirect of a GET: %v, %v", out, err)
					}
					return
				}
				var perm *Permanent
				if !errors.As(err, &perm) || !strings.Contains(err.Error(), "redirect refused") ||
					!strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "from "+tc.base+"/start to ") {
					t.Fatalf("got %v, want a Permanent error naming the redirect from %s/start", err, tc.base)
				}
				if got := attacker.requests(); len(got) > 0 {
					t.Fatalf("the other host got %d requests: %s %s %v", len(got), got[0].Method, got[0].URL, got[0].Header)
				}
			})
		}
	}
}

// A small JSON answer cut off in transit (Content-Length announcing all of
// it, as the sandboxes' Truncated fault serves it) is fetched again by
// GetJSON and by an Idempotent POST; a POST that may not be repeated is not.
func TestClientJSONCallsRefetchCutOffBodies(t *testing.T) {
	const whole = `{"id":"u1","type":"person"}`
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(whole)))
		if calls.Add(1) == 1 {
			io.WriteString(w, whole[:len(whole)/2])
			return
		}
		io.WriteString(w, whole)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		call    func(c *Client, v any) error
		repeats bool
	}{
		{"GetJSON", func(c *Client, v any) error { return c.GetJSON(context.Background(), "/u", nil, nil, v) }, true},
		{"PostJSON, idempotent", func(c *Client, v any) error {
			return c.PostJSON(context.Background(), "/u", nil, map[string]string{}, v, Idempotent())
		}, true},
		{"PostForm, idempotent", func(c *Client, v any) error {
			return c.PostForm(context.Background(), "/u", nil, url.Values{}, v, Sensitive(), Idempotent())
		}, true},
		{"PostJSON", func(c *Client, v any) error {
			return c.PostJSON(context.Background(), "/u", nil, map[string]string{}, v)
		}, false},
	} {
		calls.Store(0)
		c := NewClient(fastOptions(srv.URL))
		var u struct{ ID, Type string }
		err := tc.call(c, &u)
		switch {
		case tc.repeats && (err != nil || u.Type != "person" || calls.Load() != 2 || c.Stats().Retries != 1):
			t.Errorf("%s: %+v, %v after %d requests", tc.name, u, err, calls.Load())
		case !tc.repeats && (err == nil || calls.Load() != 1):
			t.Errorf("%s: %v after %d requests, want an error after one", tc.name, err, calls.Load())
		}
	}
}
