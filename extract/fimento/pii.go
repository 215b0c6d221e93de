package fimento

// Personal data (doc.go 20). Fimento sends social security numbers,
// company ids and first and last names, in the process, the insights and
// its webhooks. None of them may land in clear; three tools see to it:
//   - scrub removes those members from a payload at any depth before it
//     is stored as raw;
//   - a redactor replaces the process's own identifiers wherever they occur
//     inside text finsync keeps (transaction descriptions, account names,
//     raw payloads, status messages), since a bank's transaction text can
//     name its customer ("Swish from Astrid Lindqvist");
//   - PersonRef is a keyed hash of the identifier, the only form in which a
//     person can be joined across processes.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// piiKeys are the members scrub removes, matched case-insensitively (as
// encoding/json matches fields) after unescaping.
var piiKeys = []string{"socialSecurityNumber", "companyId", "firstName", "lastName", "ssn"}

func isPIIKey(k string) bool {
	for _, p := range piiKeys {
		if strings.EqualFold(k, p) {
			return true
		}
	}
	return false
}

// maxScrubDepth bounds the recursion on hostile input; encoding/json
// itself refuses nesting beyond 10,000.
const maxScrubDepth = 200

// scrub returns the JSON document raw without the personal members, at any
// depth, re-encoded compactly (numbers keep their text, no HTML escaping,
// object members in key order). It fails on anything that is not JSON.
func scrub(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON value")
	}
	v, err := scrubValue(v, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func scrubValue(v any, depth int) (any, error) {
	if depth > maxScrubDepth {
		return nil, errors.New("nested too deeply to scrub")
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if isPIIKey(k) {
				delete(x, k)
				continue
			}
			s, err := scrubValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = s
		}
	case []any:
		for i, e := range x {
			s, err := scrubValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = s
		}
	}
	return v, nil
}

// Redacted replaces a person's identifier inside kept text.
const Redacted = "[redacted]"

// redactor replaces one process's identifiers in text: the names as whole
// words and the social security number and company id in their usual
// written forms, all case-insensitively. A nil redactor changes nothing.
type redactor struct {
	res   []*regexp.Regexp
	words []string // res[i]'s value, folded: a text without it cannot match res[i]
}

// newRedactor builds the redactor of a person; empty or one-letter values
// are ignored (they would redact everything).
func newRedactor(ssn, companyID, firstName, lastName string) *redactor {
	r := &redactor{}
	// Boundaries are letters and digits of any script: \b knows only
	// ASCII and would miss "Åsa". One expression per value, so adjacent
	// values ("Astrid Lindqvist") do not compete for the space between.
	add := func(value, suffix string) {
		r.res = append(r.res, regexp.MustCompile(`(?i)(^|[^\p{L}\p{N}])(`+regexp.QuoteMeta(value)+suffix+`)($|[^\p{L}\p{N}])`))
		r.words = append(r.words, fold(value))
	}
	for _, name := range []string{firstName, lastName} {
		for _, w := range strings.Fields(name) {
			if len([]rune(w)) >= 2 {
				add(w, "s?") // "s?": the Swedish genitive, "Astrids konto"
			}
		}
	}
	for _, id := range []string{ssn, companyID} {
		for _, form := range idForms(id) {
			add(form, "")
		}
	}
	if len(r.res) == 0 {
		return nil
	}
	return r
}

// fold maps every rune to the smallest of the runes (?i) takes as equal to
// it (its unicode.SimpleFold orbit: k, K and the Kelvin sign all become K),
// so a text matches a value case-insensitively only if fold(text) contains
// fold(value). The check is a byte search, where the expressions cost
// seconds on a megabyte of text.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				return r - 'a' + 'A'
			}
			return r
		}
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// idForms are the ways a Swedish or Finnish personal or company number is
// written: as given, digits only, with and without the century, with the
// separator before the last four characters.
func idForms(id string) []string {
	id = strings.TrimSpace(id)
	if len(id) < 6 {
		return nil
	}
	forms := []string{id}
	var digits strings.Builder
	for _, r := range id {
		if r >= '0' && r <= '9' {
			digits.WriteRune(r)
		}
	}
	d := digits.String()
	if len(d) >= 10 {
		forms = append(forms, d, d[:len(d)-4]+"-"+d[len(d)-4:])
		if len(d) == 12 {
			short := d[2:]
			forms = append(forms, short, short[:6]+"-"+short[6:], short[:6]+"+"+short[6:])
		}
	}
	return forms
}

// join is a redactor of both r's and o's values.
func (r *redactor) join(o *redactor) *redactor {
	switch {
	case r == nil:
		return o
	case o == nil:
		return r
	}
	return &redactor{
		res:   append(append([]*regexp.Regexp{}, r.res...), o.res...),
		words: append(append([]string{}, r.words...), o.words...),
	}
}

// text returns s with the person's identifiers replaced.
func (r *redactor) text(s string) string {
	if r == nil || s == "" {
		return s
	}
	folded := fold(s)
	for i, re := range r.res {
		if !strings.Contains(folded, r.words[i]) {
			continue
		}
		// A match consumes its boundary characters, so two occurrences
		// sharing one ("X X") need a second pass.
		before := s
		for range 3 {
			next := re.ReplaceAllString(s, "${1}"+Redacted+"${3}")
			if next == s {
				break
			}
			s = next
		}
		if s != before {
			folded = fold(s)
		}
	}
	return s
}

// bytes is text for a JSON document: the replacement holds no character
// JSON escapes, so the document stays valid.
func (r *redactor) bytes(b []byte) []byte {
	if r == nil {
		return b
	}
	return []byte(r.text(string(b)))
}

// PersonRef is the keyed hash that stands for a person (or company)
// identifier: HMAC-SHA256 under the configured key of the identifier's
// digits (letters kept for ids that have them), hex, first 128 bits. The
// same person gets the same reference across processes and partner banks;
// without the key it cannot be reversed by trying every birth date.
func PersonRef(key []byte, id string) string {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
			return r
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return -1
	}, id)
	if norm == "" {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(norm))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
}
