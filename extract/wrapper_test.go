package extract

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestUnknown(t *testing.T) {
	big := `"` + strings.Repeat("x", 100) + `"`
	for _, tc := range []struct {
		name, obj string
		known     []string
		limit     int
		want      string // "" = nil
	}{
		{"nothing new", `{"items":[1],"page":1}`, []string{"items", "page"}, 4096, ""},
		{"new members, sorted and compact", `{"items":[], "z": 1, "a" : {"b": [1, 2]}}`, []string{"items"}, 4096, `{"a":{"b":[1,2]},"z":1}`},
		{"case-insensitive like encoding/json", `{"Items":[],"new":true}`, []string{"items"}, 4096, `{"new":true}`},
		{"nested container", `{"overview":{"list":[],"total":3},"at":"x"}`, []string{"overview.list"}, 4096, `{"at":"x","overview":{"total":3}}`},
		{"nested container, nothing new", `{"overview":{"list":[]}}`, []string{"overview.list"}, 4096, ""},
		{"bounded", `{"a":1,"big":` + big + `,"c":2}`, nil, 40, `{"a":1,"c":2,"_left_out":1}`},
		{"null", `null`, nil, 4096, ""},
		{"empty", `{}`, nil, 4096, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Unknown([]byte(tc.obj), tc.known, tc.limit)
			if err != nil || string(got) != tc.want {
				t.Fatalf("Unknown(%s) = %s, %v; want %s", tc.obj, got, err, tc.want)
			}
			if got != nil && !json.Valid(got) {
				t.Fatalf("%s is not JSON", got)
			}
		})
	}
	if _, err := Unknown([]byte(`[1]`), nil, 4096); err == nil {
		t.Error("an array has no members: want an error")
	}
}

func TestWithWrapper(t *testing.T) {
	for _, tc := range []struct{ raw, wrapper, want string }{
		{`{"a":1}`, `{"x":2}`, `{"a":1,"_wrapper":{"x":2}}`},
		{` { "a" : 1 } `, `{"x":2}`, `{ "a" : 1,"_wrapper":{"x":2}}`},
		{`{}`, `{"x":2}`, `{"_wrapper":{"x":2}}`},
		{`{"a":1}`, ``, `{"a":1}`},
		{`[1]`, `{"x":2}`, `[1]`},
	} {
		got := WithWrapper([]byte(tc.raw), []byte(tc.wrapper))
		if string(got) != tc.want || !json.Valid(got) {
			t.Errorf("WithWrapper(%s, %s) = %s, want %s", tc.raw, tc.wrapper, got, tc.want)
		}
	}
}

func TestJSONKeys(t *testing.T) {
	type inner struct {
		B string `json:"b"`
	}
	type v struct {
		inner
		A       int    `json:"a,omitempty"`
		Skip    string `json:"-"`
		Dash    string `json:"-,"`
		Plain   string
		private string
	}
	if got, want := JSONKeys(v{}), []string{"b", "a", "-", "Plain"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("JSONKeys = %q, want %q", got, want)
	}
}
