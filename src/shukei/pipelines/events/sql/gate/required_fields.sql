-- 1. The fields every event needs, and those its type needs, are present and not null.
SELECT _row_id FROM @batch
WHERE event_id_text IS NULL OR event_type_text IS NULL OR user_id_text IS NULL
   OR session_id_text IS NULL OR timestamp_text IS NULL OR platform_text IS NULL
   OR device_type_text IS NULL
   OR (event_type = 'page_view' AND (page_url_text IS NULL OR page_type_text IS NULL))
   OR (event_type = 'click' AND (element_id_text IS NULL OR element_type_text IS NULL))
   OR (event_type = 'add_to_cart'
       AND (product_id_text IS NULL OR quantity_text IS NULL OR unit_price_text IS NULL))
   OR (event_type = 'purchase' AND (order_id_text IS NULL OR total_amount_text IS NULL
       OR payment_method_text IS NULL OR items_text IS NULL))
   OR (event_type = 'search' AND (search_query_text IS NULL OR result_count_text IS NULL))
