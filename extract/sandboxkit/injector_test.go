package sandboxkit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestInjector: Begin answers 429 and 5xx itself and hands the other draws
// to the sandbox, which counts the expiries and duplicates it applies;
// WriteBodyStatus truncates with the status given; Malform counts, Malformed
// does not, and both agree with each other every time.
func TestInjector(t *testing.T) {
	in := NewInjector(Knobs{Seed: 1, RateLimit: 0.2, ServerError: 0.2, TokenExpiry: 0.3, Truncated: 0.3, Duplicate: 0.3, Malformed: 0.5})
	writeError := func(w http.ResponseWriter, status int, msg string) { http.Error(w, msg, status) }
	var answered, expire, truncate, duplicate int64
	for range 200 {
		w := httptest.NewRecorder()
		d, ok := in.Begin(w, httptest.NewRequest(http.MethodGet, "/", nil), writeError)
		if !ok {
			answered++
			if w.Code != http.StatusTooManyRequests && w.Code != http.StatusInternalServerError && w.Code != http.StatusServiceUnavailable {
				t.Fatalf("Begin answered %d", w.Code)
			}
			continue
		}
		if d.ExpireToken {
			expire++
		}
		if d.Duplicate {
			duplicate++
			in.Duplicated()
		}
		in.WriteBodyStatus(w, d, http.StatusCreated, []byte(`{"a":1}`))
		if d.Truncate {
			truncate++
			if w.Body.String() != `{"a` {
				t.Fatalf("truncated body %q", w.Body)
			}
		}
		if w.Code != http.StatusCreated || w.Header().Get("Content-Length") != "7" {
			t.Fatalf("status %d, Content-Length %s", w.Code, w.Header().Get("Content-Length"))
		}
	}
	c := in.Counts()
	if c.RateLimited+c.ServerErrors != answered || c.RateLimited == 0 || c.ServerErrors == 0 {
		t.Fatalf("counts %+v, %d answered by Begin", c, answered)
	}
	if expire == 0 || c.TokensExpired != 0 {
		t.Fatalf("%d expiries drawn, %d counted before the sandbox applied one", expire, c.TokensExpired)
	}
	in.TokenExpired()
	if c = in.Counts(); c.Truncated != truncate || c.Duplicated != duplicate || truncate == 0 || duplicate == 0 || c.TokensExpired != 1 {
		t.Fatalf("counts %+v; %d truncated, %d duplicated", c, truncate, duplicate)
	}

	var malformed int64
	for _, key := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if in.Malformed(key) != in.Malform(key) || in.Malformed(key) != NewInjector(*in.knobs.Load()).Malformed(key) {
			t.Fatalf("Malformed(%q) is not a property of the key", key)
		}
		if in.Malformed(key) {
			malformed++
		}
	}
	if malformed == 0 || malformed == 8 || in.Counts().Malformed != malformed {
		t.Fatalf("%d of 8 malformed, %d counted", malformed, in.Counts().Malformed)
	}
}

func TestParse(t *testing.T) {
	k, err := Parse("429:0.1,500:0.05,slow:0.05,expire:0.02,malformed:0.01,truncate:0.01,dup:0.05,seed:7")
	want := Knobs{Seed: 7, RetryAfter: 1, RateLimit: 0.1, ServerError: 0.05, Slow: 0.05, TokenExpiry: 0.02, Malformed: 0.01, Truncated: 0.01, Duplicate: 0.05}
	if err != nil || k != want {
		t.Errorf("Parse: %+v, %v", k, err)
	}
	for spec, msg := range map[string]string{
		"429:2":            `429: "2" is not a probability`,
		"lag:0.1":          `unknown fault "lag"`,
		"429":              `"429": want name:value`,
		"seed:x,500:-1":    `seed: "x" is not a whole number; 500: "-1" is not a probability`,
		" , 429:0.5 , ":    "",
		"retry-after:3":    "",
		"retry-after:-3,,": `retry-after: "-3" is not a whole number`,
	} {
		_, err := Parse(spec)
		if (msg == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q): %v, want %q", spec, err, msg)
		}
	}
}
