// Package hostile is a corpus of hostile provider payloads: what a broken
// or malicious provider (or webhook sender) could send. Every decoder's
// fuzz target takes them as seeds, so `go test` runs each of them through
// every decoder: a clear error or a reject, never a panic, a leak or an
// unbounded allocation.
package hostile

import (
	"bytes"
	"strings"
)

// Payloads returns the corpus, each a fresh slice.
func Payloads() [][]byte {
	deep := func(open, close string, n int) []byte {
		return []byte(strings.Repeat(open, n) + strings.Repeat(close, n))
	}
	amounts := []string{`NaN`, `Infinity`, `-Infinity`, `1e400`, `-1e400`, `1e-400`, `"NaN"`, `"1,5"`, `{}`, `[]`, `true`, `null`,
		strings.Repeat("9", 1000), `0x10`, `- 1`, `1.2.3`}
	dates := []string{`"0000-01-01"`, `"9999-12-31"`, `"0000-00-00"`, `"2026-02-30"`, `"1969-12-31"`, `"2149-06-07"`, `-62135596800`,
		`253402300800`, `"2026-13-01T00:00:00Z"`, `""`, `0`, `1e300`}
	var out [][]byte
	for _, a := range amounts {
		for _, key := range []string{"amount", "balance", "amountnum", "amountFound", "total"} {
			out = append(out, []byte(`{"`+key+`":`+a+`,"transactionId":"t","_id":"t","accountId":"a","userId":"u","date":"2026-01-01"}`))
		}
	}
	for _, d := range dates {
		for _, key := range []string{"date", "bookingDate", "creationDate", "nextBookingDate", "finsightDate"} {
			out = append(out, []byte(`{"`+key+`":`+d+`,"transactionId":"t","_id":"t","amount":1}`))
		}
	}
	out = append(out,
		deep("[", "]", 100000),
		deep(`{"a":`, "}", 50000),
		[]byte(`{"description":"`+string([]byte{0xff, 0xfe, 0xc3})+`","transactionId":"\xed\xa0\x80","amount":1}`), // invalid UTF-8, a lone surrogate
		[]byte(`{"description":"\ud800","transactionId":"t","amount":1}`),
		[]byte("\xef\xbb\xbf{\"transactionId\":\"t\",\"amount\":1}"), // byte order mark
		[]byte(`{"transactionId":"t","transactionId":"u","amount":1,"amount":"x"}`),
		[]byte(`{"transactionId":"t","amount":1} trailing`),
		[]byte(`{"users":[{"userId":"u","accounts":[{"accountId":"a","amount":1}`), // cut off
		[]byte(`{"transactionId":"`+strings.Repeat("x", 4<<20)+`","amount":1}`),    // a 4 MiB string
		bytes.Repeat([]byte(`{"amount":1},`), 100000),
		[]byte(`{"tags":`+strings.Repeat(`"x",`, 1)+`"y"}`),
		[]byte(`{"tags":[`+strings.Repeat(`"x",`, 100000)+`"y"]}`),
		[]byte(`{"amount":1e309,"balance":-0,"transactionId":"t"}`),
		[]byte{},
		[]byte(`nul`),
		[]byte("\x00\x00\x00"),
	)
	return out
}
