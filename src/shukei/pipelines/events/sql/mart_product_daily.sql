-- Cart adds from add_to_cart events; purchases unnested from each purchase's items.
WITH carts AS (
    SELECT event_date, product_id, count(*) AS cart_adds, sum(quantity) AS cart_quantity
    FROM staging.events
    WHERE event_type = 'add_to_cart' AND event_date IN @dates AND product_id IS NOT NULL
    GROUP BY event_date, product_id
), bought AS (
    SELECT event_date, product_id, count(DISTINCT event_id) AS purchases,
           sum(quantity) AS purchased_quantity, sum(quantity * unit_price) AS revenue
    FROM staging.purchase_items
    WHERE event_date IN @dates AND product_id IS NOT NULL
    GROUP BY event_date, product_id
)
SELECT
    coalesce(c.event_date, b.event_date) AS event_date,
    coalesce(c.product_id, b.product_id) AS product_id,
    coalesce(c.cart_adds, 0) AS cart_adds,
    coalesce(c.cart_quantity, 0) AS cart_quantity,
    coalesce(b.purchases, 0) AS purchases,
    coalesce(b.purchased_quantity, 0) AS purchased_quantity,
    coalesce(b.revenue, 0) AS revenue
FROM carts AS c
FULL OUTER JOIN bought AS b ON b.event_date = c.event_date AND b.product_id = c.product_id
