package extract

import (
	"context"
	"errors"
	"fmt"
)

// cutOff is a response body that broke off in transit or does not parse:
// unlike a wrong shape, the same request may well answer it whole.
type cutOff struct{ err error }

func (e *cutOff) Error() string { return "body cut off: " + e.err.Error() }

func (e *cutOff) Unwrap() error { return e.err }

// unreadable says what a failure to read or parse a body means: the end of
// the context, a body no repeat will fix (past the size cap, past the
// element or document limits, or without the array asked for), or else a cut-off worth fetching again.
func unreadable(ctx context.Context, method, path string, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrPathNotFound), errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrTooManyElements), errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrDocumentTooLarge):
		return &Permanent{Err: fmt.Errorf("%s %s: %w", method, path, err)}
	}
	return &cutOff{err}
}

// refetch runs attempt (one request and the reading of its body) again
// while it returns a *cutOff, on the client's budget: up to MaxAttempts,
// each wait its backoff (ended by ctx), each repeat counted as a retry. A
// body still cut off after that ends the call with RetryAfter, so the run
// ends partial and the next one asks again. Any other result of attempt is
// returned as is.
func (c *Client) refetch(ctx context.Context, method, path string, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		cut, ok := err.(*cutOff) // attempt returns its cut-off as is

		if !ok {
			return err
		}
		if n >= c.maxAttempts {
			return &RetryAfter{Wait: c.backoffMax, Err: fmt.Errorf("%s %s: body unreadable after %d attempts: %w", method, path, n, cut.err)}
		}
		c.retries.Add(1)
		if err := sleep(ctx, c.backoff(n)); err != nil {
			return err
		}
	}
}
