package fino

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// decodeCategorization is json.Unmarshal(raw, c) for the categorizations a
// page is made of, without reflection: decoding was most of a run's CPU.
// It takes the common shape only — known keys in their exact case, each
// once, strings without escapes, integers where int64 fields are, integers
// or strings for the timestamps — and
// reports false for anything else, which the caller then hands to
// json.Unmarshal. So it never decides differently from encoding/json; a
// fuzz test (FuzzDecodeCategorization) holds it to that.
//
// It also appends to scrubbed what scrubJSON would make of raw with the
// transactions' scrub rules (dropping the payment partner's name and the
// different creditor and debtor), in the same pass.
//
// Strings point into raw (no copy): raw must not change while c is used.
func decodeCategorization(raw []byte, c *Categorization, scrubbed []byte) ([]byte, bool) {
	d := fastDecoder{b: raw, out: scrubbed}
	*c = Categorization{}
	var seen uint16
	ok := d.object(func(key string) (drop, nested bool) { return false, key == "transaction" }, func(key string) bool {
		var bit uint16
		switch key {
		case "accountId":
			bit, c.AccountID = 1, d.string()
		case "transactionId":
			bit, c.TransactionID = 2, d.string()
		case "creationDate":
			bit = 4
			if !d.null() {
				start := d.i
				d.string()
				if d.ok && c.CreationDate.UnmarshalJSON(raw[start:d.i]) != nil {
					d.ok = false
				}
			}
		case "descriptiveTag":
			bit, c.DescriptiveTag = 8, d.string()
		case "localizedTag":
			bit, c.LocalizedTag = 16, d.string()
		case "tags":
			bit, c.Tags = 32, d.stringList()
		case "transaction":
			bit = 64
			if !d.null() {
				c.Transaction = &Transaction{}
				d.transaction(c.Transaction)
			}
		default:
			return false
		}
		return firstTime(&seen, bit)
	})
	return d.out, ok && d.end()
}

func (d *fastDecoder) transaction(t *Transaction) {
	var seen uint16
	d.ok = d.object(func(key string) (drop, nested bool) {
		return key == "differentCreditor" || key == "differentDebitor", key == "paymentPartner"
	}, func(key string) bool {
		var bit uint16
		switch key {
		case "transactionId":
			bit, t.TransactionID = 1, d.string()
		case "amount":
			bit = 2
			if !d.null() {
				t.Amount = json.Number(d.number())
			}
		case "currency":
			bit, t.Currency = 4, d.string()
		case "bookingDate":
			bit, t.BookingDate = 8, d.timestamp()
		case "valueDate":
			bit, t.ValueDate = 16, d.timestamp()
		case "bookingText":
			bit, t.BookingText = 32, d.string()
		case "purpose":
			bit, t.Purpose = 64, d.string()
		case "paymentPartner":
			bit = 128
			if !d.null() {
				t.PaymentPartner = &PaymentPartner{}
				d.partner(t.PaymentPartner)
			}
		case "differentCreditor":
			bit, t.DifferentCreditor = 256, d.string()
		case "differentDebitor":
			bit, t.DifferentDebitor = 512, d.string()
		case "eref":
			bit, t.EndToEndReference = 1024, d.string()
		case "mref":
			bit, t.MandateReference = 2048, d.string()
		case "merchantCategoryCode":
			bit, t.MerchantCategoryCode = 4096, d.string()
		case "sepaPurposeCode":
			bit, t.SEPAPurposeCode = 8192, d.string()
		case "transactionCode":
			bit = 16384
			n := d.int64()
			if t.TransactionCode = int(n); int64(t.TransactionCode) != n {
				d.ok = false
			}
		default:
			return false
		}
		return firstTime(&seen, bit)
	})
}

func (d *fastDecoder) partner(p *PaymentPartner) {
	var seen uint16
	d.ok = d.object(func(key string) (drop, nested bool) { return key == "name", false }, func(key string) bool {
		var bit uint16
		switch key {
		case "bic":
			bit, p.BIC = 1, d.string()
		case "creditorId":
			bit, p.CreditorID = 2, d.string()
		case "iban":
			bit, p.IBAN = 4, d.string()
		case "name":
			bit, p.Name = 8, d.string()
		default:
			return false
		}
		return firstTime(&seen, bit)
	})
}

// firstTime marks bit in seen and reports whether it was not set: a key
// seen twice goes to encoding/json, which keeps the last.
func firstTime(seen *uint16, bit uint16) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// fastDecoder reads JSON from b; ok turns false at the first thing it does
// not take (then every reader returns zero values). It copies what it
// reads to out, compacted between members, less the members object is
// told to drop.
type fastDecoder struct {
	b   []byte
	i   int
	ok  bool
	out []byte
}

