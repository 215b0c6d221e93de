package fingoal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/finsync/finsync/extract/fingoal/stringify"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// canonicalCases are JSON.stringify(JSON.parse(in)) as Node 20 prints it;
// want "" means JSON.parse throws.
var canonicalCases = []struct{ in, want string }{
	// Numbers: float64, printed as Number::toString.
	{`{"amountFound":10.00}`, `{"amountFound":10}`},
	{`1e1`, `10`},
	{`12.50`, `12.5`},
	{`1e21`, `1e+21`},
	{`1e20`, `100000000000000000000`},
	{`100`, `100`},
	{`1e-7`, `1e-7`},
	{`0.000001`, `0.000001`},
	{`123e-20`, `1.23e-18`},
	{`0.1`, `0.1`},
	{`-0`, `0`},
	{`-0.0e5`, `0`},
	{`5e-324`, `5e-324`},
	{`1.7976931348623157e308`, `1.7976931348623157e+308`},
	{`1e400`, `null`},
	{`-1e400`, `null`},
	{`1e-400`, `0`},
	{`12345678901234567890`, `12345678901234567000`},
	{`123456789012345678901234567890`, `1.2345678901234568e+29`},
	{`9007199254740993`, `9007199254740992`},
	{`0.1e1`, `1`},
	{`1E+2`, `100`},
	{`-1.5E-10`, `-1.5e-10`},
	{`1e23`, `1e+23`}, {`8.41e21`, `8.41e+21`}, {`5e-7`, `5e-7`}, {`123456789e-15`, `1.23456789e-7`},
	// Correctly rounded however long: just above a halfway point, and the
	// halfway point under the smallest subnormal.
	{`9007199254740993.00000000000000000000000000000000000001`, `9007199254740994`},
	{`9007199254740993.` + strings.Repeat("0", 1000) + `1`, `9007199254740994`},
	{`2.4703282292062327e-324`, `0`}, {`2.4703282292062328e-324`, `5e-324`},
	// Strings: decoded, then only " \ and U+0000..U+001F escaped.
	{`"\u00e9"`, `"é"`},
	{`"caf\u00E9"`, `"café"`},
	{`"\/"`, `"/"`},
	{`"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
	{`"\u0000\u001f\u007f"`, "\"\\u0000\\u001f\x7f\""},
	{`"\u2028\u2029<>&'"`, "\"\u2028\u2029<>&'\""},
	{`"\ud800"`, `"\ud800"`},
	{`"\udc00"`, `"\udc00"`},
	{`"\ud83d\ude00"`, `"😀"`},
	{`"\ud83d\ud83d\ude00"`, `"\ud83d😀"`},
	{`"\udc00\ud800"`, `"\udc00\ud800"`},
	{`"\uD800x"`, `"\ud800x"`},
	{`"\"\\"`, `"\"\\"`},
	{`"é😀"`, `"é😀"`},
	// Invalid UTF-8: U+FFFD per maximal ill-formed subpart.
	{"\"\xff\"", "\"\uFFFD\""},
	{"\"\xe2\x82A\"", "\"\uFFFDA\""},
	{"\"\xed\xa0\x80\"", "\"\uFFFD\uFFFD\uFFFD\""},
	{"\"\xf0\x9f\x98\"", "\"\uFFFD\""},
	{"\xff", ""},
	// Objects: first position, last value; array indexes first.
	{`{"a":1,"a":2}`, `{"a":2}`},
	{`{"a":{"x":1},"b":2,"a":[3]}`, `{"a":[3],"b":2}`},
	{`{"a":{"a":1,"a":2},"a":{"b":1,"b":[]}}`, `{"a":{"b":[]}}`},
	{`{"a":1,"b":2,"a":"x"}`, `{"a":"x","b":2}`},
	{`{"b":1,"2":2,"1":3}`, `{"1":3,"2":2,"b":1}`},
	{`{"1":1,"b":2,"1":3}`, `{"1":3,"b":2}`},
	{`{"01":1,"1":2,"-1":3,"1.0":4,"0":5}`, `{"0":5,"1":2,"01":1,"-1":3,"1.0":4}`},
	{`{"4294967295":1,"4294967294":2,"b":3}`, `{"4294967294":2,"4294967295":1,"b":3}`},
	{`{"\u0031":1,"1":2}`, `{"1":2}`},
	{`{"\u00e9":1,"é":2}`, `{"é":2}`},
	{`{"__proto__":{"x":1}}`, `{"__proto__":{"x":1}}`},
	{` [ 1 , [ ] , { } , "a" , true , false , null ] `, `[1,[],{},"a",true,false,null]`},
	{`{"x":[{"y":[{"z":1.50}]}]}`, `{"x":[{"y":[{"z":1.5}]}]}`},
	{`[]`, `[]`}, {`{}`, `{}`}, {`""`, `""`}, {`true`, `true`}, {`null`, `null`},
	// What JSON.parse refuses.
	{`01`, ``}, {`1.`, ``}, {`.5`, ``}, {`+1`, ``}, {`-`, ``}, {`1e`, ``}, {`[1,]`, ``}, {`{"a":1,}`, ``},
	{`{'a':1}`, ``}, {`"\x"`, ``}, {`"\u12"`, ``}, {"\"a\tb\"", ``}, {`NaN`, ``}, {`[1] x`, ``}, {``, ``},
	{"\xef\xbb\xbf{}", ``}, {`{"a"}`, ``}, {`{1:2}`, ``}, {`[`, ``}, {`"abc`, ``}, {`tru`, ``},
}

func TestCanonical(t *testing.T) {
	for _, c := range canonicalCases {
		got, err := stringify.Canonical([]byte(c.in))
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
}

func TestCanonicalBoundsDepth(t *testing.T) {
	for open, close := range map[string]string{"[": "]", `{"a":`: "}"} {
		nest := func(n int) []byte { return []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n)) }
		if _, err := stringify.Canonical(nest(stringify.MaxCanonicalDepth)); err != nil {
			t.Errorf("%s × %d: %v", open, stringify.MaxCanonicalDepth, err)
		}
		if _, err := stringify.Canonical(nest(stringify.MaxCanonicalDepth + 1)); !errors.Is(err, stringify.ErrTooDeep) {
			t.Errorf("%s × %d: %v, want stringify.ErrTooDeep", open, stringify.MaxCanonicalDepth+1, err)
		}
	}
}

// TestCanonicalMatchesNode compares Canonical with Node's own
// JSON.stringify(JSON.parse(Buffer.toString())) on the table above, the
// fuzz seeds and corpus, the hostile corpus and thousands of generated
// texts aimed at numbers, escapes and keys, all in one node process.
func TestCanonicalMatchesNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: the differential test against JSON.stringify did not run")
	}
	var inputs [][]byte
	for _, c := range canonicalCases {
		inputs = append(inputs, []byte(c.in))
	}
	inputs = append(inputs, decoderSeeds()...)
	inputs = append(inputs, fuzzCorpus(t, "FuzzCanonical", "FuzzDecoders")...)
	inputs = append(inputs, generated(8000)...)

	const script = `
const out = [];
for (const line of require('fs').readFileSync(0, 'latin1').split('\n')) {
	if (!line.startsWith('i ')) continue;
	try {
		const text = Buffer.from(line.slice(2), 'base64').toString('utf8');
		out.push('ok ' + Buffer.from(JSON.stringify(JSON.parse(text)), 'utf8').toString('base64'));
	} catch (e) {
		out.push('error ' + e.name);
	}
}
process.stdout.write(out.join('\n') + '\n');`
	var stdin bytes.Buffer
	for _, in := range inputs {
		stdin.WriteString("i " + base64.StdEncoding.EncodeToString(in) + "\n")
	}
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = &stdin
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	answers := strings.Split(strings.TrimSuffix(string(stdout), "\n"), "\n")
	if len(answers) != len(inputs) {
		t.Fatalf("node answered %d of %d inputs", len(answers), len(inputs))
	}
	same, refused, deep, failed := 0, 0, 0, 0
	for i, in := range inputs {
		got, err := stringify.Canonical(in)
		ans := answers[i]
		b64, ok := strings.CutPrefix(ans, "ok ")
		var want []byte
		if ok {
			want, _ = base64.StdEncoding.DecodeString(b64)
		}
		switch {
		case ok && err == nil && bytes.Equal(got, want):
			same++
			continue
		case !ok && err != nil:
			refused++
			continue
		case ok && errors.Is(err, stringify.ErrTooDeep):
			deep++ // beyond the documented limit
			continue
		}
		if failed++; failed <= 20 {
			t.Errorf("input %d %.200q:\n  node:      %.200s %.200q\n  Canonical: %.200q %v", i, in, ans[:min(len(ans), 5)], want, got, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d inputs differ from node", failed, len(inputs))
	}
	t.Logf("%d inputs compared with node's JSON.stringify(JSON.parse(x)): %d identical outputs, %d refused by both, %d deeper than stringify.MaxCanonicalDepth (node took them), %d differ",
		len(inputs), same, refused, deep, failed)
}

// fuzzCorpus reads the checked-in corpus of fuzz targets of this package
// (testdata/fuzz/<target>/*), if any.
func fuzzCorpus(t *testing.T, targets ...string) [][]byte {
	var out [][]byte
	for _, target := range targets {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(b), "\n")
			for _, l := range lines[1:] { // after "go test fuzz v1"
				if q, ok := strings.CutPrefix(strings.TrimSpace(l), "[]byte("); ok {
					s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
					if err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					out = append(out, []byte(s))
				}
			}
		}
	}
	return out
}

