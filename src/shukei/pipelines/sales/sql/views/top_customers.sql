SELECT customer_id, customer_name, region, order_count, lifetime_value, avg_order_value,
       rank() OVER (ORDER BY lifetime_value DESC) AS revenue_rank
FROM marts.customer_metrics
ORDER BY lifetime_value DESC, customer_id
