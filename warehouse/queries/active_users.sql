-- description: distinct users with any action, per window of `minutes` minutes
-- param: minutes int = 5
-- param: since timestamp = 2000-01-01T00:00:00Z
SELECT
    time_bucket(to_minutes($minutes), ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS window_start,
    count(DISTINCT "key") AS active_users,
    count(DISTINCT event_id) AS actions
FROM events
WHERE type = 'user_action' AND ts >= $since
GROUP BY window_start
ORDER BY window_start
