package fino

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"

	"github.com/finsync/finsync/extract"
)

const testWebhookSecret = "webhook-s3cret-value"

// subjectRecorder is a record func that remembers its calls and fails while err is set.
type subjectRecorder struct {
	mu    sync.Mutex
	calls []extract.Subject
	err   error
}

func (r *subjectRecorder) record(_ context.Context, s extract.Subject) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.err
}

func (r *subjectRecorder) got() []extract.Subject {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]extract.Subject(nil), r.calls...)
}

// webhookBody is a payload as finoOS sends it, with edit applied.
func webhookBody(t *testing.T, edit func(*WebhookPayload)) string {
	t.Helper()
	p := WebhookPayload{
		WebhookID:            "wh-1",
		UserID:               "user-1",
		CustomUserID:         "customer-0001",
		TenantID:             "client-app",
		CorrelationID:        "corr-1",
		CorrelationTimestamp: "2026-11-22T10:00:00Z",
		Secret:               testWebhookSecret,
		Event:                "categorization",
		Data:                 json.RawMessage(`{"status":"COMPLETED"}`),
	}
	if edit != nil {
		edit(&p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serve sends one request to a fresh handler and returns the answer and
// what was logged.
func serveWebhook(t *testing.T, secret string, rec *subjectRecorder, method, body string, header http.Header) (*httptest.ResponseRecorder, string) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := WebhookHandler(secret, extract.Hooks{Subject: rec.record}, log)
	req := httptest.NewRequest(method, "/webhooks/fino", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "req-1")
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w, logs.String()
}

func TestWebhookRejects(t *testing.T) {
	big := webhookBody(t, func(p *WebhookPayload) {
		p.Data = json.RawMessage(`{"pad":"` + strings.Repeat("x", MaxWebhookBody) + `"}`)
	})
	tests := []struct {
		name   string
		secret string // configured
		method string
		body   string
		want   int
	}{
		{"GET", testWebhookSecret, http.MethodGet, webhookBody(t, nil), http.StatusMethodNotAllowed},
		{"DELETE", testWebhookSecret, http.MethodDelete, webhookBody(t, nil), http.StatusMethodNotAllowed},
		{"PATCH", testWebhookSecret, http.MethodPatch, webhookBody(t, nil), http.StatusMethodNotAllowed},
		{"body over 1 MiB", testWebhookSecret, http.MethodPost, big, http.StatusRequestEntityTooLarge},
		{"malformed JSON", testWebhookSecret, http.MethodPost, `{"userID": "user-1", "secret": ` + testWebhookSecret, http.StatusBadRequest},
		{"truncated JSON", testWebhookSecret, http.MethodPost, webhookBody(t, nil)[:40], http.StatusBadRequest},
		{"trailing garbage", testWebhookSecret, http.MethodPost, webhookBody(t, nil) + "}", http.StatusBadRequest},
		{"empty body", testWebhookSecret, http.MethodPost, "", http.StatusBadRequest},
		{"not an object", testWebhookSecret, http.MethodPost, `["` + testWebhookSecret + `"]`, http.StatusBadRequest},
		{"wrong type", testWebhookSecret, http.MethodPost, `{"userID": 42, "secret": "` + testWebhookSecret + `"}`, http.StatusBadRequest},
		{"wrong secret, same length", testWebhookSecret, http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.Secret = strings.Repeat("x", len(testWebhookSecret)) }), http.StatusUnauthorized},
		{"wrong secret, shorter", testWebhookSecret, http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.Secret = testWebhookSecret[:len(testWebhookSecret)-1] }), http.StatusUnauthorized},
		{"wrong secret, longer", testWebhookSecret, http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.Secret = testWebhookSecret + "x" }), http.StatusUnauthorized},
		{"wrong secret, other case", testWebhookSecret, http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.Secret = strings.ToUpper(testWebhookSecret) }), http.StatusUnauthorized},
		{"missing secret", testWebhookSecret, http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.Secret = "" }), http.StatusUnauthorized},
		{"null body", testWebhookSecret, http.MethodPost, "null", http.StatusUnauthorized},
		{"no secret configured, none sent", "", http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.Secret = "" }), http.StatusUnauthorized},
		{"no secret configured, one sent", "", http.MethodPost, webhookBody(t, nil), http.StatusUnauthorized},
		{"missing userID", testWebhookSecret, http.MethodPost,
			webhookBody(t, func(p *WebhookPayload) { p.UserID = "" }), http.StatusBadRequest},
		{"missing userID, PUT", testWebhookSecret, http.MethodPut,
			webhookBody(t, func(p *WebhookPayload) { p.UserID = "" }), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &subjectRecorder{}
			w, logs := serveWebhook(t, tt.secret, rec, tt.method, tt.body, nil)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.want, strings.TrimSpace(w.Body.String()))
			}
			if calls := rec.got(); len(calls) != 0 {
				t.Errorf("record called %d times: %+v", len(calls), calls)
			}
			if tt.want == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "POST, PUT" {
				t.Errorf("Allow %q", w.Header().Get("Allow"))
			}
			if strings.Contains(strings.ToLower(logs), "s3cret-value") {
				t.Errorf("the secret reached the log:\n%s", logs)
			}
			if strings.Contains(w.Body.String(), testWebhookSecret) {
				t.Errorf("the secret is in the answer: %s", w.Body.String())
			}
			if !strings.Contains(logs, "refused") || !strings.Contains(logs, "req-1") {
				t.Errorf("the refusal is not logged with its request id:\n%s", logs)
			}
		})
	}
}

