-- description: users by events in user_activity_5m, with what they did
-- param: limit int = 10
SELECT
    user_id,
    sum(events) AS events,
    sum(views) AS views,
    sum(add_to_cart) AS add_to_cart,
    sum(purchases) AS purchases,
    sum(sessions) AS sessions,
    count(*) AS active_windows,
    min(first_seen) AS first_seen,
    max(last_seen) AS last_seen
FROM user_activity_5m
GROUP BY ALL
ORDER BY events DESC, user_id
LIMIT $limit
