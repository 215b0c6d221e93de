-- Which insurance contracts are active, and what do they cost?
SELECT provider, tenant, user_id, contract_id, amount, `interval`, next_booking_date
FROM v_contracts_active
WHERE category = 'insurance'
ORDER BY user_id, contract_id