// generated returns n random texts, mostly JSON, that dwell where
// JSON.stringify(JSON.parse(x)) rewrites: number spellings, string
// escapes, surrogates, invalid UTF-8, repeated and integer-like keys. The
// same n texts every run.
func generated(n int) [][]byte {
	r := rand.New(rand.NewPCG(7, 11))
	out := make([][]byte, 0, n)
	for range n {
		b := genValue(r, nil, 0)
		switch r.IntN(40) { // a few broken ones: both must refuse them
		case 0:
			b = b[:r.IntN(len(b)+1)]
		case 1:
			b = append(b[:0:0], b...)
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		out = append(out, b)
	}
	return out
}

func genValue(r *rand.Rand, b []byte, depth int) []byte {
	ws := func(b []byte) []byte {
		if r.IntN(8) == 0 {
			b = append(b, " \t\n\r"[r.IntN(4)])
		}
		return b
	}
	b = ws(b)
	kind := r.IntN(10)
	if depth >= 4 && kind < 3 {
		kind += 3
	}
	switch kind {
	case 0, 1:
		b = append(b, '{')
		for i := range r.IntN(7) {
			if i > 0 {
				b = append(b, ',')
			}
			b = ws(b)
			if r.IntN(3) == 0 {
				b = genString(r, b)
			} else {
				keys := []string{`"a"`, `"b"`, `"0"`, `"1"`, `"2"`, `"10"`, `"01"`, `"-1"`, `"1.5"`, `"4294967294"`, `"4294967295"`,
					`"9007199254740993"`, `"\u0031"`, `"\u0061"`, `"__proto__"`, `"é"`, `"\u00e9"`, `""`}
				b = append(b, keys[r.IntN(len(keys))]...)
			}
			b = append(ws(b), ':')
			b = genValue(r, b, depth+1)
		}
		b = append(ws(b), '}')
	case 2:
		b = append(b, '[')
		for i := range r.IntN(5) {
			if i > 0 {
				b = append(b, ',')
			}
			b = genValue(r, b, depth+1)
		}
		b = append(ws(b), ']')
	case 3, 4, 5:
		b = genNumber(r, b)
	case 6, 7, 8:
		b = genString(r, b)
	default:
		b = append(b, []string{"true", "false", "null"}[r.IntN(3)]...)
	}
	return ws(b)
}

func genNumber(r *rand.Rand, b []byte) []byte {
	digits := func(b []byte, n int) []byte {
		for range n {
			b = append(b, byte('0'+r.IntN(10)))
		}
		return b
	}
	switch r.IntN(5) {
	case 0: // any float64, in one of Go's spellings
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = 0
		}
		if r.IntN(2) == 0 {
			return strconv.AppendFloat(b, f, 'g', -1, 64)
		}
		return strconv.AppendFloat(b, f, 'e', r.IntN(25), 64)
	case 1: // near the thresholds of exponent form: 1e21, 1e-7
		f := (1 + r.Float64()*9) * math.Pow10(r.IntN(50)-25)
		if r.IntN(2) == 0 {
			f = math.Round(f)
		}
		return strconv.AppendFloat(b, f, []byte("gef")[r.IntN(3)], -1, 64)
	default: // decimal text: long mantissas, trailing zeros, exponents
		if r.IntN(4) == 0 {
			b = append(b, '-')
		}
		if r.IntN(5) == 0 {
			b = append(b, '0')
		} else {
			b = digits(append(b, byte('1'+r.IntN(9))), r.IntN(30))
		}
		if r.IntN(2) == 0 {
			b = digits(append(b, '.'), 1+r.IntN(25))
			for range r.IntN(4) {
				b = append(b, '0')
			}
		}
		if r.IntN(2) == 0 {
			b = append(b, "eE"[r.IntN(2)])
			if s := r.IntN(3); s < 2 {
				b = append(b, "+-"[s])
			}
			b = strconv.AppendInt(b, int64(r.IntN(340)), 10)
		}
		return b
	}
}

