-- Which accounts were overdrawn in each of the last three complete months?
SELECT provider, tenant, user_id, account_id, min(low) AS lowest_balance
FROM (
    SELECT provider, tenant, user_id, account_id, toStartOfMonth(balance_date) AS month, min(balance) AS low
    FROM v_account_balance_daily
    WHERE balance_date >= addMonths(toStartOfMonth(today()), -3) AND balance_date < toStartOfMonth(today())
    GROUP BY provider, tenant, user_id, account_id, month
    HAVING low < 0
)
GROUP BY provider, tenant, user_id, account_id
HAVING count() = 3
ORDER BY lowest_balance, account_id
