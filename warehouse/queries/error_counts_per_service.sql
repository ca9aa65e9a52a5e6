-- description: ERROR and FATAL log lines per service and error type
-- param: since timestamp = 2000-01-01T00:00:00Z
-- param: until timestamp = 2100-01-01T00:00:00Z
SELECT
    "key" AS service,
    coalesce(payload ->> '$.error_type', '(none)') AS error_type,
    count(DISTINCT event_id) AS errors,
    min(ts) AS first_seen,
    max(ts) AS last_seen
FROM events
WHERE type = 'log' AND payload ->> '$.level' IN ('ERROR', 'FATAL') AND ts >= $since AND ts < $until
GROUP BY ALL
ORDER BY errors DESC, service, error_type
