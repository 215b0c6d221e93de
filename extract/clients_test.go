package extract

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// TestClients: one client per tenant however many goroutines ask at once,
// none kept for a tenant the func refuses, and Stats sums every client.
func TestClients(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 503}, {status: 200}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	var made atomic.Int64
	cs := NewClients(func(tenant string) *Client {
		if tenant == "unknown" {
			return nil
		}
		made.Add(1)
		opts := fastOptions(ts.URL)
		opts.Header = http.Header{"X-Tenant": {tenant}}
		return NewClient(opts)
	})

	var wg sync.WaitGroup
	got := make([]*Client, 20)
	for i := range got {
		wg.Go(func() { got[i] = cs.Get([]string{"a", "b"}[i%2]) })
	}
	wg.Wait()
	for i, c := range got {
		if c != got[i%2] {
			t.Fatalf("Get %d returned another client for the same tenant", i)
		}
	}
	if got[0] == got[1] || made.Load() != 2 {
		t.Fatalf("%d clients made, a and b same: %v; want 2 distinct", made.Load(), got[0] == got[1])
	}
	if cs.Get("unknown") != nil || cs.Get("unknown") != nil {
		t.Fatal("a client for a tenant the func refused")
	}

	for _, tenant := range []string{"a", "b", "c"} {
		resp, err := cs.Get(tenant).Do(t.Context(), http.MethodGet, "/x", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The first request meets the 503 and is retried; the others get 200.
	if st := cs.Stats(); st != (ClientStats{Requests: 4, Retries: 1}) {
		t.Fatalf("stats %+v, want 4 requests, 1 retry", st)
	}
	reqs := srv.requests()
	if h := reqs[len(reqs)-1].Header.Get("X-Tenant"); h != "c" {
		t.Fatalf("tenant header %q, want c", h)
	}
}

// TestTenantClients: the tenant header goes with every tenant but Own, and a
// tenant Auth refuses gets no client.
func TestTenantClients(t *testing.T) {
	srv := &scripted{replies: []reply{{status: 200}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cs := NewTenantClients(TenantOptions{Client: fastOptions(ts.URL), Header: "Sub-Tenant", Own: "own",
		Auth: func(tenant string) (*TokenCache, bool) { return nil, tenant != "refused" }})
	if cs.Get("refused") != nil {
		t.Fatal("a client for a tenant Auth refused")
	}
	for _, tenant := range []string{"own", "other"} {
		resp, err := cs.Get(tenant).Do(t.Context(), http.MethodGet, "/x", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	reqs := srv.requests()
	if own, other := reqs[0].Header.Values("Sub-Tenant"), reqs[1].Header.Get("Sub-Tenant"); len(own) != 0 || other != "other" {
		t.Fatalf("tenant header %q for own, %q for other", own, other)
	}
}
