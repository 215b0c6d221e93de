// Package stringify computes what JavaScript's
// JSON.stringify(JSON.parse(body)) gives, byte for byte: FinGoal signs its
// webhooks over that form, so the receiver (extract/fingoal) verifies with
// it and the sandbox (extract/fingoal/sandbox) signs with it.
package stringify

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxCanonicalDepth is the deepest nesting of arrays and objects Canonical
// takes. V8's JSON.stringify overflows its stack at a few thousand levels,
// so FinGoal cannot sign much deeper bodies either; the limit keeps hostile
// input from costing deep recursion here.
const MaxCanonicalDepth = 512

// ErrTooDeep is Canonical's error for a body nested deeper than
// MaxCanonicalDepth.
var ErrTooDeep = errors.New("fingoal: JSON nested deeper than 512 levels")

// Canonical is JavaScript's JSON.stringify(JSON.parse(text)), where text is
// body decoded as UTF-8 the way Node's Buffer.toString does: FinGoal signs
// webhooks over that. The rules, from ECMA-262:
//
//   - Invalid UTF-8 becomes U+FFFD, one per maximal ill-formed subpart
//     (the WHATWG decoder), as the sender's JavaScript string would hold it.
//   - Whitespace between tokens is dropped; true, false and null stay.
//   - Numbers are parsed to float64 and printed as Number::toString does:
//     the shortest digits that round-trip, exponent form (1e+21, 1.5e-7)
//     when the decimal exponent is >= 21 or <= -7, otherwise plain
//     (10.00 and 1e1 give 10, -0 gives 0). A number too large for float64
//     is Infinity, which JSON.stringify prints as null.
//   - Strings are decoded and re-escaped: only " and \ and U+0000..U+001F
//     are escaped (\b \t \n \f \r, the others \u00xx), everything else
//     literal (\u00e9 gives é, \/ gives /). An escaped surrogate pair
//     becomes its character; a lone surrogate is written \udxxx.
//   - Objects keep their keys' first positions, with the last value of a
//     repeated key, except that keys which are array indexes (canonical
//     integers 0..2^32-2) come first in ascending order.
//
// Anything JSON.parse refuses is an error, and so is nesting deeper than
// MaxCanonicalDepth (ErrTooDeep). The work is linear in len(body).
func Canonical(body []byte) ([]byte, error) {
	c := &canon{in: wellFormed(body)}
	end, err := c.check(c.ws(0), 1)
	if err != nil {
		return nil, err
	}
	if end = c.ws(end); end < len(c.in) {
		return nil, c.errAt(end, "after the value")
	}
	out := make([]byte, 0, len(c.in))
	out, _ = c.write(out, c.ws(0))
	return out, nil
}

// canon reads body twice: check validates it and plans the objects whose
// members JSON.stringify reorders or drops; write then emits every value
// once, so a body's cost stays linear however its objects nest.
type canon struct {
	in      []byte
	plans   map[int]*plan // by the offset of the object's '{'
	scratch []byte        // check's output of a string, thrown away
}

// plan is an object's members as JSON.stringify writes them.
type plan struct {
	members []member
	end     int // offset after the '}'
}

type member struct{ key, value int } // offsets of the key's '"' and of the value

func (c *canon) errAt(pos int, what string) error {
	if pos >= len(c.in) {
		return fmt.Errorf("fingoal: not JSON: unexpected end %s", what)
	}
	return fmt.Errorf("fingoal: not JSON: unexpected %q at byte %d %s", c.in[pos], pos, what)
}

func (c *canon) ws(pos int) int {
	for pos < len(c.in) {
		switch c.in[pos] {
		case ' ', '\t', '\n', '\r':
			pos++
		default:
			return pos
		}
	}
	return pos
}

