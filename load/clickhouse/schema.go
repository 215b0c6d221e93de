package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/transform"
)

// ColumnType is the ClickHouse type an Arrow field of the common schema is
// stored as, spelled as DESCRIBE TABLE prints it.
func ColumnType(f arrow.Field) (string, error) {
	var base string
	switch t := f.Type.(type) {
	case *arrow.StringType:
		base = "String"
	case *arrow.Date32Type:
		base = "Date"
	case *arrow.TimestampType:
		if t.Unit != arrow.Second {
			return "", fmt.Errorf("%s: timestamp unit %s (only seconds fit DateTime on every server)", f.Name, t.Unit)
		}
		base = "DateTime"
		if t.TimeZone != "" {
			base = "DateTime('" + t.TimeZone + "')"
		}
	case *arrow.Decimal128Type:
		base = fmt.Sprintf("Decimal(%d, %d)", t.Precision, t.Scale)
	case *arrow.BooleanType:
		base = "UInt8"
	case *arrow.Int32Type:
		base = "Int32"
	case *arrow.Uint64Type:
		base = "UInt64"
	case *arrow.ListType:
		if f.Nullable {
			return "", fmt.Errorf("%s: a list cannot be nullable (ClickHouse arrays are never NULL)", f.Name)
		}
		elem, err := ColumnType(t.ElemField())
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.Name, err)
		}
		return "Array(" + elem + ")", nil
	default:
		return "", fmt.Errorf("%s: Arrow type %s has no ClickHouse mapping", f.Name, f.Type)
	}
	if f.Nullable {
		return "Nullable(" + base + ")", nil
	}
	return base, nil
}

// CheckSchema compares each table's columns on the server (names, order,
// types) with its Arrow schema and reports every difference at once.
func (db *DB) CheckSchema(ctx context.Context, tables []transform.Table) error {
	var problems []error
	for _, t := range tables {
		server, err := db.describe(ctx, t.Name)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		fields := t.Schema.Fields()
		for i := 0; i < max(len(fields), len(server)); i++ {
			switch {
			case i >= len(fields):
				problems = append(problems, fmt.Errorf("%s.%s: on the server but not in the Arrow schema", t.Name, server[i].name))
			case i >= len(server):
				problems = append(problems, fmt.Errorf("%s.%s: in the Arrow schema but not on the server", t.Name, fields[i].Name))
			default:
				want, err := ColumnType(fields[i])
				if err != nil {
					problems = append(problems, fmt.Errorf("%s.%w", t.Name, err))
					continue
				}
				if fields[i].Name != server[i].name || want != server[i].typ {
					problems = append(problems, fmt.Errorf("%s column %d: server has %s %s, Arrow schema has %s %s",
						t.Name, i+1, server[i].name, server[i].typ, fields[i].Name, want))
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("schema drift between ClickHouse and transform/schema.go:\n%w", errors.Join(problems...))
	}
	return nil
}

type serverColumn struct{ name, typ string }

func (db *DB) describe(ctx context.Context, table string) ([]serverColumn, error) {
	rows, err := db.conn.Query(ctx, "DESCRIBE TABLE "+db.table(table))
	if err != nil {
		return nil, fmt.Errorf("describing %s: %w", table, err)
	}
	defer rows.Close()
	// DESCRIBE has 4 columns on 18.16 and more on newer servers; the first
	// two are name and type everywhere.
	extra := make([]any, len(rows.Columns()))
	var cols []serverColumn
	for rows.Next() {
		var c serverColumn
		extra[0], extra[1] = &c.name, &c.typ
		for i := 2; i < len(extra); i++ {
			extra[i] = new(string)
		}
		if err := rows.Scan(extra...); err != nil {
			return nil, fmt.Errorf("describing %s: %w", table, err)
		}
		c.typ = strings.ReplaceAll(c.typ, `\'`, `'`)
		cols = append(cols, c)
	}
	return cols, rows.Err()
}
