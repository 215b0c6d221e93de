package sandboxkit

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokens: a token is valid until its expiry or until the TokenExpiry
// fault ends it early (counted once, refused from then on); Issue forgets
// the expired ones; a token issued without a TTL never expires on its own.
func TestTokens(t *testing.T) {
	now := time.Date(2026, 2, 23, 0, 0, 0, 0, time.UTC)
	in := NewInjector(Knobs{})
	tokens := NewTokens[string](func() time.Time { return now }, in)
	if exp := tokens.Issue("a", "tenant-a", time.Minute); !exp.Equal(now.Add(time.Minute)) {
		t.Fatalf("expiry %v", exp)
	}
	tokens.Issue("forever", "tenant-b", 0)
	if v, st := tokens.Check("a", Draw{}); v != "tenant-a" || st != TokenValid {
		t.Fatalf("a: %q %v", v, st)
	}
	if _, st := tokens.Check("nope", Draw{ExpireToken: true}); st != TokenUnknown || in.Counts().TokensExpired != 0 {
		t.Fatalf("unknown token: %v, %+v", st, in.Counts())
	}
	if _, st := tokens.Check("forever", Draw{ExpireToken: true}); st != TokenExpired || in.Counts().TokensExpired != 1 {
		t.Fatalf("expired early: %v, %+v", st, in.Counts())
	}
	if _, st := tokens.Check("forever", Draw{}); st != TokenExpired {
		t.Fatalf("after the fault: %v", st)
	}
	now = now.Add(time.Minute)
	if _, st := tokens.Check("a", Draw{ExpireToken: true}); st != TokenExpired || in.Counts().TokensExpired != 1 {
		t.Fatalf("a at its expiry: %v, %+v", st, in.Counts())
	}
	tokens.Issue("c", "tenant-c", time.Minute)
	for _, tok := range []string{"a", "forever"} {
		if _, st := tokens.Check(tok, Draw{}); st != TokenUnknown {
			t.Fatalf("%s after Issue: %v, want forgotten", tok, st)
		}
	}
}

// TestGuard: faults first, then the token; the refusal goes through the
// provider's error writer with the provider's wording.
func TestGuard(t *testing.T) {
	in := NewInjector(Knobs{})
	tokens := NewTokens[int](time.Now, in)
	tokens.Issue("tok", 7, time.Hour)
	var refused []string
	g := &Guard[int]{Faults: in, Tokens: tokens,
		Error: func(w http.ResponseWriter, status int, msg string) {
			refused = append(refused, msg)
			w.WriteHeader(status)
		}}
	var got int
	h := g.Authorized(func(w http.ResponseWriter, r *http.Request, v int, d Draw) { got = v })
	for _, header := range []string{"Bearer tok", "tok", "Bearer other"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", header)
		h(httptest.NewRecorder(), r)
	}
	if got != 7 || len(refused) != 2 || refused[0] != "missing bearer token" || refused[1] != "invalid access token" {
		t.Fatalf("value %d, refusals %q", got, refused)
	}
	g.BareTokens, g.Refusal, got = true, func(TokenStatus) string { return "Unauthorized" }, 0
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "tok")
	h(httptest.NewRecorder(), r)
	h(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got != 7 || len(refused) != 3 || refused[2] != "Unauthorized" {
		t.Fatalf("bare tokens: value %d, refusals %q", got, refused)
	}
}

func TestListAndPage(t *testing.T) {
	if b := string(ListJSON(`{"a":`, [][]byte{[]byte("1"), []byte(`"x"`)}, "}")); b != `{"a":[1,"x"]}` {
		t.Errorf("ListJSON: %s", b)
	}
	if b := string(ListJSON("", nil, "")); b != "[]" {
		t.Errorf("empty ListJSON: %s", b)
	}
	items := []int{1, 2, 3, 4, 5}
	for page, want := range map[int]int{1: 2, 2: 2, 3: 1, 4: 0} {
		if got := PageOf(items, page, 2); len(got) != want {
			t.Errorf("page %d: %v", page, got)
		}
	}
}

// TestDelivery: retried until a 2xx, with the headers given; no retry
// after the last attempt.
func TestDelivery(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "yes" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", r.Header)
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var failed []int
	dl := Delivery{Client: srv.Client(), Attempts: 3, Delay: func(int) time.Duration { return time.Millisecond },
		Header: map[string]string{"X-Test": "yes"}, Failed: func(n int, err error) { failed = append(failed, n) }}
	run := NewRunner()
	defer run.Close()
	if !dl.Post(run.Context(), srv.URL, []byte("{}")) || calls.Load() != 3 || len(failed) != 2 {
		t.Fatalf("%d calls, failed attempts %v", calls.Load(), failed)
	}
	dl.Attempts = 1
	calls.Store(0)
	if dl.Post(run.Context(), srv.URL, []byte("{}")) || calls.Load() != 1 {
		t.Fatalf("one attempt: %d calls", calls.Load())
	}
}

// An Outage holds its subjects down until they are set up again, and
// counts the requests about each; a nil one is never down.
func TestOutage(t *testing.T) {
	var none *Outage
	if none.Down("u1") {
		t.Error("a nil Outage is down")
	}
	o := &Outage{}
	o.Set("u1", true)
	if !o.Down("u1") || !o.Down("u1") || o.Down("u2") {
		t.Error("u1 should be down, u2 up")
	}
	if got := o.Asked(); got["u1"] != 2 || got["u2"] != 1 || len(o.Asked()) != 0 {
		t.Errorf("asked %v, then not emptied", got)
	}
	o.Set("u1", false)
	if o.Down("u1") {
		t.Error("u1 set up again is still down")
	}
}
