package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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

// maxDepth matches encoding/json's nesting limit, so a document json.Valid
// rejects for depth is rejected here too.
const maxDepth = 10000

// EachElement reads one JSON document from r and calls fn with each
// element of the array at path: object keys from the top, e.g.
// {"transactions"} or {"data", "items"}; an empty path means the document
// itself is the array. Elements are read one at a time, so memory is
// bounded by the largest element, not the response; fn gets a fresh slice
// it may keep, the element's bytes exactly as sent. Other members are
// skipped.
//
// The whole document is read and checked: a syntax error or truncated
// body returns an error naming the byte offset, never a short page; an
// error from fn stops the walk and is returned as is. Since fn gets each
// element raw, a caller can send one it cannot transform to the rejects
// table and carry on with the rest.
//
// This is the hot path of every large extraction, so it scans bytes itself
// (one pass, no tokens or reflection) instead of using encoding/json's
// Decoder; FuzzEachElement holds it to json.Valid and json.Unmarshal.
func EachElement(r io.Reader, path []string, fn func(raw json.RawMessage) error) error {
	w := walker{s: newScanner(r), fn: fn}
	return w.run(path)
}

// Limits bound what the element walker holds of one response, so that
// memory is set by configuration, never by what a provider sends. Zero
// means no limit.
type Limits struct {
	// Record bounds one element's bytes as sent. A larger element is not
	// buffered whole: the walker keeps its first bytes and skips the rest.
	Record int64
	// Field bounds one string of an element (its JSON text, quotes and
	// escapes included).
	Field int64
	// Elements bounds the elements of one response: more fail the page
	// (ErrTooManyElements), so an endless array stops early.
	Elements int
	// Document bounds one answer read whole (Client.Document, GetWhole,
	// GetJSON): a longer one fails for good (ErrDocumentTooLarge).
	Document int64
	// Whole, one per process and shared by all its clients, lets only
	// so many answers past their first 256 KiB be held at once (see
	// Gate); nil: no bound.
	Whole *Gate
}

// Settings named in the walker's messages (cmd/finsync reads them).
const (
	RecordSetting   = "FINSYNC_MAX_RECORD_BYTES"
	FieldSetting    = "FINSYNC_MAX_FIELD_BYTES"
	ElementsSetting = "FINSYNC_MAX_PAGE_ELEMENTS"
)

// ErrTooManyElements: a response holds more elements than Limits.Elements.
var ErrTooManyElements = errors.New("more elements than the element limit")

// ErrTooLarge: an element over the limits where no one takes it (Walk's
// tooLarge is nil).
var ErrTooLarge = errors.New("element over the size limits")

// TooLarge is an element over Limits.Record or with a string over
// Limits.Field. It is never handed to the element callback: Raw is its
// first bytes (at most keptPrefix), cut back and closed into valid JSON so
// that a provider's reject can scrub it; Reason says how large it was and
// which limit it broke.
type TooLarge struct {
	Raw    json.RawMessage
	Reason string
}

// keptPrefix is how much of an oversize element a reject keeps.
const keptPrefix = 4 << 10

// Walk is EachElementScalars within lim: an element over the limits goes
// to tooLarge instead of fn (tooLarge nil: it fails the document), and the
// walk goes on with the next; more than lim.Elements elements end the walk
// with ErrTooManyElements after fn saw lim.Elements of them. Elements
// within the limits are handed to fn exactly as EachElement does.
func Walk(r io.Reader, path []string, lim Limits, fn func(raw json.RawMessage) error, tooLarge func(TooLarge) error) (map[string]json.RawMessage, error) {
	s := newScanner(r)
	s.lim = lim
	w := walker{s: s, fn: fn, tooLarge: tooLarge, scalars: map[string]json.RawMessage{}}
	err := w.run(path)
	return w.scalars, err
}

// EachElementScalars is EachElement that also returns the scalar members
// (string, number, bool, null) of the objects along path, seen before or
// after the array, such as finAPI's "totalPages" and "totalElements".
// Keys are dotted paths from the top ("totalPages", "data.total"); a
// scalar seen twice keeps its last value, as json.Unmarshal would. Values
// are the bytes as sent.
func EachElementScalars(r io.Reader, path []string, fn func(raw json.RawMessage) error) (map[string]json.RawMessage, error) {
	w := walker{s: newScanner(r), fn: fn, scalars: map[string]json.RawMessage{}}
	err := w.run(path)
	return w.scalars, err
}

