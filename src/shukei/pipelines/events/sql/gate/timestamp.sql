-- 5. The timestamp is valid ISO 8601 and within the plausible range (settings gate_min_time and
--    gate_max_future_hours).
SELECT _row_id FROM @batch
WHERE timestamp_text IS NOT NULL
  AND ("timestamp" IS NULL OR "timestamp" < @min_time OR "timestamp" > @max_time)
