-- How much was spent per month and category (all users, last six months)?
SELECT month, category, -sum(spending) AS spent, sum(transactions) AS transactions
FROM v_monthly_cashflow
WHERE month >= addMonths(toStartOfMonth(today()), -5) AND spending < 0
GROUP BY month, category
ORDER BY month DESC, spent DESC, category
