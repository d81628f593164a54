-- A cart's lines live in its row (JSON), so a cart change is one UPDATE, not a delete, an upsert
-- and a version bump. Lines keep the serialized form of the domain's CartLine.
ALTER TABLE carts ADD COLUMN lines TEXT NOT NULL DEFAULT '[]';
UPDATE carts SET lines = grouped.lines
FROM (
    SELECT cart_id, json_agg(json_build_object(
        'product_id', product_id,
        'quantity', quantity,
        'unit_price', json_build_object('cents', unit_price_cents, 'currency', currency_code),
        'added_at', to_char(added_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    ) ORDER BY added_at, product_id)::text AS lines
    FROM cart_items
    GROUP BY cart_id
) AS grouped
WHERE carts.id = grouped.cart_id;
DROP TABLE cart_items;

-- A checkout session's lines are its reservations: the session's status says whether they are
-- held (RESERVED), sold (COMPLETED) or given back; a separate row per line only cost writes.
DROP TABLE reservations;