type walker struct {
	s        *scanner
	fn       func(json.RawMessage) error
	tooLarge func(TooLarge) error
	scalars  map[string]json.RawMessage // nil: not collected
	found    bool
}

func (w *walker) run(path []string) error {
	if err := w.value(path, ""); err != nil {
		return err // fn's errors come back unwrapped
	}
	// One document per body: anything after it is an error.
	if w.s.skipSpace() {
		return fmt.Errorf("extract: json: data after the document at offset %d: %s", w.s.offset(), quoteChar(w.s.buf[w.s.pos]))
	}
	if err := w.s.readErr(); err != nil {
		return w.s.wrap(err)
	}
	if !w.found {
		return fmt.Errorf("%w: %q", ErrPathNotFound, strings.Join(path, "."))
	}
	return nil
}

// value reads the value at the current position; path is what remains to
// walk below it and name where it is, for messages.
func (w *walker) value(path []string, name string) error {
	s := w.s
	c, err := s.peek()
	if err != nil {
		return err
	}
	if len(path) == 0 {
		switch c {
		case '[':
			w.found = true
			return w.elements()
		case 'n':
			w.found = true
			return s.literal("null")
		}
		return w.shapeErr(name, c, "array")
	}
	switch c {
	case 'n':
		return s.literal("null") // no member below a null: not found
	case '{':
	default:
		return w.shapeErr(name, c, "object")
	}
	s.pos++
	seen := false
	if c, err = s.peek(); err != nil {
		return err
	}
	if c == '}' {
		s.pos++
		return nil
	}
	for {
		key, err := s.key()
		if err != nil {
			return err
		}
		sub := key
		if name != "" {
			sub = name + "." + key
		}
		if key == path[0] {
			if seen {
				return fmt.Errorf("extract: json at offset %d: %w: %q", s.offset(), errDuplicateKey, sub)
			}
			seen = true
			if err := w.value(path[1:], sub); err != nil {
				return err
			}
		} else if err := w.skip(sub); err != nil {
			return err
		}
		if c, err = s.peek(); err != nil {
			return err
		}
		s.pos++
		switch c {
		case ',':
		case '}':
			return nil
		default:
			return s.syntax(c, "after object key:value pair")
		}
	}
}

func (w *walker) elements() error {
	s := w.s
	s.pos++ // '['
	// off is where the element before ended (or the array began), as
	// encoding/json's Decoder reports it.
	off := s.offset()
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if _, err := s.peek(); err != nil {
			return w.elementErr(i, off, err)
		}
		if n := s.lim.Elements; n > 0 && i >= n {
			return fmt.Errorf("extract: json: element %d after byte offset %d: %w (%s=%d)", i, off, ErrTooManyElements, ElementsSetting, n)
		}
		start := s.offset()
		s.markAt(s.lim.Record)
		s.longest = 0
		if err := s.skipValue(); err != nil {
			if s.mark < 0 && w.tooLarge != nil {
				// Cut off inside an element already too large: it is
				// rejected before the body's error ends the page.
				if rerr := w.tooLarge(s.tooLarge(s.offset()-start, true)); rerr != nil {
					return rerr
				}
			}
			return w.elementErr(i, off, err)
		}
		size := s.offset() - start
		over := s.mark < 0 || s.lim.Record > 0 && size > s.lim.Record || s.lim.Field > 0 && s.longest > s.lim.Field
		if over && s.mark >= 0 {
			s.keepPrefix(s.pos)
		}
		var raw json.RawMessage
		if !over {
			raw = append(json.RawMessage(nil), s.buf[s.mark:s.pos]...)
		}
		s.mark = -1
		off = s.offset()
		switch {
		case over && w.tooLarge == nil:
			return fmt.Errorf("extract: json: element %d at byte offset %d: %w: %s", i, start, ErrTooLarge, s.tooLarge(size, false).Reason)
		case over:
			if err := w.tooLarge(s.tooLarge(size, false)); err != nil {
				return err
			}
		default:
			if err := w.fn(raw); err != nil {
				return err
			}
		}
		if c, err = s.peek(); err != nil {
			return err
		}
		s.pos++
		switch c {
		case ',':
		case ']':
			return nil
		default:
			return s.syntax(c, "after array element")
		}
	}
}

