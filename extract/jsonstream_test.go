package extract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/finsync/finsync/extract/hostile"
)

// Examples shaped as the providers' API docs show them.
const (
	fimentoPage  = `{"transactions":[{"_id":"a","amount":0,"date":"2019-08-24T14:15:22Z","description":"x","accountId":"acc","category":"income","cBankId":"b"},{"_id":"b","amount":-12.5}]}`
	finoHistory  = `{"histories":[{"account":{"accountId":"x"},"dailyBalances":[{"date":"2026-02-23","balance":7481.06}]}]}`
	finAPIPage   = `{"totalElements":1,"users":[{"userId":"u1","accounts":[{"accountId":"a1","amount":1426.84}]}],"durationInMonth":6,"creationDate":"2026-03-25","totalPages":1}`
	finAPIEmpty  = `{"users":[],"totalPages":1}`
	fingoalBatch = `{"enrichedTransactions":[{"transactionid":"t1"}],"failedTransactions":[]}`
)

func collect(t *testing.T, doc string, path ...string) ([]string, error) {
	t.Helper()
	var got []string
	err := EachElement(strings.NewReader(doc), path, func(raw json.RawMessage) error {
		got = append(got, string(raw))
		return nil
	})
	return got, err
}

func TestEachElement(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		path    []string
		want    []string
		wantErr string // substring; "" means success
	}{
		{"top-level array", `[1, "two", {"3":[3]}, null]`, nil, []string{`1`, `"two"`, `{"3":[3]}`, `null`}, ""},
		{"fimento transactions", fimentoPage, []string{"transactions"},
			[]string{`{"_id":"a","amount":0,"date":"2019-08-24T14:15:22Z","description":"x","accountId":"acc","category":"income","cBankId":"b"}`, `{"_id":"b","amount":-12.5}`}, ""},
		{"fino histories", finoHistory, []string{"histories"},
			[]string{`{"account":{"accountId":"x"},"dailyBalances":[{"date":"2026-02-23","balance":7481.06}]}`}, ""},
		{"finAPI users between scalars", finAPIPage, []string{"users"},
			[]string{`{"userId":"u1","accounts":[{"accountId":"a1","amount":1426.84}]}`}, ""},
		{"nested path", `{"meta":{"big":[1,2,3]},"data":{"total":2,"items":[{"a":1},{"b":2}]}}`, []string{"data", "items"}, []string{`{"a":1}`, `{"b":2}`}, ""},
		{"fingoal with an empty sibling array", fingoalBatch, []string{"enrichedTransactions"}, []string{`{"transactionid":"t1"}`}, ""},
		{"empty array", finAPIEmpty, []string{"users"}, nil, ""},
		{"null array is empty", `{"users":null}`, []string{"users"}, nil, ""},
		{"whitespace kept inside, trimmed around", "{ \"a\" : [ { \"x\" : 1 } ,\n 2 ] }\n", []string{"a"}, []string{`{ "x" : 1 }`, `2`}, ""},
		{"escaped key matches", `{"tr\u0061nsactions":[1]}`, []string{"transactions"}, []string{`1`}, ""},
		{"huge number is fine", `{"a":[1e400],"n":1e400}`, []string{"a"}, []string{`1e400`}, ""},

		{"missing path", `{"users":[]}`, []string{"transactions"}, nil, "path not found"},
		{"missing below null", `{"data":null}`, []string{"data", "items"}, nil, "path not found"},
		{"object where array wanted", `{"users":{"a":1}}`, []string{"users"}, nil, "users is an object, want array"},
		{"scalar where object wanted", `{"data":5}`, []string{"data", "items"}, nil, "data is a scalar, want object"},
		{"top level not an array", `{"a":1}`, nil, nil, "document is an object, want array"},
		{"duplicate path key", `{"users":[1],"users":[2]}`, []string{"users"}, nil, "duplicate key"},

		{"empty body", ``, []string{"users"}, nil, "offset 0: unexpected EOF"},
		{"truncated in element", `{"users":[{"userId":"u1"},{"userId":"u`, []string{"users"}, nil, "unexpected EOF"},
		{"truncated after element", `{"users":[{"userId":"u1"},`, []string{"users"}, nil, "unexpected EOF"},
		{"truncated after array", `{"users":[{"userId":"u1"}],"totalPages":`, []string{"users"}, nil, "unexpected EOF"},
		{"missing final brace", `{"users":[1]`, []string{"users"}, nil, "unexpected EOF"},
		{"broken element", `{"users":[{"a":1},{"a":1 "b":2}]}`, []string{"users"}, nil, "element 1 after byte offset 17"},
		{"trailing comma in array", `{"users":[1,]}`, []string{"users"}, nil, "offset"},
		{"missing colon in skipped key", `{"x" 1,"users":[]}`, []string{"users"}, nil, "offset 5: invalid character '1' after object key"},
		{"broken skipped sibling", `{"users":[],"meta":{"a":]}}`, []string{"users"}, nil, "offset"},
		{"trailing garbage", `{"users":[]} {}`, []string{"users"}, nil, "data after the document"},
		{"two documents", `[1][2]`, nil, nil, "data after the document"},
		{"trailing bracket", `{"users":[]}]`, []string{"users"}, nil, "offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, tt.doc, tt.path...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("elements = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEachElementMissingPathIsSentinel(t *testing.T) {
	_, err := collect(t, `{"users":[]}`, "transactions")
	if !errors.Is(err, ErrPathNotFound) {
		t.Fatalf("err = %v, want ErrPathNotFound", err)
	}
}

// Every proper prefix of a document is a truncated body: always an error,
// never a short page.
func TestEachElementEveryTruncationFails(t *testing.T) {
	for _, doc := range []string{fimentoPage, finoHistory, finAPIPage, finAPIEmpty, `[{"a":[1,2]},"x"]`} {
		for i := range len(doc) {
			if _, err := collect(t, doc[:i], pathOf(doc)...); err == nil {
				t.Fatalf("prefix %q of %q: no error", doc[:i], doc)
			}
		}
		if _, err := collect(t, doc, pathOf(doc)...); err != nil {
			t.Fatalf("whole %q: %v", doc, err)
		}
	}
}

func pathOf(doc string) []string {
	if doc[0] == '[' {
		return nil
	}
	key := doc[2 : strings.IndexByte(doc[2:], '"')+2]
	if key == "totalElements" {
		key = "users"
	}
	return []string{key}
}

func TestEachElementFnError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := EachElement(strings.NewReader(`[1,2,3]`), nil, func(json.RawMessage) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("err = %v after %d elements, want stop (unwrapped) after 2", err, n)
	}
}

func TestEachElementScalars(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path []string
		want map[string]string
	}{
		{"finAPI page: before and after the array", finAPIPage, []string{"users"},
			map[string]string{"totalElements": "1", "durationInMonth": "6", "creationDate": `"2026-03-25"`, "totalPages": "1"}},
		{"nested: dotted keys, objects and arrays left out", `{"ok":true,"meta":{"x":1},"list":[1],"data":{"total":2,"next":null,"items":[]}}`, []string{"data", "items"},
			map[string]string{"ok": "true", "data.total": "2", "data.next": "null"}},
		{"last value wins", `{"n":1,"a":[],"n":2}`, []string{"a"}, map[string]string{"n": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EachElementScalars(strings.NewReader(tt.doc), tt.path, func(json.RawMessage) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			gotS := map[string]string{}
			for k, v := range got {
				gotS[k] = string(v)
			}
			if !reflect.DeepEqual(gotS, tt.want) {
				t.Fatalf("scalars = %v, want %v", gotS, tt.want)
			}
		})
	}
}

// pageReader produces {"pad":"…","transactions":[e,e,…],"totalPages":1}
// on the fly, n elements, without ever holding the document.
type pageReader struct {
	n, i  int
	state int
	buf   []byte
}

func (r *pageReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		switch {
		case r.state == 0:
			r.buf = []byte(`{"transactions":[`)
			r.state = 1
		case r.state == 1 && r.i < r.n:
			if r.i > 0 {
				r.buf = append(r.buf, ',')
			}
			r.buf = fmt.Appendf(r.buf, `{"_id":"tx-%09d","amount":-12.34,"date":"2019-08-24T14:15:22Z","description":"T0064 TARGET STORE","category":"shopping"}`, r.i)
			r.i++
		case r.state == 1:
			r.buf = []byte(`],"totalPages":1}`)
			r.state = 2
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Memory must not grow with the response: a ~130 MB page is walked while the
// live heap stays far below its size. (Live, after a GC: the heap between
// collections also holds garbage, up to GOGC's 100% more, whose amount
// depends on when the collector last ran.)
func TestEachElementMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("large document")
	}
	const n = 1_000_000 // ~130 bytes each
	var maxHeap uint64
	var ms runtime.MemStats
	count := 0
	err := EachElement(&pageReader{n: n}, []string{"transactions"}, func(raw json.RawMessage) error {
		if count%50_000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			maxHeap = max(maxHeap, ms.HeapAlloc)
		}
		count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("%d elements, want %d", count, n)
	}
	if maxHeap > 16<<20 {
		t.Fatalf("heap reached %d MB while streaming a ~%d MB document", maxHeap>>20, n*130>>20)
	}
}

// referenceElements answers what EachElement should, the slow way: by
// json.Unmarshal of the whole document. kind is "ok", "notfound", "shape"
// (a value of the wrong type on the path) or "dup" (a key on the path
// repeated, where json.Unmarshal keeps the last and streaming refuses).
func referenceElements(doc []byte, path []string) (elems []json.RawMessage, top map[string]json.RawMessage, kind string) {
	cur := json.RawMessage(bytes.TrimSpace(doc))
	for i, k := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, nil, "shape"
		}
		if m == nil {
			return nil, nil, "notfound"
		}
		if countKey(cur, k) > 1 {
			return nil, nil, "dup"
		}
		if i == 0 {
			top = m
		}
		v, ok := m[k]
		if !ok {
			return nil, nil, "notfound"
		}
		cur = v
	}
	if string(cur) == "null" {
		return nil, top, "ok"
	}
	if err := json.Unmarshal(cur, &elems); err != nil {
		return nil, nil, "shape"
	}
	return elems, top, "ok"
}

