package extract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// hugeReader is {"items":[{"id":"a"},{"id":"big","purpose":"xxxx…(n)"},{"id":"c"}]}
// made on the fly; endless: the string never ends.
func hugeReader(n int64, endless bool) io.Reader {
	head := `{"items":[{"id":"a"},{"id":"big","purpose":"`
	tail := `"},{"id":"c"}]}`
	body := io.LimitReader(repeatByte('x'), n)
	if endless {
		return io.MultiReader(strings.NewReader(head), repeatByte('x'))
	}
	return io.MultiReader(strings.NewReader(head), body, strings.NewReader(tail))
}

type repeatByte byte

func (b repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func walkAll(t *testing.T, r io.Reader, lim Limits) (kept []string, large []TooLarge, err error) {
	t.Helper()
	_, err = Walk(r, []string{"items"}, lim, func(raw json.RawMessage) error {
		kept = append(kept, string(raw))
		return nil
	}, func(tl TooLarge) error {
		large = append(large, tl)
		return nil
	})
	return kept, large, err
}

func TestWalkRejectsAHugeFieldWithoutHoldingIt(t *testing.T) {
	lim := Limits{Record: 1 << 20, Field: 256 << 10, Elements: 10}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept, large, err := walkAll(t, hugeReader(128<<20, false), lim)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(kept, " ") != `{"id":"a"} {"id":"c"}` {
		t.Fatalf("kept %q", kept)
	}
	if len(large) != 1 {
		t.Fatalf("%d too large, want 1", len(large))
	}
	want := "record of 134217753 bytes is over the 1 MiB record limit (FINSYNC_MAX_RECORD_BYTES); a string of 134217730 bytes is over the 256 KiB field limit (FINSYNC_MAX_FIELD_BYTES)"
	if large[0].Reason != want {
		t.Fatalf("reason %q\nwant   %q", large[0].Reason, want)
	}
	if !json.Valid(large[0].Raw) || len(large[0].Raw) > keptPrefix+2 || !bytes.HasPrefix(large[0].Raw, []byte(`{"id":"big","purpose":"xxx`)) {
		t.Fatalf("raw %d bytes: %.80q", len(large[0].Raw), large[0].Raw)
	}
	// Allocated in all, not live: the walk must not have buffered the field.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("allocated %d MiB walking a 128 MiB field", got>>20)
	}
}

func TestWalkFieldLimitAlone(t *testing.T) {
	lim := Limits{Record: 1 << 20, Field: 1 << 10}
	kept, large, err := walkAll(t, hugeReader(2000, false), lim)
	if err != nil || len(kept) != 2 || len(large) != 1 {
		t.Fatalf("kept %q, large %v, err %v", kept, large, err)
	}
	if want := "a string of 2002 bytes is over the 1 KiB field limit (FINSYNC_MAX_FIELD_BYTES)"; large[0].Reason != want {
		t.Fatalf("reason %q", large[0].Reason)
	}
	if !json.Valid(large[0].Raw) {
		t.Fatalf("raw %q", large[0].Raw)
	}
}

// A string that never ends: the element is rejected as cut off, and the
// body's error (here the end of a limited reader) still ends the page.
func TestWalkEndlessStringIsRejectedThenFails(t *testing.T) {
	lim := Limits{Record: 1 << 20, Field: 256 << 10}
	kept, large, err := walkAll(t, io.LimitReader(hugeReader(0, true), 64<<20), lim)
	if err == nil || len(kept) != 1 || len(large) != 1 {
		t.Fatalf("kept %q, large %d, err %v", kept, len(large), err)
	}
	if !strings.HasPrefix(large[0].Reason, "record of 67108") || !strings.Contains(large[0].Reason, "+ bytes is over the 1 MiB record limit") {
		t.Fatalf("reason %q", large[0].Reason)
	}
}

func TestWalkElementLimit(t *testing.T) {
	doc := `{"items":[1,2,3,4]}`
	kept, _, err := walkAll(t, strings.NewReader(doc), Limits{Elements: 3})
	if !errors.Is(err, ErrTooManyElements) || len(kept) != 3 {
		t.Fatalf("kept %q, err %v", kept, err)
	}
	if !strings.Contains(err.Error(), "FINSYNC_MAX_PAGE_ELEMENTS=3") {
		t.Fatalf("err %v", err)
	}
	if kept, _, err := walkAll(t, strings.NewReader(doc), Limits{Elements: 4}); err != nil || len(kept) != 4 {
		t.Fatalf("kept %q, err %v", kept, err)
	}
}

