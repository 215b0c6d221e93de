-- What does each user hold today, over all accounts? (newest daily balance per account)
SELECT provider, tenant, user_id, count() AS accounts, sum(balance) AS total_balance, max(as_of) AS as_of
FROM v_account_balance_latest
GROUP BY provider, tenant, user_id
ORDER BY total_balance DESC, user_id