// check validates the value at pos (no whitespace before it) and returns
// the offset after it.
func (c *canon) check(pos, depth int) (int, error) {
	if pos >= len(c.in) {
		return pos, c.errAt(pos, "where a value belongs")
	}
	switch b := c.in[pos]; {
	case b == '{':
		return c.checkObject(pos, depth)
	case b == '[':
		if depth > MaxCanonicalDepth {
			return pos, ErrTooDeep
		}
		pos = c.ws(pos + 1)
		if pos < len(c.in) && c.in[pos] == ']' {
			return pos + 1, nil
		}
		for {
			end, err := c.check(pos, depth+1)
			if err != nil {
				return end, err
			}
			pos = c.ws(end)
			if pos < len(c.in) && c.in[pos] == ']' {
				return pos + 1, nil
			}
			if pos >= len(c.in) || c.in[pos] != ',' {
				return pos, c.errAt(pos, "in an array")
			}
			pos = c.ws(pos + 1)
		}
	case b == '"':
		var end int
		var err error
		c.scratch, end, err = c.appendString(c.scratch[:0], pos)
		return end, err
	case b == '-' || b >= '0' && b <= '9':
		return c.checkNumber(pos)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(c.in)-pos >= len(lit) && string(c.in[pos:pos+len(lit)]) == lit {
				return pos + len(lit), nil
			}
		}
		return pos, c.errAt(pos, "where a value belongs")
	}
}

func (c *canon) checkObject(start, depth int) (int, error) {
	if depth > MaxCanonicalDepth {
		return start, ErrTooDeep
	}
	pos := c.ws(start + 1)
	if pos < len(c.in) && c.in[pos] == '}' {
		return pos + 1, nil
	}
	type seen struct {
		key   string
		index int64 // the array index the key is, or -1
		member
	}
	var members []seen
	var at map[string]int // key → position in members, once there are a few
	reorder := false
	for {
		if pos >= len(c.in) || c.in[pos] != '"' {
			return pos, c.errAt(pos, "where an object key belongs")
		}
		var err error
		var end int
		c.scratch, end, err = c.appendString(c.scratch[:0], pos)
		if err != nil {
			return end, err
		}
		// The escaped form identifies a key: escaping is one to one.
		key, index := string(c.scratch), arrayIndex(c.scratch)
		m := member{key: pos}
		pos = c.ws(end)
		if pos >= len(c.in) || c.in[pos] != ':' {
			return pos, c.errAt(pos, "after an object key")
		}
		m.value = c.ws(pos + 1)
		if pos, err = c.check(m.value, depth+1); err != nil {
			return pos, err
		}
		i, dup := -1, false
		if at != nil {
			i, dup = at[key]
		} else {
			for j := range members {
				if members[j].key == key {
					i, dup = j, true
					break
				}
			}
		}
		if dup {
			members[i].value = m.value // the last value, at the first key's place
			reorder = true
		} else {
			s := seen{key: key, index: index, member: m}
			// Array indexes go first, ascending: anything else out of order.
			if n := len(members); n > 0 && s.index >= 0 && (members[n-1].index < 0 || members[n-1].index > s.index) {
				reorder = true
			}
			members = append(members, s)
			if at != nil {
				at[s.key] = len(members) - 1
			} else if len(members) > 8 {
				at = make(map[string]int, 2*len(members))
				for j, x := range members {
					at[x.key] = j
				}
			}
		}
		pos = c.ws(pos)
		if pos < len(c.in) && c.in[pos] == '}' {
			pos++
			break
		}
		if pos >= len(c.in) || c.in[pos] != ',' {
			return pos, c.errAt(pos, "in an object")
		}
		pos = c.ws(pos + 1)
	}
	if reorder {
		slices.SortStableFunc(members, func(a, b seen) int {
			switch {
			case a.index >= 0 && b.index >= 0:
				return cmp.Compare(a.index, b.index)
			case a.index >= 0:
				return -1
			case b.index >= 0:
				return 1
			}
			return 0
		})
		p := &plan{members: make([]member, len(members)), end: pos}
		for i, m := range members {
			p.members[i] = m.member
		}
		if c.plans == nil {
			c.plans = map[int]*plan{}
		}
		c.plans[start] = p
	}
	return pos, nil
}

// arrayIndex is the array index a decoded key is (its canonical decimal
// form, at most 2^32-2), or -1.
func arrayIndex(key []byte) int64 {
	if len(key) == 0 || len(key) > 10 || len(key) > 1 && key[0] == '0' {
		return -1
	}
	var n int64
	for _, b := range key {
		if b < '0' || b > '9' {
			return -1
		}
		n = n*10 + int64(b-'0')
	}
	if n > math.MaxUint32-1 {
		return -1
	}
	return n
}

