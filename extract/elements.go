package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
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

// CheckRecord holds raw, one record of a document read whole (Document,
// GetJSON), to the client's record and field limits as GetElements holds
// a streamed element: ok, or the TooLarge (first bytes and reason) to
// reject it with instead of loading it.
func (c *Client) CheckRecord(raw json.RawMessage) (t TooLarge, ok bool) {
	return check(raw, Limits{Record: c.limits.Record, Field: c.limits.Field})
}

// CheckDocument holds doc, one subject's answer read whole and loaded as
// one (a finoOS analytics module, Fimento's insights), to the client's
// field limit; its size is the document limit's. ok, or the TooLarge to
// reject it with.
func (c *Client) CheckDocument(doc []byte) (t TooLarge, ok bool) {
	return check(doc, Limits{Field: c.limits.Field})
}

func check(raw []byte, lim Limits) (t TooLarge, ok bool) {
	ok = true
	one := io.MultiReader(strings.NewReader("["), bytes.NewReader(raw), strings.NewReader("]"))
	// Only the limits can fail: raw came out of a parsed document.
	Walk(one, nil, lim, func(json.RawMessage) error { return nil },
		func(large TooLarge) error { t, ok = large, false; return nil })
	return t, ok
}
