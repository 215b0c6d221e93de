package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// cutOff is a response body that broke off in transit or does not parse:
// unlike a wrong shape, the same request may well answer it whole.
type cutOff struct{ err error }

func (e *cutOff) Error() string { return "body cut off: " + e.err.Error() }

func (e *cutOff) Unwrap() error { return e.err }

// unreadable says what a failure to read or parse a body means: the end of
// the context, a body no repeat will fix (past the size cap, past the
// element limits, or without the array asked for), or else a cut-off worth fetching again.
func unreadable(ctx context.Context, method, path string, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrPathNotFound), errors.Is(err, ErrBodyTooLarge), errors.Is(err, ErrTooManyElements), errors.Is(err, ErrTooLarge):
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

// maxDocument bounds a body Document holds in memory whole.
const maxDocument = 64 << 20

// Document sends one request (as Do) and returns its whole body, which must
// be JSON: for answers read as one document rather than streamed (use
// GetElements for those). A body that breaks off or is not JSON is fetched
// again (see refetch); one over 64 MiB is Permanent. A status let through
// by Expect comes back as a plain *HTTPError, as GetJSON does.
func (c *Client) Document(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte, opts ...CallOption) ([]byte, error) {
	var doc []byte
	err := c.refetch(ctx, method, path, func() error {
		resp, err := c.Do(ctx, method, path, query, header, body, opts...)
		if err != nil {
			return err
		}
		if err := c.letThrough(resp, method, opts); err != nil {
			return err
		}
		defer resp.Body.Close()
		doc, err = io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
		switch {
		case err != nil:
			return unreadable(ctx, method, path, err)
		case len(doc) > maxDocument:
			return unreadable(ctx, method, path, fmt.Errorf("%w (%d bytes)", ErrBodyTooLarge, maxDocument))
		case !json.Valid(doc):
			return unreadable(ctx, method, path, errors.New("the body is not JSON"))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return doc, nil
}
