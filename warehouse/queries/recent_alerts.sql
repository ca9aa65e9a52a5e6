-- description: the newest alerts in their latest state (firing or resolved), newest first
-- param: limit int = 20
SELECT alert_id, source, rule, severity, subject, state, observed, threshold, expected_low,
       expected_high, first_seen, last_seen
FROM alerts_latest
ORDER BY first_seen DESC, rule, subject
LIMIT $limit
