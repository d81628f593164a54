-- A flash sale: its units left the product's regular stock when it was created; `remaining`
-- is what is neither held nor sold. Tickets order the waiting room: `tickets` counts those
-- handed out, `shuffled` says the arrivals before the start have been put in a random order.
CREATE TABLE flash_sales (
    id TEXT PRIMARY KEY NOT NULL,
    product_id TEXT NOT NULL REFERENCES products(id),
    sale_price_cents BIGINT NOT NULL,
    currency_code TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    remaining INTEGER NOT NULL CHECK (remaining >= 0),
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    per_user_limit INTEGER NOT NULL,
    admission_per_minute INTEGER NOT NULL,
    hold_seconds INTEGER NOT NULL,
    tickets BIGINT NOT NULL,
    shuffled BOOLEAN NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL,
    returned_to_stock INTEGER NOT NULL,
    ended_at TIMESTAMP
);
CREATE INDEX flash_sales_by_end ON flash_sales (ends_at);
-- One entry per shopper and sale, whatever becomes of it.
CREATE TABLE flash_sale_entries (
    sale_id TEXT NOT NULL REFERENCES flash_sales(id),
    shopper TEXT NOT NULL,
    status TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    ticket BIGINT,
    checkout_session_id TEXT,
    expires_at TIMESTAMP,
    admitted_at TIMESTAMP,
    joined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (sale_id, shopper)
);
CREATE INDEX flash_sale_entries_by_status ON flash_sale_entries (sale_id, status, ticket);
-- joinFlashSale calls per shopper and sale, in a window of a minute from the first of them
-- (contract note 16): every call counts, the refused ones too.
CREATE TABLE flash_sale_attempts (
    sale_id TEXT NOT NULL,
    shopper TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    since TIMESTAMP NOT NULL,
    PRIMARY KEY (sale_id, shopper)
);
-- A checkout session holding a sale's units: its units go back to the sale, not to stock.
ALTER TABLE checkout_sessions ADD COLUMN flash_sale_id TEXT;
