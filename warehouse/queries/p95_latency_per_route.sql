-- description: request count, 5xx rate and latency percentiles per (service, method, route)
-- param: since timestamp = 2000-01-01T00:00:00Z
-- param: until timestamp = 2100-01-01T00:00:00Z
-- param: limit int = 20
SELECT
    payload ->> '$.service' AS service,
    payload ->> '$.method' AS method,
    payload ->> '$.route' AS route,
    count(*) AS requests,
    round(avg(CAST(CAST(payload ->> '$.status' AS INTEGER) >= 500 AS INTEGER)), 4) AS error_rate,
    round(quantile_cont(CAST(payload ->> '$.duration_ms' AS DOUBLE), 0.50), 2) AS p50_ms,
    round(quantile_cont(CAST(payload ->> '$.duration_ms' AS DOUBLE), 0.95), 2) AS p95_ms
FROM (SELECT DISTINCT ON (event_id) * FROM events WHERE type = 'http_request' AND ts >= $since AND ts < $until)
GROUP BY ALL
ORDER BY p95_ms DESC
LIMIT $limit
