-- FinGoal enrichment (extract/fingoal). The ledger of transactions sent to
-- FinGoal: a row is written before the submission (status pending), again
-- with FinGoal's batch_request_id once it answered (submitted), or with
-- refused (FinGoal answered 400; reason says why) or unsent (the request
-- certainly did not reach FinGoal: the transaction is eligible again).
-- A transaction with any other row here is never sent again.
-- Columns must match transform/schema.go (EnrichmentSubmissions).
CREATE TABLE IF NOT EXISTS enrichment_submissions (
    provider String,
    tenant String,
    source_provider String,
    source_tenant String,
    user_id String,
    transaction_id String,
    uid String,
    enrich_transaction_id String,
    submission_id String,
    batch_request_id String,
    endpoint String,
    status String,
    reason String,
    submitted_at DateTime('UTC'),
    source_job_id String,
    run_id String,
    extracted_at DateTime('UTC'),
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY (provider, tenant, source_provider, source_tenant, user_id, transaction_id);

-- Every transaction of the other providers with what FinGoal made of it:
-- the original row (deduplicated) joined through the ledger to FinGoal's
-- enriched row, which lands in transactions under provider 'fingoal' with
-- FinGoal's opaque ids (user_id = uid, transaction_id = the opaque
-- transactionid). enrichment_status is enriched, submitted (sent, result not
-- collected yet), pending (sent or about to be, FinGoal's answer unknown),
-- refused, unsent, or '' (never sent). Transactions FinGoal could not enrich
-- (failedTransactions) stay submitted; their reasons are in etl_rejects
-- (stream fingoal.enrichment). Columns are listed, not *: 18.16 repeats the
-- USING keys under SELECT *. Two joins in nested subqueries: ClickHouse
-- 18.16 allows one JOIN per SELECT.
CREATE VIEW IF NOT EXISTS transactions_enriched AS
SELECT provider, tenant, user_id, transaction_id, account_id, booking_date, amount, currency,
    description, category, provider_category, tags, merchant,
    enrichment_status, fingoal_category, fingoal_provider_category, fingoal_merchant, fingoal_tags,
    fingoal_description, fingoal_tenant, fingoal_uid, fingoal_transaction_id, batch_request_id
FROM (
    SELECT provider, tenant, user_id, transaction_id, account_id, booking_date, amount, currency,
        description, category, provider_category, tags, merchant
    FROM transactions FINAL
    WHERE provider != 'fingoal'
)
ANY LEFT JOIN (
    SELECT source_provider AS provider, source_tenant AS tenant, user_id, transaction_id,
        fingoal_tenant, uid AS fingoal_uid, fingoal_transaction_id, batch_request_id,
        if(fingoal_found = 1, 'enriched', status) AS enrichment_status,
        fingoal_category, fingoal_provider_category, fingoal_merchant, fingoal_tags, fingoal_description
    FROM (
        SELECT tenant AS fingoal_tenant, enrich_transaction_id AS fingoal_transaction_id,
            source_provider, source_tenant, user_id, transaction_id, uid, batch_request_id, status
        FROM enrichment_submissions FINAL
        WHERE provider = 'fingoal'
    )
    ANY LEFT JOIN (
        SELECT tenant AS fingoal_tenant, transaction_id AS fingoal_transaction_id, toUInt8(1) AS fingoal_found,
            category AS fingoal_category, provider_category AS fingoal_provider_category,
            merchant AS fingoal_merchant, tags AS fingoal_tags, description AS fingoal_description
        FROM transactions FINAL
        WHERE provider = 'fingoal'
    ) USING (fingoal_tenant, fingoal_transaction_id)
) USING (provider, tenant, user_id, transaction_id);
