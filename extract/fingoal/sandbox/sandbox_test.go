package sandbox

import (
	"bytes"
	"encoding/json"
	"github.com/finsync/finsync/extract/fingoal/stringify"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestSandboxSpeaksTheDocs checks documented answers and limits on the wire.
func TestSandboxSpeaksTheDocs(t *testing.T) {
	sb := New(Options{ResultDelay: -1})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	id, secret := sb.Credentials()
	call := func(method, path, body, tok string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+"/v3"+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	code, body := call("POST", "/authentication", `{"client_id":"`+id+`","client_secret":"`+secret+`"}`, "")
	var tok authResponse
	json.Unmarshal([]byte(body), &tok)
	if code != 200 || tok.ExpiresIn != 86400 || tok.TokenType != "Bearer" {
		t.Fatalf("auth: %d %s", code, body)
	}
	if code, _ := call("POST", "/authentication", `{"client_id":"`+id+`","client_secret":"x"}`, ""); code != 401 {
		t.Errorf("bad credentials: %d", code)
	}
	tx := func(uid string, i int) string {
		return `{"uid":"` + uid + `","amountnum":12.41,"date":"2024-05-11","original_description":"T0064 TARGET STORE","transactionid":"` +
			uid + "-" + itoa(int64(i)) + `","accountType":"creditCard","settlement":"debit"}`
	}
	many := func(users, per int) string {
		var parts []string
		for u := range users {
			for i := range per {
				parts = append(parts, tx("u"+itoa(int64(u)), i))
			}
		}
		return `{"transactions":[` + strings.Join(parts, ",") + `]}`
	}
	for _, c := range []struct {
		name, path, body string
		code             int
		want             string
	}{
		{"no token", "/cleanup", many(1, 1), 401, "Unauthorized"},
		{"sync: 4 users × 16", "/cleanup/sync", many(4, 16), 200, `"merchant_name":"Target"`},
		{"sync: 5 users", "/cleanup/sync", many(5, 1), 400, "at most 4 users"},
		{"sync: 2 users × 17", "/cleanup/sync", many(2, 17), 400, "at most 16"},
		{"sync: 1 user × 128", "/cleanup/sync", many(1, 128), 200, "enrichedTransactions"},
		{"sync: 1 user × 129", "/cleanup/sync", many(1, 129), 400, "at most 128"},
		{"cleanup: missing fields", "/cleanup", `{"transactions":[{"uid":"u"}]}`, 400, `"field":"transactionid"`},
		{"cleanup: over 1,000", "/cleanup", many(2, 501), 400, "at most 1000"},
		{"cleanup", "/cleanup", many(2, 3), 200, `"batch_request_id"`},
		{"streaming", "/cleanup/streaming", many(1, 2), 200, `"transactions_received":true`},
		{"finsights: malformed", "/finsights?startAt=x&endAt=1", "", 400, "UNIX"},
		{"finsights: reversed", "/finsights?startAt=10&endAt=1", "", 400, "UNIX"},
		{"finsights", "/finsights?startAt=0&endAt=9999999999", "", 200, `{"finsights":[]}`},
		{"unknown user", "/users/nobody", "", 404, "could not be found"},
		{"unknown guid", "/users/tags/nothing", "", 404, "could not be found"},
	} {
		method := "POST"
		if c.body == "" {
			method = "GET"
		}
		auth := tok.AccessToken
		if c.name == "no token" {
			auth = ""
		}
		code, body := call(method, c.path, c.body, auth)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %.200s, want %d with %q", c.name, code, body, c.code, c.want)
		}
	}
	batches := sb.Batches()
	if code, body := call("GET", "/cleanup/"+batches[0], "", tok.AccessToken); code != 404 || !strings.Contains(body, "No transactions found") {
		t.Errorf("result before ready: %d %s", code, body)
	}
	sb.Finish(batches[0])
	if code, body := call("GET", "/cleanup/"+batches[0], "", tok.AccessToken); code != 200 || !strings.Contains(body, `"category":"Shopping"`) {
		t.Errorf("result: %d %s", code, body)
	}
	if code, body := call("GET", "/users/u0/sync", "", tok.AccessToken); code != 200 || !strings.Contains(body, `"uid":"u0"`) {
		t.Errorf("user sync: %d %s", code, body)
	}
	// /cleanup got u0-0..2 and u1-0..2, /cleanup/streaming u0-0 and u0-1
	// again; /cleanup/sync does not count.
	if got := sb.Received(); len(got) != 6 || got["u0-0"] != 2 || got["u1-2"] != 1 {
		t.Errorf("received %v", got)
	}
}

// TestRespell: respelled bodies are spelled unlike JSON.stringify (12.40
// as 12.400 or 1240e-2, \/ and \u002d escapes) but sign the same.
func TestRespell(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":12.40,"b":[0.05,-3.5,1e+21,7],"c":"x-y/z é 😀\n"}`: `{"a":12.400,"b":[5e-2,-3.50,1E+21,7],"c":"x\u002Dy\/z \u00E9 \uD83D\uDE00\n"}`,
	} {
		got := respell([]byte(in))
		c1, err1 := stringify.Canonical([]byte(in))
		c2, err2 := stringify.Canonical(got)
		if string(got) != want || err1 != nil || err2 != nil || !bytes.Equal(c1, c2) {
			t.Errorf("respell(%s) = %s, want %s; canonical %s %v, %s %v", in, got, want, c1, err1, c2, err2)
		}
	}
}