// elementErr names the element that broke and where the one before ended.
func (w *walker) elementErr(i int, off int64, err error) error {
	var se *syntaxError
	if errors.As(err, &se) {
		err = se.err
	}
	return fmt.Errorf("extract: json: element %d after byte offset %d: %w", i, off, err)
}

// skip consumes one member value without keeping it, recording it when it
// is a scalar and scalars are collected.
func (w *walker) skip(name string) error {
	s := w.s
	c, err := s.peek()
	if err != nil {
		return err
	}
	if w.scalars == nil || c == '{' || c == '[' {
		return s.skipValue()
	}
	s.markAt(s.lim.Field)
	if err := s.skipValue(); err != nil {
		return err
	}
	if s.mark >= 0 && (s.lim.Field == 0 || int64(s.pos-s.mark) <= s.lim.Field) { // one over the field limit is not kept
		w.scalars[name] = append(json.RawMessage(nil), s.buf[s.mark:s.pos]...)
	}
	s.mark = -1
	return nil
}

func (w *walker) shapeErr(name string, c byte, want string) error {
	if name == "" {
		name = "document"
	}
	got := "a scalar"
	switch c {
	case '{':
		got = "an object"
	case '[':
		got = "an array"
	}
	return fmt.Errorf("extract: json at offset %d: %s is %s, want %s", w.s.offset(), name, got, want)
}

// scanner reads a JSON document from r through a buffer. Bytes before pos
// are consumed and dropped on refill, except from mark on (the element
// being read), so the buffer grows only to the largest element — or to
// keep, beyond which the mark is dropped and only a prefix kept.
type scanner struct {
	r    io.Reader
	buf  []byte
	pos  int
	base int64 // document offset of buf[0]
	mark int   // -1, or the first byte to keep
	err  error // the read error that ended the input (io.EOF at the end)

	lim     Limits
	keep    int64  // the most bytes kept from mark; 0: no limit
	prefix  []byte // the first bytes of a value whose mark was dropped
	longest int64  // the longest string since the element began
}

// markAt keeps what is read from here on, up to keep bytes (0: no limit).
func (s *scanner) markAt(keep int64) {
	s.mark, s.keep = s.pos, keep
}

// keepPrefix saves the first bytes from mark up to end.
func (s *scanner) keepPrefix(end int) {
	s.prefix = append(s.prefix[:0], s.buf[s.mark:s.mark+min(keptPrefix, end-s.mark)]...)
}

// tooLarge describes the element just skipped, of size bytes (cut: the
// input ended inside it), from the prefix kept.
func (s *scanner) tooLarge(size int64, cut bool) TooLarge {
	plus := ""
	if cut {
		plus = "+"
	}
	var why []string
	if s.lim.Record > 0 && size > s.lim.Record {
		why = append(why, fmt.Sprintf("record of %d%s bytes is over the %s record limit (%s)", size, plus, Bytes(s.lim.Record), RecordSetting))
	}
	if s.lim.Field > 0 && s.longest > s.lim.Field {
		why = append(why, fmt.Sprintf("a string of %d bytes is over the %s field limit (%s)", s.longest, Bytes(s.lim.Field), FieldSetting))
	}
	if len(why) == 0 { // cut off inside a string already over the record limit
		why = append(why, fmt.Sprintf("record of %d%s bytes is over the %s record limit (%s)", size, plus, Bytes(s.lim.Record), RecordSetting))
	}
	return TooLarge{Raw: closeJSON(s.prefix), Reason: strings.Join(why, "; ")}
}

func newScanner(r io.Reader) *scanner {
	return &scanner{r: r, buf: make([]byte, 0, 32<<10), mark: -1}
}

func (s *scanner) offset() int64 { return s.base + int64(s.pos) }

