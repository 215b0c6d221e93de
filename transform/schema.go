// Package transform declares the common schema — one Arrow schema per
// warehouse table — and the helpers every provider's converters share to
// write records of it (RowWriter, decimals, days); the converters from
// each provider's objects live with the provider, in extract/<provider>.
//
// The schemas here are the only description of the tables' columns in Go;
// the DDL in sql/ must agree with them, which a test checks against a real
// server (load/clickhouse: TestSchemaMatchesServer).
//
// Conventions: amounts are exact signed decimals (negative =
// money out), calendar days are date32, instants are timestamp[s, UTC],
// strings are never null ("" = unknown) so BI filters stay simple, and every
// data table ends with the lineage columns source_job_id, run_id,
// extracted_at and _version. Personal identifiers (social security numbers,
// person names) have no column: extractors drop them, and raw payloads are
// scrubbed before they land.
package transform

import (
	"time"

	"github.com/apache/arrow/go/v17/arrow"
)

// Table is one warehouse table: its name in ClickHouse and its columns.
type Table struct {
	Name   string
	Schema *arrow.Schema
}

// Column types of the common schema. Money is Decimal(18,4): 14 integer
// digits cover any account, 4 decimals cover every currency's minor unit.
// Analytics values (ratios, scores, counts) get more room.
var (
	tString  = arrow.BinaryTypes.String
	tDate    = arrow.FixedWidthTypes.Date32
	tTime    = &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}
	tMoney   = &arrow.Decimal128Type{Precision: 18, Scale: MoneyScale}
	tMetric  = &arrow.Decimal128Type{Precision: 38, Scale: 6}
	tBool    = arrow.FixedWidthTypes.Boolean
	tInt32   = arrow.PrimitiveTypes.Int32
	tUint64  = arrow.PrimitiveTypes.Uint64
	tStrings = arrow.ListOfNonNullable(arrow.BinaryTypes.String)
	tUint64s = arrow.ListOfNonNullable(arrow.PrimitiveTypes.Uint64)
)

// MoneyScale is the number of decimals every amount column carries.
const MoneyScale = 4

func col(name string, t arrow.DataType) arrow.Field { return arrow.Field{Name: name, Type: t} }

func nullable(name string, t arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: true}
}

// lineage ends every data table: which provider job and which of our runs
// produced the row, when, and the version ReplacingMergeTree keeps the
// newest of.
var lineage = []arrow.Field{
	col("source_job_id", tString),
	col("run_id", tString),
	col("extracted_at", tTime),
	col("_version", tUint64),
}

func dataTable(name string, fields ...arrow.Field) Table {
	all := append(append([]arrow.Field{}, fields...), lineage...)
	return Table{Name: name, Schema: arrow.NewSchema(all, nil)}
}

func stateTable(name string, fields ...arrow.Field) Table {
	return Table{Name: name, Schema: arrow.NewSchema(fields, nil)}
}

