-- Every run that did not succeed is counted: 0007's v_pipeline_freshness
-- counted only `failed`, so a stream whose runs kept stopping early
-- (`partial`) or dying (`abandoned`: finsync found the run still
-- `running` past its stream's timeout, its process gone) looked healthy.
-- Its columns change, so it is dropped and created again (DROP TABLE:
-- 18.16 has no DROP VIEW).
DROP TABLE IF EXISTS v_pipeline_freshness;

-- Is the warehouse fresh? Per stream: the last successful run, how long
-- ago, the last run's status, and over the last 24 hours the runs, those
-- that did not succeed (failed_24h: failed, partial or abandoned), rows
-- and rejects, then the partial runs (stopped early, e.g. by a provider's
-- rate limit; the next run resumes) and the abandoned ones on their own.
CREATE VIEW IF NOT EXISTS v_pipeline_freshness AS
SELECT stream,
    maxIf(finished_at, status = 'success') AS last_success,
    dateDiff('second', maxIf(finished_at, status = 'success'), now()) AS lag_seconds,
    argMax(status, started_at) AS last_status,
    countIf(started_at >= now() - 86400) AS runs_24h,
    countIf(status IN ('failed', 'partial', 'abandoned') AND started_at >= now() - 86400) AS failed_24h,
    sumIf(rows_total, started_at >= now() - 86400) AS rows_24h,
    sumIf(rejects, started_at >= now() - 86400) AS rejects_24h,
    countIf(status = 'partial' AND started_at >= now() - 86400) AS partial_24h,
    countIf(status = 'abandoned' AND started_at >= now() - 86400) AS abandoned_24h
FROM etl_runs FINAL
GROUP BY stream;
