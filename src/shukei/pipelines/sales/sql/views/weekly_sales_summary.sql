SELECT CAST(date_trunc('week', sales_date) AS DATE) AS week_start,
       sum(order_count) AS order_count, sum(item_count) AS item_count, sum(revenue) AS revenue
FROM marts.daily_sales
GROUP BY 1
ORDER BY 1
