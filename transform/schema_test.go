package transform

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"
)

func TestEveryDataTableCarriesLineage(t *testing.T) {
	seen := map[string]bool{}
	for _, tb := range Tables() {
		if seen[tb.Name] {
			t.Errorf("table %s declared twice", tb.Name)
		}
		seen[tb.Name] = true
		if _, ok := tb.Schema.FieldsByName("_version"); !ok {
			t.Errorf("%s has no _version: ReplacingMergeTree needs it", tb.Name)
		}
		if _, isData := tb.Schema.FieldsByName("provider"); isData && !strings.HasPrefix(tb.Name, "etl_") && tb.Name != "subjects" {
			for _, l := range lineage {
				if _, ok := tb.Schema.FieldsByName(l.Name); !ok {
					t.Errorf("data table %s lacks lineage column %s", tb.Name, l.Name)
				}
			}
		}
		for _, f := range tb.Schema.Fields() {
			for _, pii := range []string{"ssn", "social_security", "first_name", "last_name", "owner"} {
				if strings.Contains(f.Name, pii) {
					t.Errorf("%s.%s looks like a personal identifier column", tb.Name, f.Name)
				}
			}
		}
	}
	if len(seen) != 12 {
		t.Errorf("%d tables, want the 12 of the common schema", len(seen))
	}
}

func TestRowWriterRefusesBadValues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	w := NewRowWriter(mem, EtlState)
	defer w.Release()
	now := time.Now()
	tests := []struct {
		name string
		vals []any
		want string
	}{
		{"too few values", []any{"s", "t"}, "2 values for 9 columns"},
		{"wrong type", []any{"s", "t", "k", 42, "active", now, nil, now, uint64(1)}, "etl_state.value: value 42 (int)"},
		{"null in a required column", []any{"s", nil, "k", "v", "active", now, nil, now, uint64(1)}, "etl_state.tenant: null"},
	}
	for _, tc := range tests {
		if err := w.Append(tc.vals...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := w.Append("s", "t", "k", "v", "active", now, nil, now, uint64(1)); err != nil {
		t.Fatal(err)
	}
	rec := w.Record()
	defer rec.Release()
	if rec.NumRows() != 1 {
		t.Fatalf("%d rows: refused rows must leave nothing behind", rec.NumRows())
	}
	m := NewRowWriter(mem, Transactions)
	defer m.Release()
	vals := make([]any, len(Transactions.Schema.Fields()))
	for i := range vals {
		vals[i] = ""
	}
	vals[5], vals[6], vals[7], vals[22], vals[27], vals[28] = now, nil, decimal.RequireFromString("1.23456"), []string{}, now, uint64(1)
	if err := m.Append(vals...); err == nil || !strings.Contains(err.Error(), "more than 4 decimals") {
		t.Errorf("rounding money silently: %v", err)
	}
}