// fill reads more input; false when there is none (s.err says why).
func (s *scanner) fill() bool {
	if s.err != nil {
		return false
	}
	if s.mark >= 0 && s.keep > 0 && int64(len(s.buf)-s.mark) >= s.keep {
		// More than keep is wanted: keep a prefix, read on without the rest.
		s.keepPrefix(len(s.buf))
		s.mark = -1
	}
	keep := s.pos
	if s.mark >= 0 {
		keep = s.mark
	}
	if keep > 0 {
		n := copy(s.buf[:cap(s.buf)], s.buf[keep:])
		s.buf = s.buf[:n]
		s.pos -= keep
		s.base += int64(keep)
		if s.mark >= 0 {
			s.mark -= keep
		}
	}
	if len(s.buf) == cap(s.buf) {
		s.buf = append(s.buf, make([]byte, cap(s.buf))...)[:len(s.buf)]
	}
	for range 100 {
		n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		if err != nil {
			s.err = err
		}
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	s.err = io.ErrNoProgress
	return false
}

// readErr is the read error that ended the input, nil at a clean end.
func (s *scanner) readErr() error {
	if s.err == io.EOF {
		return nil
	}
	return s.err
}

// eof is the error of input ending inside the document.
func (s *scanner) eof() error {
	if err := s.readErr(); err != nil {
		return s.wrap(err)
	}
	return s.wrap(io.ErrUnexpectedEOF)
}

func (s *scanner) wrap(err error) error {
	return fmt.Errorf("extract: json at offset %d: %w", s.offset(), err)
}

// syntaxError is a malformed document, with its offset.
type syntaxError struct {
	err error // without the offset, for element messages
	msg string
}

func (e *syntaxError) Error() string { return e.msg }
func (e *syntaxError) Unwrap() error { return e.err }

func (s *scanner) syntax(c byte, context string) error {
	err := fmt.Errorf("invalid character %s %s", quoteChar(c), context)
	return &syntaxError{err: err, msg: fmt.Sprintf("extract: json at offset %d: %v", s.offset(), err)}
}

// skipSpace skips whitespace; false when the input ended.
func (s *scanner) skipSpace() bool {
	for {
		for ; s.pos < len(s.buf); s.pos++ {
			switch s.buf[s.pos] {
			case ' ', '\t', '\n', '\r':
			default:
				return true
			}
		}
		if !s.fill() {
			return false
		}
	}
}

// peek skips whitespace and returns the next byte without consuming it;
// the end of the input is an error, since the document is not over.
func (s *scanner) peek() (byte, error) {
	if !s.skipSpace() {
		return 0, s.eof()
	}
	return s.buf[s.pos], nil
}

// next consumes one byte (no whitespace skipping).
func (s *scanner) next() (byte, error) {
	if s.pos >= len(s.buf) && !s.fill() {
		return 0, s.eof()
	}
	c := s.buf[s.pos]
	s.pos++
	return c, nil
}

// key reads an object key and its colon, returning the key decoded.
func (s *scanner) key() (string, error) {
	c, err := s.peek()
	if err != nil {
		return "", err
	}
	if c != '"' {
		return "", s.syntax(c, "looking for beginning of object key string")
	}
	s.markAt(s.lim.Field)
	plain, err := s.skipString()
	if err == nil && s.mark < 0 {
		err = s.wrap(fmt.Errorf("an object key is over the %s field limit (%s)", Bytes(s.lim.Field), FieldSetting))
	}
	if err != nil {
		s.mark = -1
		return "", err
	}
	raw := s.buf[s.mark:s.pos]
	s.mark = -1
	key := string(raw[1 : len(raw)-1])
	if !plain {
		// Escapes or non-ASCII: decode as encoding/json would (invalid
		// UTF-8 becomes U+FFFD).
		json.Unmarshal(raw, &key)
	}
	if c, err = s.peek(); err != nil {
		return "", err
	}
	if c != ':' {
		return "", s.syntax(c, "after object key")
	}
	s.pos++
	return key, nil
}

// skipString consumes a string starting at its quote; plain reports that
// it holds only ASCII without escapes (its bytes are its value).
func (s *scanner) skipString() (plain bool, err error) {
	start := s.offset()
	s.pos++ // '"'
	plain = true
	for {
		for s.pos < len(s.buf) {
			c := s.buf[s.pos]
			s.pos++
			switch {
			case c == '"':
				s.longest = max(s.longest, s.offset()-start)
				return plain, nil
			case c == '\\':
				plain = false
				if err := s.escape(); err != nil {
					return false, err
				}
			case c < 0x20:
				s.pos--
				return false, s.syntax(c, "in string literal")
			case c >= 0x80:
				plain = false
			}
		}
		if !s.fill() {
			return false, s.eof()
		}
	}
}

// escape consumes what follows a backslash.
func (s *scanner) escape() error {
	c, err := s.next()
	if err != nil {
		return err
	}
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return nil
	case 'u':
		for range 4 {
			h, err := s.next()
			if err != nil {
				return err
			}
			if !isHex(h) {
				s.pos--
				return s.syntax(h, "in \\u hexadecimal character escape")
			}
		}
		return nil
	}
	s.pos--
	return s.syntax(c, "in string escape code")
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// literal consumes the literal word (true, false, null).
func (s *scanner) literal(word string) error {
	for i := range len(word) {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c != word[i] {
			s.pos--
			return s.syntax(c, fmt.Sprintf("in literal %s (expecting %s)", word, quoteChar(word[i])))
		}
	}
	return nil
}

// number consumes a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	digits := func(context string) error {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c < '0' || c > '9' {
			s.pos--
			return s.syntax(c, context)
		}
		for {
			if s.pos >= len(s.buf) && !s.fill() {
				return nil // the caller sees the end
			}
			if c := s.buf[s.pos]; c < '0' || c > '9' {
				return nil
			}
			s.pos++
		}
	}
	// at reports whether the next byte (if any) is c, consuming it.
	at := func(cs string) bool {
		if s.pos >= len(s.buf) && !s.fill() {
			return false
		}
		if strings.IndexByte(cs, s.buf[s.pos]) >= 0 {
			s.pos++
			return true
		}
		return false
	}
	at("-")
	if at("0") {
		// no more integer digits after a leading zero
	} else if err := digits("in numeric literal"); err != nil {
		return err
	}
	if at(".") {
		if err := digits("after decimal point in numeric literal"); err != nil {
			return err
		}
	}
	if at("eE") {
		at("+-")
		if err := digits("in exponent of numeric literal"); err != nil {
			return err
		}
	}
	return nil
}

