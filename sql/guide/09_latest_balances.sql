-- What does each user hold today, over all accounts, per currency? (newest daily balance per account)
SELECT provider, tenant, user_id, currency, count() AS accounts, sum(balance) AS total_balance, max(as_of) AS as_of
FROM v_account_balance_latest
GROUP BY provider, tenant, user_id, currency
ORDER BY currency, total_balance DESC, provider, tenant, user_id
