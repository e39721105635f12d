SELECT
    e.order_id,
    e.event_date,
    e.user_id,
    e.session_id,
    e.platform,
    coalesce(i.item_count, 0) AS item_count,
    e.total_amount,
    coalesce(e.discount_amount, 0) AS discount_amount,
    coalesce(e.shipping_fee, 0) AS shipping_fee,
    e.payment_method
FROM staging.events AS e
LEFT JOIN (
    SELECT event_id, sum(quantity) AS item_count FROM staging.purchase_items
    WHERE event_date IN @dates GROUP BY event_id
) AS i ON i.event_id = e.event_id
WHERE e.event_type = 'purchase' AND e.event_date IN @dates AND e.order_id IS NOT NULL