// skipValue consumes and checks one value of any kind.
func (s *scanner) skipValue() error {
	var stack []byte // open containers, '{' or '['
	for {
		// A value starts here.
		c, err := s.peek()
		if err != nil {
			return err
		}
		closed := true // the value ended (false: a container was opened)
		switch {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return s.wrap(errors.New("nested too deep"))
			}
			s.pos++
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			n, err := s.peek()
			if err != nil {
				return err
			}
			if n == end {
				s.pos++
				break
			}
			stack = append(stack, c)
			closed = false
			if c == '{' {
				if _, err := s.keyOnly(); err != nil {
					return err
				}
			}
		case c == '"':
			if _, err := s.skipString(); err != nil {
				return err
			}
		case c == 't':
			err = s.literal("true")
		case c == 'f':
			err = s.literal("false")
		case c == 'n':
			err = s.literal("null")
		case c == '-' || '0' <= c && c <= '9':
			err = s.number()
		default:
			return s.syntax(c, "looking for beginning of value")
		}
		if err != nil {
			return err
		}
		// After a value: close containers or move to the next member.
		for closed {
			if len(stack) == 0 {
				return nil
			}
			c, err := s.peek()
			if err != nil {
				return err
			}
			top := stack[len(stack)-1]
			s.pos++
			switch {
			case c == ',':
				if top == '{' {
					if _, err := s.keyOnly(); err != nil {
						return err
					}
				}
				closed = false
			case top == '{' && c == '}', top == '[' && c == ']':
				stack = stack[:len(stack)-1]
			case top == '{':
				s.pos--
				return s.syntax(c, "after object key:value pair")
			default:
				s.pos--
				return s.syntax(c, "after array element")
			}
		}
	}
}

// keyOnly consumes an object key and its colon inside a skipped value.
func (s *scanner) keyOnly() (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	if c != '"' {
		return false, s.syntax(c, "looking for beginning of object key string")
	}
	if _, err := s.skipString(); err != nil {
		return false, err
	}
	if c, err = s.peek(); err != nil {
		return false, err
	}
	if c != ':' {
		return false, s.syntax(c, "after object key")
	}
	s.pos++
	return true, nil
}

// quoteChar formats c as encoding/json's messages do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(c))
	return "'" + s[1:len(s)-1] + "'"
}
