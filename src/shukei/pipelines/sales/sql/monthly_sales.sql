-- month = its first day. Rebuilt for every month that holds a rebuilt date.
SELECT
    CAST(date_trunc('month', sales_date) AS DATE) AS month,
    count(*) AS order_count,
    sum(item_count) AS item_count,
    sum(revenue) AS revenue,
    count(DISTINCT customer_id) AS customer_count
FROM marts.order_facts
WHERE CAST(date_trunc('month', sales_date) AS DATE) IN @months
GROUP BY 1
