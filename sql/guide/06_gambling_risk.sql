-- Which users gambled in the last three months? (finoOS risk analytics)
SELECT tenant, user_id, sum(value) AS gambling_transactions, arraySort(groupArray(period)) AS months
FROM v_insights
WHERE module = 'person-risk-gambling' AND metric = 'gambling.count' AND value > 0
    AND period >= formatDateTime(addMonths(today(), -2), '%Y-%m')
GROUP BY tenant, user_id
ORDER BY gambling_transactions DESC, user_id
