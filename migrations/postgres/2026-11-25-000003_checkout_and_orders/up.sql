-- Checkout: sessions hold reservations of stock; a saga per (owner, idempotency key) charges
-- once and turns a session into an order. Orders are event-sourced: order_events is the
-- truth, orders the projection.
CREATE TABLE checkout_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    -- RESERVED, COMPLETED, EXPIRED, CANCELLED, FAILED
    status TEXT NOT NULL,
    -- The priced lines as JSON.
    items TEXT NOT NULL,
    subtotal_cents BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    shipping_cents BIGINT NOT NULL CHECK (shipping_cents >= 0),
    tax_cents BIGINT NOT NULL CHECK (tax_cents >= 0),
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    currency_code TEXT NOT NULL,
    -- The saga paying for the session; while set, neither expiry nor another payment touches it.
    saga_id TEXT,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX checkout_sessions_owner ON checkout_sessions(owner);
CREATE INDEX checkout_sessions_open ON checkout_sessions(expires_at) WHERE status = 'RESERVED';

CREATE TABLE reservations (
    session_id TEXT NOT NULL REFERENCES checkout_sessions(id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    owner TEXT NOT NULL,
    -- RESERVED, CONFIRMED, RELEASED
    status TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (session_id, product_id)
);
CREATE INDEX reservations_product_id ON reservations(product_id);

CREATE TABLE checkout_sagas (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- SHA-256 of the request, so that a reused key with other contents is refused.
    request_hash TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES checkout_sessions(id),
    -- CHARGING, FAILED, REVIEW, COMPLETED, COMPENSATED
    step TEXT NOT NULL,
    -- Payment method and addresses as JSON.
    request TEXT NOT NULL,
    order_id TEXT,
    failure TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (owner, idempotency_key)
);
CREATE INDEX checkout_sagas_step ON checkout_sagas(step, updated_at);

-- One row per charge attempt; its idempotency key is the one the gateway sees.
CREATE TABLE payments (
    id TEXT PRIMARY KEY NOT NULL,
    saga_id TEXT NOT NULL REFERENCES checkout_sagas(id),
    owner TEXT NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt > 0),
    idempotency_key TEXT NOT NULL UNIQUE,
    -- PROCESSING, COMPLETED, FAILED, REFUNDED
    status TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency_code TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    gateway_reference TEXT,
    failure TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (saga_id, attempt)
);
CREATE INDEX payments_owner ON payments(owner, status, created_at);

CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    items TEXT NOT NULL,
    subtotal_cents BIGINT NOT NULL,
    shipping_cents BIGINT NOT NULL,
    tax_cents BIGINT NOT NULL,
    total_cents BIGINT NOT NULL,
    currency_code TEXT NOT NULL,
    shipping_address TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES checkout_sessions(id),
    saga_id TEXT NOT NULL REFERENCES checkout_sagas(id),
    payment_id TEXT REFERENCES payments(id),
    -- Number of events applied; appending checks it, so concurrent changes cannot interleave.
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX orders_owner ON orders(owner, created_at, id);

CREATE TABLE order_events (
    order_id TEXT NOT NULL REFERENCES orders(id),
    seq BIGINT NOT NULL CHECK (seq > 0),
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    -- What the event adds to the order (the whole order for the first one), as JSON.
    data TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Confirmation messages waiting for the notifier; sent after commit, retried with backoff.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    order_id TEXT NOT NULL REFERENCES orders(id),
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX notifications_pending ON notifications(next_attempt_at) WHERE sent_at IS NULL;
