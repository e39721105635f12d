-- 6. total_amount = sum(quantity x unit_price) - discount_amount + shipping_fee, to the cent.
SELECT p._row_id FROM @batch AS p
LEFT JOIN (
    SELECT _row_id, sum(quantity * unit_price) AS lines, count(*) AS n,
           count(quantity * unit_price) AS priced
    FROM @batch_purchase_items GROUP BY _row_id
) AS i ON i._row_id = p._row_id
WHERE p.event_type = 'purchase' AND p.total_amount IS NOT NULL AND p.items_text IS NOT NULL
  AND (i.lines IS NULL OR i.n <> i.priced
       OR p.total_amount <> i.lines - coalesce(p.discount_amount, 0) + coalesce(p.shipping_fee, 0))
