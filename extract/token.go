package extract

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Token is a bearer access token. A zero Expiry means the provider gave
// no lifetime: the token is kept until Invalidate drops it.
type Token struct {
	Value  string
	Expiry time.Time
}

// TokenCache hands out one provider's access token, fetching a new one
// shortly before the old one expires. Concurrent callers share a single
// in-flight fetch, so a burst of requests authenticates once.
//
// The fetch function usually posts the provider's credentials with a
// Client that has no Auth of its own, passing the Sensitive and
// Idempotent call options.
type TokenCache struct {
	fetch func(ctx context.Context) (Token, error)
	now   func() time.Time

	mu        sync.Mutex
	tok       Token
	refreshAt time.Time // zero: keep tok until invalidated
	inflight  *tokenFlight
}

type tokenFlight struct {
	done chan struct{} // closed when tok and err are set
	tok  Token
	err  error
}

// NewTokenCache returns a cache around fetch. now is the clock (nil means
// time.Now); tests pass a fake one to move time.
func NewTokenCache(fetch func(ctx context.Context) (Token, error), now func() time.Time) *TokenCache {
	if now == nil {
		now = time.Now
	}
	return &TokenCache{fetch: fetch, now: now}
}

// Get returns the cached token, or fetches a new one when there is none or
// the cached one is within its refresh margin of expiry.
func (c *TokenCache) Get(ctx context.Context) (Token, error) {
	for {
		c.mu.Lock()
		if c.tok.Value != "" && (c.refreshAt.IsZero() || c.now().Before(c.refreshAt)) {
			tok := c.tok
			c.mu.Unlock()
			return tok, nil
		}
		f := c.inflight
		if f == nil {
			f = &tokenFlight{done: make(chan struct{})}
			c.inflight = f
			c.mu.Unlock()
			c.refresh(ctx, f)
			return f.tok, f.err
		}
		c.mu.Unlock()

		select {
		case <-f.done:
		case <-ctx.Done():
			return Token{}, ctx.Err()
		}
		if f.err == nil {
			return f.tok, nil
		}
		// The fetching caller gave up (its context ended); ours has not,
		// so try again rather than inherit someone else's cancellation.
		leaderGaveUp := errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)
		if !leaderGaveUp || ctx.Err() != nil {
			return Token{}, f.err
		}
	}
}

func (c *TokenCache) refresh(ctx context.Context, f *tokenFlight) {
	start := c.now()
	tok, err := c.fetch(ctx)
	if err == nil && tok.Value == "" {
		err = errors.New("extract: token fetch returned an empty token")
	}
	if err != nil {
		tok = Token{}
	}

	c.mu.Lock()
	if err == nil {
		c.tok = tok
		c.refreshAt = refreshAt(start, tok.Expiry)
	}
	f.tok, f.err = tok, err
	c.inflight = nil
	c.mu.Unlock()
	close(f.done)
}

// Invalidate drops the cached token if it is still tok. Many goroutines
// that saw a 401 for the same token thus cause one re-authentication, and
// a late Invalidate cannot throw away a token fetched in the meantime.
func (c *TokenCache) Invalidate(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok != "" && c.tok.Value == tok {
		c.tok = Token{}
		c.refreshAt = time.Time{}
	}
}

// refreshAt is when a token fetched at start and expiring at expiry should
// be replaced: a margin of 10% of its lifetime, at least 5 s and at most
// 60 s (finoOS 300 s → 30 s; FinGoal 86,400 s → 60 s), but never more
// than half the lifetime so that a short-lived token is still used.
func refreshAt(start, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return time.Time{}
	}
	life := expiry.Sub(start)
	if life <= 0 {
		return expiry
	}
	margin := min(max(life/10, 5*time.Second), 60*time.Second, life/2)
	return expiry.Add(-margin)
}
