-- description: customers by total purchase amount (purchases landed in `events`), per currency
-- param: limit int = 10
-- param: since timestamp = 2000-01-01T00:00:00Z
SELECT
    "key" AS customer_id,
    payload ->> '$.currency' AS currency,
    count(DISTINCT event_id) AS purchases,
    round(sum(CAST(payload ->> '$.amount' AS DOUBLE)), 2) AS revenue
FROM (SELECT DISTINCT ON (event_id) * FROM events WHERE type = 'purchase' AND ts >= $since)
GROUP BY ALL
ORDER BY revenue DESC, customer_id
LIMIT $limit
