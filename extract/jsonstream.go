package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrPathNotFound is returned by EachElement when the document is valid
// but has no member at the path. A missing array is an error rather than
// an empty page so that a changed response shape cannot pass silently as
// "no data"; callers who know a provider omits empty arrays may treat it
// as zero elements with errors.Is. An explicit null array is zero
// elements, not an error (Go servers write nil slices as null).
var ErrPathNotFound = errors.New("extract: json path not found")

// errDuplicateKey: a key on the path seen twice in one object. Streaming
// cannot know which one json.Unmarshal would keep (the last), so refuse.
var errDuplicateKey = errors.New("duplicate key on the path")

// maxSkipDepth matches encoding/json's nesting limit, so a document
// json.Valid rejects for depth is rejected here too.
const maxSkipDepth = 10000

// EachElement reads one JSON document from r and calls fn with each
// element of the array at path: object keys from the top, e.g.
// {"transactions"} or {"data", "items"}; an empty path means the document
// itself is the array. Elements are decoded one at a time, so memory is
// bounded by the largest element, not the response; fn gets a fresh slice
// it may keep. Other members are skipped token by token.
//
// The whole document is read and checked: a syntax error or truncated
// body returns an error naming the byte offset, never a short page; an
// error from fn stops the walk and is returned as is. Since fn gets each
// element raw, a caller can send one it cannot transform to the rejects
// table and carry on with the rest.
func EachElement(r io.Reader, path []string, fn func(raw json.RawMessage) error) error {
	w := walker{dec: json.NewDecoder(r), fn: fn}
	return w.run(path)
}

// EachElementScalars is EachElement that also returns the scalar members
// (string, number, bool, null) of the objects along path, seen before or
// after the array, such as finAPI's "totalPages" and "totalElements".
// Keys are dotted paths from the top ("totalPages", "data.total"); a
// scalar seen twice keeps its last value, as json.Unmarshal would. Values
// are re-encoded from the decoded token, so they are equal JSON but not
// always the same bytes (string escapes may differ).
func EachElementScalars(r io.Reader, path []string, fn func(raw json.RawMessage) error) (map[string]json.RawMessage, error) {
	w := walker{dec: json.NewDecoder(r), fn: fn, scalars: map[string]json.RawMessage{}}
	err := w.run(path)
	return w.scalars, err
}

type walker struct {
	dec     *json.Decoder
	fn      func(json.RawMessage) error
	scalars map[string]json.RawMessage // nil: not collected
	found   bool
}

func (w *walker) run(path []string) error {
	// Numbers stay text: a valid 1e400 must not fail as a float64.
	w.dec.UseNumber()
	if err := w.value(path, ""); err != nil {
		return err // fn's errors come back unwrapped
	}
	// One document per body: anything after it is an error.
	switch tok, err := w.dec.Token(); {
	case err == io.EOF:
	case err != nil:
		return w.wrap(err)
	default:
		return fmt.Errorf("extract: json: data after the document at offset %d: %v", w.dec.InputOffset(), tok)
	}
	if !w.found {
		return fmt.Errorf("%w: %q", ErrPathNotFound, strings.Join(path, "."))
	}
	return nil
}

// value reads the value at the current position; path is what remains to
// walk below it and name where it is, for messages.
func (w *walker) value(path []string, name string) error {
	tok, err := w.token()
	if err != nil {
		return err
	}
	if len(path) == 0 {
		switch tok {
		case json.Delim('['):
			w.found = true
			return w.elements()
		case nil:
			w.found = true
			return nil
		}
		return w.shapeErr(name, tok, "array")
	}
	switch tok {
	case nil:
		return nil // no member below a null: not found
	case json.Delim('{'):
	default:
		return w.shapeErr(name, tok, "object")
	}

	seen := false
	for w.dec.More() {
		kt, err := w.token()
		if err != nil {
			return err
		}
		key, _ := kt.(string) // Token guarantees a string here
		sub := key
		if name != "" {
			sub = name + "." + key
		}
		if key == path[0] {
			if seen {
				return fmt.Errorf("extract: json at offset %d: %w: %q", w.dec.InputOffset(), errDuplicateKey, sub)
			}
			seen = true
			if err := w.value(path[1:], sub); err != nil {
				return err
			}
			continue
		}
		if err := w.skip(sub); err != nil {
			return err
		}
	}
	_, err = w.token() // '}'
	return err
}

func (w *walker) elements() error {
	for i := 0; w.dec.More(); i++ {
		// Decode's own error offsets are not positions in the body; the
		// element's index and where the previous one ended are.
		off := w.dec.InputOffset()
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("extract: json: element %d after byte offset %d: %w", i, off, err)
		}
		if err := w.fn(raw); err != nil {
			return err
		}
	}
	_, err := w.token() // ']'
	return err
}

// skip consumes one value without keeping it, recording it when it is a
// scalar and scalars are collected.
func (w *walker) skip(name string) error {
	tok, err := w.token()
	if err != nil {
		return err
	}
	if _, ok := tok.(json.Delim); !ok {
		if w.scalars != nil {
			raw, err := json.Marshal(tok)
			if err != nil {
				return fmt.Errorf("extract: json: %s: %w", name, err)
			}
			w.scalars[name] = raw
		}
		return nil
	}
	for depth := 1; depth > 0; {
		tok, err := w.token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > maxSkipDepth {
				return fmt.Errorf("extract: json at offset %d: nested too deep", w.dec.InputOffset())
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

// token is Decoder.Token for a walker that knows the document is not over:
// every EOF it sees is a truncated body.
func (w *walker) token() (json.Token, error) {
	tok, err := w.dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, w.wrap(err)
	}
	return tok, nil
}

func (w *walker) wrap(err error) error {
	off := w.dec.InputOffset()
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		off = syn.Offset
	}
	return fmt.Errorf("extract: json at offset %d: %w", off, err)
}

func (w *walker) shapeErr(name string, tok json.Token, want string) error {
	if name == "" {
		name = "document"
	}
	got := "a scalar"
	switch tok {
	case json.Delim('{'):
		got = "an object"
	case json.Delim('['):
		got = "an array"
	}
	return fmt.Errorf("extract: json at offset %d: %s is %s, want %s", w.dec.InputOffset(), name, got, want)
}
