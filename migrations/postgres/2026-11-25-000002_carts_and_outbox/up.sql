-- Carts belong to an owner ("user:<id>" or "guest:<session>"); every change bumps the version.
CREATE TABLE carts (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL UNIQUE,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- Guest carts expire 24 hours after their last change; user carts have no expiry here.
    expires_at TIMESTAMP
);
CREATE INDEX carts_expires_at ON carts(expires_at);
CREATE INDEX carts_updated_at ON carts(updated_at);

CREATE TABLE cart_items (
    cart_id TEXT NOT NULL REFERENCES carts(id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    currency_code TEXT NOT NULL,
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);

-- Transactional outbox: events are written with the change they describe and published after
-- commit by a dispatcher.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    published_at TIMESTAMP
);
CREATE INDEX outbox_unpublished ON outbox(id) WHERE published_at IS NULL;