// Without a tooLarge func an element over the limits fails the document.
func TestWalkTooLargeWithoutTaker(t *testing.T) {
	_, err := Walk(hugeReader(2<<20, false), []string{"items"}, Limits{Record: 1 << 20}, func(json.RawMessage) error { return nil }, nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v", err)
	}
}

// A scalar beside the array over the field limit is not kept, and a key
// on the path that long fails the document; neither is buffered whole.
func TestWalkScalarsAndKeysWithinTheFieldLimit(t *testing.T) {
	doc := `{"note":"` + strings.Repeat("n", 5000) + `","totalPages":2,"items":[1]}`
	scalars, err := Walk(strings.NewReader(doc), []string{"items"}, Limits{Record: 1 << 20, Field: 1 << 10}, func(json.RawMessage) error { return nil }, nil)
	if err != nil || string(scalars["totalPages"]) != "2" || scalars["note"] != nil {
		t.Fatalf("scalars %q, err %v", scalars, err)
	}
	key := `{"` + strings.Repeat("k", 200_000) + `":1,"items":[1]}`
	if _, err := Walk(strings.NewReader(key), []string{"items"}, Limits{Record: 1 << 20, Field: 1 << 10}, func(json.RawMessage) error { return nil }, nil); err == nil {
		t.Fatal("a key over the field limit was accepted")
	}
}

func TestCloseJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"id":"x","purpose":"abc`, `{"id":"x","purpose":"abc"}`},
		{`{"id":"x","purp`, `{"id":"x"}`},
		{`{"id":"x",`, `{"id":"x"}`},
		{`{"a":[1,2,{"b":tr`, `{"a":[1,2,{}]}`},
		{`{"a":12`, `{"a":{}}`[:0] + `{}`},
		{`{"a":"x\u00e`, `{"a":"x"}`},
		{`{"a":"é`, `{"a":""}`},
		{`["a","b`, `["a","b"]`},
		{`{"k`, `{}`},
		{`"ab\n`, `"ab\n"`},
		{`"ab\`, `"ab"`},
		{` 12`, ``},
	} {
		if got := string(closeJSON([]byte(c.in))); got != c.want {
			t.Errorf("closeJSON(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Every prefix of a valid document closes into valid JSON (or nothing).
func FuzzCloseJSON(f *testing.F) {
	for _, s := range []string{fimentoPage, finoHistory, finAPIPage, fingoalBatch, `{"a":"x\"\\\u00e9y","b":[true,false,null,-1.5e+3]}`, `"abc"`, `[[[]],{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) || len(doc) > 4096 {
			return
		}
		for n := range len(doc) + 1 {
			if got := closeJSON(doc[:n]); got != nil && !json.Valid(got) {
				t.Fatalf("closeJSON(%q) = %q, not JSON", doc[:n], got)
			}
		}
	})
}

// CheckRecord holds a record of a whole document to the limits as Walk
// holds a streamed one.
func TestCheckRecord(t *testing.T) {
	c := NewClient(ClientOptions{BaseURL: "http://127.0.0.1:1", Limits: Limits{Record: 64 << 10, Field: 8 << 10}})
	str := func(n int) string { return `{"id":"r1","note":"` + strings.Repeat("x", n) + `"}` }
	tests := []struct {
		name, raw string
		reason    string // "" : within the limits
	}{
		{"small", `{"id":"r1","amount":1.5}`, ""},
		{"a field at the limit", str(8<<10 - 2), ""},
		{"a field over the limit", str(9 << 10), "FINSYNC_MAX_FIELD_BYTES"},
		{"a record over the limit", `{"id":"r1","notes":[` + strings.Repeat(`"xxxxxxxx",`, 7000) + `"x"]}`, "FINSYNC_MAX_RECORD_BYTES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			large, ok := c.CheckRecord(json.RawMessage(tc.raw))
			if ok != (tc.reason == "") || !strings.Contains(large.Reason, tc.reason) {
				t.Fatalf("ok %v, reason %q; want %q", ok, large.Reason, tc.reason)
			}
			if !ok && (len(large.Raw) > keptPrefix+8 || !json.Valid(large.Raw) || !strings.HasPrefix(string(large.Raw), `{"id":"r1"`)) {
				t.Errorf("raw kept: %d bytes, valid %v", len(large.Raw), json.Valid(large.Raw))
			}
		})
	}
}
