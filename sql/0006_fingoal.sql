-- finsync:supersedes d421e833b6bd60a32cfb93cabfceca8c35eb86831157a1eb1b8a13a971bed568
-- (this file created the view transactions_enriched until 0008 replaced it)
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
