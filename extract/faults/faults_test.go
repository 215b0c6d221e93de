package faults

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestInjector: Begin answers 429 and 5xx itself and hands the other draws
// to the sandbox, which counts the expiries and duplicates it applies;
// WriteBodyStatus truncates with the status given; Malform counts, Malformed
// does not, and both agree with each other every time.
func TestInjector(t *testing.T) {
	in := New(Knobs{Seed: 1, RateLimit: 0.2, ServerError: 0.2, TokenExpiry: 0.3, Truncated: 0.3, Duplicate: 0.3, Malformed: 0.5})
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
		if in.Malformed(key) != in.Malform(key) || in.Malformed(key) != New(in.knobs).Malformed(key) {
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
