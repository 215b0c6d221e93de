-- How large is each finAPI segment now?
SELECT segment_type, tenant, count() AS users, sum(accounts) AS accounts, sum(amount) AS amount
FROM v_segment_members_current
GROUP BY segment_type, tenant
ORDER BY segment_type, tenant
