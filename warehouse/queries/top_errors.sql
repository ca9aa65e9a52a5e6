-- description: ERROR and FATAL lines per service and error type, from error_counts_minute
-- param: since timestamp = 2000-01-01T00:00:00Z
-- param: until timestamp = 2100-01-01T00:00:00Z
-- param: limit int = 10
SELECT
    service,
    error_type,
    sum(errors) AS errors,
    sum(fatal) AS fatal,
    max(errors) AS worst_minute_errors,
    arg_max(window_start, errors) AS worst_minute
FROM error_counts_minute
WHERE window_start >= $since AND window_start < $until
GROUP BY ALL
ORDER BY errors DESC, service, error_type
LIMIT $limit
