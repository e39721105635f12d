-- revenue_7d: the region's revenue over the 7 calendar days ending on `date`.
SELECT sales_date AS date, region, order_count, revenue,
       sum(revenue) OVER (PARTITION BY region ORDER BY sales_date
                          RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW) AS revenue_7d
FROM marts.daily_sales_by_region
