SELECT category, count(DISTINCT product_id) AS products, sum(quantity) AS quantity,
       sum(revenue) AS revenue, sum(order_count) AS order_lines
FROM marts.daily_product_sales
GROUP BY category
ORDER BY revenue DESC
