-- The views that join subqueries, with an alias on every subquery: current
-- ClickHouse refuses a JOIN of unaliased subqueries
-- (joined_subquery_requires_alias=1, the default since 20.x), 18.16 answers
-- the aliased form identically. 0006 and 0007 created the unaliased
-- versions until this file replaced them; a warehouse created then keeps
-- their text stored, unreadable on a current server, so they are dropped
-- first (dependants before what they read; DROP TABLE, since 18.16 has no
-- DROP VIEW).
DROP TABLE IF EXISTS v_transactions;
DROP TABLE IF EXISTS v_user_tags_current;
DROP TABLE IF EXISTS transactions_enriched;

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
) AS original
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
    ) AS submitted
    ANY LEFT JOIN (
        SELECT tenant AS fingoal_tenant, transaction_id AS fingoal_transaction_id, toUInt8(1) AS fingoal_found,
            category AS fingoal_category, provider_category AS fingoal_provider_category,
            merchant AS fingoal_merchant, tags AS fingoal_tags, description AS fingoal_description
        FROM transactions FINAL
        WHERE provider = 'fingoal'
    ) AS enriched USING (fingoal_tenant, fingoal_transaction_id)
) AS fingoal USING (provider, tenant, user_id, transaction_id);

-- Every transaction once, in its latest version, with the common category
-- and what FinGoal made of it (enrichment_status '' = never sent to FinGoal).
-- FinGoal's own rows are not listed again: they are the fingoal_* columns.
CREATE VIEW IF NOT EXISTS v_transactions AS
SELECT provider, tenant, user_id, transaction_id, account_id, booking_date, amount, currency,
    description, category, provider_category, tags, merchant,
    enrichment_status, fingoal_category, fingoal_merchant, fingoal_tags
FROM transactions_enriched;

-- FinGoal's current tags per user, under the user id of the provider the
-- user's transactions came from (FinGoal knows users by an opaque uid).
CREATE VIEW IF NOT EXISTS v_user_tags_current AS
SELECT source_provider AS provider, source_tenant AS tenant, source_user_id AS user_id, tag, observed_at, uid
FROM (
    SELECT user_id AS uid, tag, observed_at
    FROM user_tags FINAL
    WHERE provider = 'fingoal' AND state != 'deleted'
) AS tagged
ANY LEFT JOIN (
    SELECT uid, any(source_provider) AS source_provider, any(source_tenant) AS source_tenant, any(user_id) AS source_user_id
    FROM enrichment_submissions FINAL
    GROUP BY uid
) AS fingoal_users USING (uid);
