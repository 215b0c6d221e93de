package pii

import (
	"bytes"
	"sort"
	"strings"
	"unicode/utf8"
)

// Span is a byte range [Start, End) of a text.
type Span struct{ Start, End int }

// Words finds whole words in a text in any of their spellings: each word is
// compared folded (Fold), bounded by anything but a letter or digit, and a
// name may carry the Swedish/German genitive s ("Astrids konto").
type Words struct {
	names    []string // folded; a trailing s is allowed
	literals []string // folded; exact (ids as given)
}

// AddName adds the words of a name; words shorter than two letters once
// folded are ignored (they would redact everything).
func (w *Words) AddName(name string) {
	for _, f := range strings.Fields(name) {
		if v := strings.Trim(Fold(f), ".,;:"); utf8.RuneCountInString(v) >= 2 {
			w.names = append(w.names, v)
		}
	}
}

// AddLiteral adds a value matched as a whole, without the genitive.
func (w *Words) AddLiteral(v string) {
	if v = Fold(strings.TrimSpace(v)); utf8.RuneCountInString(v) >= 2 {
		w.literals = append(w.literals, v)
	}
}

// Empty tells that w finds nothing.
func (w *Words) Empty() bool { return w == nil || len(w.names)+len(w.literals) == 0 }

// Join adds o's words to w.
func (w *Words) Join(o *Words) {
	if o != nil {
		w.names = append(w.names, o.names...)
		w.literals = append(w.literals, o.literals...)
	}
}

// Find returns the spans of s that are one of w's words, in any spelling.
func (w *Words) Find(s string) []Span {
	if w.Empty() || s == "" {
		return nil
	}
	f, start, end := folded(s)
	var out []Span
	find := func(v string, genitive bool) {
		for from := 0; from < len(f); {
			i := strings.Index(f[from:], v)
			if i < 0 {
				return
			}
			i += from
			j := i + len(v)
			from = i + 1
			if genitive && j < len(f) && f[j] == 's' && boundaryAt(f, j+1) {
				j++
			}
			if boundaryBefore(f, i) && boundaryAt(f, j) {
				out = append(out, Span{start[i], end[j-1]})
			}
		}
	}
	for _, v := range w.names {
		find(v, true)
	}
	for _, v := range w.literals {
		find(v, false)
	}
	return out
}

// boundaryBefore: no letter or digit ends at f[:i].
func boundaryBefore(f string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(f[:i])
	return !isWordRune(r)
}

// boundaryAt: no letter or digit starts at f[i:].
func boundaryAt(f string, i int) bool {
	if i >= len(f) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(f[i:])
	return !isWordRune(r)
}

// Replace returns s with every span (they may overlap) replaced by Redacted.
func Replace(s string, spans []Span) string {
	if len(spans) == 0 {
		return s
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	var b strings.Builder
	at := 0
	for i := 0; i < len(spans); {
		sp := spans[i]
		for i++; i < len(spans) && spans[i].Start <= sp.End; i++ {
			sp.End = max(sp.End, spans[i].End)
		}
		b.WriteString(s[at:sp.Start])
		b.WriteString(Redacted)
		at = sp.End
	}
	b.WriteString(s[at:])
	return b.String()
}

// SameName tells whether a counterparty's name names the holder (see
// Holders).
func SameName(counterparty, holder string) bool { return NewHolders(holder).Named(counterparty) }

// Holders are the names a user's accounts are held in, to tell a
// counterparty that is one of them. Folded, every word of the
// counterparty's name is a word of the holder's or the other way round
// ("MUELLER ANNA" and "Anna Müller", "Anna Müller" and "Anna und Ben
// Müller"), an initial standing for a word ("A. MUELLER"). At least two
// words must agree, one of them in full: a lone surname may be anyone of
// the family. Named reuses buffers: a Holders is for one goroutine.
type Holders struct {
	names [][][]byte // each holder's folded words
	buf   []byte
	words [][]byte
}

// NewHolders returns the Holders of names; empty ones are left out.
func NewHolders(names ...string) *Holders {
	h := &Holders{}
	for _, n := range names {
		if w := h.split(n); len(w) >= 2 {
			own := make([][]byte, len(w))
			for i, x := range w {
				own[i] = append([]byte(nil), x...)
			}
			h.names = append(h.names, own)
		}
	}
	return h
}

// Empty tells that h names nobody.
func (h *Holders) Empty() bool { return h == nil || len(h.names) == 0 }

// Named tells whether counterparty is one of the holders.
func (h *Holders) Named(counterparty string) bool {
	if h.Empty() || counterparty == "" {
		return false
	}
	c := h.split(counterparty)
	if len(c) < 2 {
		return false
	}
	for _, n := range h.names {
		if covers(n, c) || covers(c, n) {
			return true
		}
	}
	return false
}

// split folds s into h.buf and returns its words (in h.words, valid until
// the next call), without the joining words of joint accounts and
// salutations; at most maxWords.
func (h *Holders) split(s string) [][]byte {
	h.buf = foldAppend(h.buf[:0], s, nil)
	h.words = h.words[:0]
	for i := 0; i < len(h.buf) && len(h.words) < maxWords; {
		r, n := utf8.DecodeRune(h.buf[i:])
		if !isWordRune(r) {
			i += n
			continue
		}
		j := i
		for j < len(h.buf) {
			r, n := utf8.DecodeRune(h.buf[j:])
			if !isWordRune(r) {
				break
			}
			j += n
		}
		if !nameNoise[string(h.buf[i:j])] {
			h.words = append(h.words, h.buf[i:j])
		}
		i = j
	}
	return h.words
}

// maxWords bounds the words of a name compared.
const maxWords = 16

// covers: every word of part is in whole (an initial matches a word it
// begins), and at least one of them in full.
func covers(whole, part [][]byte) bool {
	full := false
	var used [maxWords]bool
	for _, p := range part {
		found := false
		for i, w := range whole {
			if used[i] {
				continue
			}
			if bytes.Equal(p, w) || len(p) == 1 && bytes.HasPrefix(w, p) || len(w) == 1 && bytes.HasPrefix(p, w) {
				used[i], found = true, true
				full = full || len(p) > 1 && len(w) > 1
				break
			}
		}
		if !found {
			return false
		}
	}
	return full
}

var nameNoise = map[string]bool{
	"och": true, "og": true, "und": true, "u": true, "and": true,
	"herr": true, "hr": true, "frau": true, "fr": true, "mr": true, "mrs": true, "ms": true, "dr": true,
}
