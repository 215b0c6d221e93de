package extract

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingFetch issues tokens "tok-1", "tok-2", ... living life on clock.
func countingFetch(clock *fakeClock, life time.Duration, calls *atomic.Int64) func(context.Context) (Token, error) {
	return func(context.Context) (Token, error) {
		n := calls.Add(1)
		tok := Token{Value: fmt.Sprintf("tok-%d", n)}
		if life > 0 {
			tok.Expiry = clock.Now().Add(life)
		}
		return tok, nil
	}
}

func TestTokenCacheRefreshesBeforeExpiry(t *testing.T) {
	tests := []struct {
		name        string
		life        time.Duration // 0: no expiry given
		stillCached time.Duration // after this long the first token is still used
		refreshed   time.Duration // after this long a new one is fetched
	}{
		{"finoOS 300s: margin 10% = 30s", 300 * time.Second, 269 * time.Second, 271 * time.Second},
		{"FinGoal 86400s: margin capped at 60s", 86400 * time.Second, 86339 * time.Second, 86341 * time.Second},
		{"20s: margin at least 5s", 20 * time.Second, 14 * time.Second, 16 * time.Second},
		{"4s: margin at most half the life", 4 * time.Second, 1900 * time.Millisecond, 2100 * time.Millisecond},
		{"no expiry: kept", 0, 1000 * time.Hour, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var calls atomic.Int64
			c := NewTokenCache(countingFetch(clock, tt.life, &calls), clock.Now)
			ctx := t.Context()

			get := func() string {
				t.Helper()
				tok, err := c.Get(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return tok.Value
			}
			if got := get(); got != "tok-1" {
				t.Fatalf("first Get = %q, want tok-1", got)
			}
			clock.Advance(tt.stillCached)
			if got := get(); got != "tok-1" {
				t.Fatalf("after %s Get = %q, want tok-1 still cached", tt.stillCached, got)
			}
			if tt.refreshed < 0 {
				return
			}
			clock.Advance(tt.refreshed - tt.stillCached)
			if got := get(); got != "tok-2" {
				t.Fatalf("after %s Get = %q, want refreshed tok-2", tt.refreshed, got)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("fetch called %d times, want 2", n)
			}
		})
	}
}

func TestTokenCacheSharesOneRefresh(t *testing.T) {
	const callers = 20
	var calls atomic.Int64
	var started sync.WaitGroup
	started.Add(callers)
	c := NewTokenCache(func(ctx context.Context) (Token, error) {
		calls.Add(1)
		started.Wait()                    // every caller has at least begun Get
		time.Sleep(20 * time.Millisecond) // and most are now waiting on this fetch
		return Token{Value: "shared", Expiry: time.Now().Add(time.Hour)}, nil
	}, nil)

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			started.Done()
			tok, err := c.Get(t.Context())
			if err == nil && tok.Value != "shared" {
				err = fmt.Errorf("got token %q", tok.Value)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("fetch called %d times by %d concurrent callers, want 1", n, callers)
	}
}

func TestTokenCacheInvalidateOnlyCurrent(t *testing.T) {
	clock := newFakeClock()
	var calls atomic.Int64
	c := NewTokenCache(countingFetch(clock, time.Hour, &calls), clock.Now)
	ctx := t.Context()

	first, _ := c.Get(ctx)
	c.Invalidate(first.Value) // a 401 for tok-1
	second, _ := c.Get(ctx)
	if second.Value != "tok-2" {
		t.Fatalf("after Invalidate(current) Get = %q, want tok-2", second.Value)
	}
	c.Invalidate(first.Value) // a late 401 for the old token
	c.Invalidate("")
	if got, _ := c.Get(ctx); got.Value != "tok-2" {
		t.Fatalf("Invalidate(stale) dropped the new token: Get = %q", got.Value)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("fetch called %d times, want 2", n)
	}
}

func TestTokenCacheErrors(t *testing.T) {
	refused := errors.New("credentials refused")
	tests := []struct {
		name  string
		fetch func(context.Context) (Token, error)
		want  string
	}{
		{"fetch error", func(context.Context) (Token, error) { return Token{}, refused }, "credentials refused"},
		{"empty token", func(context.Context) (Token, error) { return Token{}, nil }, "empty token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTokenCache(tt.fetch, nil).Get(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Get error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// A caller whose context ends while fetching must not hand its
// cancellation to the callers waiting on the same fetch.
func TestTokenCacheLeaderCancelled(t *testing.T) {
	var calls atomic.Int64
	leaderIn := make(chan struct{})
	c := NewTokenCache(func(ctx context.Context) (Token, error) {
		if calls.Add(1) == 1 {
			close(leaderIn)
			<-ctx.Done()
			return Token{}, ctx.Err()
		}
		return Token{Value: "second"}, nil
	}, nil)

	leaderCtx, cancel := context.WithCancel(t.Context())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Get(leaderCtx)
		leaderErr <- err
	}()
	<-leaderIn
	followerTok := make(chan Token, 1)
	go func() {
		tok, _ := c.Get(t.Context())
		followerTok <- tok
	}()
	time.Sleep(10 * time.Millisecond) // let the follower queue behind the leader
	cancel()

	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader error = %v, want context.Canceled", err)
	}
	select {
	case tok := <-followerTok:
		if tok.Value != "second" {
			t.Fatalf("follower got %q, want a token of its own fetch", tok.Value)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follower still waiting")
	}
}
