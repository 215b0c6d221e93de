-- Which savings recommendations did FinGoal make, by category?
SELECT category, count() AS recommendations, uniqExact(user_id) AS users, sum(amount_found) AS amount_found
FROM (
    SELECT user_id, insight_id, anyIf(value_text, metric = 'category') AS category, sumIf(value, metric = 'amount_found') AS amount_found
    FROM v_insights
    WHERE module = 'finsight'
    GROUP BY user_id, insight_id
)
GROUP BY category
ORDER BY recommendations DESC, category
