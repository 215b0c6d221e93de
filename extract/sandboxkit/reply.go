package sandboxkit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// Reply writes v as a JSON body with status through WriteBodyStatus, so
// the Truncated fault cuts it in half while Content-Length still announces
// all of it, as a dropped connection would.
func (in *Injector) Reply(w http.ResponseWriter, d Draw, status int, v any) {
	in.WriteBodyStatus(w, d, status, MustJSON(v))
}

// MustJSON encodes values whose types cannot fail to encode.
func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("sandboxkit: " + err.Error())
	}
	return b
}

// WriteJSON writes v as a JSON body with status, no faults applied.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(MustJSON(v))
}

// EncodeJSON is WriteJSON as a json.Encoder writes: with a final newline.
func EncodeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ListJSON joins encoded items into head[item,item,...]tail. Building the
// list by hand spares encoding/json re-compacting every json.RawMessage.
func ListJSON(head string, items [][]byte, tail string) []byte {
	n := len(head) + len(tail) + len(items) + 2
	for _, it := range items {
		n += len(it)
	}
	b := make([]byte, 0, n)
	b = append(append(b, head...), '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(append(b, ']'), tail...)
}

// PageOf is page (from 1) of items, size items a page; past the end, none.
func PageOf[T any](items []T, page, size int) []T {
	from := min(max(page-1, 0)*size, len(items))
	return items[from:min(from+size, len(items))]
}

// RandomHex is n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
