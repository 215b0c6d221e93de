package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// GetElements GETs path and streams each element of the array at
// arrayPath to fn (see EachElement), returning the document's scalar
// members (totalPages and the like). A body that breaks off or does not
// parse is fetched again like a failed request, up to MaxAttempts, and then
// ends the call with RetryAfter. fn then sees the elements of the broken
// attempt again: it must tolerate repeats, as idempotent loads do. An
// error from fn ends the call at once and is returned as is.
func (c *Client) GetElements(ctx context.Context, path string, query url.Values, arrayPath []string, fn func(raw json.RawMessage) error) (map[string]json.RawMessage, error) {
	var failure error
	for attempt := 1; attempt <= c.maxAttempts; attempt++ {
		resp, err := c.Do(ctx, http.MethodGet, path, query, nil, nil)
		if err != nil {
			return nil, err
		}
		var fnErr error
		scalars, err := EachElementScalars(resp.Body, arrayPath, func(raw json.RawMessage) error {
			fnErr = fn(raw)
			return fnErr
		})
		resp.Body.Close()
		switch {
		case err == nil:
			return scalars, nil
		case fnErr != nil:
			return nil, fnErr
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrPathNotFound), errors.Is(err, ErrBodyTooLarge):
			return nil, &Permanent{Err: fmt.Errorf("GET %s: %w", path, err)}
		}
		failure = err
		c.retries.Add(1)
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, err
		}
	}
	return nil, &RetryAfter{Wait: c.backoffMax, Err: fmt.Errorf("GET %s: body unreadable after %d attempts: %w", path, c.maxAttempts, failure)}
}