func TestWebhookRecordsTheUser(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header http.Header
		edit   func(*WebhookPayload)
		want   extract.Subject
	}{
		{"POST, tenant from the header", http.MethodPost, http.Header{"Finoos-Tenant-Id": {"client-app"}}, nil,
			extract.Subject{Provider: "fino", Tenant: "client-app", Kind: "user", ID: "user-1", CorrelationID: "corr-1"}},
		{"PUT", http.MethodPut, http.Header{"Finoos-Tenant-Id": {"client-app"}}, nil,
			extract.Subject{Provider: "fino", Tenant: "client-app", Kind: "user", ID: "user-1", CorrelationID: "corr-1"}},
		{"the header wins over the body", http.MethodPost, http.Header{"Finoos-Tenant-Id": {"client-header"}},
			func(p *WebhookPayload) { p.TenantID = "client-body" },
			extract.Subject{Provider: "fino", Tenant: "client-header", Kind: "user", ID: "user-1", CorrelationID: "corr-1"}},
		{"tenant from the body without the header", http.MethodPost, nil,
			func(p *WebhookPayload) { p.TenantID = "client-body" },
			extract.Subject{Provider: "fino", Tenant: "client-body", Kind: "user", ID: "user-1", CorrelationID: "corr-1"}},
		{"an event the docs do not name", http.MethodPost, http.Header{"Finoos-Tenant-Id": {"client-app"}},
			func(p *WebhookPayload) { p.Event, p.Data = "bankdata", nil },
			extract.Subject{Provider: "fino", Tenant: "client-app", Kind: "user", ID: "user-1", CorrelationID: "corr-1"}},
		{"ubasyncerror without correlation id", http.MethodPost, http.Header{"Finoos-Tenant-Id": {"client-app"}},
			func(p *WebhookPayload) {
				p.Event, p.CorrelationID, p.Data = EventUBASyncError, "", json.RawMessage(`{"type":"CHALLENGE_REQUIRED"}`)
			},
			extract.Subject{Provider: "fino", Tenant: "client-app", Kind: "user", ID: "user-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &subjectRecorder{}
			body := webhookBody(t, tt.edit)
			w, logs := serveWebhook(t, testWebhookSecret, rec, tt.method, body, tt.header)
			if w.Code != http.StatusNoContent {
				t.Errorf("status %d, want 204 (%s)", w.Code, w.Body.String())
			}
			if calls := rec.got(); len(calls) != 1 || calls[0] != tt.want {
				t.Errorf("record calls %+v, want once %+v", calls, tt.want)
			}
			if strings.Contains(logs, testWebhookSecret) {
				t.Errorf("the secret reached the log:\n%s", logs)
			}
			if strings.Contains(body, "CHALLENGE_REQUIRED") && !strings.Contains(logs, "CHALLENGE_REQUIRED") {
				t.Errorf("the sync error's type is not logged:\n%s", logs)
			}
		})
	}
}

