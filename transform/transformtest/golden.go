// Package transformtest helps transform tests compare records with golden
// files: one JSON line per row, regenerated with the -update flag.
package transformtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// update is the -update flag of every test binary that imports the
// package: `go test ./extract/fino -run Golden -update` rewrites the golden
// files from the current output.
var update = flag.Bool("update", false, "rewrite golden files from the current output")

// Golden compares got with the file at path, or rewrites the file under
// -update.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update after checking):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// PrintRecord writes one JSON object per row, columns in schema order, so
// golden files diff line by line. Decimals print exactly, as strings with
// their scale; dates as YYYY-MM-DD; timestamps as RFC 3339.
func PrintRecord(w *bytes.Buffer, rec arrow.Record) {
	for row := range int(rec.NumRows()) {
		w.WriteByte('{')
		for c, f := range rec.Schema().Fields() {
			if c > 0 {
				w.WriteByte(',')
			}
			w.WriteString(strconv.Quote(f.Name))
			w.WriteByte(':')
			w.WriteString(cellJSON(rec.Column(c), row))
		}
		w.WriteString("}\n")
	}
}

func cellJSON(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "null"
	}
	quote := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	switch a := col.(type) {
	case *array.String:
		return quote(a.Value(i))
	case *array.Date32:
		return quote(a.Value(i).ToTime().Format(time.DateOnly))
	case *array.Timestamp:
		return quote(time.Unix(int64(a.Value(i)), 0).UTC().Format(time.RFC3339))
	case *array.Decimal128:
		return quote(ExactDecimal(a.Value(i).BigInt(), a.DataType().(*arrow.Decimal128Type).Scale))
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Int32:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.FormatUint(a.Value(i), 10)
	case *array.List:
		start, end := a.ValueOffsets(i)
		parts := make([]string, 0, end-start)
		for j := start; j < end; j++ {
			parts = append(parts, cellJSON(a.ListValues(), int(j)))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	panic(fmt.Sprintf("PrintRecord: no printer for %s", col.DataType()))
}

// ExactDecimal prints an unscaled integer with scale decimals, exactly.
func ExactDecimal(v *big.Int, scale int32) string {
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	for len(digits) <= int(scale) {
		digits = "0" + digits
	}
	s := digits[:len(digits)-int(scale)] + "." + digits[len(digits)-int(scale):]
	if neg {
		s = "-" + s
	}
	return s
}
