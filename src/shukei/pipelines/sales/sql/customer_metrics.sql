-- Over counted orders; name and region from the latest customer version (NULL when unknown).
-- The customers' orders are picked before the join: DuckDB does not push the key filter
-- below a LEFT JOIN, and would join every order to its customer first.
WITH f AS (
    SELECT customer_id, sales_date, revenue
    FROM marts.order_facts
    WHERE customer_id IN @keys
)
SELECT
    f.customer_id,
    c.name AS customer_name,
    c.region,
    min(f.sales_date) AS first_order_date,
    max(f.sales_date) AS last_order_date,
    count(*) AS order_count,
    sum(f.revenue) AS lifetime_value,
    shukei.div_round2(sum(f.revenue), count(*)) AS avg_order_value
FROM f
LEFT JOIN staging.customers AS c ON c.customer_id = f.customer_id
GROUP BY f.customer_id, c.name, c.region