func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips whitespace and the byte c, or fails.
func (d *fastDecoder) consume(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}; member reads the value of key and
// reports whether it is taken. classify says which members are left out of
// out (drop) and which are objects that member writes to out itself
// (nested). It returns false when d failed.
func (d *fastDecoder) object(classify func(key string) (drop, nested bool), member func(key string) bool) bool {
	d.ok = d.consume('{')
	if !d.ok {
		return false
	}
	d.out = append(d.out, '{')
	if d.consume('}') {
		d.out = append(d.out, '}')
		return true
	}
	written := false
	for d.ok {
		d.space()
		keyStart := d.i
		key := d.string()
		keyRaw := d.b[keyStart:d.i]
		if !d.ok || !d.consume(':') {
			d.ok = false
			return false
		}
		d.space()
		drop, nested := classify(key)
		nested = nested && d.i < len(d.b) && d.b[d.i] == '{'
		member1 := func() {
			if written {
				d.out = append(d.out, ',')
			}
			d.out = append(append(d.out, keyRaw...), ':')
			written = true
		}
		valStart := d.i
		if nested {
			member1()
		}
		if !member(key) || !d.ok {
			d.ok = false
			return false
		}
		if !nested && !drop {
			member1()
			d.out = append(d.out, d.b[valStart:d.i]...)
		}
		if d.consume(',') {
			continue
		}
		if d.ok = d.consume('}'); d.ok {
			d.out = append(d.out, '}')
		}
		return d.ok
	}
	return false
}

// end reports whether only whitespace follows.
func (d *fastDecoder) end() bool {
	d.space()
	return d.ok && d.i == len(d.b)
}

// null consumes a null if one comes next (then a field keeps its zero
// value, as with encoding/json).
func (d *fastDecoder) null() bool {
	d.space()
	if strings.HasPrefix(unsafe.String(unsafe.SliceData(d.b[d.i:]), len(d.b)-d.i), "null") {
		d.i += 4
		return true
	}
	return false
}

// string reads a string without escapes or control characters, as a view
// of b; null is "". Invalid UTF-8 fails (encoding/json would replace it).
func (d *fastDecoder) string() string {
	if !d.ok {
		return ""
	}
	if d.null() {
		return ""
	}
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.ok = false
		return ""
	}
	start, ascii := d.i+1, true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[start:j]
			if !ascii && !utf8.Valid(s) {
				d.ok = false
				return ""
			}
			d.i = j + 1
			return unsafe.String(unsafe.SliceData(s), len(s))
		case c == '\\' || c < 0x20:
			d.ok = false
			return ""
		case c >= 0x80:
			ascii = false
		}
	}
	d.ok = false
	return ""
}

// stringList reads an array of strings; null is nil, [] an empty slice.
func (d *fastDecoder) stringList() []string {
	if !d.ok || d.null() {
		return nil
	}
	if d.ok = d.consume('['); !d.ok {
		return nil
	}
	out := []string{}
	if d.consume(']') {
		return out
	}
	for {
		d.space()
		if d.i < len(d.b) && d.b[d.i] != '"' {
			d.ok = false // null elements and other types: encoding/json's business
		}
		out = append(out, d.string())
		if !d.ok {
			return nil
		}
		if d.consume(',') {
			continue
		}
		d.ok = d.consume(']')
		return out
	}
}

// number reads a JSON number literal and returns its text.
func (d *fastDecoder) number() string {
	if !d.ok {
		return ""
	}
	d.space()
	start, j := d.i, d.i
	digits := func() bool {
		k := j
		for j < len(d.b) && '0' <= d.b[j] && d.b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(d.b) && d.b[j] == '-' {
		j++
	}
	if j < len(d.b) && d.b[j] == '0' {
		j++
	} else if !digits() {
		d.ok = false
		return ""
	}
	if j < len(d.b) && d.b[j] == '.' {
		j++
		if !digits() {
			d.ok = false
			return ""
		}
	}
	if j < len(d.b) && (d.b[j] == 'e' || d.b[j] == 'E') {
		j++
		if j < len(d.b) && (d.b[j] == '+' || d.b[j] == '-') {
			j++
		}
		if !digits() {
			d.ok = false
			return ""
		}
	}
	d.i = j
	s := d.b[start:j]
	return unsafe.String(unsafe.SliceData(s), len(s))
}

// timestamp reads a Timestamp: a string is its text, anything else goes
// to int64 (null included).
func (d *fastDecoder) timestamp() Timestamp {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '"' {
		return Timestamp{Text: d.string()}
	}
	return Timestamp{Unix: d.int64()}
}

// int64 reads an integer literal that fits int64; null is 0. Fractions
// and exponents fail (encoding/json refuses them for an int64).
func (d *fastDecoder) int64() int64 {
	if !d.ok || d.null() {
		return 0
	}
	s := d.number()
	if !d.ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.ok = false
	}
	return n
}
