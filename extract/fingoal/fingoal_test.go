package fingoal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	fgsb "github.com/finsync/finsync/extract/fingoal/sandbox"
	"github.com/finsync/finsync/transform"
	"github.com/finsync/finsync/transform/transformtest"

	"github.com/finsync/finsync/extract/hostile"
)

func testLineage() transform.Lineage {
	return transform.Lineage{Provider: provider, Tenant: "client", RunID: "run-1",
		ExtractedAt: time.Date(2026, 5, 12, 6, 0, 0, 0, time.UTC), Version: 42}
}

// Seeds from the docs' examples, in the shapes of assumptions 5 and 10.
const (
	docEnriched = `{"uid":"16432789fdsa78","accountid":"1615","amountnum":12.41,"date":"2024-05-11","original_description":"T0064 TARGET STORE",
		"transactionid":"988cee06-5d36-11ec-b00b-bc8d8f2303a12733","accountType":"creditCard","settlement":"debit",
		"simple_description":"Target","merchant_name":"Target","category":"Shopping","subcategory":"General Merchandise","tags":["retail"]}`
	docCredit   = `{"uid":"u2","transactionid":"t2","amountnum":"2500.00","date":"2024-05-01","settlement":"credit","category":"Paycheck","tags":[]}`
	docFinsight = `{"finsight_id":"uuidv4","uniqueId":"your_client_id:your_transaction_id","user_id":"your_uid","transaction_id":"your_transaction_id",
		"insight_ctaurl":"http://example.com","finsight_image":"https://example.com/example.jpg","insight_text":"Get Target Red Card to save on your Target shopping!",
		"recommendation":"Target Red Card","amountFound":10.00,"category":"Shopping"}`
	docFinsightSchema = `{"category":"string","finsight_image":"http://example.com","insight_ctaurl":"http://example.com","insight_text":"string",
		"transaction_id":"string","uniqueId":"string","user_id":"string","amountFound":"12.5","finsightDate":"2019-08-24","recommendation":"string",
		"retries":0,"webhookSent":true,"webhookUri":"http://example.com","lastAttempt":"2019-08-24"}`
	docFailed = `{"uid":"u3","transactionid":"t3","reason":"original_description is empty"}`
)

func TestGolden(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	var got bytes.Buffer
	print := func(w *Writer, table transform.Table) {
		rec := w.Record()
		defer rec.Release()
		if !rec.Schema().Equal(table.Schema) {
			t.Fatalf("%s schema %s", table.Name, rec.Schema())
		}
		transformtest.PrintRecord(&got, rec)
		w.Release()
	}
	e := NewEnrichedWriter(mem, testLineage())
	// The first takes its source's currency from the ledger; the second's is unknown.
	currency := map[string]string{"988cee06-5d36-11ec-b00b-bc8d8f2303a12733": "SEK"}
	for _, raw := range []string{docEnriched, docCredit} {
		if rej, ok := e.AddEnriched("batch-1", json.RawMessage(raw), currency); !ok {
			t.Fatalf("reject %+v", rej)
		}
	}
	print(e, transform.Transactions)
	f := NewFinsightsWriter(mem, testLineage())
	for _, raw := range []string{docFinsight, docFinsightSchema} {
		if rej, ok := f.AddFinsight(json.RawMessage(raw)); !ok {
			t.Fatalf("reject %+v", rej)
		}
	}
	print(f, transform.Insights)
	tw := NewTagsWriter(mem, testLineage())
	tw.AddTag("u1", "grocery_user", TagCurrent, "", time.Date(2026, 5, 12, 5, 0, 0, 0, time.UTC))
	tw.AddTagUpdate(TagUpdate{UID: "u1", Created: []string{"dining_user"}, Deleted: []string{"fuel_user"}}, "3961c39e-e1c6-45ec-acd0-9a7793dabe02", time.Date(2026, 5, 12, 5, 0, 0, 0, time.UTC))
	print(tw, transform.UserTags)
	sw := NewSubmissionsWriter(mem, testLineage())
	sw.AddSubmission(Submission{SourceProvider: "fino", SourceTenant: "t", UserID: "u", TransactionID: "x", Currency: "EUR", UID: Opaque([]byte("k"), "user", "fino", "t", "u"),
		EnrichTransactionID: Opaque([]byte("k"), "transaction", "fino", "t", "u", "x"), SubmissionID: "s", BatchRequestID: "b", Endpoint: pathCleanup,
		Status: StatusSubmitted, SubmittedAt: time.Date(2026, 5, 12, 5, 0, 0, 0, time.UTC)})
	print(sw, transform.EnrichmentSubmissions)
	transformtest.Golden(t, filepath.Join("testdata", "golden", "fingoal.jsonl"), got.Bytes())
	if r := FailedReject("batch-1", json.RawMessage(docFailed)); r.Key != "u3/batch-1/t3" || !strings.Contains(r.Reason, "original_description is empty") {
		t.Errorf("failed transaction: %+v", r)
	}
}