func genString(r *rand.Rand, b []byte) []byte {
	b = append(b, '"')
	for range r.IntN(8) {
		switch r.IntN(10) {
		case 0, 1:
			b = append(b, "aZ09 ~<>&'/é€"[r.IntN(13)])
		case 2: // literal non-ASCII, up to the astral planes
			c := rune(0x80 + r.IntN(0x10ff80))
			if !utf8.ValidRune(c) {
				c = 0x2028
			}
			b = utf8.AppendRune(b, c)
		case 3:
			b = append(b, []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[r.IntN(8)]...)
		case 4, 5, 6: // \u escapes of what JSON.stringify treats specially
			units := []int{r.IntN(0x21), 0x22, 0x5c, 0x7f, 0x2028, 0x2029, 0xfeff, 0xd800 + r.IntN(0x400), 0xdc00 + r.IntN(0x400), r.IntN(0x10000)}
			hex := strconv.FormatInt(int64(0x10000+units[r.IntN(len(units))]), 16)[1:]
			if r.IntN(2) == 0 {
				hex = strings.ToUpper(hex)
			}
			b = append(b, `\u`+hex...)
		case 7: // a surrogate pair, escaped
			c := 0x10000 + r.IntN(0x100000)
			b = append(b, `\u`+strconv.FormatInt(int64(0xd800+(c-0x10000)>>10), 16)+`\u`+strconv.FormatInt(int64(0xdc00+(c-0x10000)&0x3ff), 16)...)
		case 8: // invalid UTF-8
			b = append(b, []string{"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf0\x9f\x98", "\xc0\xaf", "\xf4\x90\x80\x80", "\x80"}[r.IntN(8)]...)
		default:
			b = append(b, "plain text"...)
		}
	}
	return append(b, '"')
}

// FuzzCanonical: Canonical never panics; it takes exactly the JSON
// encoding/json takes (but for nesting beyond stringify.MaxCanonicalDepth); its
// output is valid JSON and valid UTF-8, and canonical itself.
func FuzzCanonical(f *testing.F) {
	for _, c := range canonicalCases {
		f.Add([]byte(c.in))
	}
	for _, s := range decoderSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := stringify.Canonical(in)
		if err != nil {
			if !errors.Is(err, stringify.ErrTooDeep) && json.Valid(in) {
				t.Fatalf("%q refused: %v", in, err)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("%q taken as %q, but it is not JSON", in, out)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("%q gave %q, not valid JSON in UTF-8", in, out)
		}
		if again, err := stringify.Canonical(out); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("%q gave %q, then %q %v", in, out, again, err)
		}
	})
}
