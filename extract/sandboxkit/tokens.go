package sandboxkit

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenStatus is what Tokens.Check found out about a token.
type TokenStatus int

const (
	TokenValid   TokenStatus = iota
	TokenMissing             // no "Bearer " token in the Authorization header
	TokenUnknown             // never issued, or forgotten since
	TokenExpired             // past its expiry, or expired early by the TokenExpiry fault
)

// Message is the refusal's wording as the fino and Fimento sandboxes send
// it ("" for a valid token).
func (s TokenStatus) Message() string {
	switch s {
	case TokenMissing:
		return "missing bearer token"
	case TokenUnknown:
		return "invalid access token"
	case TokenExpired:
		return "access token expired"
	}
	return ""
}

// Tokens are the bearer tokens a sandbox issued, each with a value (the
// tenant it was issued to, say) and an expiry. Safe for concurrent use.
type Tokens[T any] struct {
	now    func() time.Time
	faults *Injector

	mu     sync.Mutex
	tokens map[string]token[T]
}

type token[T any] struct {
	value   T
	expiry  time.Time // zero: none
	expired bool      // by the TokenExpiry fault
}

// NewTokens returns an empty token store that tells time by now and counts
// the tokens it expires early on faults.
func NewTokens[T any](now func() time.Time, faults *Injector) *Tokens[T] {
	return &Tokens[T]{now: now, faults: faults, tokens: map[string]token[T]{}}
}

// Issue records tok for value, valid for ttl (0 or less: until the
// TokenExpiry fault ends it), and returns its expiry. It forgets the tokens
// that have expired, so a long demo does not grow.
func (t *Tokens[T]) Issue(tok string, value T, ttl time.Duration) time.Time {
	now := t.now()
	var expiry time.Time
	if ttl > 0 {
		expiry = now.Add(ttl)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, old := range t.tokens {
		if old.expired || !old.expiry.IsZero() && !now.Before(old.expiry) {
			delete(t.tokens, k)
		}
	}
	t.tokens[tok] = token[T]{value: value, expiry: expiry}
	return expiry
}

// Check looks tok up. A known token not yet expired is declared expired
// when d says ExpireToken; it stays refused, and the fault is counted.
func (t *Tokens[T]) Check(tok string, d Draw) (T, TokenStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	found, known := t.tokens[tok]
	switch {
	case !known:
		var zero T
		return zero, TokenUnknown
	case found.expired || !found.expiry.IsZero() && !t.now().Before(found.expiry):
		return found.value, TokenExpired
	case d.ExpireToken:
		found.expired = true
		t.tokens[tok] = found
		t.faults.TokenExpired()
		return found.value, TokenExpired
	}
	return found.value, TokenValid
}

// Bearer is the token of r's Authorization header and whether it came
// after "Bearer "; without that prefix it is the whole header.
func Bearer(r *http.Request) (string, bool) {
	return strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// ExpireAll declares every token issued so far expired, as a provider may
// end tokens early; that is not counted as a fault.
func (t *Tokens[T]) ExpireAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, old := range t.tokens {
		old.expired = true
		t.tokens[k] = old
	}
}
