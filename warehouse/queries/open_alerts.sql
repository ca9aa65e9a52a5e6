-- description: alerts whose latest state is firing, most severe and newest first
-- param: severity text = %
SELECT alert_id, source, rule, severity, subject, observed, threshold, expected_low,
       expected_high, first_seen, last_seen
FROM alerts_open
WHERE severity LIKE $severity
ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, last_seen DESC
