-- Distinct users reaching each step that day on that platform; rates rounded to 4 places,
-- NULL when the denominator is 0.
SELECT
    event_date, platform, viewers, clickers, carters, purchasers,
    shukei.div_round4(clickers, viewers) AS view_to_click_rate,
    shukei.div_round4(carters, clickers) AS click_to_cart_rate,
    shukei.div_round4(purchasers, carters) AS cart_to_purchase_rate,
    shukei.div_round4(purchasers, viewers) AS overall_conversion_rate
FROM (
    SELECT
        event_date,
        platform,
        count(DISTINCT user_id) FILTER (WHERE event_type = 'page_view') AS viewers,
        count(DISTINCT user_id) FILTER (WHERE event_type = 'click') AS clickers,
        count(DISTINCT user_id) FILTER (WHERE event_type = 'add_to_cart') AS carters,
        count(DISTINCT user_id) FILTER (WHERE event_type = 'purchase') AS purchasers
    FROM staging.events
    WHERE event_date IN @dates AND platform IS NOT NULL
    GROUP BY event_date, platform
) AS f
