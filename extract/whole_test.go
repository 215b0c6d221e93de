package extract

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sized serves a JSON document of about n bytes at every path.
func sized(t *testing.T, n int, requests *atomic.Int32) *httptest.Server {
	t.Helper()
	body := `{"pad":"` + strings.Repeat("x", max(n-10, 0)) + `"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests != nil {
			requests.Add(1)
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDocumentLimit(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		size    int
		tooLong bool
	}{
		{"under", 60 << 10, false},
		{"at the limit", 64 << 10, false},
		{"over", 64<<10 + 1, true},
		{"far over", 8 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			opts := fastOptions(sized(t, tt.size, &requests).URL)
			opts.Limits.Document = 64 << 10
			c := NewClient(opts)
			doc, err := document(ctx, c)
			if !tt.tooLong {
				if err != nil || len(doc) != tt.size {
					t.Fatalf("%d bytes, %v", len(doc), err)
				}
				return
			}
			var perm *Permanent
			if !errors.Is(err, ErrDocumentTooLarge) || !errors.As(err, &perm) || doc != nil || requests.Load() != 1 ||
				!strings.Contains(err.Error(), "more than 64 KiB (FINSYNC_MAX_DOCUMENT_BYTES)") {
				t.Fatalf("%d bytes, %v after %d requests", len(doc), err, requests.Load())
			}
			// GetJSON and a Post that is not repeated read within the same limit.
			var v any
			if err := c.GetJSON(ctx, "/", nil, nil, &v); !errors.Is(err, ErrDocumentTooLarge) {
				t.Fatalf("GetJSON: %v", err)
			}
			if err := c.PostJSON(ctx, "/", nil, struct{}{}, &v); !errors.Is(err, ErrDocumentTooLarge) || !errors.As(err, &perm) {
				t.Fatalf("PostJSON: %v", err)
			}
		})
	}
}

// TestGateHoldsLargeAnswersInTurn: past HeldFree an answer waits for a
// slot, held until its use returns; small answers never wait.
func TestGateHoldsLargeAnswersInTurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gate := NewGate(1)
	client := func(size int) *Client {
		opts := fastOptions(sized(t, size, nil).URL)
		opts.Limits.Whole = gate
		return NewClient(opts)
	}
	large1, large2, small := client(HeldFree+1), client(2*HeldFree), client(HeldFree)

	holding, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- large1.Document(ctx, http.MethodGet, "/", nil, nil, nil, func([]byte) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	if _, err := document(ctx, small); err != nil {
		t.Fatalf("a small answer waited on the gate: %v", err)
	}
	var secondUsed atomic.Bool
	second := make(chan error, 1)
	go func() {
		second <- large2.Document(ctx, http.MethodGet, "/", nil, nil, nil, func([]byte) error {
			secondUsed.Store(true)
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond)
	if secondUsed.Load() {
		t.Fatal("a second large answer was held while the only slot was taken")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil || !secondUsed.Load() {
		t.Fatalf("the second large answer after the slot was free: %v, used %v", err, secondUsed.Load())
	}
	if len(gate.slots) != 0 {
		t.Fatalf("%d slots still taken", len(gate.slots))
	}

	// A wait ends with its context.
	gate.slots <- struct{}{}
	short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	defer stop()
	if _, err := document(short, large1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a slot past the context: %v", err)
	}
}

func TestGetWhole(t *testing.T) {
	ctx := context.Background()
	big := strings.Repeat("y", 2<<10)
	body := `{"totalPages":3,"users":[{"id":"a"},{"id":"b","note":"` + big + `"},{"id":"c"}],"creationDate":"2026-12-01"}`
	t.Run("elements, too large and scalars", func(t *testing.T) {
		var requests atomic.Int32
		opts := fastOptions(cutServer(t, body, 2, &requests).URL)
		opts.Limits.Field = 1 << 10
		c := NewClient(opts)
		uses := 0
		err := c.GetWhole(ctx, "/", nil, []string{"users"}, func(pg WholePage) error {
			uses++
			if len(pg.Elements) != 2 || string(pg.Elements[0]) != `{"id":"a"}` || string(pg.Elements[1]) != `{"id":"c"}` {
				t.Errorf("elements %q", pg.Elements)
			}
			if len(pg.TooLarge) != 1 || !strings.HasPrefix(string(pg.TooLarge[0].Raw), `{"id":"b"`) ||
				!strings.Contains(pg.TooLarge[0].Reason, FieldSetting) {
				t.Errorf("too large %+v", pg.TooLarge)
			}
			if string(pg.Scalars["totalPages"]) != "3" || string(pg.Scalars["creationDate"]) != `"2026-12-01"` {
				t.Errorf("scalars %q", pg.Scalars)
			}
			return nil
		})
		// The cut-off attempt's elements never reach use.
		if err != nil || uses != 1 || requests.Load() != 2 {
			t.Fatalf("%v, %d uses after %d requests", err, uses, requests.Load())
		}
	})
	t.Run("no array", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"totalPages":0}`)) }))
		defer srv.Close()
		err := NewClient(fastOptions(srv.URL)).GetWhole(ctx, "/", nil, []string{"users"}, func(pg WholePage) error {
			if len(pg.Elements) != 0 || string(pg.Scalars["totalPages"]) != "0" {
				t.Errorf("%+v", pg)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("over the document limit", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"users":[`))
			for i := 0; i < 10_000; i++ {
				w.Write([]byte(`{"id":"` + strings.Repeat("z", 100) + `"},`))
			}
			w.Write([]byte(`{}]}`))
		}))
		defer srv.Close()
		opts := fastOptions(srv.URL)
		opts.Limits.Document = 64 << 10
		err := NewClient(opts).GetWhole(ctx, "/", nil, []string{"users"}, func(WholePage) error {
			t.Error("use called")
			return nil
		})
		if !errors.Is(err, ErrDocumentTooLarge) {
			t.Fatal(err)
		}
	})
	t.Run("use's error", func(t *testing.T) {
		stop := errors.New("stop")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"users":[]}`)) }))
		defer srv.Close()
		if err := NewClient(fastOptions(srv.URL)).GetWhole(ctx, "/", nil, []string{"users"}, func(WholePage) error { return stop }); err != stop {
			t.Fatal(err)
		}
	})
}
