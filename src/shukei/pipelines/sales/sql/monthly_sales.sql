-- month = its first day. Rebuilt for every month that holds a rebuilt date. The date range
-- lets the engine skip the rest of order_facts before it computes each row's month. The date is
-- truncated as a TIMESTAMP: PostgreSQL would otherwise make it a TIMESTAMPTZ first and truncate
-- it in the session's time zone, which costs a fifth of this query (measured).
SELECT
    CAST(date_trunc('month', CAST(sales_date AS TIMESTAMP)) AS DATE) AS month,
    count(*) AS order_count,
    sum(item_count) AS item_count,
    sum(revenue) AS revenue,
    count(DISTINCT customer_id) AS customer_count
FROM marts.order_facts
WHERE sales_date >= (SELECT min(m.d) FROM @months AS m)
  AND sales_date < (SELECT max(m.d) FROM @months AS m) + INTERVAL 1 MONTH
  AND CAST(date_trunc('month', CAST(sales_date AS TIMESTAMP)) AS DATE) IN @months
GROUP BY 1
