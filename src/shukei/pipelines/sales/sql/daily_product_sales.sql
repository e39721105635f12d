-- Product attributes come from the latest product version; an unknown product still counts.
SELECT
    f.sales_date,
    i.product_id,
    p.name AS product_name,
    p.category,
    sum(i.quantity) AS quantity,
    sum(i.quantity * i.unit_price) AS revenue,
    count(DISTINCT i.order_id) AS order_count
FROM marts.order_facts AS f
JOIN staging.order_items AS i ON i.order_id = f.order_id
LEFT JOIN staging.products AS p ON p.product_id = i.product_id
WHERE f.sales_date IN @dates
GROUP BY f.sales_date, i.product_id, p.name, p.category