func TestAmountFoundNumberOrString(t *testing.T) {
	for in, want := range map[string]string{`10.00`: "10.00", `"10.00"`: "10.00", `"$3.5"`: "3.5", `null`: "", `""`: "", `7`: "7"} {
		var a Amount
		if err := json.Unmarshal([]byte(in), &a); err != nil || a.Value != want {
			t.Errorf("%s: %q %v, want %q", in, a.Value, err, want)
		}
	}
	for _, in := range []string{`"ten"`, `true`, `{}`} {
		var a Amount
		if err := json.Unmarshal([]byte(in), &a); err == nil {
			t.Errorf("%s accepted as %q", in, a.Value)
		}
	}
}

func TestBadRecordsAreRejectedAlone(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	w := NewEnrichedWriter(mem, testLineage())
	defer w.Release()
	for raw, want := range map[string]string{
		`{"uid":"u","transactionid":"t","tags":"unavailable"}`:                                         "expected shape",
		`{"transactionid":"t","date":"2024-01-01","amountnum":1,"settlement":"debit"}`:                 "without uid",
		`{"uid":"u","transactionid":"t","date":"01.01.2024","amountnum":1,"settlement":"debit"}`:       "YYYY-MM-DD",
		`{"uid":"u","transactionid":"t","date":"2024-01-01","amountnum":-1,"settlement":"debit"}`:      "positive",
		`{"uid":"u","transactionid":"t","date":"2024-01-01","amountnum":1,"settlement":"pending"}`:     "neither debit",
		`{"uid":"u","transactionid":"t","date":"2024-01-01","amountnum":1.00001,"settlement":"debit"}`: "decimals",
	} {
		if rej, ok := w.AddEnriched("b", json.RawMessage(raw), nil); ok || !strings.Contains(rej.Reason, want) {
			t.Errorf("%s: %v %q, want reason with %q", raw, ok, rej.Reason, want)
		}
	}
	if w.Len() != 0 {
		t.Errorf("%d rows from rejected records", w.Len())
	}
}

// Rejects of one batch never share a key, or etl_rejects (one row per
// stream, run and key) would keep only one of them: an undecodable record
// is keyed by the transactionid still readable in it, or by a hash of it.
func TestRejectsOfABatchHaveDistinctKeys(t *testing.T) {
	w := NewEnrichedWriter(memory.DefaultAllocator, testLineage())
	defer w.Release()
	keys := map[string]string{}
	for _, raw := range []string{
		`{"uid":"u","transactionid":"t1","amountnum":"abc"}`,
		`{"uid":"u","transactionid":"t2","amountnum":"abc"}`,
		`{"uid":"u","amountnum":"abc","date":"2024-01-01"}`,
		`{"uid":"u","amountnum":"abc","date":"2024-01-02"}`,
		`[1, 2]`,
		`{"uid":"u","date":"2024-01-01","amountnum":1,"settlement":"debit"}`,
	} {
		rej, ok := w.AddEnriched("b", json.RawMessage(raw), nil)
		if ok {
			t.Fatalf("%s accepted", raw)
		}
		if other, dup := keys[rej.Key]; dup {
			t.Errorf("%s and %s share the key %q", raw, other, rej.Key)
		}
		keys[rej.Key] = raw
	}
	if _, ok := keys[RejectKey("u", "b", "t1")]; !ok {
		t.Errorf("the undecodable record's transactionid is not its key: %v", keys)
	}
	for _, raw := range []string{`{"reason":"x"}`, `{"reason":"y"}`} {
		if r := FailedReject("b", json.RawMessage(raw)); keys[r.Key] != "" {
			t.Errorf("failed item %s shares the key %q", raw, r.Key)
		} else {
			keys[r.Key] = raw
		}
	}
}