func TestWebhookBodyAtTheLimit(t *testing.T) {
	body := webhookBody(t, nil)
	pad := MaxWebhookBody - len(body)
	body = body[:len(body)-1] + strings.Repeat(" ", pad) + "}" // JSON allows the blanks
	if len(body) != MaxWebhookBody {
		t.Fatalf("body of %d bytes", len(body))
	}
	rec := &subjectRecorder{}
	if w, _ := serveWebhook(t, testWebhookSecret, rec, http.MethodPost, body, nil); w.Code != http.StatusNoContent || len(rec.got()) != 1 {
		t.Fatalf("a body of exactly 1 MiB: status %d, %d records", w.Code, len(rec.got()))
	}
	rec = &subjectRecorder{}
	if w, _ := serveWebhook(t, testWebhookSecret, rec, http.MethodPost, body+" ", nil); w.Code != http.StatusRequestEntityTooLarge || len(rec.got()) != 0 {
		t.Fatalf("one byte more: status %d, %d records", w.Code, len(rec.got()))
	}
}

func TestWebhookRecordFails(t *testing.T) {
	rec := &subjectRecorder{err: errors.New("clickhouse: connection refused")}
	w, logs := serveWebhook(t, testWebhookSecret, rec, http.MethodPost, webhookBody(t, nil), http.Header{"Finoos-Tenant-Id": {"client-app"}})
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 so finoOS retries", w.Code)
	}
	if len(rec.got()) != 1 {
		t.Errorf("record called %d times, want 1", len(rec.got()))
	}
	if !strings.Contains(logs, "connection refused") || !strings.Contains(logs, "corr-1") {
		t.Errorf("the failure is not logged with the error and correlation id:\n%s", logs)
	}
	if strings.Contains(logs, testWebhookSecret) || strings.Contains(w.Body.String(), testWebhookSecret) {
		t.Errorf("the secret leaked:\n%s\n%s", logs, w.Body.String())
	}
}

// TestWebhookFromSandbox has the sandbox deliver to the receiver: the first
// delivery finds the registry down and gets 503, finoOS retries, the second
// is recorded.
func TestWebhookFromSandbox(t *testing.T) {
	rec := &subjectRecorder{err: errors.New("registry down")}
	var once sync.Once
	done := make(chan struct{})
	h := WebhookHandler("s3cret", extract.Hooks{Subject: func(ctx context.Context, s extract.Subject) error {
		err := rec.record(ctx, s)
		if err != nil {
			rec.mu.Lock()
			rec.err = nil // up again for the retry
			rec.mu.Unlock()
			return err
		}
		once.Do(func() { close(done) })
		return nil
	}}, nil)
	receiver := httptest.NewServer(h)
	defer receiver.Close()

	s, srv := startSandbox(t, finosb.Options{
		Tenants:           []string{"sandbox-client-app"},
		AnalysisDuration:  50 * time.Millisecond,
		WebhookURL:        receiver.URL,
		WebhookSecret:     "s3cret",
		WebhookRetryDelay: 10 * time.Millisecond,
	})
	c := newClient(t, srv, "sandbox-client-app")
	id := s.Users("sandbox-client-app")[0]
	resp, _, _ := c.do(http.MethodPost, userPath(id, suffixTriggerAnalysis), nil, nil, nil)
	corr := resp.Header.Get(headerCorrelationID)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook recorded")
	}
	want := extract.Subject{Provider: "fino", Tenant: "sandbox-client-app", Kind: "user", ID: id, CorrelationID: corr}
	calls := rec.got()
	if len(calls) != 2 || calls[0] != want || calls[1] != want {
		t.Fatalf("record calls %+v, want twice %+v", calls, want)
	}
}
