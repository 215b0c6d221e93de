-- Is the warehouse fresh? (the stalest streams first; failed_24h counts every run that did not succeed)
SELECT stream, last_success, lag_seconds, last_status, runs_24h, failed_24h, partial_24h, abandoned_24h, rows_24h, rejects_24h
FROM v_pipeline_freshness
ORDER BY lag_seconds DESC, stream
