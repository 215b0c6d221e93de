package clickhouse

import (
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/shopspring/decimal"
)

// This file is the bridge from Arrow arrays to the slices clickhouse-go's
// columnar Append takes. The rule: a constant number of allocations per
// column, never one per value — except decimals, where the driver itself
// only takes shopspring decimals (one big.Int each). Nullable values become
// pointers into one backing slice, not a pointer allocated per value.
// Strings are views of the Arrow buffer: the driver copies them on Append,
// so the record only has to outlive that call.

// columnValues converts one Arrow column into the slice the driver takes.
// nullable is the field's nullability, i.e. whether the ClickHouse column is
// Nullable(...): the driver needs pointer slices for those even when this
// array happens to hold no null.
func columnValues(arr arrow.Array, nullable bool) (any, error) {
	if !nullable && arr.NullN() > 0 {
		return nil, fmt.Errorf("%d nulls in a column that is not nullable", arr.NullN())
	}
	switch a := arr.(type) {
	case *array.String:
		vals := make([]string, a.Len())
		for i := range vals {
			vals[i] = a.Value(i)
		}
		return orNull(vals, a, nullable), nil
	case *array.Date32:
		vals := make([]time.Time, a.Len())
		for i, d := range a.Date32Values() {
			vals[i] = time.Unix(int64(d)*86400, 0).UTC()
		}
		return orNull(vals, a, nullable), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		if unit != arrow.Second {
			return nil, fmt.Errorf("timestamp unit %s: only seconds map to DateTime", unit)
		}
		vals := make([]int64, a.Len())
		for i, t := range a.TimestampValues() {
			vals[i] = int64(t)
		}
		return orNull(vals, a, nullable), nil
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		vals := make([]decimal.Decimal, a.Len())
		for i, n := range a.Values() {
			vals[i] = toDecimal(n, scale)
		}
		return orNull(vals, a, nullable), nil
	case *array.Boolean:
		vals := make([]uint8, a.Len())
		for i := range vals {
			if a.Value(i) {
				vals[i] = 1
			}
		}
		return orNull(vals, a, nullable), nil
	case *array.Int32:
		// The driver copies, so a view of the Arrow buffer is enough.
		return orNull(a.Int32Values(), a, nullable), nil
	case *array.Uint64:
		return orNull(a.Uint64Values(), a, nullable), nil
	case *array.List:
		if nullable {
			return nil, fmt.Errorf("nullable list: ClickHouse arrays cannot be NULL")
		}
		return listValues(a)
	default:
		return nil, fmt.Errorf("arrow type %s has no ClickHouse mapping", arr.DataType())
	}
}

// orNull returns vals as is for a column without nulls, else a slice of
// pointers into vals with nil where Arrow has a null.
func orNull[T any](vals []T, a arrow.Array, nullable bool) any {
	if !nullable {
		return vals
	}
	ptrs := make([]*T, len(vals))
	for i := range vals {
		if a.IsValid(i) {
			ptrs[i] = &vals[i]
		}
	}
	return ptrs
}

// listValues turns a list array into [][]T whose rows share one backing
// slice.
func listValues(a *array.List) (any, error) {
	offsets := a.Offsets()
	start, end := int(offsets[0]), int(offsets[a.Len()])
	switch v := a.ListValues().(type) {
	case *array.String:
		flat := make([]string, end-start)
		for i := range flat {
			flat[i] = v.Value(start + i)
		}
		return splitRows(flat, offsets, start), nil
	case *array.Uint64:
		return splitRows(v.Uint64Values()[start:end], offsets, start), nil
	default:
		return nil, fmt.Errorf("list of %s has no ClickHouse mapping", v.DataType())
	}
}

func splitRows[T any](flat []T, offsets []int32, base int) [][]T {
	rows := make([][]T, len(offsets)-1)
	for i := range rows {
		lo, hi := int(offsets[i])-base, int(offsets[i+1])-base
		rows[i] = flat[lo:hi:hi]
	}
	return rows
}

// toDecimal converts an Arrow decimal128 to the driver's decimal without a
// detour through strings; values that fit 64 bits (all money) skip big.Int
// arithmetic.
func toDecimal(n decimal128.Num, scale int32) decimal.Decimal {
	if hi := n.HighBits(); (hi == 0 && n.LowBits()>>63 == 0) || (hi == -1 && n.LowBits()>>63 == 1) {
		return decimal.New(int64(n.LowBits()), -scale)
	}
	return decimal.NewFromBigInt(n.BigInt(), -scale)
}
