CREATE TABLE reservations (
    session_id TEXT NOT NULL REFERENCES checkout_sessions(id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (session_id, product_id)
);
CREATE INDEX reservations_product_id ON reservations(product_id);
CREATE TABLE cart_items (
    cart_id TEXT NOT NULL REFERENCES carts(id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    currency_code TEXT NOT NULL,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);
ALTER TABLE carts DROP COLUMN lines;
