-- 2. An event_id seen earlier in the batch, or already loaded.
SELECT _row_id FROM (
    SELECT _row_id, row_number() OVER (PARTITION BY event_id ORDER BY _row_id) AS n
    FROM @batch WHERE event_id IS NOT NULL
) AS b WHERE n > 1
UNION
SELECT b._row_id FROM @batch AS b
WHERE EXISTS (SELECT 1 FROM raw.events AS r WHERE r.event_id = b.event_id)
