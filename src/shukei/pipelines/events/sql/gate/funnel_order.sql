-- 4. A purchase has an earlier add_to_cart in the same session (in this batch or loaded before).
SELECT p._row_id FROM @batch AS p
WHERE p.event_type = 'purchase' AND p.session_id IS NOT NULL AND p."timestamp" IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM (
        SELECT session_id, "timestamp" FROM @batch WHERE event_type = 'add_to_cart'
        UNION ALL
        SELECT session_id, "timestamp" FROM staging.events
        WHERE event_type = 'add_to_cart'
          AND session_id IN (SELECT session_id FROM @batch WHERE event_type = 'purchase')
    ) AS a
    WHERE a.session_id = p.session_id AND a."timestamp" < p."timestamp")
