SELECT
    event_date,
    user_id,
    count(DISTINCT session_id) AS sessions,
    count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
    count(*) FILTER (WHERE event_type = 'click') AS clicks,
    count(*) FILTER (WHERE event_type = 'search') AS searches,
    count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_carts,
    count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
    coalesce(sum(total_amount) FILTER (WHERE event_type = 'purchase'), 0) AS revenue
FROM staging.events
WHERE event_date IN @dates AND user_id IS NOT NULL
GROUP BY event_date, user_id
