SELECT sales_date AS date, region, order_count, revenue,
       sum(revenue) OVER (PARTITION BY region ORDER BY sales_date
                          ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS revenue_7d
FROM marts.daily_sales_by_region
