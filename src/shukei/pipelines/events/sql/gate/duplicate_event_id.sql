-- 2. An event_id already used, in this batch or by a loaded event, for a DIFFERENT event.
--    An exact re-send of an event (the same content again) is no quality failure: it passes,
--    and staging records it as a duplicate that changes nothing.
SELECT b._row_id FROM @batch AS b
JOIN (
    SELECT event_id, min(_row_id) AS first_row FROM @batch
    WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1
) AS f ON f.event_id = b.event_id AND b._row_id <> f.first_row
JOIN @batch AS o ON o._row_id = f.first_row
WHERE b.event_type IS DISTINCT FROM o.event_type OR b.user_id IS DISTINCT FROM o.user_id
   OR b.session_id IS DISTINCT FROM o.session_id OR b."timestamp" IS DISTINCT FROM o."timestamp"
   OR b.platform IS DISTINCT FROM o.platform OR b.device_type IS DISTINCT FROM o.device_type
   OR b.page_url IS DISTINCT FROM o.page_url OR b.element_id IS DISTINCT FROM o.element_id
   OR b.product_id IS DISTINCT FROM o.product_id OR b.quantity IS DISTINCT FROM o.quantity
   OR b.unit_price IS DISTINCT FROM o.unit_price OR b.order_id IS DISTINCT FROM o.order_id
   OR b.total_amount IS DISTINCT FROM o.total_amount OR b.items IS DISTINCT FROM o.items
   OR b.search_query IS DISTINCT FROM o.search_query
   OR b.result_count IS DISTINCT FROM o.result_count
UNION
SELECT b._row_id FROM @batch AS b
JOIN staging.events AS o ON o.event_id = b.event_id
WHERE b.event_type IS DISTINCT FROM o.event_type OR b.user_id IS DISTINCT FROM o.user_id
   OR b.session_id IS DISTINCT FROM o.session_id OR b."timestamp" IS DISTINCT FROM o."timestamp"
   OR b.platform IS DISTINCT FROM o.platform OR b.device_type IS DISTINCT FROM o.device_type
   OR b.page_url IS DISTINCT FROM o.page_url OR b.element_id IS DISTINCT FROM o.element_id
   OR b.product_id IS DISTINCT FROM o.product_id OR b.quantity IS DISTINCT FROM o.quantity
   OR b.unit_price IS DISTINCT FROM o.unit_price OR b.order_id IS DISTINCT FROM o.order_id
   OR b.total_amount IS DISTINCT FROM o.total_amount OR b.items IS DISTINCT FROM o.items
   OR b.search_query IS DISTINCT FROM o.search_query
   OR b.result_count IS DISTINCT FROM o.result_count
