package extract

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// GetElements GETs path and streams each element of the array at
// arrayPath to fn (see EachElement), returning the document's scalar
// members (totalPages and the like). A body that breaks off or does not
// parse is fetched again (see refetch). fn then sees the elements of the
// broken attempt again: it must tolerate repeats, as idempotent loads do.
// An error from fn ends the call at once and is returned as is.
//
// Within the client's Limits (see Walk): an element too large to hold goes
// to tooLarge instead of fn, its first bytes and the reason, for the
// caller to reject as it rejects a record it cannot decode; the rest of
// the page still goes to fn. A response with more elements than the limit
// fails for good (Permanent) once fn saw that many.
func (c *Client) GetElements(ctx context.Context, path string, query url.Values, arrayPath []string,
	fn func(raw json.RawMessage) error, tooLarge func(TooLarge) error) (map[string]json.RawMessage, error) {
	var scalars map[string]json.RawMessage
	err := c.refetch(ctx, http.MethodGet, path, func() error {
		resp, err := c.Do(ctx, http.MethodGet, path, query, nil, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var fnErr error
		var large func(TooLarge) error // nil: an element too large fails the page
		if tooLarge != nil {
			large = func(t TooLarge) error { fnErr = tooLarge(t); return fnErr }
		}
		scalars, err = Walk(resp.Body, arrayPath, c.limits, func(raw json.RawMessage) error {
			fnErr = fn(raw)
			return fnErr
		}, large)
		switch {
		case err == nil:
			return nil
		case fnErr != nil:
			return fnErr
		}
		return unreadable(ctx, http.MethodGet, path, err)
	})
	if err != nil {
		return nil, err
	}
	return scalars, nil
}
