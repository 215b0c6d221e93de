package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/fingoal"
	"github.com/finsync/finsync/extract/hostile"
	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/transform"
)

// webhookReceivers are the receivers the daemon mounts, configured with
// secrets, and a count of what they recorded.
func webhookReceivers(t testing.TB) (map[string]http.Handler, *int) {
	c, err := LoadConfig(context.Background(), lookupFrom(map[string]string{
		"FINSYNC_FINO_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s", "FINSYNC_FINO_WEBHOOK_SECRET": "whsec",
		"FINSYNC_FINAPI_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINAPI_MANDATORS": "m:id:secret",
		"FINSYNC_FIMENTO_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FIMENTO_NAME": "n", "FINSYNC_FIMENTO_PASSWORD": "p",
		"FINSYNC_FIMENTO_HASH_KEY": "0123456789abcdef", "FINSYNC_FIMENTO_PARTNER_BANKS": "bank",
		"FINSYNC_FINGOAL_BASE_URL": "http://127.0.0.1:1/v3", "FINSYNC_FINGOAL_CLIENT_ID": "c", "FINSYNC_FINGOAL_CLIENT_SECRET": "s",
		"FINSYNC_FINGOAL_ID_KEY": "0123456789abcdef",
	}))
	if err != nil {
		t.Fatal(err)
	}
	recorded := new(int)
	hooks := extract.Hooks{
		Subject: func(context.Context, extract.Subject) error { *recorded++; return nil },
		Trigger: func(context.Context, string, string) { *recorded++ },
		// Every job is active: a receiver's checks cannot hide a payload it
		// should have refused.
		JobStatus: func(context.Context, string, string, string) (string, error) { return extract.JobActive, nil },
		Job:       func(context.Context, string, string, extract.Job) error { *recorded++; return nil },
		Insert:    func(context.Context, transform.Table, arrow.Record) error { *recorded++; return nil },
		Version:   func() uint64 { return 1 },
	}
	out := map[string]http.Handler{}
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		if p.Webhook != nil {
			out[p.Name] = p.Webhook(hooks)
		}
	}
	return out, recorded
}

func post(h http.Handler, name string, body []byte) int {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/"+name+"?tenant=m&segmentType=highBalance", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	return rec.Code
}

// Every webhook receiver the daemon mounts answers the hostile corpus
// (and a body over the size cap) with a 4xx, records nothing, and does not
// panic.
func TestWebhooksRefuseHostilePayloads(t *testing.T) {
	receivers, recorded := webhookReceivers(t)
	payloads := append(hostile.Payloads(), bytes.Repeat([]byte("x"), 2<<20))
	for name, h := range receivers {
		for i, body := range payloads {
			if code := post(h, name, body); code < 400 || code >= 500 {
				t.Errorf("%s webhook, payload %d (%.40q): answered %d", name, i, body, code)
			}
		}
	}
	if len(receivers) != 4 || *recorded != 0 {
		t.Errorf("%d receivers tried; %d payloads recorded (want 4 and 0)", len(receivers), *recorded)
	}
}

// The daemon's FinGoal receiver checks the signature FinGoal makes, over
// JSON.stringify(JSON.parse(body)): a finsight sent with "amountFound":10.00
// and \u00e9 is signed over 10 and é, and lands; with a wrong signature it
// gets 401 and records nothing.
func TestFinGoalWebhookSignedOverJSONStringify(t *testing.T) {
	receivers, recorded := webhookReceivers(t)
	sent := `{"finsight_id":"f-1","user_id":"u-1","insight_text":"Caf\u00e9 \/ 1e1","amountFound":10.00}`
	stringified := `{"finsight_id":"f-1","user_id":"u-1","insight_text":"Café / 1e1","amountFound":10}` // as node prints it
	for _, c := range []struct {
		name, sig      string
		code, recorded int
	}{
		{"FinGoal's signature", fingoal.Sign("s", []byte(stringified)), http.StatusNoContent, 1},
		{"wrong signature", fingoal.Sign("other", []byte(stringified)), http.StatusUnauthorized, 0},
	} {
		*recorded = 0
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/webhooks/fingoal", strings.NewReader(sent))
		req.Header.Set(fingoal.SignatureHeader, c.sig)
		receivers["fingoal"].ServeHTTP(rec, req)
		if rec.Code != c.code || *recorded != c.recorded {
			t.Errorf("%s: %d %q, %d recorded; want %d and %d", c.name, rec.Code, rec.Body.String(), *recorded, c.code, c.recorded)
		}
	}
}

