package extract

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// A provider may add fields to the object that wraps a list of records (a
// user's accounts, a batch's transactions). Decoding into a struct drops
// them with the wrapper; Unknown finds them, so that they can be kept in
// the raw payload of the rows the wrapper holds (WithWrapper) or in rows of
// their own.

// WrapperKey is the member a row's raw payload gets for the members of its
// record's wrapper that finsync does not read. The underscore marks it as
// finsync's: should a record bring a member of that name itself, that one
// comes first.
const WrapperKey = "_wrapper"

// MaxWrapperBytes bounds what WithWrapper adds to a row: it is repeated in
// every row of the wrapper.
const MaxWrapperBytes = 4 << 10

// LeftOutKey counts the members Unknown left out to stay within its bound.
const LeftOutKey = "_left_out"

// Unknown returns the members of the JSON object obj that known does not
// name, as one compact JSON object with sorted keys, or nil when there are
// none (obj null included). Names match as encoding/json matches a field,
// case-insensitively; "a.b" names member b of the object in member a, and
// a's other members are kept under a. Members are taken in key order while
// the object stays within limit bytes; those that do not fit are left out
// and counted in LeftOutKey. Values are compacted, not scrubbed: the caller
// scrubs the result as it scrubs its records.
func Unknown(obj []byte, known []string, limit int) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(obj, &members); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []byte{'{'}
	leftOut := 0
	var value bytes.Buffer
	for _, k := range keys {
		isKnown, inner := false, []string(nil)
		for _, name := range known {
			head, rest, nested := strings.Cut(name, ".")
			switch {
			case !strings.EqualFold(head, k):
			case nested:
				inner = append(inner, rest)
			default:
				isKnown = true
			}
		}
		value.Reset()
		switch {
		case isKnown:
			continue
		case inner != nil:
			sub, err := Unknown(members[k], inner, limit)
			if err != nil || sub == nil {
				continue // not an object (its records do not decode either), or nothing new in it
			}
			value.Write(sub)
		default:
			if json.Compact(&value, members[k]) != nil {
				continue // cannot happen: json.Unmarshal checked it
			}
		}
		key, _ := json.Marshal(k)
		if len(out)+len(key)+value.Len()+2 > limit {
			leftOut++
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, key...), ':'), value.Bytes()...)
	}
	if leftOut > 0 {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = strconv.AppendInt(append(out, `"`+LeftOutKey+`":`...), int64(leftOut), 10)
	}
	if len(out) == 1 {
		return nil, nil
	}
	return append(out, '}'), nil
}

// DecodeWrapper is json.Unmarshal(b, v) for v a pointer to the struct of
// a wrapper, and returns the members of b that v's fields do not name
// (Unknown within limit). A wrapper type's UnmarshalJSON calls it with a
// field-only alias of itself.
func DecodeWrapper(b []byte, v any, limit int) (json.RawMessage, error) {
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return Unknown(b, JSONKeys(reflect.ValueOf(v).Elem().Interface()), limit)
}

// WithWrapper returns the JSON object raw with the member WrapperKey:
// wrapper added before its closing brace; raw itself when wrapper is nil or
// raw is no object.
func WithWrapper(raw, wrapper []byte) []byte {
	body := bytes.TrimSpace(raw)
	if len(wrapper) == 0 || len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return raw
	}
	head := bytes.TrimSpace(body[:len(body)-1])
	out := make([]byte, 0, len(body)+len(WrapperKey)+len(wrapper)+4)
	out = append(out, head...)
	if len(head) > 1 { // not {}
		out = append(out, ',')
	}
	out = append(out, `"`+WrapperKey+`":`...)
	out = append(out, wrapper...)
	return append(out, '}')
}

// JSONKeys lists the member names encoding/json decodes into the fields of
// the struct v (embedded structs' included): the known names of Unknown,
// so that a field added to the struct is never kept twice.
func JSONKeys(v any) []string {
	var keys []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case tag == "-":
			case f.Anonymous && name == "" && ft.Kind() == reflect.Struct:
				walk(ft)
			case !f.IsExported():
			case name == "":
				keys = append(keys, f.Name)
			default:
				keys = append(keys, name)
			}
		}
	}
	walk(reflect.TypeOf(v))
	return keys
}
