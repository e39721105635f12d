-- One row per counted order: latest order version, at least one valid line, not cancelled/refunded.
SELECT
    o.sales_date,
    o.order_id,
    o.customer_id,
    o.region,
    count(*) AS line_count,
    sum(i.quantity) AS item_count,
    sum(i.quantity * i.unit_price) AS revenue
FROM staging.orders AS o
JOIN staging.order_items AS i ON i.order_id = o.order_id
WHERE o.sales_date IN @dates
  AND (o.status IS NULL OR o.status NOT IN ('cancelled', 'refunded'))
GROUP BY o.sales_date, o.order_id, o.customer_id, o.region