// countKey counts the members named key of the object obj.
func countKey(obj []byte, key string) int {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return 0
	}
	n := 0
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return n
		}
		if k == key {
			n++
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return n
		}
	}
	return n
}

func FuzzEachElement(f *testing.F) {
	seeds := []struct{ doc, path string }{
		{`{"transactions":[{"_id":"a","amount":0}]}`, "transactions"},
		{fimentoPage, "transactions"},
		{finoHistory, "histories"},
		{finAPIPage, "users"},
		{finAPIEmpty, "users"},
		{fingoalBatch, "enrichedTransactions"},
		{`{"finsights":[{"finsight_id":"f1","amountFound":10.00},{"amountFound":"10.00"}]}`, "finsights"},
		{`{"status":{"batch_request_id":"b1"},"data":{"items":[1,[2],{"3":3}]}}`, "data/items"},
		{`[{"_id":"605c6c479691950d359bb0e9","name":"Demo partner bank","isBroker":true}]`, ""},
		{`{"users":null}`, "users"},
		{`{"a":[1],"a":[2]}`, "a"},
		{`{"a":[1e400, -0.0e-5, "\ud800", "\u00e9"]}`, "a"},
		{`{"users":[{"userId":"u`, "users"},
		{`{"a" 1}`, "a"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.doc), s.path)
	}
	for _, h := range hostile.Payloads() {
		f.Add(h, "users")
	}
	f.Fuzz(func(t *testing.T, doc []byte, pathSpec string) {
		var path []string
		if pathSpec != "" {
			path = strings.Split(pathSpec, "/")
		}
		var got []json.RawMessage
		scalars, err := EachElementScalars(bytes.NewReader(doc), path, func(raw json.RawMessage) error {
			got = append(got, raw)
			return nil
		})
		if !json.Valid(doc) {
			if err == nil {
				t.Fatalf("invalid JSON accepted: %q", doc)
			}
			return
		}
		want, top, kind := referenceElements(doc, path)
		switch kind {
		case "ok":
			if err != nil {
				t.Fatalf("%q at %q: %v", doc, path, err)
			}
			if len(got) != len(want) {
				t.Fatalf("%q at %q: %d elements, json.Unmarshal gives %d", doc, path, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%q element %d = %q, json.Unmarshal gives %q", doc, i, got[i], want[i])
				}
			}
			if len(path) == 1 {
				checkScalars(t, top, path[0], scalars)
			}
			checkLimits(t, doc, path, want)
		case "notfound":
			if !errors.Is(err, ErrPathNotFound) {
				t.Fatalf("%q at %q: err = %v, want ErrPathNotFound", doc, path, err)
			}
		default: // shape, dup
			if err == nil || errors.Is(err, ErrPathNotFound) {
				t.Fatalf("%q at %q (%s): err = %v, want a shape error", doc, path, kind, err)
			}
		}
	})
}

