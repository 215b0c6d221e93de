-- Which users have a high balance right now? (finAPI highBalance segment, newest job per mandator)
SELECT tenant, user_id, amount AS balance, creation_date
FROM v_segment_members_current
WHERE segment_type = 'highBalance'
ORDER BY balance DESC, user_id