func (c *canon) checkNumber(pos int) (int, error) {
	digits := func(p int) int {
		for p < len(c.in) && c.in[p] >= '0' && c.in[p] <= '9' {
			p++
		}
		return p
	}
	if c.in[pos] == '-' {
		pos++
	}
	switch {
	case pos < len(c.in) && c.in[pos] == '0':
		pos++
	case pos < len(c.in) && c.in[pos] >= '1' && c.in[pos] <= '9':
		pos = digits(pos)
	default:
		return pos, c.errAt(pos, "in a number")
	}
	if pos < len(c.in) && c.in[pos] == '.' {
		end := digits(pos + 1)
		if end == pos+1 {
			return end, c.errAt(end, "after a decimal point")
		}
		pos = end
	}
	if pos < len(c.in) && (c.in[pos] == 'e' || c.in[pos] == 'E') {
		pos++
		if pos < len(c.in) && (c.in[pos] == '+' || c.in[pos] == '-') {
			pos++
		}
		end := digits(pos)
		if end == pos {
			return end, c.errAt(end, "in an exponent")
		}
		pos = end
	}
	return pos, nil
}

// appendString appends the JSON.stringify form of the string at pos,
// without its quotes, and returns the offset after its closing quote.
func (c *canon) appendString(dst []byte, pos int) ([]byte, int, error) {
	pos++ // the opening quote
	for {
		if pos >= len(c.in) {
			return dst, pos, c.errAt(pos, "in a string")
		}
		b := c.in[pos]
		switch {
		case b == '"':
			return dst, pos + 1, nil
		case b < 0x20:
			return dst, pos, c.errAt(pos, "(a control character) in a string")
		case b != '\\':
			// Valid UTF-8 (wellFormed), and nothing else needs escaping.
			start := pos
			for pos < len(c.in) && c.in[pos] >= 0x20 && c.in[pos] != '"' && c.in[pos] != '\\' {
				pos++
			}
			dst = append(dst, c.in[start:pos]...)
			continue
		}
		if pos+1 >= len(c.in) {
			return dst, pos + 1, c.errAt(pos+1, "in an escape")
		}
		switch e := c.in[pos+1]; e {
		case '"', '\\':
			dst = append(dst, '\\', e)
		case '/':
			dst = append(dst, '/')
		case 'b', 'f', 'n', 'r', 't':
			dst = append(dst, '\\', e)
		case 'u':
			u, ok := c.hex4(pos + 2)
			if !ok {
				return dst, pos, c.errAt(pos+1, "in a \\u escape")
			}
			pos += 6
			if utf16.IsSurrogate(rune(u)) && u < 0xdc00 {
				if low, ok := c.hex4(pos + 2); ok && pos+1 < len(c.in) && c.in[pos] == '\\' && c.in[pos+1] == 'u' && low >= 0xdc00 && low <= 0xdfff {
					dst = utf8.AppendRune(dst, utf16.DecodeRune(rune(u), rune(low)))
					pos += 6
					continue
				}
			}
			dst = appendUnit(dst, u)
			continue
		default:
			return dst, pos + 1, c.errAt(pos+1, "in an escape")
		}
		pos += 2
	}
}

// hex4 reads the four hex digits at pos.
func (c *canon) hex4(pos int) (uint16, bool) {
	if pos+4 > len(c.in) {
		return 0, false
	}
	var u uint16
	for _, b := range c.in[pos : pos+4] {
		switch {
		case b >= '0' && b <= '9':
			b -= '0'
		case b >= 'a' && b <= 'f':
			b -= 'a' - 10
		case b >= 'A' && b <= 'F':
			b -= 'A' - 10
		default:
			return 0, false
		}
		u = u<<4 | uint16(b)
	}
	return u, true
}

// appendUnit appends one UTF-16 code unit from a \u escape as
// JSON.stringify writes it.
func appendUnit(dst []byte, u uint16) []byte {
	const hex = "0123456789abcdef"
	switch {
	case u == '"' || u == '\\':
		return append(dst, '\\', byte(u))
	case u == '\b':
		return append(dst, `\b`...)
	case u == '\t':
		return append(dst, `\t`...)
	case u == '\n':
		return append(dst, `\n`...)
	case u == '\f':
		return append(dst, `\f`...)
	case u == '\r':
		return append(dst, `\r`...)
	case u < 0x20 || utf16.IsSurrogate(rune(u)):
		return append(dst, '\\', 'u', hex[u>>12], hex[u>>8&15], hex[u>>4&15], hex[u&15])
	}
	return utf8.AppendRune(dst, rune(u))
}

