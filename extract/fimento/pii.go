package fimento

// Personal data (doc.go 20). Fimento sends social security numbers,
// company ids and first and last names, in the process, the insights and
// its webhooks. None of them may land in clear; three tools see to it:
//   - scrub removes those members from a payload at any depth before it
//     is stored as raw;
//   - a redactor replaces the process's own identifiers wherever they occur
//     inside text finsync keeps (transaction descriptions, account names,
//     raw payloads, status messages), since a bank's transaction text can
//     name its customer ("Swish from Astrid Lindqvist"), in the spellings
//     banks print ("LINDQVIST ASTRID", "AAKERLUND", "19950309 6316"), and
//     any other Swedish personal or organisation number (package pii);
//   - PersonRef is a keyed hash of the identifier, the only form in which a
//     person can be joined across processes.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"

	"github.com/finsync/finsync/extract/pii"
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
const Redacted = pii.Redacted

// redactor replaces one process's identifiers in text: the names as whole
// words in any spelling a bank may print (pii.Fold: "BERGSTROEM",
// "Aakerlund", "ASTRIDS"), and its social security number and company id
// whatever their separators. Any other Swedish personal or organisation
// number (checksum valid) is replaced as well, even by a nil redactor: a
// bank's text may name a payer's or payee's.
type redactor struct {
	words pii.Words
	own   []string // the ids' digits (pii.OwnDigits)
}

// newRedactor builds the redactor of a person; empty or one-letter values
// are ignored (they would redact everything).
func newRedactor(ssn, companyID, firstName, lastName string) *redactor {
	r := &redactor{}
	r.words.AddName(firstName)
	r.words.AddName(lastName)
	for _, id := range []string{ssn, companyID} {
		if id = strings.TrimSpace(id); len(id) >= 6 {
			r.words.AddLiteral(id) // as given: a Finnish id ends in a letter
			r.own = append(r.own, pii.OwnDigits(id)...)
		}
	}
	if r.words.Empty() && len(r.own) == 0 {
		return nil
	}
	return r
}

// join is a redactor of both r's and o's values.
func (r *redactor) join(o *redactor) *redactor {
	switch {
	case r == nil:
		return o
	case o == nil:
		return r
	}
	j := &redactor{own: append(append([]string{}, r.own...), o.own...)}
	j.words.Join(&r.words)
	j.words.Join(&o.words)
	return j
}

// text returns s with the person's identifiers, and any personal or
// organisation number, replaced.
func (r *redactor) text(s string) string {
	if s == "" {
		return s
	}
	var spans []pii.Span
	var own []string
	if r != nil {
		spans = r.words.Find(s)
		own = r.own
	}
	return pii.Replace(s, append(spans, pii.Numbers(s, own...)...))
}

// bytes is text for a JSON document, applied to its strings (keys too) and
// to numbers that are an id, which become the string Redacted: the
// document stays valid JSON. Anything else goes through text.
func (r *redactor) bytes(b []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return []byte(r.text(string(b)))
	}
	v = r.value(v, 0)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return []byte(r.text(string(b)))
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func (r *redactor) value(v any, depth int) any {
	if depth > maxScrubDepth {
		return Redacted
	}
	switch x := v.(type) {
	case string:
		return r.text(x)
	case json.Number:
		if t := r.text(string(x)); t != string(x) {
			return t
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[r.text(k)] = r.value(e, depth+1)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = r.value(e, depth+1)
		}
	}
	return v
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
