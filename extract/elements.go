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
func (c *Client) GetElements(ctx context.Context, path string, query url.Values, arrayPath []string, fn func(raw json.RawMessage) error) (map[string]json.RawMessage, error) {
	var scalars map[string]json.RawMessage
	err := c.refetch(ctx, http.MethodGet, path, func() error {
		resp, err := c.Do(ctx, http.MethodGet, path, query, nil, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var fnErr error
		scalars, err = EachElementScalars(resp.Body, arrayPath, func(raw json.RawMessage) error {
			fnErr = fn(raw)
			return fnErr
		})
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
