-- Product attributes come from the latest product version; an unknown product still counts.
-- Lines are first summed per order and product, so order_count needs no count(DISTINCT).
WITH per_order AS (
    SELECT
        f.sales_date,
        i.product_id,
        sum(i.quantity) AS quantity,
        sum(i.quantity * i.unit_price) AS revenue
    FROM marts.order_facts AS f
    JOIN staging.order_items AS i ON i.order_id = f.order_id
    WHERE f.sales_date IN @dates
    GROUP BY f.sales_date, i.order_id, i.product_id
)
SELECT
    o.sales_date,
    o.product_id,
    p.name AS product_name,
    p.category,
    sum(o.quantity) AS quantity,
    sum(o.revenue) AS revenue,
    count(*) AS order_count
FROM per_order AS o
LEFT JOIN staging.products AS p ON p.product_id = o.product_id
GROUP BY o.sales_date, o.product_id, p.name, p.category
