package sandboxkit

import "net/http"

// ErrorWriter writes a provider's error body for status with message.
type ErrorWriter func(w http.ResponseWriter, status int, message string)

// Guard puts a sandbox's handlers behind the fault injector and, where an
// endpoint needs one, a bearer token.
type Guard[T any] struct {
	Faults *Injector
	Tokens *Tokens[T]
	// Error writes the provider's error body, for a refused token's 401
	// and, unless FaultError is set, for the injected 429 and 5xx.
	Error      ErrorWriter
	FaultError ErrorWriter
	// Refusal words a refused token's 401; nil: TokenStatus.Message.
	Refusal func(TokenStatus) string
	// BareTokens looks up a header without "Bearer " as a token, instead
	// of refusing it as missing.
	BareTokens bool
}

// Handler serves a request that passed the faults; d is its draw.
type Handler func(w http.ResponseWriter, r *http.Request, d Draw)

// TokenHandler serves a request that passed the faults and the token
// check; value is what the token was issued for.
type TokenHandler[T any] func(w http.ResponseWriter, r *http.Request, value T, d Draw)

// Open serves h behind the faults alone.
func (g *Guard[T]) Open(h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d, ok := g.Faults.Begin(w, r, g.faultError()); ok {
			h(w, r, d)
		}
	}
}

// Authorized serves h behind the faults and the bearer token: a token
// Tokens refuses gets 401 in the provider's error body.
func (g *Guard[T]) Authorized(h TokenHandler[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := g.Faults.Begin(w, r, g.faultError())
		if !ok {
			return
		}
		tok, bearer := Bearer(r)
		var value T
		status := TokenMissing
		if bearer || g.BareTokens {
			value, status = g.Tokens.Check(tok, d)
		}
		if status != TokenValid {
			msg := status.Message()
			if g.Refusal != nil {
				msg = g.Refusal(status)
			}
			g.Error(w, http.StatusUnauthorized, msg)
			return
		}
		h(w, r, value, d)
	}
}

func (g *Guard[T]) faultError() ErrorWriter {
	if g.FaultError != nil {
		return g.FaultError
	}
	return g.Error
}

// NotFound answers any request 404 "no such endpoint: METHOD PATH" in the
// provider's error body; mount it at "/".
func NotFound(writeError ErrorWriter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}
}
