-- description: routes by their worst minute's p99 latency, from api_latency_minute
-- param: since timestamp = 2000-01-01T00:00:00Z
-- param: until timestamp = 2100-01-01T00:00:00Z
-- param: limit int = 10
SELECT
    service,
    method,
    route,
    sum(requests) AS requests,
    round(sum(errors_5xx) / sum(requests), 4) AS error_rate,
    round(sum(mean_ms * requests) / sum(requests), 2) AS mean_ms,
    round(max(p99_ms), 2) AS worst_p99_ms,
    arg_max(window_start, p99_ms) AS worst_minute
FROM api_latency_minute
WHERE window_start >= $since AND window_start < $until
GROUP BY ALL
ORDER BY worst_p99_ms DESC
LIMIT $limit
