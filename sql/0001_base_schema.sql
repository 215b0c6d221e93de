-- finsync:supersedes bd1ce65d328185eca0a05f6180cdc86d99d3fdf55303390efb2c6f9cffc2a8fe
-- (the same statements; the comment below named a document outside the repository)
-- The common schema (its conventions: package transform). Runs on ClickHouse 18.16 and current releases:
-- MergeTree family, Date, DateTime, Decimal, String, Nullable, Array only.
--
-- Every table is a ReplacingMergeTree over its natural key with _version as the
-- version column, so reloading a window replaces rows instead of duplicating
-- them (read with FINAL, or through the views, until background merges catch up).
-- Fact tables are partitioned by month of their business date; the key never
-- changes partition because the business date is part of the provider's record.
-- Dimension and state tables are small and unpartitioned.
-- The column lists must match transform/schema.go (checked by a test).

CREATE TABLE IF NOT EXISTS transactions (
    provider String,
    tenant String,
    user_id String,
    transaction_id String,
    account_id String,
    booking_date Date,
    value_date Nullable(Date),
    amount Decimal(18, 4),
    currency String,
    description String,
    booking_text String,
    purpose String,
    counterparty_name String,
    counterparty_iban String,
    counterparty_bic String,
    creditor_id String,
    eref String,
    mref String,
    mcc String,
    category String,
    provider_category String,
    category_localized String,
    tags Array(String),
    merchant String,
    raw String,
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(booking_date)
ORDER BY (provider, tenant, user_id, transaction_id);

CREATE TABLE IF NOT EXISTS accounts (
    provider String,
    tenant String,
    user_id String,
    account_id String,
    account_type String,
    provider_account_type String,
    name String,
    iban String,
    account_number String,
    bank_code String,
    bank_name String,
    bic String,
    currency String,
    balance Nullable(Decimal(18, 4)),
    overdraft_limit Nullable(Decimal(18, 4)),
    is_user_added Nullable(UInt8),
    creditor_id String,
    raw String,
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (provider, tenant, user_id, account_id);

CREATE TABLE IF NOT EXISTS account_balances (
    provider String,
    tenant String,
    user_id String,
    account_id String,
    granularity String,
    balance_date Date,
    balance Decimal(18, 4),
    currency String,
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(balance_date)
ORDER BY (provider, tenant, user_id, account_id, granularity, balance_date);

CREATE TABLE IF NOT EXISTS contracts (
    provider String,
    tenant String,
    user_id String,
    contract_id String,
    category String,
    provider_category String,
    amount Decimal(18, 4),
    amount_consistency String,
    interval String,
    duration Nullable(Int32),
    is_active UInt8,
    mref String,
    next_booking_date Nullable(Date),
    next_booking_from Nullable(Date),
    next_booking_to Nullable(Date),
    partner_name String,
    transaction_ids Array(String),
    raw String,
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (provider, tenant, user_id, contract_id);

CREATE TABLE IF NOT EXISTS segment_members (
    provider String,
    tenant String,
    segment_type String,
    job_id String,
    user_id String,
    account_id String,
    creation_date Date,
    expires_on Date,
    params String,
    amount Nullable(Decimal(18, 4)),
    duration_in_month Nullable(Int32),
    metrics String,
    raw String,
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(creation_date)
ORDER BY (provider, tenant, segment_type, job_id, user_id, account_id);

CREATE TABLE IF NOT EXISTS insights (
    provider String,
    tenant String,
    user_id String,
    module String,
    insight_id String,
    metric String,
    period String,
    value Nullable(Decimal(38, 6)),
    value_text String,
    observed_from Nullable(Date),
    observed_to Nullable(Date),
    transaction_ids Array(String),
    raw String,
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (provider, tenant, user_id, module, insight_id, metric, period);

CREATE TABLE IF NOT EXISTS user_tags (
    provider String,
    tenant String,
    user_id String,
    tag String,
    state String,
    guid String,
    observed_at DateTime('UTC'),
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (provider, tenant, user_id, tag);

CREATE TABLE IF NOT EXISTS subjects (
    provider String,
    tenant String,
    kind String,
    subject_id String,
    source String,
    correlation_id String,
    status String,
    status_detail String,
    first_seen DateTime('UTC'),
    updated_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (provider, tenant, kind, subject_id);

CREATE TABLE IF NOT EXISTS etl_state (
    stream String,
    tenant String,
    key String,
    value String,
    status String,
    created_at DateTime('UTC'),
    next_poll_at Nullable(DateTime('UTC')),
    updated_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (stream, tenant, key);

CREATE TABLE IF NOT EXISTS etl_runs (
    stream String,
    run_id String,
    tenant String,
    status String,
    window_from Nullable(DateTime('UTC')),
    window_to Nullable(DateTime('UTC')),
    started_at DateTime('UTC'),
    finished_at Nullable(DateTime('UTC')),
    rows_tables Array(String),
    rows_counts Array(UInt64),
    rows_total UInt64,
    rejects UInt64,
    retries UInt64,
    duration_ms UInt64,
    error String,
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (stream, run_id);

CREATE TABLE IF NOT EXISTS etl_rejects (
    stream String,
    run_id String,
    record_key String,
    provider String,
    tenant String,
    target_table String,
    reason String,
    raw String,
    rejected_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (stream, run_id, record_key);