// The twelve tables of the common schema. Their natural keys (the ORDER BY
// in sql/) come first in each.
var (
	Transactions = dataTable("transactions",
		col("provider", tString),
		col("tenant", tString),
		col("user_id", tString),
		col("transaction_id", tString),
		col("account_id", tString),
		col("booking_date", tDate),
		nullable("value_date", tDate),
		col("amount", tMoney),
		col("currency", tString),
		col("description", tString),
		col("booking_text", tString),
		col("purpose", tString),
		col("counterparty_name", tString),
		col("counterparty_iban", tString),
		col("counterparty_bic", tString),
		col("creditor_id", tString),
		col("eref", tString),
		col("mref", tString),
		col("mcc", tString),
		col("category", tString),
		col("provider_category", tString),
		col("category_localized", tString),
		col("tags", tStrings),
		col("merchant", tString),
		col("raw", tString),
	)

	Accounts = dataTable("accounts",
		col("provider", tString),
		col("tenant", tString),
		col("user_id", tString),
		col("account_id", tString),
		col("account_type", tString),
		col("provider_account_type", tString),
		col("name", tString),
		col("iban", tString),
		col("account_number", tString),
		col("bank_code", tString),
		col("bank_name", tString),
		col("bic", tString),
		col("currency", tString),
		nullable("balance", tMoney),
		nullable("overdraft_limit", tMoney),
		nullable("is_user_added", tBool),
		col("creditor_id", tString),
		col("raw", tString),
	)

	AccountBalances = dataTable("account_balances",
		col("provider", tString),
		col("tenant", tString),
		col("user_id", tString),
		col("account_id", tString),
		col("granularity", tString), // day, month_end, month_min, month_max
		col("balance_date", tDate),
		col("balance", tMoney),
		col("currency", tString),
	)

	Contracts = dataTable("contracts",
		col("provider", tString),
		col("tenant", tString),
		col("user_id", tString),
		col("contract_id", tString),
		col("category", tString),
		col("provider_category", tString),
		col("amount", tMoney),
		col("amount_consistency", tString),
		col("interval", tString),
		nullable("duration", tInt32),
		col("is_active", tBool),
		col("mref", tString),
		nullable("next_booking_date", tDate),
		nullable("next_booking_from", tDate),
		nullable("next_booking_to", tDate),
		col("partner_name", tString),
		col("transaction_ids", tStrings),
		col("raw", tString),
	)

	SegmentMembers = dataTable("segment_members",
		col("provider", tString),
		col("tenant", tString),
		col("segment_type", tString),
		col("job_id", tString),
		col("user_id", tString),
		col("account_id", tString),
		col("creation_date", tDate),
		col("expires_on", tDate),
		col("params", tString), // the request parameters, JSON
		nullable("amount", tMoney),
		nullable("duration_in_month", tInt32),
		col("metrics", tString), // type-specific result fields, JSON
		col("raw", tString),
	)

	Insights = dataTable("insights",
		col("provider", tString),
		col("tenant", tString),
		col("user_id", tString),
		col("module", tString),
		col("insight_id", tString),
		col("metric", tString),
		col("period", tString), // "YYYY-MM", "YYYY-MM-DD" or "" for the whole observed range
		nullable("value", tMetric),
		col("value_text", tString),
		nullable("observed_from", tDate),
		nullable("observed_to", tDate),
		col("transaction_ids", tStrings),
		col("raw", tString),
	)

	UserTags = dataTable("user_tags",
		col("provider", tString),
		col("tenant", tString),
		col("user_id", tString),
		col("tag", tString),
		col("state", tString), // current, created, deleted
		col("guid", tString),
		col("observed_at", tTime),
	)

	// EnrichmentSubmissions is the ledger of transactions a provider
	// (FinGoal) was sent for enrichment: one row per source transaction and
	// enriching tenant, written before the submission is made, so no
	// transaction is sent twice. provider/tenant are the enriching side,
	// source_* and user_id/transaction_id the original row in transactions;
	// uid and enrich_transaction_id are the opaque ids the provider got;
	// currency is the original row's, for the provider's enriched copy.
	EnrichmentSubmissions = dataTable("enrichment_submissions",
		col("provider", tString),
		col("tenant", tString),
		col("source_provider", tString),
		col("source_tenant", tString),
		col("user_id", tString),
		col("transaction_id", tString),
		col("currency", tString), // added by sql/0009_money_per_currency.sql
		col("uid", tString),
		col("enrich_transaction_id", tString),
		col("submission_id", tString),
		col("batch_request_id", tString),
		col("endpoint", tString),
		col("status", tString), // pending, submitted, refused, unsent
		col("reason", tString),
		col("submitted_at", tTime),
	)

	Subjects = stateTable("subjects",
		col("provider", tString),
		col("tenant", tString),
		col("kind", tString),
		col("subject_id", tString),
		col("source", tString), // config, webhook, submission, insert
		col("correlation_id", tString),
		col("status", tString),
		col("status_detail", tString),
		col("first_seen", tTime),
		col("updated_at", tTime),
		col("_version", tUint64),
	)

	EtlState = stateTable("etl_state",
		col("stream", tString),
		col("tenant", tString),
		col("key", tString), // "cursor", "job:<id>" for a pending async job, "lease:<owner id>@<shard>" for a process's claim to run the stream
		col("value", tString),
		col("status", tString), // active, done, lost
		col("created_at", tTime),
		nullable("next_poll_at", tTime),
		col("updated_at", tTime),
		col("_version", tUint64),
	)

	EtlRuns = stateTable("etl_runs",
		col("stream", tString),
		col("run_id", tString),
		col("tenant", tString),
		col("status", tString), // running, success, partial, failed
		nullable("window_from", tTime),
		nullable("window_to", tTime),
		col("started_at", tTime),
		nullable("finished_at", tTime),
		col("rows_tables", tStrings),
		col("rows_counts", tUint64s),
		col("rows_total", tUint64),
		col("rejects", tUint64),
		col("retries", tUint64),
		col("duration_ms", tUint64),
		col("error", tString),
		col("_version", tUint64),
	)

	EtlRejects = stateTable("etl_rejects",
		col("stream", tString),
		col("run_id", tString),
		col("record_key", tString),
		col("provider", tString),
		col("tenant", tString),
		col("target_table", tString),
		col("reason", tString),
		col("raw", tString),
		col("rejected_at", tTime),
		col("_version", tUint64),
	)
)

// Tables lists every table of the common schema, in migration order.
func Tables() []Table {
	return []Table{
		Transactions, Accounts, AccountBalances, Contracts, SegmentMembers,
		Insights, UserTags, Subjects, EtlState, EtlRuns, EtlRejects,
		EnrichmentSubmissions,
	}
}

// Lineage is what every row of one run carries in the lineage columns,
// besides the provider's job id, which varies per row.
type Lineage struct {
	Provider    string
	Tenant      string
	RunID       string
	ExtractedAt time.Time // UTC, whole seconds
	Version     uint64    // larger than every earlier run's
}
