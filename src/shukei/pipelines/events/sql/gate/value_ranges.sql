-- 3. Known event types, platforms and devices; quantities >= 1; prices and amounts >= 0;
--    result_count >= 0; numbers that are present must parse.
SELECT _row_id FROM @batch
WHERE (event_type IS NOT NULL
       AND event_type NOT IN ('page_view', 'click', 'add_to_cart', 'purchase', 'search'))
   OR (platform IS NOT NULL AND platform NOT IN ('ios', 'android', 'web'))
   OR (device_type IS NOT NULL AND device_type NOT IN ('mobile', 'tablet', 'desktop'))
   OR quantity < 1 OR unit_price < 0 OR total_amount < 0 OR discount_amount < 0
   OR shipping_fee < 0 OR result_count < 0
   OR (quantity_text IS NOT NULL AND quantity IS NULL)
   OR (unit_price_text IS NOT NULL AND unit_price IS NULL)
   OR (total_amount_text IS NOT NULL AND total_amount IS NULL)
   OR (discount_amount_text IS NOT NULL AND discount_amount IS NULL)
   OR (shipping_fee_text IS NOT NULL AND shipping_fee IS NULL)
   OR (result_count_text IS NOT NULL AND result_count IS NULL)
UNION
SELECT _row_id FROM @batch_purchase_items
WHERE quantity IS NULL OR quantity < 1 OR unit_price IS NULL OR unit_price < 0
