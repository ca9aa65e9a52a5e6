-- description: dead letters per flow, source topic and kind of reason
-- param: since timestamp = 2000-01-01T00:00:00Z
SELECT
    flow,
    topic,
    split_part(reason, ':', 1) AS kind,
    count(*) AS dead_letters,
    any_value(reason) AS example
FROM dead_letters
WHERE seen_at >= $since
GROUP BY ALL
ORDER BY dead_letters DESC
