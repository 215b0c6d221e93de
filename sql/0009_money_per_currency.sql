-- Money is never added across currencies. A sum of amounts is only
-- meaningful within one currency (there is no rate table, and finsync
-- converts nothing), so every view that adds up money groups by currency.
-- Of the views before this file only v_monthly_cashflow adds amounts of
-- rows that can differ in currency (Fimento's SEK and EUR, finoOS's EUR);
-- v_segment_members_current adds finAPI amounts, which name no currency.
-- The view is dropped and created again (DROP TABLE: 18.16 has no DROP VIEW).
DROP TABLE IF EXISTS v_monthly_cashflow;

-- Per user, month, common category and currency: money in (income, ≥ 0),
-- money out (spending, ≤ 0), net = income + spending, and the number of
-- transactions. Add rows up within one currency only.
CREATE VIEW IF NOT EXISTS v_monthly_cashflow AS
SELECT provider, tenant, user_id, toStartOfMonth(booking_date) AS month, category, currency,
    sumIf(amount, amount > 0) AS income, sumIf(amount, amount < 0) AS spending, sum(amount) AS net,
    count() AS transactions
FROM transactions FINAL
WHERE provider != 'fingoal'
GROUP BY provider, tenant, user_id, month, category, currency;

-- The FinGoal ledger keeps the currency of the transaction it sent (FinGoal
-- is sent none), so that FinGoal's enriched copy in transactions carries
-- it too. Rows written before this file have ''. Last in the file: 18.16
-- knows no ADD COLUMN IF NOT EXISTS, so a failure before it leaves the file
-- safe to apply again.
ALTER TABLE enrichment_submissions ADD COLUMN currency String AFTER transaction_id;