// decoderSeeds are the docs' examples, a few edge cases and the hostile
// corpus: FuzzDecoders' and FuzzCanonical's seeds.
func decoderSeeds() [][]byte {
	var seeds [][]byte
	for _, s := range []string{docEnriched, docCredit, docFinsight, docFinsightSchema, docFailed,
		`{"amountFound":1e400,"finsight_id":"x","user_id":"u"}`, `null`, `[]`, `{}`, `"x"`,
		`{"enrichedTransactions":[{"uid":"u","transactionid":"t","amountnum":1,"settlement":"debit","date":"2026-01-02"}],"failedTransactions":[],"processed_at":"x","n":{"a":[1]}}`} {
		seeds = append(seeds, []byte(s))
	}
	return append(seeds, hostile.Payloads()...)
}

// FuzzDecoders: every decoder of FinGoal JSON gives a row or a reject with
// a reason, never panics, and leaks nothing.
func FuzzDecoders(f *testing.F) {
	for _, s := range decoderSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		e, fs := NewEnrichedWriter(mem, testLineage()), NewFinsightsWriter(mem, testLineage())
		defer e.Release()
		defer fs.Release()
		if rej, ok := e.AddEnriched("b", raw, nil); ok != (e.Len() == 1) || (!ok && rej.Reason == "") {
			t.Fatalf("enriched: ok %v, %d rows, reason %q", ok, e.Len(), rej.Reason)
		}
		if rej, ok := fs.AddFinsight(raw); (ok && fs.Len() == 0) || (!ok && (rej.Reason == "" || fs.Len() != 0)) {
			t.Fatalf("finsight: ok %v, %d rows, reason %q", ok, fs.Len(), rej.Reason)
		}
		_ = FailedReject("b", raw)
		var status CleanupStatus
		_ = json.Unmarshal(raw, &status)
		var res BatchResult
		if json.Unmarshal(raw, &res) == nil {
			if len(res.Extra) > extract.MaxWrapperBytes+32 || (res.Extra != nil && !json.Valid(res.Extra)) {
				t.Fatalf("batch result's unknown members: %d bytes %q", len(res.Extra), res.Extra)
			}
			for _, item := range res.EnrichedTransactions {
				if rej, ok := e.AddEnriched("b", extract.WithWrapper(item, res.Extra), nil); !ok && rej.Reason == "" {
					t.Fatal("enriched item rejected without a reason")
				}
			}
		}
		var u UserResponse
		_ = json.Unmarshal(raw, &u)
		var tags TagsResponse
		_ = json.Unmarshal(raw, &tags)
		for _, r := range []arrow.Record{e.Record(), fs.Record()} {
			r.Release()
		}
	})
}

