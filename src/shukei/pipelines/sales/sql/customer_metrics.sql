-- Over counted orders; name and region from the latest customer version (NULL when unknown).
SELECT
    f.customer_id,
    c.name AS customer_name,
    c.region,
    min(f.sales_date) AS first_order_date,
    max(f.sales_date) AS last_order_date,
    count(*) AS order_count,
    sum(f.revenue) AS lifetime_value,
    shukei.div_round2(sum(f.revenue), count(*)) AS avg_order_value
FROM marts.order_facts AS f
LEFT JOIN staging.customers AS c ON c.customer_id = f.customer_id
WHERE f.customer_id IN @keys
GROUP BY f.customer_id, c.name, c.region
