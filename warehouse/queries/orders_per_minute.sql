-- description: orders created, paid and cancelled per minute (all currencies), with revenue
-- param: since timestamp = 2000-01-01T00:00:00Z
-- param: until timestamp = 2100-01-01T00:00:00Z
SELECT
    window_start AS minute,
    sum(orders_created) AS created,
    sum(orders_paid) AS paid,
    sum(orders_cancelled) AS cancelled,
    round(sum(revenue), 2) AS revenue
FROM order_stats_minute
WHERE window_start >= $since AND window_start < $until
GROUP BY window_start
ORDER BY window_start
