package transform

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"
)

// RowWriter builds a record of one table a row at a time from plain Go
// values. It suits small writes (state, run rows, registry entries) and
// tests; high-volume transforms use Arrow builders directly.
type RowWriter struct {
	table Table
	b     *array.RecordBuilder
}

// NewRowWriter starts an empty record of t.
func NewRowWriter(mem memory.Allocator, t Table) *RowWriter {
	return &RowWriter{table: t, b: array.NewRecordBuilder(mem, t.Schema)}
}

// Append adds one row: one value per column in schema order, nil for null.
// Accepted values: string; time.Time for date and timestamp columns;
// decimal.Decimal for decimals; bool; int32; uint64; []string; []uint64.
func (w *RowWriter) Append(vals ...any) error {
	fields := w.table.Schema.Fields()
	if len(vals) != len(fields) {
		return fmt.Errorf("%s: %d values for %d columns", w.table.Name, len(vals), len(fields))
	}
	// Check every value before appending any, so a bad row leaves no half row.
	for i, v := range vals {
		if err := check(fields[i], v); err != nil {
			return fmt.Errorf("%s.%s: %w", w.table.Name, fields[i].Name, err)
		}
	}
	for i, v := range vals {
		appendValue(w.b.Field(i), v)
	}
	return nil
}

// The range of ClickHouse's Date (days since 1970 in a UInt16) and
// DateTime (seconds since 1970 in a UInt32): a value outside wraps around
// silently on the server, so it is refused here.
var (
	MinDate     = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxDate     = time.Date(2149, 6, 6, 0, 0, 0, 0, time.UTC)
	MaxDateTime = time.Unix(1<<32, 0).UTC()
)

// Len is the number of rows appended since the last Record.
func (w *RowWriter) Len() int { return w.b.Field(0).Len() }

// Record returns the rows appended so far as a record (the caller releases
// it) and starts a new, empty one.
func (w *RowWriter) Record() arrow.Record { return w.b.NewRecord() }

// Release frees the builder.
func (w *RowWriter) Release() { w.b.Release() }

func check(f arrow.Field, v any) error {
	if v == nil {
		if !f.Nullable {
			return fmt.Errorf("null in a column that is not nullable")
		}
		return nil
	}
	ok := false
	switch t := f.Type.(type) {
	case *arrow.StringType:
		_, ok = v.(string)
	case *arrow.Date32Type:
		var d time.Time
		if d, ok = v.(time.Time); ok && (d.Before(MinDate) || d.After(MaxDate)) {
			return fmt.Errorf("%s is outside the dates ClickHouse stores (%s to %s)", d.Format(time.DateOnly), MinDate.Format(time.DateOnly), MaxDate.Format(time.DateOnly))
		}
	case *arrow.TimestampType:
		var d time.Time
		if d, ok = v.(time.Time); ok && (d.Before(MinDate) || !d.Before(MaxDateTime)) {
			return fmt.Errorf("%s is outside the instants ClickHouse stores (%s to %s)", d.UTC().Format(time.RFC3339), MinDate.Format(time.RFC3339), MaxDateTime.Format(time.RFC3339))
		}
	case *arrow.Decimal128Type:
		var d decimal.Decimal
		if d, ok = v.(decimal.Decimal); ok && -d.Exponent() > t.Scale {
			return fmt.Errorf("%s has more than %d decimals", d, t.Scale)
		}
		// The exponent test first: 1e999999999 must not become a billion digits.
		if ok && (d.Exponent() > t.Precision || len(d.Shift(t.Scale).BigInt().Text(10)) > int(t.Precision)+boolInt(d.Sign() < 0)) {
			return fmt.Errorf("%s has more than %d digits", d, t.Precision)
		}
	case *arrow.BooleanType:
		_, ok = v.(bool)
	case *arrow.Int32Type:
		_, ok = v.(int32)
	case *arrow.Uint64Type:
		_, ok = v.(uint64)
	case *arrow.ListType:
		switch t.Elem().(type) {
		case *arrow.StringType:
			_, ok = v.([]string)
		case *arrow.Uint64Type:
			_, ok = v.([]uint64)
		}
	}
	if !ok {
		return fmt.Errorf("value %v (%T) does not fit Arrow type %s", v, v, f.Type)
	}
	return nil
}

func appendValue(b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(v.(time.Time)))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.(time.Time).Unix()))
	case *array.Decimal128Builder:
		b.Append(decimalToNum(v.(decimal.Decimal), b.Type().(*arrow.Decimal128Type).Scale))
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.Int32Builder:
		b.Append(v.(int32))
	case *array.Uint64Builder:
		b.Append(v.(uint64))
	case *array.ListBuilder:
		b.Append(true)
		switch vb := b.ValueBuilder().(type) {
		case *array.StringBuilder:
			vb.AppendValues(v.([]string), nil)
		case *array.Uint64Builder:
			vb.AppendValues(v.([]uint64), nil)
		}
	}
}

// decimalToNum converts d to an Arrow decimal with the given scale. d must
// not have more decimals than scale (RowWriter checks).
func decimalToNum(d decimal.Decimal, scale int32) decimal128.Num {
	return decimal128.FromBigInt(d.Shift(scale).BigInt())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
