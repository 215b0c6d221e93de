package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// cutServer serves body whole from the given request on (1-based), cut in
// half before it, as the sandboxes' truncate fault does (Content-Length
// still announces all of it).
func cutServer(t *testing.T, body string, wholeFrom int32, requests *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if n < wholeFrom {
			w.Write([]byte(body[:len(body)/2]))
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// document GETs / with c.Document and returns a copy of the body.
func document(ctx context.Context, c *Client, opts ...CallOption) ([]byte, error) {
	var kept []byte
	err := c.Document(ctx, http.MethodGet, "/", nil, nil, nil, func(doc []byte) error {
		kept = bytes.Clone(doc)
		return nil
	}, opts...)
	return kept, err
}

func TestRefetchCutOffBodies(t *testing.T) {
	const body = `{"total":2,"items":[{"id":"a"},{"id":"b"}]}`
	ctx := context.Background()
	t.Run("Document", func(t *testing.T) {
		var requests atomic.Int32
		c := NewClient(fastOptions(cutServer(t, body, 3, &requests).URL))
		doc, err := document(ctx, c)
		if err != nil || string(doc) != body || requests.Load() != 3 || c.Stats().Retries != 2 {
			t.Fatalf("%q, %v after %d requests, %+v", doc, err, requests.Load(), c.Stats())
		}
	})
	t.Run("GetElements", func(t *testing.T) {
		var requests atomic.Int32
		var seen int
		c := NewClient(fastOptions(cutServer(t, body, 2, &requests).URL))
		scalars, err := c.GetElements(ctx, "/", nil, []string{"items"}, func(json.RawMessage) error { seen++; return nil }, nil)
		// The cut attempt handed over what it read before it broke off.
		if err != nil || string(scalars["total"]) != "2" || requests.Load() != 2 || seen < 2 || c.Stats().Retries != 1 {
			t.Fatalf("%v, %v after %d requests, %d elements, %+v", scalars, err, requests.Load(), seen, c.Stats())
		}
	})
	t.Run("gives up partial", func(t *testing.T) {
		var requests atomic.Int32
		opts := fastOptions(cutServer(t, body, 100, &requests).URL)
		opts.MaxAttempts = 3
		c := NewClient(opts)
		_, err := document(ctx, c)
		if !IsRetryable(err) || requests.Load() != 3 || c.Stats().Retries != 2 {
			t.Fatalf("%v after %d requests, %+v", err, requests.Load(), c.Stats())
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"a":1} trailing`)) }))
		defer srv.Close()
		opts := fastOptions(srv.URL)
		opts.MaxAttempts = 2
		if _, err := document(ctx, NewClient(opts)); !IsRetryable(err) {
			t.Fatalf("a body that is not JSON: %v", err)
		}
	})
	t.Run("expected status", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }))
		defer srv.Close()
		_, err := document(ctx, NewClient(fastOptions(srv.URL)), Expect(http.StatusNotFound))
		var herr *HTTPError
		if !errors.As(err, &herr) || herr.Status != http.StatusNotFound {
			t.Fatalf("an expected 404: %v", err)
		}
	})
	t.Run("fn's error", func(t *testing.T) {
		var requests atomic.Int32
		c := NewClient(fastOptions(cutServer(t, body, 1, &requests).URL))
		stop := errors.New("stop")
		if _, err := c.GetElements(ctx, "/", nil, []string{"items"}, func(json.RawMessage) error { return stop }, nil); err != stop || requests.Load() != 1 {
			t.Fatalf("%v after %d requests", err, requests.Load())
		}
	})
}
