-- How much was spent per month, category and currency (all users, last six months)?
SELECT month, currency, category, -sum(spending) AS spent, sum(transactions) AS transactions
FROM v_monthly_cashflow
WHERE month >= addMonths(toStartOfMonth(today()), -5) AND spending < 0
GROUP BY month, currency, category
ORDER BY month DESC, currency, spent DESC, category