// FuzzWebhooks: whatever the body, every receiver answers without a panic
// and without a 5xx (which would make the provider retry forever).
func FuzzWebhooks(f *testing.F) {
	for _, h := range hostile.Payloads() {
		f.Add(h)
	}
	for _, s := range []string{`{"jobId":"j","segmentType":"highBalance"}`, `{"batch_request_id":"b"}`, `{"guid":"g"}`,
		`{"userID":"u","secret":"whsec","tenantID":"c"}`, `{"processId":"p","partnerBankId":"bank"}`} {
		f.Add([]byte(s))
	}
	receivers, _ := webhookReceivers(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for name, h := range receivers {
			if code := post(h, name, body); code >= 500 {
				t.Fatalf("%s webhook answered %d to %q", name, code, body)
			}
		}
	})
}

// A flood at one provider's receiver is answered 429 with Retry-After past
// FINSYNC_WEBHOOK_RATE's burst (ten seconds' worth): the receiver, and the
// provider GETs and INSERTs behind it, see no more than that; the refused
// ones are counted; another provider's receiver is not slowed by it.
func TestWebhooksRateLimited(t *testing.T) {
	env := map[string]string{"FINSYNC_FINO_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINO_CLIENT_ID": "c",
		"FINSYNC_FINO_CLIENT_SECRET": "s", "FINSYNC_FINO_WEBHOOK_SECRET": "whsec",
		"FINSYNC_FINAPI_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINAPI_MANDATORS": "m:id:secret"}
	for _, tc := range []struct {
		rate       string
		wantPassed int // of 100 at once
	}{{"", 100}, {"0.5", 5}, {"2", 20}, {"0", 100}} {
		env["FINSYNC_WEBHOOK_RATE"] = tc.rate
		c, err := LoadConfig(context.Background(), lookupFrom(env))
		if err != nil {
			t.Fatal(err)
		}
		m := schedules.NewMetrics()
		mux := webhookMux(providers(c, slog.New(slog.DiscardHandler), nil), c.WebhookRate, &schedules.Daemon{}, nil, nil, m)
		passed, refused := 0, 0
		for range 100 {
			rec := httptest.NewRecorder()
			// Unsigned: the receiver refuses it (401), after the limiter.
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/fino", strings.NewReader(`{}`)))
			switch rec.Code {
			case http.StatusTooManyRequests:
				refused++
				if rec.Header().Get("Retry-After") == "" {
					t.Errorf("rate %q: a 429 without Retry-After", tc.rate)
				}
			default:
				passed++
			}
		}
		if passed != tc.wantPassed || passed+refused != 100 {
			t.Errorf("FINSYNC_WEBHOOK_RATE=%q: %d of 100 reached the receiver, %d refused; want %d to reach it", tc.rate, passed, refused, tc.wantPassed)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/finapi?tenant=m", strings.NewReader(`{}`)))
		if rec.Code == http.StatusTooManyRequests {
			t.Errorf("rate %q: finapi's receiver refused its first webhook after fino's flood", tc.rate)
		}
		if refused > 0 && !strings.Contains(scrape(t, m), `finsync_webhook_requests_total{code="429",provider="fino"} `+strconv.Itoa(refused)) {
			t.Errorf("rate %q: the %d refused webhooks are not counted:\n%s", tc.rate, refused, scrape(t, m))
		}
	}
}

// With FINSYNC_WEBHOOK_ADDR the receivers are served there only: the
// status page and /metrics are not on the address that faces the providers.
func TestWebhooksApart(t *testing.T) {
	env := map[string]string{"FINSYNC_FINO_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s",
		"FINSYNC_FINO_WEBHOOK_SECRET": "whsec"}
	routes := func(mux *http.ServeMux, method, path string) bool {
		_, pattern := mux.Handler(httptest.NewRequest(method, path, nil))
		return pattern != "" && pattern != "GET /{$}"
	}
	for _, apart := range []bool{false, true} {
		if apart {
			env["FINSYNC_WEBHOOK_ADDR"] = "127.0.0.1:0"
		}
		c, err := LoadConfig(context.Background(), lookupFrom(env))
		if err != nil {
			t.Fatal(err)
		}
		ps := providers(c, slog.New(slog.DiscardHandler), nil)
		m := schedules.NewMetrics()
		ops, hooks := daemonMux(c, ps, &schedules.Daemon{}, nil, nil, nil, m), webhookMux(ps, c.WebhookRate, &schedules.Daemon{}, nil, nil, m)
		if routes(hooks, "POST", "/run") || !routes(ops, "POST", "/run") {
			t.Errorf("apart %v: run now on the webhook listener: %v, on the main one: %v", apart, routes(hooks, "POST", "/run"), routes(ops, "POST", "/run"))
		}
		if routes(ops, "POST", "/webhooks/fino") == apart || !routes(hooks, "POST", "/webhooks/fino") ||
			routes(hooks, "GET", "/metrics") || !routes(ops, "GET", "/metrics") {
			t.Errorf("apart %v: the main listener serves the webhook: %v, the webhook listener: %v, /metrics there: %v",
				apart, routes(ops, "POST", "/webhooks/fino"), routes(hooks, "POST", "/webhooks/fino"), routes(hooks, "GET", "/metrics"))
		}
	}
}

// The daemon's servers cut off a client that trickles a webhook's body,
// or its headers, or keeps an idle connection: none holds a connection
// past the timeouts (here shortened; daemonTimeouts are the real ones).
func TestServerCutsSlowClients(t *testing.T) {
	if d := daemonTimeouts(); d.Header <= 0 || d.Read <= 0 || d.Write <= 0 || d.Idle <= 0 || d.Read > time.Minute {
		t.Fatalf("the daemon's timeouts %+v: want each set, a request read within a minute", d)
	}
	receivers, recorded := webhookReceivers(t)
	mux := http.NewServeMux()
	for name, h := range receivers {
		mux.Handle("/webhooks/"+name, h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(mux, serverTimeouts{Header: 300 * time.Millisecond, Read: 300 * time.Millisecond, Write: 2 * time.Second, Idle: 300 * time.Millisecond})
	go srv.Serve(ln)
	defer srv.Close()

	const held = 4 * time.Second // what "forever" is here
	for name := range receivers {
		for _, tc := range []struct {
			what    string
			head    string // sent at once
			trickle bool   // then a byte every 50 ms
		}{
			{"a trickled body", "POST /webhooks/" + name + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", true},
			{"trickled headers", "POST /webhooks/" + name + " HTTP/1.1\r\n", true},
			{"an idle connection", "GET /webhooks/" + name + " HTTP/1.1\r\nHost: x\r\n\r\n", false},
		} {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			io.WriteString(conn, tc.head)
			if tc.trickle {
				go func() {
					for time.Since(start) < held {
						if _, err := conn.Write([]byte("x")); err != nil {
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
				}()
			}
			conn.SetReadDeadline(start.Add(held))
			_, err = io.ReadAll(conn) // until the server closes
			if d := time.Since(start); err != nil || d > 2*time.Second {
				t.Errorf("%s webhook, %s: the connection was held %s (%v)", name, tc.what, d.Round(time.Millisecond), err)
			}
			conn.Close()
		}
	}
	if *recorded != 0 {
		t.Errorf("%d trickled webhooks recorded", *recorded)
	}
}

// scrape is what m serves at /metrics.
func scrape(t *testing.T, m *schedules.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}
