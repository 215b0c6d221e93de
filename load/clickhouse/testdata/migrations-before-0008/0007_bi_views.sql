-- Reporting views for BI tools: deduplicated (FINAL or argMax),
-- named v_*, so that analysts never meet _version, FINAL or a provider's
-- quirks. They run on 18.16 and current ClickHouse. Amounts keep the
-- schema's sign: negative = money out.

-- Every transaction once, in its latest version, with the common category
-- and what FinGoal made of it (enrichment_status '' = never sent to FinGoal).
-- FinGoal's own rows are not listed again: they are the fingoal_* columns.
CREATE VIEW IF NOT EXISTS v_transactions AS
SELECT provider, tenant, user_id, transaction_id, account_id, booking_date, amount, currency,
    description, category, provider_category, tags, merchant,
    enrichment_status, fingoal_category, fingoal_merchant, fingoal_tags
FROM transactions_enriched;

-- Per user, month and common category: money in (income, ≥ 0), money out
-- (spending, ≤ 0), net = income + spending, and the number of transactions.
CREATE VIEW IF NOT EXISTS v_monthly_cashflow AS
SELECT provider, tenant, user_id, toStartOfMonth(booking_date) AS month, category,
    sumIf(amount, amount > 0) AS income, sumIf(amount, amount < 0) AS spending, sum(amount) AS net,
    count() AS transactions
FROM transactions FINAL
WHERE provider != 'fingoal'
GROUP BY provider, tenant, user_id, month, category;

-- The newest daily balance of every account.
CREATE VIEW IF NOT EXISTS v_account_balance_latest AS
SELECT provider, tenant, user_id, account_id, max(balance_date) AS as_of,
    argMax(balance, balance_date) AS balance, argMax(currency, balance_date) AS currency
FROM account_balances FINAL
WHERE granularity = 'day'
GROUP BY provider, tenant, user_id, account_id;

-- Daily balances with the gaps filled: every day from an account's first to
-- its last reported day, a missing day carrying the last reported balance
-- (reported = 0). Filter by user or account: the fill is per account.
CREATE VIEW IF NOT EXISTS v_account_balance_daily AS
SELECT provider, tenant, user_id, account_id, day AS balance_date,
    arrayElement(arrayFilter((b, d) -> d <= day, balances, dates), -1) AS balance,
    currency, has(dates, day) AS reported
FROM (
    SELECT provider, tenant, user_id, account_id, any(currency) AS currency,
        arraySort(groupArray(balance_date)) AS dates,
        arraySort((b, d) -> d, groupArray(balance), groupArray(balance_date)) AS balances
    FROM account_balances FINAL
    WHERE granularity = 'day'
    GROUP BY provider, tenant, user_id, account_id
)
ARRAY JOIN arrayMap(i -> dates[1] + i, range(toUInt32(dates[-1] - dates[1]) + 1)) AS day;

-- Recurring payments still going (nothing missed in their booking range).
-- The column interval is qualified: 18.16 stores a view's query with
-- identifiers unquoted, and a bare `interval` (a keyword) would make the
-- stored view unreadable when the server restarts.
CREATE VIEW IF NOT EXISTS v_contracts_active AS
SELECT provider, tenant, user_id, contract_id, category, provider_category, amount, amount_consistency,
    contracts.`interval` AS `interval`, duration, mref, next_booking_date, next_booking_from, next_booking_to,
    partner_name, transaction_ids
FROM contracts FINAL
WHERE is_active;

-- finAPI segments now: one row per user and segment type from each
-- mandator's newest unexpired job (accounts adds up the user's qualifying
-- accounts, amount their amounts).
CREATE VIEW IF NOT EXISTS v_segment_members_current AS
SELECT provider, tenant, segment_type, user_id, any(job_id) AS job_id, min(creation_date) AS creation_date,
    min(expires_on) AS expires_on, count() AS accounts, sum(amount) AS amount, any(params) AS params
FROM latest_segment_members
GROUP BY provider, tenant, segment_type, user_id;

-- Analytics facts as the latest run of each module left them (a module's
-- run is a snapshot: facts an older run had and the latest has not are
-- gone); FinGoal's recommendations (module finsight) arrive incrementally
-- and are all listed.
CREATE VIEW IF NOT EXISTS v_insights AS
SELECT provider, tenant, user_id, module, insight_id, metric, period, value, value_text,
    observed_from, observed_to, transaction_ids, extracted_at
FROM insights FINAL
WHERE module = 'finsight'
    OR (provider, tenant, user_id, module, run_id) IN (
        SELECT provider, tenant, user_id, module, argMax(run_id, extracted_at)
        FROM insights FINAL
        GROUP BY provider, tenant, user_id, module);

-- FinGoal's current tags per user, under the user id of the provider the
-- user's transactions came from (FinGoal knows users by an opaque uid).
CREATE VIEW IF NOT EXISTS v_user_tags_current AS
SELECT source_provider AS provider, source_tenant AS tenant, source_user_id AS user_id, tag, observed_at, uid
FROM (
    SELECT user_id AS uid, tag, observed_at
    FROM user_tags FINAL
    WHERE provider = 'fingoal' AND state != 'deleted'
)
ANY LEFT JOIN (
    SELECT uid, any(source_provider) AS source_provider, any(source_tenant) AS source_tenant, any(user_id) AS source_user_id
    FROM enrichment_submissions FINAL
    GROUP BY uid
) USING (uid);

-- Is the warehouse fresh? Per stream: the last successful run, how long
-- ago, the last run's status, and the last 24 hours' runs, failures, rows
-- and rejects.
CREATE VIEW IF NOT EXISTS v_pipeline_freshness AS
SELECT stream,
    maxIf(finished_at, status = 'success') AS last_success,
    dateDiff('second', maxIf(finished_at, status = 'success'), now()) AS lag_seconds,
    argMax(status, started_at) AS last_status,
    countIf(started_at >= now() - 86400) AS runs_24h,
    countIf(status = 'failed' AND started_at >= now() - 86400) AS failed_24h,
    sumIf(rows_total, started_at >= now() - 86400) AS rows_24h,
    sumIf(rejects, started_at >= now() - 86400) AS rejects_24h
FROM etl_runs FINAL
GROUP BY stream;