func TestVerify(t *testing.T) {
	const secret = "YOUR_CLIENT_SECRET"
	compactBody := `{"batch_request_id":"5f4b1b9b-4b7d-4b7d-4b7d-4b7d4b7d4b7d"}`
	pretty := "{\n  \"batch_request_id\": \"5f4b1b9b-4b7d-4b7d-4b7d-4b7d4b7d4b7d\"\n}"
	html := `{"guid":"<a&b>"}`
	tests := []struct {
		name string
		body string
		sig  string
		ok   bool
	}{
		{"raw body", compactBody, Sign(secret, []byte(compactBody)), true},
		{"upper-case hex", compactBody, strings.ToUpper(Sign(secret, []byte(compactBody))), true},
		{"pretty body signed compact (JSON.stringify)", pretty, Sign(secret, []byte(compactBody)), true},
		{"pretty body signed as sent", pretty, Sign(secret, []byte(pretty)), true},
		{"no HTML escaping in the compact form", html, Sign(secret, []byte(html)), true},
		{"HTML-escaped signature", html, Sign(secret, []byte(`{"guid":"\u003ca\u0026b\u003e"}`)), false},
		{"wrong secret", compactBody, Sign("other", []byte(compactBody)), false},
		{"missing", compactBody, "", false},
		{"not hex", compactBody, "zz" + Sign(secret, []byte(compactBody))[2:], false},
		{"truncated", compactBody, Sign(secret, []byte(compactBody))[:32], false},
		{"replayed with a modified body", `{"batch_request_id":"another"}`, Sign(secret, []byte(compactBody)), false},
		{"re-ordered keys", `{"b":1,"a":2}`, Sign(secret, []byte(`{"a":2,"b":1}`)), false},
		// JSON.stringify(JSON.parse(body)) as Node prints it.
		{"number re-spelled", `{"amountFound":10.00}`, Sign(secret, []byte(`{"amountFound":10}`)), true},
		{"escapes decoded", `{"guid":"caf\u00e9 \/ \u0041"}`, Sign(secret, []byte(`{"guid":"café / A"}`)), true},
		{"repeated key: last value, first place", `{"a":1,"b":2,"a":3}`, Sign(secret, []byte(`{"a":3,"b":2}`)), true},
		{"integer keys first", `{"b":1,"2":2,"1":3}`, Sign(secret, []byte(`{"1":3,"2":2,"b":1}`)), true},
		{"repeated key signed as sent, compacted", `{"a":1, "a":3}`, Sign(secret, []byte(`{"a":1,"a":3}`)), false},
		{"number compacted as sent", `{"amountFound": 10.00}`, Sign(secret, []byte(`{"amountFound":10.00}`)), false},
		{"not JSON, signed compact", "not json", Sign(secret, []byte("notjson")), false},
	}
	for _, tc := range tests {
		if got := Verify(secret, []byte(tc.body), tc.sig); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.ok)
		}
	}
	if Verify("", []byte(compactBody), Sign("", []byte(compactBody))) {
		t.Error("an empty secret verified a webhook")
	}
}

// TestWebhookHandler: a signed webhook of each kind is recorded; a wrong,
// missing or replayed signature is refused with 4xx and records nothing.
func TestWebhookHandler(t *testing.T) {
	const secret = "s3cret"
	var recorded []string
	h := WebhookHandler(WebhookConfig{Secret: secret, Tenant: "client", Hooks: extract.Hooks{
		Subject: func(ctx context.Context, s extract.Subject) error {
			recorded = append(recorded, "subject "+s.Kind+" "+s.ID)
			return nil
		},
		Job: func(ctx context.Context, stream, tenant string, j extract.Job) error {
			recorded = append(recorded, "job "+stream+" "+j.ID)
			return nil
		},
		Insert: func(ctx context.Context, tb transform.Table, rec arrow.Record) error {
			recorded = append(recorded, "rows "+tb.Name+" "+itoa(rec.NumRows()))
			return nil
		},
		JobStatus: func(ctx context.Context, stream, tenant, id string) (string, error) {
			return map[string]string{"b-1": extract.JobActive, "b-done": extract.JobDone}[id], nil
		},
		Trigger: func(ctx context.Context, stream, tenant string) {
			recorded = append(recorded, "trigger "+stream+" "+tenant)
		}}})
	send := func(body, sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/fingoal", strings.NewReader(body))
		if sig != "" {
			req.Header.Set(SignatureHeader, sig)
		}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		return rr.Code
	}
	valid := []struct{ body, want string }{
		// An active batch is collected now; a collected one is not again.
		{`{"batch_request_id":"b-1"}`, "subject batch b-1,trigger fingoal.enrichment client"},
		{`{"batch_request_id":"b-done"}`, "subject batch b-done"},
		// One etl_state does not know (its submission's answer was lost) is
		// adopted as a job and collected.
		{`{"batch_request_id":"b-lost"}`, "subject batch b-lost,job fingoal.enrichment b-lost,trigger fingoal.enrichment client"},
		// A tag update is fetched now.
		{`{"guid":"3961c39e-e1c6-45ec-acd0-9a7793dabe02"}`, "job fingoal.user_tags 3961c39e-e1c6-45ec-acd0-9a7793dabe02,trigger fingoal.user_tags client"},
		{`{"userTags":{"uid":"u1","created":["a","b"],"deleted":["c"]}}`, "rows user_tags 3"},
		{`{"finsights":[` + docFinsight + `]}`, "rows insights 6"},
		{docFinsightSchema, "rows insights 6"},
	}
	for _, v := range valid {
		recorded = nil
		if code := send(v.body, Sign(secret, []byte(v.body))); code != http.StatusNoContent || strings.Join(recorded, ",") != v.want {
			t.Errorf("%s: %d, recorded %v, want %q", v.body, code, recorded, v.want)
		}
	}
	body := valid[0].body
	bad := []struct {
		name, body, sig string
		code            int
	}{
		{"missing signature", body, "", http.StatusBadRequest},
		{"wrong signature", body, Sign("other", []byte(body)), http.StatusUnauthorized},
		{"replayed with a modified body", `{"batch_request_id":"b-2"}`, Sign(secret, []byte(body)), http.StatusUnauthorized},
		{"signed, unknown shape", `{"x":1}`, Sign(secret, []byte(`{"x":1}`)), http.StatusBadRequest},
		{"signed, empty guid", `{"guid":""}`, Sign(secret, []byte(`{"guid":""}`)), http.StatusBadRequest},
		{"signed, bad finsight", `{"finsights":[{"user_id":"u"}]}`, Sign(secret, []byte(`{"finsights":[{"user_id":"u"}]}`)), http.StatusBadRequest},
	}
	for _, b := range bad {
		recorded = nil
		if code := send(b.body, b.sig); code != b.code || len(recorded) != 0 {
			t.Errorf("%s: %d (want %d), recorded %v", b.name, code, b.code, recorded)
		}
	}
	recorded = nil
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	if rr.Code != http.StatusMethodNotAllowed || len(recorded) != 0 {
		t.Errorf("GET: %d", rr.Code)
	}
}

