-- Which savings recommendations did FinGoal make, by category and currency (their transactions' currency)?
SELECT category, currency, count() AS recommendations, uniqExact(user_id) AS users, sum(amount_found) AS amount_found
FROM (
    SELECT user_id, insight_id, anyIf(value_text, metric = 'category') AS category, sumIf(value, metric = 'amount_found') AS amount_found,
        anyIf(transaction_ids[1], metric = 'amount_found') AS fingoal_transaction_id
    FROM v_insights
    WHERE module = 'finsight'
    GROUP BY user_id, insight_id
) AS finsights
ANY LEFT JOIN (
    SELECT fingoal_transaction_id, currency
    FROM transactions_enriched
    WHERE fingoal_transaction_id != ''
) AS sources USING (fingoal_transaction_id)
GROUP BY category, currency
ORDER BY recommendations DESC, category, currency
