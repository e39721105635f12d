-- 7. ios and android only on mobile or tablet (web on any device), and a session never changes
--    platform: an event on another platform than its session's first event fails.
SELECT _row_id FROM @batch
WHERE platform IN ('ios', 'android') AND device_type NOT IN ('mobile', 'tablet')
UNION
SELECT b._row_id FROM @batch AS b
JOIN (
    SELECT session_id, platform FROM (
        SELECT session_id, platform,
               row_number() OVER (PARTITION BY session_id ORDER BY "timestamp", src, _row_id) AS n
        FROM (
            SELECT session_id, platform, "timestamp", 1 AS src, _row_id FROM @batch
            WHERE session_id IS NOT NULL AND platform IS NOT NULL AND "timestamp" IS NOT NULL
            UNION ALL
            SELECT session_id, platform, "timestamp", 0 AS src, 0 AS _row_id FROM staging.events
            WHERE session_id IN (SELECT session_id FROM @batch)
        ) AS x
    ) AS y WHERE n = 1
) AS s ON s.session_id = b.session_id
WHERE b.platform <> s.platform