// write appends the canonical form of the value at pos, which check
// accepted, and returns the offset after it.
func (c *canon) write(dst []byte, pos int) ([]byte, int) {
	switch b := c.in[pos]; {
	case b == '{':
		if p := c.plans[pos]; p != nil {
			dst = append(dst, '{')
			for i, m := range p.members {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst, _ = c.writeMember(dst, m)
			}
			return append(dst, '}'), p.end
		}
		return c.writeList(dst, pos, '}', true)
	case b == '[':
		return c.writeList(dst, pos, ']', false)
	case b == '"':
		dst = append(dst, '"')
		dst, pos, _ = c.appendString(dst, pos)
		return append(dst, '"'), pos
	case b == '-' || b >= '0' && b <= '9':
		end, _ := c.checkNumber(pos)
		f, _ := strconv.ParseFloat(string(c.in[pos:end]), 64) // ±Inf when out of range
		return appendNumber(dst, f), end
	case b == 't':
		return append(dst, "true"...), pos + 4
	case b == 'f':
		return append(dst, "false"...), pos + 5
	default:
		return append(dst, "null"...), pos + 4
	}
}

// writeList writes an array, or an object kept in the order sent.
func (c *canon) writeList(dst []byte, pos int, close byte, object bool) ([]byte, int) {
	dst = append(dst, c.in[pos])
	pos = c.ws(pos + 1)
	for i := 0; c.in[pos] != close; i++ {
		if i > 0 {
			dst = append(dst, ',')
			pos = c.ws(pos + 1) // the comma
		}
		if object {
			colon := c.ws(c.skipString(pos))
			dst, pos = c.writeMember(dst, member{key: pos, value: c.ws(colon + 1)})
		} else {
			dst, pos = c.write(dst, pos)
		}
		pos = c.ws(pos)
	}
	return append(dst, close), pos + 1
}

func (c *canon) writeMember(dst []byte, m member) ([]byte, int) {
	dst = append(dst, '"')
	dst, _, _ = c.appendString(dst, m.key)
	dst = append(dst, '"', ':')
	return c.write(dst, m.value)
}

// skipString returns the offset after the (valid) string at pos.
func (c *canon) skipString(pos int) int {
	for pos++; c.in[pos] != '"'; pos++ {
		if c.in[pos] == '\\' {
			pos++
		}
	}
	return pos + 1
}

// appendNumber appends f as ECMAScript's Number::toString(10) writes it,
// or null for ±Inf (JSON.stringify).
func appendNumber(dst []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // -0 too
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// The shortest digits s that round-trip, as d.ddde±x: k digits, and
	// n such that f = s × 10^(n-k).
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	mark := slices.Index(e, 'e')
	exp, _ := strconv.Atoi(string(e[mark+1:]))
	digits := append(e[:1:1], e[min(2, mark):mark]...)
	k, n := len(digits), exp+1
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(append(append(dst, digits[:n]...), '.'), digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(append(dst, '.'), digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// wellFormed returns b with each maximal ill-formed UTF-8 subpart replaced
// by U+FFFD, as the WHATWG decoder (Node's Buffer.toString, TextDecoder)
// does; b itself when it is valid.
func wellFormed(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			out = append(out, c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xbf)
		switch {
		case c >= 0xc2 && c <= 0xdf:
			need = 1
		case c == 0xe0:
			need, lo = 2, 0xa0
		case c == 0xed:
			need, hi = 2, 0x9f
		case c >= 0xe1 && c <= 0xef:
			need = 2
		case c == 0xf0:
			need, lo = 3, 0x90
		case c == 0xf4:
			need, hi = 3, 0x8f
		case c >= 0xf1 && c <= 0xf3:
			need = 3
		}
		j := i + 1
		for k := 0; k < need; k, lo, hi = k+1, 0x80, 0xbf {
			if j >= len(b) || b[j] < lo || b[j] > hi {
				need = -1 // ill-formed: b[i:j] is one subpart, b[j] is read again
				break
			}
			j++
		}
		if need > 0 {
			out = append(out, b[i:j]...)
		} else {
			out = utf8.AppendRune(out, utf8.RuneError)
		}
		i = j
	}
	return out
}
