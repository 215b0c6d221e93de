package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Answers read whole (Document, GetWhole, GetJSON and the Post calls) are
// held whole while their caller uses them, so what they may hold is set by
// configuration as well: at most Limits.Document bytes of one answer, and
// past its first HeldFree bytes an answer waits for one of the process's
// Limits.Whole slots. Most answers (a token, a job, a user's contracts)
// stay under HeldFree and never wait; the few large ones (finAPI result
// pages, FinGoal's enriched batches) take turns. So the process holds at
// most its slots × Limits.Document of such answers however many runs and
// workers read at once, and the memory budget counts exactly that.

// HeldFree is how much of an answer is held without a slot of the Gate.
// Each worker may hold that much at once, or one streamed element: the
// budget's per-worker share counts the larger.
const HeldFree = 256 << 10

// DocumentSetting names Limits.Document in messages (cmd/finsync reads it).
const DocumentSetting = "FINSYNC_MAX_DOCUMENT_BYTES"

// ErrDocumentTooLarge: an answer read whole is longer than Limits.Document.
var ErrDocumentTooLarge = errors.New("answer over the document limit")

// Gate bounds how many answers larger than HeldFree the process holds at
// once. One per process, shared by every provider's clients through
// Limits.Whole.
type Gate struct{ slots chan struct{} }

// NewGate returns a Gate of n slots (at least one).
func NewGate(n int) *Gate { return &Gate{slots: make(chan struct{}, max(n, 1))} }

// Slots is how many answers over HeldFree the gate lets be held at once.
func (g *Gate) Slots() int { return cap(g.slots) }

// holding accounts for the bytes of one answer held whole: within the
// limit, and past HeldFree only with a slot of the gate (nil: none needed).
type holding struct {
	gate  *Gate
	limit int64 // 0: none
	n     int64
	slot  bool
}

func (c *Client) holding() *holding {
	return &holding{gate: c.limits.Whole, limit: c.limits.Document}
}

// grow accounts for n more bytes, waiting for a slot when they take the
// answer past HeldFree.
func (h *holding) grow(ctx context.Context, n int) error {
	h.n += int64(n)
	if h.limit > 0 && h.n > h.limit {
		return fmt.Errorf("%w: more than %s (%s)", ErrDocumentTooLarge, Bytes(h.limit), DocumentSetting)
	}
	if h.slot || h.gate == nil || h.n <= HeldFree {
		return nil
	}
	select {
	case h.gate.slots <- struct{}{}:
		h.slot = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives the slot back and starts the count over.
func (h *holding) release() {
	if h.slot {
		<-h.gate.slots
		h.slot = false
	}
	h.n = 0
}

// heldReader reads a body into a holding.
type heldReader struct {
	ctx context.Context
	r   io.Reader
	h   *holding
}

func (r heldReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		if herr := r.h.grow(r.ctx, n); herr != nil {
			return n, herr
		}
	}
	return n, err
}

// readWhole reads resp's body within h.
func readWhole(ctx context.Context, resp *http.Response, h *holding) ([]byte, error) {
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && (h.limit <= 0 || n <= h.limit) {
		// One allocation where the server says the size; ReadFrom wants
		// MinRead spare bytes to see the end without growing again.
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(heldReader{ctx, resp.Body, h})
	return buf.Bytes(), err
}

// Document sends one request (as Do) and hands its whole body, which must
// be JSON, to use: for answers read as one document rather than streamed
// (GetElements). The body is held within the client's Limits.Document and
// Limits.Whole until use returns; use must not keep it, nor hold what it
// decodes from it past its own return beyond what it hands on, nor read
// another answer (it could wait for a slot held by one waiting for it). A body that
// breaks off or is not JSON is fetched again (see refetch); one over the
// document limit is Permanent (ErrDocumentTooLarge). A status let through
// by Expect comes back as a plain *HTTPError, as GetJSON does. use's error
// is returned as is.
func (c *Client) Document(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte,
	use func(doc []byte) error, opts ...CallOption) error {
	h := c.holding()
	defer h.release()
	var doc []byte
	err := c.refetch(ctx, method, path, func() error {
		h.release() // a repeat starts over
		resp, err := c.Do(ctx, method, path, query, header, body, opts...)
		if err != nil {
			return err
		}
		if err := c.letThrough(resp, method, opts); err != nil {
			return err
		}
		defer resp.Body.Close()
		doc, err = readWhole(ctx, resp, h)
		if err == nil && !json.Valid(doc) {
			err = errors.New("the body is not JSON")
		}
		if err != nil {
			h.release()
			return unreadable(ctx, method, path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return use(doc)
}

// WholePage is an answer read whole as its array's elements (GetWhole).
type WholePage struct {
	// Elements are the array's elements within the record and field
	// limits, each as sent.
	Elements []json.RawMessage
	// TooLarge are the others: first bytes and reason, to reject.
	TooLarge []TooLarge
	// Scalars are the document's other scalar members (EachElementScalars).
	Scalars map[string]json.RawMessage
}

// GetWhole GETs path and hands use the elements of the array at arrayPath,
// each held to the record and field limits as GetElements holds them (one
// over goes to WholePage.TooLarge, its first bytes and the reason), and the
// document's scalars: for a page that may only be loaded once all of it
// was read. What it holds is held as Document holds a body, until use
// returns. A body that breaks off is fetched again (see refetch), and use
// sees only the whole one. A document without the array is a page of no
// elements.
func (c *Client) GetWhole(ctx context.Context, path string, query url.Values, arrayPath []string, use func(WholePage) error, opts ...CallOption) error {
	h := c.holding()
	defer h.release()
	var pg WholePage
	err := c.refetch(ctx, http.MethodGet, path, func() error {
		h.release() // a repeat starts over
		pg = WholePage{}
		resp, err := c.Do(ctx, http.MethodGet, path, query, nil, nil, opts...)
		if err != nil {
			return err
		}
		if err := c.letThrough(resp, http.MethodGet, opts); err != nil {
			return err
		}
		defer resp.Body.Close()
		pg.Scalars, err = Walk(resp.Body, arrayPath, c.limits, func(raw json.RawMessage) error {
			pg.Elements = append(pg.Elements, raw)
			return h.grow(ctx, len(raw))
		}, func(t TooLarge) error {
			pg.TooLarge = append(pg.TooLarge, t)
			return h.grow(ctx, len(t.Raw))
		})
		if err != nil && !errors.Is(err, ErrPathNotFound) {
			h.release()
			return unreadable(ctx, http.MethodGet, path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return use(pg)
}
