-- description: a user's current summary and recommended items (behavior_etl)
-- param: user_id text = u-000000
SELECT
    s.user_id,
    s.page_views,
    s.purchases,
    s.total_spend,
    s.spend_currency,
    s.recent_items,
    r.items AS recommended,
    r.basis
FROM user_summary_latest AS s
LEFT JOIN user_recommendations_latest AS r USING (user_id)
WHERE s.user_id = $user_id