// TestWebhookSignedOverJSONStringify: FinGoal signs JSON.stringify of the
// parsed body, so a finsight sent with "amountFound":10.00, \/ and \u00e9 is
// signed over 10, / and é. It lands; the same body with a wrong signature
// gets 401 and records nothing.
func TestWebhookSignedOverJSONStringify(t *testing.T) {
	const secret = "s3cret"
	sent := `{"finsight_id":"f-1","uniqueId":"client:t-1","user_id":"u-1","transaction_id":"t-1",` +
		`"insight_ctaurl":"https:\/\/example.com\/offers","insight_text":"Save at Caf\u00e9 Central","recommendation":"Card",` +
		`"amountFound":10.00,"category":"Coffee Shops"}`
	// node -e 'process.stdout.write(JSON.stringify(JSON.parse(sent)))'
	stringified := `{"finsight_id":"f-1","uniqueId":"client:t-1","user_id":"u-1","transaction_id":"t-1",` +
		`"insight_ctaurl":"https://example.com/offers","insight_text":"Save at Café Central","recommendation":"Card",` +
		`"amountFound":10,"category":"Coffee Shops"}`
	var recorded []string
	h := WebhookHandler(WebhookConfig{Secret: secret, Tenant: "client", Hooks: extract.Hooks{
		Insert: func(ctx context.Context, tb transform.Table, rec arrow.Record) error {
			recorded = append(recorded, tb.Name+" "+itoa(rec.NumRows()))
			return nil
		}}})
	for _, c := range []struct {
		name, sig string
		code      int
		want      string
	}{
		{"signed over JSON.stringify", Sign(secret, []byte(stringified)), http.StatusNoContent, "insights 5"},
		{"signed over the bytes sent", Sign(secret, []byte(sent)), http.StatusNoContent, "insights 5"},
		{"wrong secret", Sign("other", []byte(stringified)), http.StatusUnauthorized, ""},
		{"signature of another body", Sign(secret, []byte(strings.Replace(stringified, ":10,", ":11,", 1))), http.StatusUnauthorized, ""},
	} {
		recorded = nil
		req := httptest.NewRequest(http.MethodPost, "/webhooks/fingoal", strings.NewReader(sent))
		req.Header.Set(SignatureHeader, c.sig)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != c.code || strings.Join(recorded, ",") != c.want {
			t.Errorf("%s: %d %q, recorded %v; want %d and %q", c.name, rr.Code, strings.TrimSpace(rr.Body.String()), recorded, c.code, c.want)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestSandboxWebhooksSignedAsFinGoal: with RespellWebhooks the sandbox
// sends bodies JSON.stringify would spell otherwise (12.40 as 12.400 or
// 1240e-2, \/ and \u002d escapes; the sandbox package's TestRespell checks
// the spelling), signed over JSON.stringify's form, not the bytes sent;
// the receiver verifies and records them all.
func TestSandboxWebhooksSignedAsFinGoal(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var rows int64
	receiver := WebhookHandler(WebhookConfig{Secret: "sandbox-secret", Tenant: "client", Hooks: extract.Hooks{
		Insert: func(ctx context.Context, tb transform.Table, rec arrow.Record) error {
			mu.Lock()
			defer mu.Unlock()
			rows += rec.NumRows()
			return nil
		}}})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(SignatureHeader) == Sign("sandbox-secret", body) {
			t.Errorf("signed over the bytes sent: %s", body)
		}
		mu.Lock()
		bodies = append(bodies, string(body))
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		receiver.ServeHTTP(w, r)
	}))
	defer hook.Close()
	sb := fgsb.New(fgsb.Options{WebhookURL: hook.URL, RespellWebhooks: true})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v3/authentication", "application/json", strings.NewReader(`{"client_id":"sandbox-client","client_secret":"sandbox-secret"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok AuthResponse
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v3/cleanup", strings.NewReader(`{"transactions":[{"uid":"u1","transactionid":"t1",`+
		`"amountnum":248.00,"date":"2024-05-11","original_description":"T0064 TARGET STORE","accountType":"checking","settlement":"debit"}]}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cleanup: %v %v", resp, err)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(10 * time.Second); sb.Webhooks() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	sb.Close()
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(bodies, "\n")
	// The enrichment and finsights webhooks; amountFound 12.40 (5 % of 248)
	// went as 12.400 (the number) or "12.40" (the string).
	if sb.Webhooks() != 2 || len(bodies) != 2 || rows == 0 || !strings.Contains(all, `\u002D`) || !strings.Contains(all, `\/`) ||
		!strings.Contains(all, `"amountFound": 12.400`) && !strings.Contains(all, `"amountFound": "12.40"`) {
		t.Errorf("%d webhooks accepted, %d rows, bodies:\n%s", sb.Webhooks(), rows, all)
	}
}

// TestTokenCachedAndRenewedOnce: one authentication serves many calls; an
// expired token (401) costs exactly one re-authentication.
func TestTokenCachedAndRenewedOnce(t *testing.T) {
	sb := fgsb.New(fgsb.Options{})
	auths := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/authentication" {
			auths++
		}
		sb.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer sb.Close()
	id, secret := sb.Credentials()
	a := NewAPI(Config{BaseURL: srv.URL + "/v3", ClientID: id, ClientSecret: secret, RateLimit: 1000})
	c := a.clients.Get(id)
	for range 5 {
		var f FinsightsResponse
		if err := c.GetJSON(context.Background(), pathFinsights, map[string][]string{"startAt": {"0"}, "endAt": {"1"}}, nil, &f); err != nil {
			t.Fatal(err)
		}
	}
	if auths != 1 {
		t.Errorf("%d authentications for 5 calls", auths)
	}
	sb.ExpireTokens() // the token expires early
	var f FinsightsResponse
	if err := c.GetJSON(context.Background(), pathFinsights, map[string][]string{"startAt": {"0"}, "endAt": {"1"}}, nil, &f); err != nil {
		t.Fatal(err)
	}
	if auths != 2 || a.Stats().Reauths != 1 {
		t.Errorf("%d authentications, %d re-authentications after a 401", auths, a.Stats().Reauths)
	}
}

// unreadLedger is a Ledger whose rows must not be read.
type unreadLedger struct {
	extract.Ledger
	t *testing.T
}

func (l unreadLedger) Unsent(context.Context, func([]string) error) error {
	l.t.Fatal("rows read without an IDKey")
	return nil
}

// Without a secret IDKey the enrichment sends nothing: keyed with something
// FinGoal knows (the client id, the old default) the opaque ids would not be.
func TestEnrichmentNeedsASecretIDKey(t *testing.T) {
	for _, key := range []string{"", "too-short"} {
		a := NewAPI(Config{BaseURL: "http://127.0.0.1:1/v3", ClientID: "client", ClientSecret: "s", IDKey: key})
		_, err := a.runEnrichment(context.Background(), extract.Request{Tenant: "client", Ledger: unreadLedger{t: t}}, nil)
		var perm *extract.Permanent
		if !errors.As(err, &perm) || !strings.Contains(err.Error(), "IDKey of at least 16 characters") {
			t.Errorf("IDKey %q: %v", key, err)
		}
	}
}
