-- A cart's lines live in its row (JSON), so a cart change is one UPDATE, not a delete, an upsert
-- and a version bump. Lines keep the serialized form of the domain's CartLine.
ALTER TABLE carts ADD COLUMN lines TEXT NOT NULL DEFAULT '[]';
UPDATE carts SET lines = (
    SELECT json_group_array(json_object(
        'product_id', product_id,
        'quantity', quantity,
        'unit_price', json_object('cents', unit_price_cents, 'currency', currency_code),
        'added_at', replace(added_at, ' ', 'T') || 'Z'
    ))
    FROM (SELECT * FROM cart_items WHERE cart_items.cart_id = carts.id ORDER BY added_at, product_id)
)
WHERE EXISTS (SELECT 1 FROM cart_items WHERE cart_items.cart_id = carts.id);
DROP TABLE cart_items;

-- A checkout session's lines are its reservations: the session's status says whether they are
-- held (RESERVED), sold (COMPLETED) or given back; a separate row per line only cost writes.
DROP TABLE reservations;
