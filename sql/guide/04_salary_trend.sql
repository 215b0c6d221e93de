-- How do salaries develop? (finoOS income analytics, per month)
SELECT period AS month, count() AS users, sum(value) AS total_salary, round(sum(value) / count(), 2) AS average_salary
FROM v_insights
WHERE module = 'person-income-salary' AND metric = 'salary.amount' AND value > 0
GROUP BY period
ORDER BY period
