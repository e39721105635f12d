SELECT
    sales_date,
    region,
    count(*) AS order_count,
    sum(item_count) AS item_count,
    sum(revenue) AS revenue,
    count(DISTINCT customer_id) AS customer_count
FROM marts.order_facts
WHERE sales_date IN @dates
GROUP BY sales_date, region