// checkScalars: the top-level scalar members other than the array, as
// json.Unmarshal sees them.
func checkScalars(t *testing.T, top map[string]json.RawMessage, arrayKey string, got map[string]json.RawMessage) {
	t.Helper()
	want := 0
	for k, v := range top {
		if k == arrayKey || v[0] == '{' || v[0] == '[' {
			continue
		}
		want++
		if !sameJSON(v, got[k]) {
			t.Fatalf("scalar %q = %q, json.Unmarshal gives %q", k, got[k], v)
		}
	}
	if len(got) != want {
		t.Fatalf("%d scalars %q, want %d", len(got), got, want)
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

// BenchmarkEachElement walks a page of 1,000 categorization-sized elements
// (go test -bench; make bench measures the pipeline as a whole).
func BenchmarkEachElement(b *testing.B) {
	var doc bytes.Buffer
	r := &pageReader{n: 1000}
	doc.ReadFrom(r)
	b.SetBytes(int64(doc.Len()))
	for b.Loop() {
		if err := EachElement(bytes.NewReader(doc.Bytes()), []string{"transactions"}, func(json.RawMessage) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// checkLimits walks doc under small limits: the elements within them are
// handed on exactly as without limits, in order; the others go to
// tooLarge as valid JSON, and none is lost.
func checkLimits(t *testing.T, doc []byte, path []string, want []json.RawMessage) {
	t.Helper()
	lim := Limits{Record: 64, Field: 16}
	var got []json.RawMessage
	large := 0
	_, err := Walk(bytes.NewReader(doc), path, lim, func(raw json.RawMessage) error {
		got = append(got, raw)
		return nil
	}, func(tl TooLarge) error {
		if tl.Raw != nil && !json.Valid(tl.Raw) {
			t.Fatalf("%q: too large element's raw %q is not JSON", doc, tl.Raw)
		}
		large++
		return nil
	})
	if err != nil {
		t.Fatalf("%q under limits: %v", doc, err)
	}
	var within []json.RawMessage
	for _, w := range want {
		if len(w) <= 64 && longestString(w) <= 16 {
			within = append(within, w)
		}
	}
	if len(got) != len(within) || large != len(want)-len(within) {
		t.Fatalf("%q under limits: %d kept and %d too large, want %d and %d", doc, len(got), large, len(within), len(want)-len(within))
	}
	for i := range got {
		if !bytes.Equal(got[i], within[i]) {
			t.Fatalf("%q under limits: element %d = %q, want %q", doc, i, got[i], within[i])
		}
	}
}

// longestString is the longest string's JSON text in raw, quotes included.
func longestString(raw []byte) int {
	longest, start, esc := 0, -1, false
	for i, c := range raw {
		switch {
		case start < 0 && c == '"':
			start = i
		case start < 0:
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			longest, start = max(longest, i-start+1), -1
		}
	}
	return longest
}
